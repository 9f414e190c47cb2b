"""Community detection on real contact graphs, scored against known groups."""

from __future__ import annotations

import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.graph import CommunityCircles, KarateCircles, random_partition_like, to_graph
from zhinao.errors import InvalidRequest


def test_graph_is_undirected_weighted_without_self_loops():
    edges = pd.DataFrame({"src": [1, 2, 1, 3], "dst": [2, 1, 1, 1]})
    g = to_graph(edges)
    assert g.number_of_edges() == 2 and g[1][2]["weight"] == 2.0 and not g.has_edge(1, 1)


def test_random_partition_keeps_sizes():
    nodes = list(range(10))
    part = random_partition_like([6, 3, 1], nodes, seed=1)
    assert sorted(pd.Series(part).value_counts().tolist()) == [1, 3, 6]


@pytest.mark.slow
def test_email_eu_communities_recover_departments():
    m = CommunityCircles()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["nmi"] > ev.baseline["nmi"] + 0.3
    assert ev.metrics["ari"] > ev.baseline["ari"] + 0.1
    assert ev.metrics["modularity"] > 0.3
    assert ev.explanation["n_nodes"] > 900 and len(ev.explanation["top_pagerank"]) == 15
    assert {"communities", "centrality_top"} <= set(ev.charts)


def test_karate_split_is_found():
    m = KarateCircles()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["ari"] > 0.5 > ev.baseline["ari"]
    # the two leaders (members 1 and 34) are the most central and end up in different circles
    top2 = {d["node"] for d in ev.explanation["top_pagerank"][:2]}
    assert top2 == {"1", "34"} and m.membership_[1] != m.membership_[34]
    scored = m.predict_table(datasets.load_karate())
    assert len(scored) == 34 and scored["pagerank"].is_monotonic_decreasing


def test_bad_inputs():
    with pytest.raises(InvalidRequest, match="dst"):
        to_graph(pd.DataFrame({"src": [1]}))
    with pytest.raises(InvalidRequest, match="at least"):
        to_graph(pd.DataFrame({"src": [1, 2], "dst": [1, 2]}))
    with pytest.raises(InvalidRequest, match="ground-truth"):
        CommunityCircles().evaluate(datasets.load_karate())
