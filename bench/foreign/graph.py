"""Foreign tables for the graph entries: graphs the entries were not written for.

- social_circles on an item co-purchase graph built from the Groceries baskets (two items are
  linked when bought in the same basket, weighted by the number of such baskets) -- products,
  not people, with other column names;
- karate_circles (the small-graph settings) on the email-Eu-core graph with its columns renamed
  to caller/callee and no labels.
Both are judged without labels: modularity against degree-preserving rewirings.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def copurchase() -> pd.DataFrame:
    long = pd.read_csv(DATA / "groceries-market-basket" / "groceries_long.csv")
    pairs: dict[tuple[str, str], int] = {}
    for _, items in long.groupby("transaction_id")["item"]:
        for a, b in combinations(sorted(set(items)), 2):
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    return pd.DataFrame([(a, b, n) for (a, b), n in pairs.items()], columns=["item_a", "item_b", "baskets"])


def email_calls() -> pd.DataFrame:
    e = pd.read_csv(DATA / "social-graph" / "email_eu_core_edges.csv")
    return e.rename(columns={"src": "caller", "dst": "callee"})


CASES = [
    dict(key="social_circles", table="Groceries item co-purchase graph (169 items; pairs in the same basket, "
                                     "weight = baskets), no labels",
         load=copurchase, params={"source": "item_a", "destination": "item_b", "weight": "baskets"}),
    dict(key="karate_circles", table="email-Eu-core contact graph renamed caller/callee, no department labels",
         load=email_calls, params={}),
]
