"""User-table cases for the graph entries (issue 10): edge tables the entries were not written for.

Real contact graphs exported the way an operator's analyst would: caller/callee columns named in
Chinese, repeated contacts aggregated into a count column, no ground-truth labels (an operator has
none for circles), so the run is judged by modularity against degree-preserving rewirings.
"""

from __future__ import annotations

import pandas as pd

from zhinao.analytics import datasets


def email_calls():
    edges, _ = datasets.load_email_eu()
    calls = edges.groupby(["src", "dst"]).size().reset_index(name="通话次数")
    calls = calls.rename(columns={"src": "主叫号码", "dst": "被叫号码"})
    calls["主叫号码"] = "1380000" + calls["主叫号码"].astype(str).str.zfill(4)
    calls["被叫号码"] = "1380000" + calls["被叫号码"].astype(str).str.zfill(4)
    return calls, {"source": "主叫号码", "destination": "被叫号码", "weight": "通话次数"}


def karate_members():
    edges = datasets.load_karate().rename(columns={"src": "member_a", "dst": "member_b"})
    edges["member_a"] = "m" + edges["member_a"].astype(str)
    edges["member_b"] = "m" + edges["member_b"].astype(str)
    return edges, {"source": "member_a", "destination": "member_b"}


CASES = {"social_circles": email_calls, "karate_circles": karate_members}
