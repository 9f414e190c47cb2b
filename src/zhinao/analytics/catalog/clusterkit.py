"""What the clustering entries share: numeric matrices from any table, splits, profiles, plots.

KMeans (:mod:`.clustering`), KModes and EM (:mod:`.segments`) meet the user's own tables
through column roles (:mod:`.roles`): ``features`` (the columns to cluster), an optional
``id`` and an optional ``label`` that only *describes* the clusters (churn rate per segment,
known SIM farms per cluster), never builds them. The helpers here keep the three entries
saying the same thing the same way: booleans as people write them (是/否, True/False) become
1/0, missing numbers are filled with the training median, profiles speak of the user's
columns, and the console gets a 2-D PCA scatter and profile tables.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from zhinao.analytics.catalog import plots
from zhinao.analytics.catalog.protocol import to_numeric
from zhinao.analytics.catalog.roles import NEGATIVE, POSITIVE, Binding, binary_target, column_kind, plain, show
from zhinao.errors import InvalidRequest

#: numeric columns with this few distinct values are codes or small counts, not measurements:
#: EM leaves them out unless bound explicitly (a Gaussian on three values is a spike)
FEW_LEVELS = 5


def check_int(value: Any, name: str, low: int) -> None:
    """A whole-number option at construction (a bad one is a 400 when the run starts, not a failed job)."""
    try:
        ok = float(value) == int(float(value)) and int(float(value)) >= low
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidRequest(f"{name} must be a whole number >= {low}, got {value!r}", param=name)


def check_fraction(value: Any, name: str) -> None:
    try:
        ok = 0 < float(value) < 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidRequest(f"{name} must be between 0 and 1 (0.3 = 30 % hold-out), got {value!r}", param=name)


def _norm(v: Any) -> str:
    v = plain(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip().lower()


def as_number(s: pd.Series, column: str) -> pd.Series:
    """A numeric or yes/no column as floats (是/否, Yes/No, True/False -> 1/0; NaN kept)."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    st = s.astype(str).str.strip()
    low = st.str.lower()
    known = low.isin(POSITIVE | NEGATIVE) | s.isna() | st.eq("")
    if known.all() and low[s.notna() & st.ne("")].nunique() <= 2:
        return low.map(lambda v: 1.0 if v in POSITIVE else (0.0 if v in NEGATIVE else np.nan)).astype(float)
    return to_numeric(s, column)


def numeric_frame(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """The bound feature columns as floats (NaN where missing); our error for text in a number."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidRequest(f"the table lacks feature column(s) {', '.join(map(repr, missing))} the model was "
                             f"fitted on; columns: {', '.join(map(str, df.columns[:30]))}", param="features")
    return pd.DataFrame({c: as_number(df[c], c) for c in cols}, index=df.index)


def check_not_empty(F: pd.DataFrame, key: str) -> None:
    """A feature with no value at all cannot be clustered on: say which one."""
    for c in F.columns:
        if F[c].notna().sum() == 0:
            raise InvalidRequest(f"{key}: feature column {c!r} is entirely empty; leave it out of 'features' "
                                 f"or fill it", param="features")


def drop_few_levels(b: Binding, df: pd.DataFrame, given: bool, role: str = "features") -> None:
    """Inferred numeric features with <= FEW_LEVELS values are codes (area code, flags): leave them out."""
    if given:
        return
    keep = []
    for c in b.columns.get(role) or []:
        if b.kinds.get(c) == "numeric" and df[c].nunique(dropna=True) <= FEW_LEVELS:
            b.dropped[c] = f"only {df[c].nunique(dropna=True)} distinct values (a code or small count; " \
                           f"bind it in '{role}' to use it)"
        else:
            keep.append(c)
    if keep:
        b.columns[role] = keep
        b.kinds = {c: k for c, k in b.kinds.items() if c in b.used()}


def drop_redundant(b: Binding, df: pd.DataFrame, given: bool, role: str = "features", r_max: float = 0.98) -> None:
    """Inferred features that (almost) duplicate an earlier one -- a charge that is minutes times a
    rate -- are left out: they count the same thing twice in KMeans and make EM's covariance
    singular (components collapse onto the line and the hold-out likelihood falls apart)."""
    cols = list(b.columns.get(role) or [])
    if given or len(cols) < 2:
        return
    F = pd.DataFrame({c: as_number(df[c], c) for c in cols})
    corr = F.corr(min_periods=10).abs()
    keep: list[str] = []
    for c in cols:
        dup = next((k for k in keep if np.isfinite(corr.at[c, k]) and corr.at[c, k] > r_max), None)
        if dup is None:
            keep.append(c)
        else:
            b.dropped[c] = f"duplicates {dup!r} (|r| = {corr.at[c, dup]:.3f}); bind it in '{role}' to use it"
    b.columns[role] = keep
    b.kinds = {c: k for c, k in b.kinds.items() if c in b.used()}


def split(n: int, test_size: float, seed: int, strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/hold-out row positions, stratified on ``strata`` when it has two full classes."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    if strata is not None and len(np.unique(strata)) > 1 and np.bincount(strata.astype(int)).min() >= 2:
        return train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    return train_test_split(idx, test_size=test_size, random_state=seed)


class LabelView:
    """The optional ``label`` role: a binary label (rate per cluster) or a multi-class one (MI only)."""

    def __init__(self, df: pd.DataFrame, column: str | None, positive: Any = None):
        self.column = column
        self.positive: Any = None
        self.y01: np.ndarray | None = None
        self.codes: np.ndarray | None = None
        if not column:
            return
        y = df[column]
        if y.notna().sum() == 0:
            raise InvalidRequest(f"label column {column!r} is entirely empty; bind another column or none",
                                 param="label")
        classes = pd.unique(y.dropna())
        if len(classes) == 2 or positive is not None:
            y01, self.positive = binary_target(y, column, positive)
            self.y01 = y01.fillna(0.0).to_numpy()
            self.codes = self.y01.astype(int)
        else:
            if len(classes) < 2:
                raise InvalidRequest(f"label column {column!r} has one value ({show(classes[0])}); it cannot "
                                     f"describe clusters — bind another column or none", param="label")
            self.codes = pd.factorize(y.astype(str))[0]

    @property
    def binary(self) -> bool:
        return self.y01 is not None

    def stats(self, seg: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        """Mutual information of segments and label (bits); rate range across segments (binary)."""
        from sklearn.metrics import mutual_info_score

        if self.codes is None:
            return {}
        out = {"label_mutual_info_bits": float(mutual_info_score(self.codes[rows], seg) / np.log(2))}
        if self.binary:
            rates = pd.Series(self.y01[rows]).groupby(seg).mean()
            out["label_rate_range"] = float(rates.max() - rates.min()) if len(rates) > 1 else 0.0
        return out

    def describe(self) -> str:
        if not self.column:
            return ""
        if self.binary:
            return f"label {self.column!r} (positive class {show(self.positive)})"
        return f"label {self.column!r} ({int(self.codes.max()) + 1} classes)"


def with_columns(df: pd.DataFrame, **cols: Any) -> pd.DataFrame:
    """Every input column kept, the model's columns added (replacing same-named ones)."""
    out = df.copy()
    for k, v in cols.items():
        out[k] = v
    return out


def pca_scatter(Z: np.ndarray, seg: np.ndarray, title: str, names: dict[int, str] | None = None,
                seed: int = 0, max_groups: int = 8) -> dict[str, Any]:
    """Clusters as a scatter on the first two principal components of the (standardised) features."""
    from sklearn.decomposition import PCA

    Z = np.asarray(Z, dtype=float)
    if Z.ndim != 2 or len(Z) == 0:
        return plots.scatter({}, title)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(Z), min(len(Z), 3000), replace=False) if len(Z) > 3000 else np.arange(len(Z))
    if Z.shape[1] >= 2:
        pca = PCA(2, random_state=seed).fit(Z)
        P = pca.transform(Z[idx])
        ratio = pca.explained_variance_ratio_
        xl, yl = f"PC1 ({ratio[0]:.0%})", f"PC2 ({ratio[1]:.0%})"
    else:
        P = np.column_stack([Z[idx, 0], np.zeros(len(idx))])
        xl, yl = "feature", ""
    s = seg[idx]
    sizes = pd.Series(seg).value_counts()
    top = list(sizes.index[:max_groups])
    groups: dict[str, list] = {}
    for k in top:
        label = (names or {}).get(int(k), f"簇 cluster {int(k)}")
        groups[label] = P[s == k].tolist()
    rest = ~np.isin(s, top)
    if rest.any():
        groups["其他 other"] = P[rest].tolist()
    spec = plots.scatter(groups, title, x_label=xl, y_label=yl)
    spec["sampled"] = len(Z) > 3000
    return spec


def mode_profile(C: pd.DataFrame, m: np.ndarray, top: int = 5) -> dict[str, str]:
    """A segment's most distinctive attribute values: the modes whose share in the segment most
    exceeds their share overall (so a profile is never empty, whatever the columns are called)."""
    out: list[tuple[float, str, str]] = []
    for c in C.columns:
        col = C[c]
        seg_counts = col[m].value_counts(normalize=True)
        if seg_counts.empty:
            continue
        v = seg_counts.index[0]
        overall = float((col == v).mean())
        out.append((float(seg_counts.iloc[0]) - overall, c, f"{v} ({seg_counts.iloc[0]:.0%} vs {overall:.0%})"))
    out.sort(key=lambda t: -t[0])
    return {c: txt for _, c, txt in out[:top]}


def kind_of(df: pd.DataFrame, c: str) -> str:
    return column_kind(df[c], c)


__all__ = ["FEW_LEVELS", "LabelView", "as_number", "check_fraction", "check_int", "check_not_empty", "drop_few_levels", "drop_redundant", "kind_of",
           "mode_profile",
           "numeric_frame", "pca_scatter", "split", "with_columns"]
