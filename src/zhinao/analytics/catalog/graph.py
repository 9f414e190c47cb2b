"""Social network analysis: 交往圈识别, 学生客户识别, 集团客户市场占有率测算 on any edge table.

An operator's call/message graph reveals circles -- a campus, a workplace, a family --
that no single subscriber's record shows; a circle lets marketing target the group
(e.g. student packages for a campus circle) and spot its key members (centrality).

:class:`CommunityCircles` finds communities with Louvain modularity maximisation
(networkx, seeded) on the undirected contact graph and ranks members by PageRank, degree
and (sampled) betweenness. The edge table is the user's: roles ``source`` and
``destination`` (the two ends of a contact), optional ``weight`` (calls, minutes),
optional ``label`` (the caller's known group: a department, a group customer, a student
flag) and optional ``network`` (the operator of the contacted number).

Evaluation without labels -- the usual case: an operator has no ground truth for circles --
compares the modularity Louvain reaches on the graph with the modularity it reaches on
random graphs with the same degrees (double edge swaps of an unweighted graph; for a
weighted one, a configuration model on the nodes' strengths -- modularity's own null model;
fixed seeds): a random graph with the same degrees has "communities" too, so only
modularity above the rewired graphs' is structure. With labels (a ``label`` column, or the demo's ``(edges, labels)``
pair: departments of email-Eu-core, the factions of Zachary's karate club) the communities
are also compared with the known groups by NMI and ARI, against a random partition with the
same community sizes. There is no train/test split: community detection sees no labels.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_columns, require_rows, to_numeric
from zhinao.analytics.catalog.roles import NEGATIVE, POSITIVE, Preset, Role, bind, plain, role_params, show
from zhinao.errors import InvalidRequest

MAX_EDGES = 2_000_000
#: above this many edges the rewired baseline is a configuration model (fast) instead of edge swaps
SWAP_EDGES = 25_000
#: above this many edges the baseline is one rewiring, not ``baseline_rounds`` (the run stays ~10 s)
ROUNDS_EDGES = 5_000
#: betweenness is estimated from this many sampled source nodes on larger graphs
BETWEENNESS_SAMPLES = 24
NODE_KINDS = ("id", "categorical", "numeric", "text")
_SOURCE = re.compile(r"^(src|source|from|caller|calling|calling_?number|a_?number|a_?party|origin|sender|node_?1|"
                     r"node_?a|user_?a|主叫|主叫号码|主叫用户|起点|源节点|发送方|发起方)$", re.I)
_DEST = re.compile(r"^(dst|dest|destination|to|callee|called|called_?number|b_?number|b_?party|receiver|node_?2|"
                   r"node_?b|user_?b|被叫|被叫号码|被叫用户|终点|目标节点|接收方)$", re.I)
_WEIGHT = re.compile(r"^(weight|count|calls|n_?calls|times|contacts|duration|minutes|次数|通话次数|联系次数|通话时长|"
                     r"时长|权重)$", re.I)


def _norm(v: Any) -> str:
    v = plain(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip().lower()


def to_graph(edges: pd.DataFrame, src: str = "src", dst: str = "dst", weight: str | None = None):
    """Undirected weighted graph: parallel/reciprocal edges add weight; self-loops dropped."""
    import networkx as nx

    if not isinstance(edges, pd.DataFrame):
        raise InvalidRequest("graph input must be an edge table with a source and a destination column")
    require_columns(edges, [src, dst] + ([weight] if weight else []), "edge table")
    if len(edges) > MAX_EDGES:
        raise InvalidRequest(f"{len(edges)} edges exceed the limit of {MAX_EDGES}", code="too_many_edges")
    e = edges[[src, dst] + ([weight] if weight else [])].dropna(subset=[src, dst])
    if len(e) == 0:
        raise InvalidRequest(f"the edge table has no row with both {src!r} and {dst!r} filled", param="source")
    loops = (e[src].astype(str) == e[dst].astype(str)).to_numpy()
    if loops.all():
        raise InvalidRequest(f"every one of the {len(e)} edges is a self-loop ({src!r} = {dst!r} in each row): a "
                             f"contact graph needs edges between two different nodes; bind source and destination "
                             f"to the two ends of a contact", param="destination")
    e = e[~loops]
    require_rows(len(e), 2, "graph (edges without self-loops)")
    a = e[src].to_numpy()
    b = e[dst].to_numpy()
    if weight:
        w = to_numeric(e[weight], weight)
        if (w < 0).any():
            raise InvalidRequest(f"weight column {weight!r} has negative values (e.g. {show(w[w < 0].iloc[0])}); "
                                 "a contact weight counts calls or minutes", param="weight")
        w = w.fillna(1.0).to_numpy()
    else:
        w = np.ones(len(e))
    sa, sb = a.astype(str), b.astype(str)
    lo = np.where(sa <= sb, a, b)
    hi = np.where(sa <= sb, b, a)
    agg = pd.DataFrame({"u": lo, "v": hi, "w": w}).groupby(["u", "v"], as_index=False, sort=False)["w"].sum()
    g = nx.Graph()
    g.add_weighted_edges_from(agg.itertuples(index=False, name=None))
    if g.number_of_edges() and sum(d for _, _, d in g.edges(data="weight")) <= 0:
        raise InvalidRequest(f"weight column {weight!r} is zero on every edge", param="weight")
    return g


def random_partition_like(sizes: list[int], nodes: list[Any], seed: int = 0) -> dict[Any, int]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(nodes))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return {nodes[i]: int(labels[j]) for j, i in enumerate(perm)}


def rewired(g, seed: int):
    """A random graph with the same (weighted) degrees as ``g``, fixed seed: modularity's own null model.

    - unweighted graphs up to :data:`SWAP_EDGES` edges: double edge swaps (2 per edge: each edge
      is touched ~4 times, all but ~2 % moved), every degree exactly kept;
    - weighted or larger graphs: stub matching (a configuration model) on the *strengths* --
      each node gets one stub per unit of weight, stubs are paired at random, repeated pairs add
      weight, self-pairs are dropped. Shuffling weights over swapped edges would not do: heavy
      edges between hubs (whole milk with everything) would land on random pairs and make
      communities the real graph does not have.
    """
    import networkx as nx

    w = np.array([d for _, _, d in g.edges(data="weight")], dtype=float)
    m = g.number_of_edges()
    if m <= SWAP_EDGES and np.allclose(w, w[0] if len(w) else 1.0):
        h = nx.Graph()
        h.add_nodes_from(g.nodes())
        h.add_edges_from(g.edges(), weight=float(w[0]) if len(w) else 1.0)
        nswap = 2 * m
        try:
            nx.double_edge_swap(h, nswap=nswap, max_tries=nswap * 20, seed=seed)
        except (nx.NetworkXError, nx.NetworkXAlgorithmError):
            pass  # small or dense graphs run out of valid swaps: keep the ones made
        nx.set_edge_attributes(h, float(w[0]) if len(w) else 1.0, "weight")  # swapped-in edges carry none
        return h, f"double edge swaps ({nswap}), degrees kept exactly"
    nodes = list(g.nodes())
    index = {n: i for i, n in enumerate(nodes)}
    total = float(w.sum())
    integral = bool(np.allclose(w, np.round(w))) and total <= 2_000_000
    unit = 1.0 if integral else max(float(w[w > 0].min()), total / 2_000_000)
    units = np.maximum(1, np.round(w / unit)).astype(np.int64)
    ends = np.array([(index[u], index[v]) for u, v in g.edges()], dtype=np.int64).reshape(-1, 2)
    stubs = np.concatenate([np.repeat(ends[:, 0], units), np.repeat(ends[:, 1], units)])
    rng = np.random.default_rng(seed)
    rng.shuffle(stubs)
    if len(stubs) % 2:
        stubs = stubs[:-1]
    pairs = stubs.reshape(-1, 2)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    lo, hi = pairs.min(1), pairs.max(1)
    agg = pd.DataFrame({"u": lo, "v": hi}).value_counts().reset_index(name="n")
    h = nx.Graph()
    h.add_nodes_from(nodes)
    h.add_weighted_edges_from((nodes[u], nodes[v], float(n) * unit) for u, v, n in agg.itertuples(index=False))
    what = "strength (weighted degree)" if not np.allclose(w, w[0]) else "degree"
    return h, (f"configuration model on each node's {what} ({len(stubs)} stubs of {unit:g}; repeated pairs add "
               "weight, self-pairs dropped)")


def _coverage(g, membership: dict[Any, int]) -> float:
    tot = intra = 0.0
    for u, v, w in g.edges(data="weight"):
        tot += w
        if membership[u] == membership[v]:
            intra += w
    return intra / tot if tot else 0.0


def _louvain(g, resolution: float, seed: int) -> list[list[Any]]:
    import networkx as nx

    comms = nx.community.louvain_communities(g, weight="weight", resolution=float(resolution), seed=int(seed))
    return sorted((sorted(c, key=str) for c in comms), key=len, reverse=True)


_ROLES = (
    Role("source", kinds=NODE_KINDS, demo="src",
         help_en="one end of a contact (caller, sender); guessed from names like src, from, caller, 主叫",
         help_zh="联系的一端（主叫、发送方）；可按 src、from、caller、主叫 等列名推断"),
    Role("destination", kinds=NODE_KINDS, demo="dst",
         help_en="the other end (callee, receiver); guessed from names like dst, to, callee, 被叫",
         help_zh="联系的另一端（被叫、接收方）；可按 dst、to、callee、被叫 等列名推断"),
    Role("weight", kinds=("numeric",), required=False,
         help_en="optional contact weight (number of calls, minutes); repeated rows add up anyway",
         help_zh="可选：联系权重（通话次数、分钟数）；重复的行本身也会累加"),
    Role("label", kinds=("categorical", "boolean", "numeric", "id"), required=False,
         help_en="optional known group of the source node (department, group customer, student flag): compares "
                 "the circles with it (NMI, ARI); with the (edges, labels) pair, the label table's column",
         help_zh="可选：源节点的已知分组（部门、集团客户、是否学生），用于与圈子对比（NMI、ARI）"),
    Role("network", kinds=("categorical", "boolean"), required=False,
         help_en="optional operator of the destination number: the share of each circle's contacts inside your "
                 "network (集团客户市场占有率测算); say which value is yours with own_network=",
         help_zh="可选：被叫号码所属运营商；计算各圈子联系中本网所占比例（集团客户市场占有率测算），用 own_network= 指明本网取值"),
)


def _presets(resolution: float) -> tuple[Preset, ...]:
    return (
        Preset("circles", "交往圈识别", "Contact circles", {"resolution": resolution},
               note_en="Circles (Louvain) and key members (PageRank) of the contact graph, judged by modularity "
                       "against degree-preserving rewirings of the same graph.",
               note_zh="在联系图上识别交往圈（Louvain）与关键人物（PageRank），以同度数随机重连图的模块度为基线。"),
        Preset("group_share", "集团客户市场占有率测算", "Group-customer market share", {"resolution": resolution},
               note_en="Bind network= (operator of the contacted number, own_network= your value) and optionally "
                       "label= (the caller's group customer): the run reports, per circle and per group, the share "
                       "of contacts made inside your network -- a proxy for the operator's share of the group's "
                       "communication, not a market share from billing or survey data.",
               note_zh="绑定 network=（被叫所属运营商，own_network= 本网取值），可选 label=（主叫所属集团客户）：按圈子与集团"
                       "给出联系中本网所占比例——这是集团通信中本网份额的近似，并非账单或调研意义上的市场占有率。"),
        Preset("students", "学生客户识别", "Student customer identification", {"resolution": resolution},
               note_en="Bind label= a column marking known students (per caller) and read each circle's dominant "
                       "group and purity: circles where known students concentrate (a campus) are the targets. "
                       "Framing only: the demo graphs carry no student labels.",
               note_zh="绑定 label=（主叫是否为已知学生），看各圈子的主导分组与纯度：已知学生集中的圈子（校园）即目标圈。"
                       "仅为应用框架：演示图中没有学生标注。"),
    )


_INFO_COMMON = dict(
    algorithm="Louvain community detection + PageRank centrality", theme="graph", task="graph",
    application_zh="交往圈识别、学生客户识别、集团客户市场占有率测算：在通话/通信关系图中发现圈子（校园、单位、家庭）与关键人物",
    application_en="find circles (campus, workplace, family) and key members in a contact graph; share of a "
                   "group's contacts inside the operator's network",
    inputs="any edge table (source, destination; optional weight, label of the source's group, network of the "
           "destination); or the pair (edges, node/label table)",
    metrics=("modularity", "coverage"), roles=_ROLES)


class _Circles(MiningModel):
    resolution: float
    seed: int
    top_k: int

    def _init(self, resolution, seed, top_k, source, destination, weight, label, network, own_network,
              baseline_rounds) -> None:
        self.resolution = resolution
        self.seed = seed
        self.top_k = top_k
        self.source = source
        self.destination = destination
        self.weight = weight
        self.label = label
        self.network = network
        self.own_network = own_network
        self.baseline_rounds = baseline_rounds
        # cheap checks at construction (values stored unchanged): a 400 when the run starts
        try:
            ok = float(resolution) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidRequest(f"resolution must be a number > 0 (1 = standard modularity; smaller = fewer, "
                                 f"larger circles), got {resolution!r}", param="resolution")
        for name, v in (("top_k", top_k), ("baseline_rounds", baseline_rounds)):
            try:
                good = float(v) == int(float(v)) and int(float(v)) >= 1
            except (TypeError, ValueError):
                good = False
            if not good:
                raise InvalidRequest(f"{name} must be a whole number >= 1, got {v!r}", param=name)

    # -- binding ---------------------------------------------------------------------------

    def _guess(self, edges: pd.DataFrame, given: dict[str, Any]) -> dict[str, str]:
        """Source/destination/weight from column names when neither bound nor the demo's."""
        cols = [str(c) for c in edges.columns]
        out: dict[str, str] = {}
        for role, pat, demo in (("source", _SOURCE, "src"), ("destination", _DEST, "dst"), ("weight", _WEIGHT, None)):
            if given.get(role) is not None or (demo and demo in cols):
                continue
            taken = {v for v in list(given.values()) + list(out.values()) if isinstance(v, str)}
            hits = [c for c in cols if pat.match(c.strip()) and c not in taken]
            if len(hits) == 1:
                out[role] = hits[0]
        if "source" not in out and given.get("source") is None and "src" not in cols and \
                "destination" not in out and given.get("destination") is None and "dst" not in cols:
            rest = [c for c in cols if c not in {v for v in given.values() if isinstance(v, str)}]
            if len(rest) == 2:  # a bare two-column edge list
                out["source"], out["destination"] = rest
        return out

    def _prepare(self, data: Any) -> tuple[pd.DataFrame, dict[Any, Any] | None]:
        labels = None
        if isinstance(data, tuple):
            if len(data) != 2:
                raise InvalidRequest("graph input is an edge table, or the pair (edges, labels)")
            edges, labels = data
        else:
            edges = data
        if not isinstance(edges, pd.DataFrame):
            raise InvalidRequest("graph input must be an edge table (one row per contact: source, destination)")
        given = {k: v for k, v in role_params(self).items() if v is not None}
        roles = self.info.roles
        if labels is not None:
            given.pop("label", None)
            roles = tuple(r for r in roles if r.name != "label")
        guesses = self._guess(edges, given)
        b = bind(roles, edges, {**given, **guesses}, model_key=self.info.key)
        b.inferred += [r for r in guesses if r not in b.inferred]
        if b.get("source") == b.get("destination"):
            raise InvalidRequest(f"source and destination are both bound to {b['source']!r}; bind the two ends of "
                                 "a contact to two columns", param="destination")
        truth = None
        if labels is not None:
            if not isinstance(labels, pd.DataFrame) or len(labels.columns) < 2:
                raise InvalidRequest("the labels table needs a node column and a label column (node, label)")
            node_col = "node" if "node" in labels.columns else labels.columns[0]
            lab_col = self.label or ("label" if "label" in labels.columns else labels.columns[1])
            require_columns(labels, [node_col, lab_col], "ground-truth table")
            lab = labels[[node_col, lab_col]].dropna()
            truth = dict(zip(lab[node_col], lab[lab_col]))
            b.columns["label"] = str(lab_col)
        elif b.get("label"):
            src, lab_col = b["source"], b["label"]
            lab = edges[[src, lab_col]].dropna()
            if lab.empty:
                raise InvalidRequest(f"label column {lab_col!r} is empty on every edge", param="label")
            # one group per source node: the commonest value over its contacts
            truth = lab.groupby(src, sort=False)[lab_col].agg(lambda s: s.value_counts().index[0]).to_dict()
        self.binding_ = b
        return edges, truth

    def fit(self, X: Any, y: Any = None) -> "_Circles":
        edges, _ = self._prepare(X)
        return self._fit_graph(edges)

    def _fit_graph(self, edges: pd.DataFrame) -> "_Circles":
        import networkx as nx

        b = self.binding_
        g = to_graph(edges, b["source"], b["destination"], b.get("weight"))
        comms = _louvain(g, float(self.resolution), int(self.seed))
        self.communities_ = comms
        self.membership_ = {n: i for i, c in enumerate(comms) for n in c}
        self.modularity_ = float(nx.community.modularity(g, [set(c) for c in comms], weight="weight"))
        self.coverage_ = _coverage(g, self.membership_)
        self.pagerank_ = nx.pagerank(g, weight="weight")
        self.degree_ = dict(g.degree())
        n = g.number_of_nodes()
        self.betweenness_ = nx.betweenness_centrality(g, k=BETWEENNESS_SAMPLES if n > 200 else None,
                                                      seed=int(self.seed))
        self.graph_ = g
        return self

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Refit on the edge table; one row per node: community, PageRank, degree, betweenness (by PageRank)."""
        self.fit(df)
        rows = [{"node": n, "community": self.membership_[n], "community_size": len(self.communities_[c]),
                 "pagerank": self.pagerank_[n], "degree": self.degree_[n], "betweenness": self.betweenness_[n]}
                for n, c in self.membership_.items()]
        return pd.DataFrame(rows).sort_values("pagerank", ascending=False, kind="stable").reset_index(drop=True)

    # -- evaluation ----------------------------------------------------------------------------

    def _own_value(self, s: pd.Series, column: str) -> Any:
        vals = [plain(v) for v in pd.unique(s.dropna())]
        if self.own_network is not None:
            for v in vals:
                if _norm(v) == _norm(self.own_network):
                    return v
            raise InvalidRequest(f"own_network {show(self.own_network)} is not a value of {column!r}; values: "
                                 f"{', '.join(show(v) for v in vals[:12])}", param="own_network")
        if len(vals) == 2:
            a, b = (_norm(v) for v in vals)
            if a in POSITIVE and b in NEGATIVE:
                return vals[0]
            if b in POSITIVE and a in NEGATIVE:
                return vals[1]
        raise InvalidRequest(f"network column {column!r} has values {', '.join(show(v) for v in vals[:12])}: which "
                             f"one is your network? say it with -p own_network=VALUE", param="own_network")

    def _network_share(self, edges: pd.DataFrame, truth: dict | None) -> dict[str, Any]:
        b = self.binding_
        col, src, dst = b["network"], b["source"], b["destination"]
        e = edges.dropna(subset=[src, dst, col])
        e = e[e[src].astype(str) != e[dst].astype(str)]
        if e.empty:
            raise InvalidRequest(f"network column {col!r} is empty on every edge", param="network")
        own = self._own_value(e[col], col)
        w = to_numeric(e[b["weight"]], b["weight"]).fillna(1.0).to_numpy() if b.get("weight") else np.ones(len(e))
        inside = (e[col].map(_norm) == _norm(own)).to_numpy().astype(float)
        frame = pd.DataFrame({"circle": e[src].map(self.membership_).to_numpy(), "w": w, "own": w * inside})
        if truth is not None:
            frame["group"] = e[src].map(truth).to_numpy()

        def table(key: str) -> list[dict[str, Any]]:
            t = frame.dropna(subset=[key]).groupby(key).agg(contacts=("w", "sum"), own=("own", "sum"))
            t = t.sort_values("contacts", ascending=False).head(10)
            return [{key: int(k) if key == "circle" else plain(k), "contacts": round(float(r.contacts), 3),
                     "own_network_share": round(float(r.own / r.contacts), 4) if r.contacts else None}
                    for k, r in t.iterrows()]

        out = {"network_column": col, "own_network": plain(own),
               "overall_share": float(frame["own"].sum() / frame["w"].sum()) if frame["w"].sum() else 0.0,
               "by_circle": table("circle")}
        if truth is not None:
            out["by_group"] = table("group")
        return out

    def evaluate(self, data: Any) -> Evaluation:
        import networkx as nx
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        edges, truth = self._prepare(data)
        b = self.binding_
        t0 = time.perf_counter()
        self._fit_graph(edges)
        fit_s = time.perf_counter() - t0
        g, seed = self.graph_, int(self.seed)
        # the label-free yardstick: what Louvain finds on degree-preserving random graphs like this one
        rounds = max(1, int(self.baseline_rounds)) if g.number_of_edges() <= ROUNDS_EDGES else 1
        q_rand, cov_rand, method = [], [], ""
        for r in range(rounds):
            h, method = rewired(g, seed + r)
            hc = _louvain(h, float(self.resolution), seed)
            q_rand.append(float(nx.community.modularity(h, [set(c) for c in hc], weight="weight")))
            cov_rand.append(_coverage(h, {n: i for i, c in enumerate(hc) for n in c}))
        metrics = {"modularity": self.modularity_, "coverage": self.coverage_,
                   "n_communities": float(len(self.communities_))}
        baseline = {"modularity": float(np.mean(q_rand)), "coverage": float(np.mean(cov_rand))}
        base_names = [f"modularity/coverage: Louvain on {rounds} random graph(s) with the same (weighted) degrees"]
        sd = float(np.std(q_rand)) if len(q_rand) > 1 else 0.0
        expl: dict[str, Any] = {
            "binding": {"source": b["source"], "destination": b["destination"], "weight": b.get("weight"),
                        "label": b.get("label"), "network": b.get("network")},
            "n_nodes": g.number_of_nodes(), "n_edges": g.number_of_edges(), "n_communities": len(self.communities_),
            "rewired_modularity": [round(q, 4) for q in q_rand], "rewiring": method,
            "modularity_z": round((self.modularity_ - float(np.mean(q_rand))) / sd, 2) if sd > 0 else None,
            "betweenness": "exact" if g.number_of_nodes() <= 200 else
                           f"estimated from {BETWEENNESS_SAMPLES} sampled source nodes (seeded)"}
        if truth is not None:
            nodes = [n for n in self.membership_ if n in truth]
            require_rows(len(nodes), 10, "graph nodes with ground-truth labels")
            y_true = [str(truth[n]) for n in nodes]
            y_pred = [self.membership_[n] for n in nodes]
            rnd = random_partition_like([len(c) for c in self.communities_], list(self.membership_), seed)
            y_rand = [rnd[n] for n in nodes]
            metrics.update(nmi=float(normalized_mutual_info_score(y_true, y_pred)),
                           ari=float(adjusted_rand_score(y_true, y_pred)))
            baseline.update(nmi=float(normalized_mutual_info_score(y_true, y_rand)),
                            ari=float(adjusted_rand_score(y_true, y_rand)))
            base_names.append("nmi/ari: a random partition with the same community sizes")
            expl["n_groups_truth"] = int(pd.Series(y_true).nunique())
            expl["labelled_nodes"] = len(nodes)
        top = sorted(self.pagerank_.items(), key=lambda kv: -kv[1])[: int(self.top_k)]
        share = self._network_share(edges, truth) if b.get("network") else None
        by_circle = {r["circle"]: r["own_network_share"] for r in share["by_circle"]} if share else {}
        circles = []
        for i, c in enumerate(self.communities_[:10]):
            row: dict[str, Any] = {"community": i, "size": len(c),
                                   "key_members": [str(n) for n in sorted(c, key=lambda n: -self.pagerank_[n])[:5]]}
            if truth is not None:
                dom = pd.Series([str(truth[n]) for n in c if n in truth]).value_counts()
                row["dominant_group"] = None if dom.empty else str(dom.index[0])
                row["purity"] = None if dom.empty else round(float(dom.iloc[0] / dom.sum()), 3)
            if share:
                row["own_network_share"] = by_circle.get(i)
            circles.append(row)
        expl["largest_communities"] = circles
        expl["top_pagerank"] = [{"node": str(n), "pagerank": round(v, 5), "degree": self.degree_[n],
                                 "betweenness": round(self.betweenness_[n], 5)} for n, v in top]
        notes = [f"Edges: {b['source']} - {b['destination']}"
                 + (f", weighted by {b['weight']}" if b.get("weight") else "")
                 + "; made undirected, reciprocal and repeated contacts add weight, self-loops are dropped.",
                 "Baseline: " + "; ".join(base_names) + f" ({method}) "
                 "-- a random graph with the same degrees still has 'communities', so only modularity above it is "
                 "structure."]
        if truth is None:
            notes.append("No label bound: judged without ground truth (modularity and coverage against the rewired "
                         "graphs); bind label=COLUMN (the caller's known group) to also get NMI and ARI.")
        else:
            notes.append(f"Ground truth: {b.get('label')!s} of {expl['labelled_nodes']} nodes, used only to "
                         "judge the circles (NMI/ARI), never to find them.")
        if share:
            metrics["own_network_share"] = share["overall_share"]
            expl["network_share"] = share
            notes.append(f"Network share: the share of contact weight from each circle's members to numbers whose "
                         f"{share['network_column']} is {show(share['own_network'])} -- a proxy for the operator's "
                         "share of the circle's (group's) communication, not a billing or survey market share.")
        expl.update(fit_seconds=round(fit_s, 3), notes=notes,
                    split={"protocol": "unsupervised: communities found on the whole graph without labels; judged "
                                       "against degree-preserving rewirings" + (" and the labelled nodes' groups"
                                                                                if truth is not None else "")})
        out_charts = {"communities": self._draw(), "centrality_top": charts.bar_chart(
            [str(n) for n, _ in top], [v for _, v in top], "PageRank 关键人物 top", xlabel="PageRank", top=len(top))}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="; ".join(base_names),
                          explanation=expl, charts=out_charts, plots=self._plots(metrics, baseline, circles, top,
                                                                                  share, "; ".join(base_names)))

    def _plots(self, metrics, baseline, circles, top, share, base_name) -> dict[str, Any]:
        keep = [n for n, _ in sorted(self.pagerank_.items(), key=lambda kv: -kv[1])[:150]]
        kept = set(keep)
        nodes = [{"id": str(n), "name": str(n), "group": str(self.membership_[n]), "value": self.pagerank_[n]}
                 for n in keep]
        links = [{"source": str(u), "target": str(v), "value": w} for u, v, w in
                 self.graph_.subgraph(kept).edges(data="weight")]
        spec = plots.graph(nodes, links, "交往圈：PageRank 最高的节点 Circles: top nodes by PageRank")
        spec["sampled"] = self.graph_.number_of_nodes() > len(keep)
        cols = ["community", "size", "key_members"] + [c for c in ("dominant_group", "purity", "own_network_share")
                                                       if circles and c in circles[0]]
        out = {"graph": spec,
               "vs_baseline": plots.compare({k: v for k, v in metrics.items() if k in baseline}, baseline,
                                            "模块度与基线 Modularity vs rewired baseline", base_name),
               "circles": plots.table(cols, [[", ".join(r[c]) if c == "key_members" else r.get(c) for c in cols]
                                             for r in circles], "最大的圈子 Largest circles"),
               "centrality": plots.bar([str(n) for n, _ in top], [v for _, v in top], "PageRank 关键人物 Key members",
                                       top=len(top), series_name="PageRank")}
        if share:
            rows = share["by_circle"]
            out["network_share"] = {"type": "bar", "title": "本网联系占比 Share of contacts inside your network",
                                    "horizontal": False, "categories": [f"圈 {r['circle']}" for r in rows],
                                    "series": [{"name": "share", "values": [r["own_network_share"] for r in rows]}]}
        return out

    def _draw(self, max_communities: int = 6, max_nodes: int = 400) -> bytes:
        import networkx as nx

        keep = [c for c in self.communities_[:max_communities]]
        nodes = [n for c in keep for n in c]
        if len(nodes) > max_nodes:  # sample each community proportionally, keep the drawing readable
            rng = np.random.default_rng(0)
            frac = max_nodes / len(nodes)
            nodes = [c[i] for c in keep for i in rng.choice(len(c), min(len(c), max(3, int(len(c) * frac))),
                                                            replace=False)]
        sub = self.graph_.subgraph(nodes)
        pos = nx.spring_layout(sub, seed=int(self.seed), k=None, iterations=50)
        fig, ax = charts.figure(7.0, 6.0)
        cmap = ["#e74c3c", "#3498db", "#2ecc71", "#9b59b6", "#f39c12", "#1abc9c", "#7f8c8d"]
        nx.draw_networkx_edges(sub, pos, ax=ax, alpha=0.08 if sub.number_of_edges() > 300 else 0.4, width=0.5)
        for i, c in enumerate(keep):
            cs = [n for n in c if n in sub]
            size = [30 + 3000 * self.pagerank_[n] * len(self.pagerank_) / 100 for n in cs]
            nx.draw_networkx_nodes(sub, pos, nodelist=cs, node_color=cmap[i % len(cmap)], node_size=size,
                                   ax=ax, label=f"圈子 {i} ({len(c)})")
        if sub.number_of_nodes() <= 60:
            nx.draw_networkx_labels(sub, pos, ax=ax, font_size=7)
        ax.set_title(f"{self.info.name_zh}: 最大的 {len(keep)} 个圈子 (node size = PageRank)")
        ax.axis("off")
        ax.legend(loc="lower left", fontsize=7)
        return charts.to_png(fig)


@register
class CommunityCircles(_Circles):
    info: ClassVar[ModelInfo] = ModelInfo(
        key="social_circles", name_zh="社交网络分析：交往圈识别", name_en="Social network analysis: contact circles",
        dataset="email_eu", presets=_presets(1.0), **_INFO_COMMON)

    def __init__(self, resolution: float = 1.0, seed: int = 0, top_k: int = 15, source: str | None = None,
                 destination: str | None = None, weight: str | None = None, label: str | None = None,
                 network: str | None = None, own_network: Any = None, baseline_rounds: int = 3):
        self._init(resolution, seed, top_k, source, destination, weight, label, network, own_network,
                   baseline_rounds)

    def load_demo(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        edges, labels = datasets.load_email_eu()
        return edges, labels.rename(columns={"department": "label"})


@register
class KarateCircles(_Circles):
    """The same method on Zachary's karate club: small enough to read the drawing."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="karate_circles", name_zh="社交网络分析：空手道俱乐部分裂", name_en="Social network analysis: karate club split",
        dataset="karate", presets=_presets(0.5), **_INFO_COMMON)

    def __init__(self, resolution: float = 0.5, seed: int = 0, top_k: int = 10, source: str | None = None,
                 destination: str | None = None, weight: str | None = None, label: str | None = None,
                 network: str | None = None, own_network: Any = None, baseline_rounds: int = 3):
        self._init(resolution, seed, top_k, source, destination, weight, label, network, own_network,
                   baseline_rounds)

    def load_demo(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        import networkx as nx

        edges = datasets.load_karate()
        # Ground truth: the club each member joined after the split (Zachary 1977), as
        # shipped in networkx; our karate ids are networkx's + 1 (checked in SOURCE.md).
        g = nx.karate_club_graph()
        labels = pd.DataFrame({"node": [n + 1 for n in g.nodes],
                               "label": [g.nodes[n]["club"] for n in g.nodes]})
        return edges, labels
