"""Community detection on real contact graphs: against known groups, and without labels on any
edge table (modularity against degree-preserving rewirings)."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.graph import (CommunityCircles, KarateCircles, random_partition_like, rewired,
                                            to_graph)
from zhinao.analytics.runs import check_params
from zhinao.errors import InvalidRequest


def test_graph_is_undirected_weighted_without_self_loops():
    edges = pd.DataFrame({"src": [1, 2, 1, 3], "dst": [2, 1, 1, 1]})
    g = to_graph(edges)
    assert g.number_of_edges() == 2 and g[1][2]["weight"] == 2.0 and not g.has_edge(1, 1)
    g = to_graph(pd.DataFrame({"a": ["x", "y", "z"], "b": ["y", "z", "x"], "w": [2, 3, None]}), "a", "b", "w")
    assert g["x"]["y"]["weight"] == 2.0 and g["z"]["x"]["weight"] == 1.0  # missing weight counts once


def test_random_partition_keeps_sizes():
    nodes = list(range(10))
    part = random_partition_like([6, 3, 1], nodes, seed=1)
    assert sorted(pd.Series(part).value_counts().tolist()) == [1, 3, 6]


def test_rewiring_keeps_every_degree_and_the_weights():
    g = to_graph(datasets.load_karate())
    h, method = rewired(g, seed=1)
    assert dict(h.degree()) == dict(g.degree()) and "swap" in method
    assert set(map(frozenset, h.edges())) != set(map(frozenset, g.edges()))
    assert sorted(d for _, _, d in h.edges(data="weight")) == sorted(d for _, _, d in g.edges(data="weight"))
    a, _ = rewired(g, seed=1)
    assert set(map(frozenset, a.edges())) == set(map(frozenset, h.edges()))  # seeded


@pytest.mark.slow
def test_email_eu_communities_recover_departments():
    m = CommunityCircles()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["nmi"] > ev.baseline["nmi"] + 0.3
    assert ev.metrics["ari"] > ev.baseline["ari"] + 0.1
    assert ev.metrics["modularity"] > ev.baseline["modularity"] and ev.metrics["modularity"] > 0.3
    assert ev.explanation["n_nodes"] > 900 and len(ev.explanation["top_pagerank"]) == 15
    assert {"communities", "centrality_top"} <= set(ev.charts)
    assert {"graph", "vs_baseline", "circles", "centrality"} <= set(ev.plots)
    json.dumps(ev.plots, allow_nan=False)
    assert len(ev.plots["graph"]["nodes"]) == 150 and ev.plots["graph"]["links"]


def test_karate_split_is_found():
    m = KarateCircles()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["ari"] > 0.5 > ev.baseline["ari"]
    # the two leaders (members 1 and 34) are the most central and end up in different circles
    top2 = {d["node"] for d in ev.explanation["top_pagerank"][:2]}
    assert top2 == {"1", "34"} and m.membership_[1] != m.membership_[34]
    scored = m.predict_table(datasets.load_karate())
    assert len(scored) == 34 and scored["pagerank"].is_monotonic_decreasing
    assert {"betweenness", "degree", "community"} <= set(scored.columns)


def _two_villages(seed: int = 0) -> pd.DataFrame:
    """Two dense groups of 30 phones with a few calls between them: structure known by construction."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(60):
        for b in range(a + 1, 60):
            same = (a < 30) == (b < 30)
            if rng.random() < (0.4 if same else 0.01):
                rows.append((f"139{a:04d}", f"139{b:04d}", int(rng.integers(1, 9))))
    return pd.DataFrame(rows, columns=["主叫", "被叫", "通话次数"])


def test_any_edge_table_runs_without_labels_and_roles_are_guessed_from_names():
    df = _two_villages()
    m = CommunityCircles(baseline_rounds=2)
    ev = m.evaluate(df)  # no parameters: 主叫/被叫/通话次数 are recognised
    assert m.binding_.columns == {"source": "主叫", "destination": "被叫", "weight": "通话次数"}
    assert {"source", "destination", "weight"} <= set(m.binding_.inferred)
    assert ev.metrics["modularity"] > ev.baseline["modularity"] + 0.1
    assert ev.metrics["n_communities"] == 2 and "nmi" not in ev.metrics
    assert any("No label bound" in n for n in ev.explanation["notes"])
    assert len(ev.explanation["rewired_modularity"]) == 2


def test_a_random_graph_does_not_beat_its_rewiring_by_much():
    g = nx.gnm_random_graph(120, 600, seed=4)
    df = pd.DataFrame(list(g.edges()), columns=["a", "b"])
    ev = CommunityCircles(source="a", destination="b").evaluate(df)
    # no planted structure: what Louvain finds is what it finds on a degree-preserving shuffle
    assert abs(ev.metrics["modularity"] - ev.baseline["modularity"]) < 0.05


def test_label_column_of_the_edge_table_gives_nmi_and_ari():
    df = _two_villages()
    df["主叫村"] = np.where(df["主叫"].str[3:].astype(int) < 30, "东村", "西村")
    m = CommunityCircles(label="主叫村")
    ev = m.evaluate(df)
    assert ev.metrics["nmi"] > 0.8 and ev.baseline["nmi"] < 0.2
    assert {r["dominant_group"] for r in ev.explanation["largest_communities"]} == {"东村", "西村"}


def test_group_market_share_when_the_operator_column_is_bound():
    df = _two_villages()
    # SYNTHETIC operator of each called number: east village mostly on our network
    east = df["被叫"].str[3:].astype(int) < 30
    df["被叫运营商"] = np.where(east, "移动", "联通")
    with pytest.raises(InvalidRequest, match="own_network"):
        CommunityCircles(network="被叫运营商").evaluate(df)
    with pytest.raises(InvalidRequest, match="电信.*not a value"):
        CommunityCircles(network="被叫运营商", own_network="电信").evaluate(df)
    m = CommunityCircles(network="被叫运营商", own_network="移动")
    ev = m.evaluate(df)
    share = ev.explanation["network_share"]
    assert share["own_network"] == "移动" and 0.3 < ev.metrics["own_network_share"] < 0.7
    by = sorted(r["own_network_share"] for r in share["by_circle"])
    assert by[0] < 0.1 and by[-1] > 0.9  # one circle inside our network, one outside
    assert "network_share" in ev.plots
    df["本网"] = np.where(east, "是", "否")  # yes/no needs no own_network
    assert CommunityCircles(network="本网").evaluate(df).explanation["network_share"]["own_network"] == "是"


def test_presets_are_parameter_sets():
    for cls in (CommunityCircles, KarateCircles):
        names = {p.name_zh for p in cls.info.presets}
        assert {"交往圈识别", "集团客户市场占有率测算", "学生客户识别"} <= names
        for p in cls.info.presets:
            assert type(cls(**check_params(cls, {}, p.key))) is cls
    assert check_params(CommunityCircles, {"source_column": "a"})["source"] == "a"  # legacy alias


def test_bad_inputs():
    with pytest.raises(InvalidRequest, match="dst"):
        to_graph(pd.DataFrame({"src": [1]}))
    with pytest.raises(InvalidRequest, match="self-loop"):
        to_graph(pd.DataFrame({"src": [1, 2], "dst": [1, 2]}))
    with pytest.raises(InvalidRequest, match="self-loop"):
        CommunityCircles(source="a", destination="b").evaluate(pd.DataFrame({"a": ["x", "y"], "b": ["x", "y"]}))
    with pytest.raises(InvalidRequest, match="主叫号码.*lacks"):
        CommunityCircles(source="主叫号码").evaluate(_two_villages())
    with pytest.raises(InvalidRequest, match="negative"):
        df = _two_villages()
        df.loc[0, "通话次数"] = -3
        CommunityCircles().evaluate(df)
    with pytest.raises(InvalidRequest, match="source"):
        CommunityCircles().evaluate(pd.DataFrame({"x": [1, 2], "y": [2, 3], "z": [3, 4]}))
    with pytest.raises(InvalidRequest, match="two columns"):
        CommunityCircles(source="主叫", destination="主叫").evaluate(_two_villages())
    # labels are optional now: the karate edge table alone is judged by modularity
    ev = CommunityCircles().evaluate(datasets.load_karate())
    assert ev.metrics["modularity"] > ev.baseline["modularity"] and "nmi" not in ev.metrics


def test_weighted_null_keeps_each_node_s_strength():
    df = _two_villages()
    g = to_graph(df, "主叫", "被叫", "通话次数")
    h, method = rewired(g, seed=2)
    assert "configuration model" in method and set(h.nodes()) == set(g.nodes())
    s_g, s_h = dict(g.degree(weight="weight")), dict(h.degree(weight="weight"))
    lost = sum(s_g.values()) - sum(s_h.values())  # only the self-pairs are dropped
    assert 0 <= lost < 0.05 * sum(s_g.values())
    assert max(abs(s_g[n] - s_h[n]) for n in g) <= 0.1 * max(s_g.values())


def test_a_run_on_a_workspace_edge_table_records_binding_and_plots(service, ws):
    from tests.analytics.conftest import TENANT

    service.workspaces.save_frame(TENANT, ws, "通话", _two_villages(), source="csv")
    r = service.start_run(TENANT, "social_circles", workspace=ws, dataset="通话", preset="circles")
    r = service.runs.wait(TENANT, r["id"], 120)
    assert r["status"] == "succeeded", r["error"]
    assert r["binding"]["columns"] == {"source": "主叫", "destination": "被叫", "weight": "通话次数"}
    assert r["beats_baseline"] is True and "graph" in r["plots"]
    scored = service.score(TENANT, r["id"], ws, "通话", "圈子")
    nodes = service.workspaces.frame(TENANT, ws, scored["name"])
    assert len(nodes) == 60 and nodes["community"].nunique() == 2
    # self-loops only: a clear failure naming the columns
    service.workspaces.save_frame(TENANT, ws, "自环", pd.DataFrame({"主叫": ["a", "b"], "被叫": ["a", "b"]}),
                                  source="csv")
    bad = service.runs.wait(TENANT, service.start_run(TENANT, "social_circles", workspace=ws, dataset="自环")["id"],
                            60)
    assert bad["status"] == "failed" and "self-loop" in bad["error"] and "'主叫'" in bad["error"]


def test_bad_options_are_refused_at_construction():
    with pytest.raises(InvalidRequest, match="resolution must be a number > 0"):
        CommunityCircles(resolution=0)
    with pytest.raises(InvalidRequest, match="baseline_rounds"):
        KarateCircles(baseline_rounds="x")
    with pytest.raises(InvalidRequest, match="top_k"):
        CommunityCircles(top_k=0)
