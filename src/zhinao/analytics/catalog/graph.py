"""Social network analysis: 学生客户识别 / 交往圈识别 (circles in a contact graph).

An operator's call/message graph reveals circles -- a campus, a workplace, a family --
that no single subscriber's record shows; a circle lets marketing target the group
(e.g. student packages for a campus circle) and spot its key members (centrality).

:class:`CommunityCircles` finds communities with Louvain modularity maximisation
(networkx, seeded) on the undirected contact graph and ranks members by PageRank and
degree. Evaluation compares the communities with known ground-truth groups (departments of
email-Eu-core, the two factions of Zachary's karate club) by NMI and ARI, against a random
partition with the same community sizes (the "found nothing" baseline). The graph has no
train/test split: community detection sees no labels, so the labels are the hold-out.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_columns, require_rows
from zhinao.errors import InvalidRequest

MAX_EDGES = 2_000_000


def to_graph(edges: pd.DataFrame, src: str = "src", dst: str = "dst", weight: str | None = None):
    """Undirected weighted graph: parallel/reciprocal edges add weight; self-loops dropped."""
    import networkx as nx

    if not isinstance(edges, pd.DataFrame):
        raise InvalidRequest("graph input must be an edge table with columns src, dst")
    require_columns(edges, [src, dst], "edge table")
    if len(edges) > MAX_EDGES:
        raise InvalidRequest(f"{len(edges)} edges exceed the limit of {MAX_EDGES}", code="too_many_edges")
    e = edges[[src, dst] + ([weight] if weight else [])].dropna(subset=[src, dst])
    e = e[e[src] != e[dst]]
    require_rows(len(e), 2, "graph (edges without self-loops)")
    a = e[src].to_numpy()
    b = e[dst].to_numpy()
    w = e[weight].astype(float).to_numpy() if weight else np.ones(len(e))
    lo = np.where(a.astype(str) <= b.astype(str), a, b)
    hi = np.where(a.astype(str) <= b.astype(str), b, a)
    agg = pd.DataFrame({"u": lo, "v": hi, "w": w}).groupby(["u", "v"], as_index=False)["w"].sum()
    g = nx.Graph()
    g.add_weighted_edges_from(agg.itertuples(index=False, name=None))
    return g


def random_partition_like(sizes: list[int], nodes: list[Any], seed: int = 0) -> dict[Any, int]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(nodes))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return {nodes[i]: int(labels[j]) for j, i in enumerate(perm)}


class _Circles(MiningModel):
    resolution: float
    seed: int
    top_k: int

    def fit(self, X: Any, y: Any = None) -> "_Circles":
        import networkx as nx

        edges = X[0] if isinstance(X, tuple) else X
        g = to_graph(edges)
        comms = nx.community.louvain_communities(g, weight="weight", resolution=float(self.resolution),
                                                 seed=int(self.seed))
        comms = sorted((sorted(c, key=str) for c in comms), key=len, reverse=True)
        self.communities_ = comms
        self.membership_ = {n: i for i, c in enumerate(comms) for n in c}
        self.modularity_ = float(nx.community.modularity(g, [set(c) for c in comms], weight="weight"))
        pr = nx.pagerank(g, weight="weight")
        self.pagerank_ = pr
        self.degree_ = dict(g.degree())
        self.graph_ = g
        return self

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Refit on the edge table; one row per node: community, PageRank, degree (by PageRank)."""
        self.fit(df)
        rows = [{"node": n, "community": self.membership_[n], "community_size": len(self.communities_[c]),
                 "pagerank": self.pagerank_[n], "degree": self.degree_[n]}
                for n, c in self.membership_.items()]
        return pd.DataFrame(rows).sort_values("pagerank", ascending=False).reset_index(drop=True)

    def evaluate(self, data: Any) -> Evaluation:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        if not (isinstance(data, tuple) and len(data) == 2):
            raise InvalidRequest("evaluation needs (edges, labels): an edge table and a node,label table "
                                 "of ground-truth groups")
        edges, labels = data
        require_columns(labels, ["node", "label"], "ground-truth table")
        t0 = time.perf_counter()
        self.fit(edges)
        fit_s = time.perf_counter() - t0
        truth = dict(zip(labels["node"], labels["label"]))
        nodes = [n for n in self.membership_ if n in truth]
        require_rows(len(nodes), 10, "graph nodes with ground-truth labels")
        y_true = [truth[n] for n in nodes]
        y_pred = [self.membership_[n] for n in nodes]
        rnd = random_partition_like([len(c) for c in self.communities_], list(self.membership_), int(self.seed))
        y_rand = [rnd[n] for n in nodes]
        metrics = {"nmi": float(normalized_mutual_info_score(y_true, y_pred)),
                   "ari": float(adjusted_rand_score(y_true, y_pred)),
                   "modularity": self.modularity_}
        import networkx as nx
        rnd_comms = [set(n for n, c in rnd.items() if c == k) for k in range(len(self.communities_))]
        baseline = {"nmi": float(normalized_mutual_info_score(y_true, y_rand)),
                    "ari": float(adjusted_rand_score(y_true, y_rand)),
                    "modularity": float(nx.community.modularity(self.graph_, rnd_comms, weight="weight"))}
        top = sorted(self.pagerank_.items(), key=lambda kv: -kv[1])[: int(self.top_k)]
        circles = []
        for i, c in enumerate(self.communities_[:10]):
            labs = pd.Series([truth[n] for n in c if n in truth])
            dom = labs.value_counts()
            circles.append({"community": i, "size": len(c),
                            "dominant_group": None if dom.empty else str(dom.index[0]),
                            "purity": None if dom.empty else round(float(dom.iloc[0] / len(labs)), 3),
                            "key_members": [str(n) for n in sorted(c, key=lambda n: -self.pagerank_[n])[:5]]})
        expl = {"n_nodes": self.graph_.number_of_nodes(), "n_edges": self.graph_.number_of_edges(),
                "n_communities": len(self.communities_), "n_groups_truth": int(pd.Series(y_true).nunique()),
                "largest_communities": circles,
                "top_pagerank": [{"node": str(n), "pagerank": round(v, 5), "degree": self.degree_[n]} for n, v in top],
                "fit_seconds": round(fit_s, 3),
                "split": {"protocol": "unsupervised: communities found without labels, compared with the "
                                      "ground-truth groups of every labelled node"},
                "notes": ["Baseline: a random partition with the same community sizes (NMI/ARI of a "
                          "method that found no structure).",
                          "Edges are made undirected; reciprocal and repeated contacts add weight; "
                          "self-loops are dropped."]}
        out = {"communities": self._draw(), "centrality_top": charts.bar_chart(
            [str(n) for n, _ in top], [v for _, v in top], "PageRank 关键人物 top", xlabel="PageRank", top=len(top))}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="random partition, same sizes",
                          explanation=expl, charts=out)

    def _draw(self, max_communities: int = 6, max_nodes: int = 400) -> bytes:
        import networkx as nx

        keep = [c for c in self.communities_[:max_communities]]
        nodes = [n for c in keep for n in c]
        if len(nodes) > max_nodes:  # sample each community proportionally, keep the drawing readable
            rng = np.random.default_rng(0)
            frac = max_nodes / len(nodes)
            nodes = [n for c in keep for n in rng.choice(c, max(3, int(len(c) * frac)), replace=False).tolist()]
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


_INFO_COMMON = dict(
    algorithm="Louvain community detection + PageRank centrality", theme="graph",
    application_zh="学生客户识别、交往圈识别：在通话/通信关系图中发现圈子（校园、单位、家庭）与关键人物",
    application_en="find circles (campus, workplace, family) and key members in a contact graph",
    inputs="edge table `src`,`dst` (optional `weight`); for evaluation also `node`,`label` ground truth",
    metrics=("nmi", "ari", "modularity"))


@register
class CommunityCircles(_Circles):
    info: ClassVar[ModelInfo] = ModelInfo(
        key="social_circles", name_zh="社交网络分析：交往圈识别", name_en="Social network analysis: contact circles",
        dataset="email_eu", **_INFO_COMMON)

    def __init__(self, resolution: float = 1.0, seed: int = 0, top_k: int = 15):
        self.resolution = resolution
        self.seed = seed
        self.top_k = top_k

    def load_demo(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        edges, labels = datasets.load_email_eu()
        return edges, labels.rename(columns={"department": "label"})

    def from_frame(self, df: pd.DataFrame) -> Any:
        return df


@register
class KarateCircles(_Circles):
    """The same method on Zachary's karate club: small enough to read the drawing."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="karate_circles", name_zh="社交网络分析：空手道俱乐部分裂", name_en="Social network analysis: karate club split",
        dataset="karate", **_INFO_COMMON)

    def __init__(self, resolution: float = 0.5, seed: int = 0, top_k: int = 10):
        self.resolution = resolution
        self.seed = seed
        self.top_k = top_k

    def load_demo(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        import networkx as nx

        edges = datasets.load_karate()
        # Ground truth: the club each member joined after the split (Zachary 1977), as
        # shipped in networkx; our karate ids are networkx's + 1 (checked in SOURCE.md).
        g = nx.karate_club_graph()
        labels = pd.DataFrame({"node": [n + 1 for n in g.nodes],
                               "label": [g.nodes[n]["club"] for n in g.nodes]})
        return edges, labels
