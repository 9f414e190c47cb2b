"""Dataset profiles: what a person (or the LLM agent) needs to know before using a table.

Per column: type, null rate, distinct count, and either a histogram and summary
statistics (numbers, dates) or the top values (text); plus warnings for columns that
cannot help a model (all-null, constant, mostly null, identifier-like) and a few sample
rows. Everything is JSON-serialisable so it is stored with the dataset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SAMPLE_ROWS = 5
HIST_BINS = 10
TOP_VALUES = 10
MAX_PROFILE_ROWS = 500_000  #: histograms/top values over a sample beyond this (counts stay exact)


def _json(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (pd.Timestamp,)):
        return None if pd.isna(v) else v.isoformat()
    if v is pd.NaT:
        return None
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v if isinstance(v, (int, str)) else str(v)


def kind_of(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_numeric_dtype(s):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    return "text"


def profile_column(s: pd.Series, name: str, conversion: str | None = None) -> dict[str, Any]:
    n = len(s)
    nulls = int(s.isna().sum())
    nn = s.dropna()
    if len(nn) > MAX_PROFILE_ROWS:
        nn = nn.sample(MAX_PROFILE_ROWS, random_state=0)
    try:
        distinct = int(s.nunique(dropna=True))
    except TypeError:  # unhashable values
        distinct = int(s.astype(str).nunique(dropna=True))
    kind = kind_of(s)
    col: dict[str, Any] = {"name": name, "kind": kind, "dtype": str(s.dtype), "null_count": nulls,
                           "null_rate": (nulls / n) if n else 0.0, "distinct": distinct}
    if conversion:
        col["conversion"] = conversion
    warnings = []
    if n and nulls == n:
        warnings.append("all_null")
    else:
        if distinct == 1:
            warnings.append("constant")
        if n and nulls / n > 0.5:
            warnings.append("mostly_null")
    if kind == "text" and n > 20 and distinct == n - nulls:
        warnings.append("identifier_like")
    col["warnings"] = warnings
    if nn.empty:
        return col
    if kind == "number":
        x = nn.astype(float).to_numpy()
        q = np.quantile(x, [0.25, 0.5, 0.75])
        col["stats"] = {"min": _json(x.min()), "max": _json(x.max()), "mean": _json(x.mean()),
                        "std": _json(x.std(ddof=1)) if len(x) > 1 else 0.0,
                        "p25": _json(q[0]), "p50": _json(q[1]), "p75": _json(q[2]),
                        "zeros": int((x == 0).sum())}
        if distinct <= HIST_BINS:
            vc = nn.value_counts().sort_index()
            col["top_values"] = [{"value": _json(k), "count": int(v)} for k, v in vc.items()]
        else:
            counts, edges = np.histogram(x, bins=HIST_BINS)
            col["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
    elif kind == "datetime":
        col["stats"] = {"min": _json(nn.min()), "max": _json(nn.max())}
        counts, edges = np.histogram(nn.astype("int64").to_numpy(), bins=HIST_BINS)
        col["histogram"] = {"edges": [pd.Timestamp(int(e)).isoformat() for e in edges],
                            "counts": [int(c) for c in counts]}
    else:
        txt = nn.astype(str)
        vc = txt.value_counts().head(TOP_VALUES)
        col["top_values"] = [{"value": k, "count": int(v)} for k, v in vc.items()]
        lens = txt.str.len()
        col["stats"] = {"min_length": int(lens.min()), "max_length": int(lens.max()),
                        "mean_length": float(lens.mean())}
    return col


def profile_frame(df: pd.DataFrame, conversions: dict[str, str] | None = None) -> dict[str, Any]:
    conversions = conversions or {}
    cols = [profile_column(df[c], str(c), conversions.get(str(c))) for c in df.columns]
    sample = [{str(k): _json(v) for k, v in row.items()} for row in df.head(SAMPLE_ROWS).to_dict("records")]
    warnings = [f"{c['name']}: {w}" for c in cols for w in c["warnings"]]
    return {"rows": int(len(df)), "columns": cols, "sample": sample, "warnings": warnings,
            "memory_bytes": int(df.memory_usage(deep=False).sum())}
