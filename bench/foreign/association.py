"""Foreign tables for the association entries (cross_sell_apriori, basket_item_cf).

Each entry meets tables it was not written for, read from ../shared at run time (no copies):

- the MSNBC click log (sessions 500,001-520,000 of msnbc990928.seq, not the demo's first
  100,000) as baskets: the set of site sections a visitor opened (long table 会话 / 栏目);
- cross_sell_apriori on the groceries receipts (long, its own transaction_id/item names; the
  entry's demo is the Telco wide table); basket_item_cf on the IBM Telco service columns (wide;
  its demo is the groceries long table).

Not measured: the Orange Telecom churn file as service baskets. It has only two Yes/No services
(International plan, Voice mail plan); even with Customer service calls (> 0) as a third item, a
hold-out basket lacks at most two items, so hit_rate@3 is 1.0 for any recommender, the
most-popular baseline included (tried once: 1.0 vs 1.0) -- a tie that says nothing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MSNBC = SHARED / "data" / "sequence-mining" / "msnbc990928.seq"
GROCERIES = SHARED / "data" / "groceries-market-basket" / "groceries_long.csv"
TELCO = SHARED / "data" / "telco-customer-churn-ibm"


@lru_cache(maxsize=2)
def msnbc_long(first: int = 500_000, n: int = 20_000) -> pd.DataFrame:
    """Sessions ``first+1 .. first+n`` of the original file as a long click log with names."""
    with open(MSNBC, encoding="utf-8") as f:
        lines = f.read().splitlines()
    names = lines[2].split()
    data = lines[lines.index("% Sequences:") + 2:]
    rows = [(f"V{first + i + 1}", pos, names[int(c) - 1]) for i, line in enumerate(data[first:first + n])
            for pos, c in enumerate(line.split())]
    return pd.DataFrame(rows, columns=["会话", "序号", "栏目"])


def telco() -> pd.DataFrame:
    path = next(p for p in sorted(TELCO.glob("*.csv")))
    return pd.read_csv(path)


_TELCO_SERVICES = ["PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup",
                   "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]

CASES = [
    dict(key="cross_sell_apriori", table="MSNBC click log sessions 500,001-520,000 as baskets of site sections "
         "(long: 会话 / 栏目)", load=msnbc_long, params={"session": "会话", "item": "栏目"}),
    dict(key="basket_item_cf", table="MSNBC click log sessions 500,001-520,000 as baskets of site sections "
         "(long: 会话 / 栏目)", load=msnbc_long, params={"session": "会话", "item": "栏目"}),
    dict(key="cross_sell_apriori", table="groceries receipts, long table transaction_id / item (9,835 baskets)",
         load=lambda: pd.read_csv(GROCERIES), params={"session": "transaction_id", "item": "item",
                                                     "min_support": 0.002, "min_confidence": 0.05, "max_len": 3}),
    dict(key="basket_item_cf", table="IBM Telco customers, the 9 service columns as a wide table (7,043 rows)",
         load=telco, params={"features": _TELCO_SERVICES, "id": "customerID"}),
]
