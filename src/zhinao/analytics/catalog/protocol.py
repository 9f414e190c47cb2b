"""What the runner needs from a catalogue model, beyond ``MiningModel.fit``.

:mod:`.base` defines the estimator side (``fit``, ``get_params``, ``info``). A *runnable*
catalogue entry also implements the three methods below; the runner
(:mod:`zhinao.analytics.runs`) and the conformance suite (``tests/analytics``) call only
these, so every family stays free to choose its own data shape.

- ``load_demo() -> data``: the model's default demo data (from
  :mod:`zhinao.analytics.datasets`), in the shape ``evaluate`` takes.
- ``evaluate(data) -> Evaluation``: split ``data`` into train and a *proper* hold-out
  (time-based for forecasts, the dataset's own split where it has one, stratified
  otherwise), ``fit(self)`` on the train part, and return metrics, the naive baseline's
  metrics on the same hold-out, an explanation (JSON-serialisable) and charts (PNG bytes).
  After ``evaluate`` the instance is fitted; the runner persists exactly that instance.
- ``score(df) -> DataFrame`` (optional, raises ``NotImplementedError`` by default): score
  new rows with the fitted model; the result is written to a workspace table.
- ``from_frame(df) -> data`` (optional): turn a workspace table into ``evaluate``'s input
  (e.g. long-format baskets into lists); default: the table itself.

Helpers here give every family the same clear errors (naming the column or the limit).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo
from zhinao.errors import InvalidRequest

#: metric names where smaller is better (everything else: larger is better)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "mape", "smape", "mase", "wape", "log_loss",
                             "brier", "perplexity", "loss", "davies_bouldin", "bic", "aic",
                             "holdout_mse"})


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


def supports_score(model: MiningModel | type[MiningModel]) -> bool:
    """Whether the class overrides ``score`` (scoring new rows into a table)."""
    cls = model if isinstance(model, type) else type(model)
    fn = getattr(cls, "score", None)
    return fn is not None and fn is not RunnableMixin.score


class RunnableMixin:
    """Defaults for the optional parts of the runner contract (mix in before MiningModel)."""

    def score(self, df: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} does not score new rows")

    def from_frame(self, df: pd.DataFrame) -> Any:
        return df


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
        raise InvalidRequest(f"target column {column!r} is constant ({counts.index[0]!r}); "
                             "a classifier needs at least two classes", param=column)
    if counts.min() < min_per_class:
        raise InvalidRequest(f"target column {column!r}: class {counts.idxmin()!r} has only "
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
        raise InvalidRequest(f"column {column!r} has unparseable dates, e.g. {s[bad].iloc[0]!r} "
                             f"({int(bad.sum())} of {len(s)} rows)", param=column)
    return out


def to_numeric(s: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    out = pd.to_numeric(s.astype(str).str.strip().replace("", np.nan), errors="coerce")
    bad = out.isna() & s.notna() & s.astype(str).str.strip().ne("")
    if bad.any():
        raise InvalidRequest(f"column {column!r} is not numeric, e.g. {s[bad].iloc[0]!r} "
                             f"({int(bad.sum())} of {len(s)} rows)", param=column)
    return out.astype(float)
