"""Helpers the runner and every catalogue family share.

The protocol itself is :class:`zhinao.analytics.catalog.base.MiningModel`: ``fit``,
``load_demo`` and ``evaluate`` are abstract (required); ``predict_table`` (with the flag
``supports_predict``) and ``from_frame`` are optional. The runner
(:mod:`zhinao.analytics.runs`) and the conformance suite
(``tests/conformance/test_mining_models.py``) call only these, so every family stays free to
choose its own data shape.

Helpers here judge a run against its baseline and give every family the same clear
errors (naming the column or the limit).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo
from zhinao.errors import InvalidRequest

#: metric names where smaller is better (everything else: larger is better)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "mape", "smape", "mase", "wape", "log_loss",
                             "brier", "perplexity", "loss", "davies_bouldin", "bic", "aic",
                             "holdout_mse"})


def show(v) -> str:
    """A value for a message as people read it (``False``, ``'是'``), never ``np.False_``."""
    from zhinao.analytics.catalog.roles import show as _show

    return _show(v)


def primary_metric(info: ModelInfo) -> str:
    """The metric a run is judged by: the first of ``info.metrics``."""
    return info.metrics[0]


def higher_is_better(metric: str) -> bool:
    return metric.lower() not in LOWER_IS_BETTER


def beats_baseline(ev: Evaluation, metric: str) -> bool | None:
    """True/False when both the model and its baseline report ``metric``; None otherwise."""
    if metric not in ev.metrics or metric not in ev.baseline:
        return None
    m, b = float(ev.metrics[metric]), float(ev.baseline[metric])
    return m > b if higher_is_better(metric) else m < b


def supports_predict(model: MiningModel | type[MiningModel]) -> bool:
    """Whether the model scores new rows into a table (its ``supports_predict`` flag)."""
    cls = model if isinstance(model, type) else type(model)
    return bool(getattr(cls, "supports_predict", False))


# -- input checks: every message names the column or the limit ---------------------------

def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "input") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InvalidRequest(f"{what} lacks required column(s) {', '.join(map(repr, missing))}; "
                             f"available: {', '.join(map(str, df.columns[:30]))}", param=missing[0])


def require_rows(n: int, minimum: int, model_key: str) -> None:
    if n < minimum:
        raise InvalidRequest(f"model {model_key!r} needs at least {minimum} rows, got {n}", code="too_few_rows")


def require_target(y: pd.Series, column: str, min_per_class: int = 2) -> None:
    """A classification target must exist, be non-null and have >= 2 classes."""
    if y.isna().all():
        raise InvalidRequest(f"target column {column!r} is entirely null", param=column)
    counts = y.dropna().value_counts()
    if len(counts) < 2:
        raise InvalidRequest(f"target column {column!r} is constant ({show(counts.index[0])}); "
                             "a classifier needs at least two classes", param=column)
    if counts.min() < min_per_class:
        raise InvalidRequest(f"target column {column!r}: class {show(counts.idxmin())} has only "
                             f"{int(counts.min())} row(s), need at least {min_per_class}", param=column)


def usable_features(df: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """Drop feature columns that carry no information (all-null or constant), keeping order.

    Raises when nothing is left, naming the columns that were dropped.
    """
    cols = list(columns)
    keep = [c for c in cols if df[c].notna().any() and df[c].nunique(dropna=True) > 1]
    if not keep:
        raise InvalidRequest(f"no usable feature columns: {', '.join(map(repr, cols))} are all-null or constant")
    return keep


def to_datetime(s: pd.Series, column: str) -> pd.Series:
    """Parse dates, failing with the column name and the first bad value."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    out = pd.to_datetime(s, errors="coerce")
    bad = out.isna() & s.notna()
    if bad.any():
        raise InvalidRequest(f"column {column!r} has unparseable dates, e.g. {show(s[bad].iloc[0])} "
                             f"({int(bad.sum())} of {len(s)} rows)", param=column)
    return out


def to_numeric(s: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    out = pd.to_numeric(s.astype(str).str.strip().replace("", np.nan), errors="coerce")
    bad = out.isna() & s.notna() & s.astype(str).str.strip().ne("")
    if bad.any():
        raise InvalidRequest(f"column {column!r} is not numeric, e.g. {show(s[bad].iloc[0])} "
                             f"({int(bad.sum())} of {len(s)} rows)", param=column)
    return out.astype(float)
