"""Foreign tables for the clustering entries: the Orange Telecom churn file (measured, never tuned on).

KMeans and EM run on its numeric usage columns, KModes on its categorical ones with ``Churn``
(True/False) only describing the segments. The entries were written for IBM Telco; Orange has
other columns (``Total day minutes``, ``International plan`` …) and other value spellings.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ORANGE = SHARED / "benchmarks" / "orange-telecom-churn" / "churn-bigml-80.csv"


def orange() -> pd.DataFrame:
    return pd.read_csv(ORANGE)


_TABLE = "Orange Telecom churn, churn-bigml-80.csv (2,666 rows)"

CASES = [
    dict(key="sim_farm_kmeans", table=_TABLE + ": every usable numeric column (inferred), no label",
         load=orange, params={"n_clusters": 8}),
    dict(key="segments_em", table=_TABLE + ": numeric columns (inferred), Churn True/False describes segments",
         load=orange, params={"label": "Churn"}),
    dict(key="segments_kmodes", table=_TABLE + ": State, International plan, Voice mail plan; Churn describes",
         load=orange, params={"label": "Churn", "n_clusters": 4}),
]
