"""Column roles: how a catalogue model meets a table it was not written for.

An analyst's own table has its own column names (``International plan``, ``Total day
minutes``, ``是否流失``), so no model may hard-wire the demo's. Each entry declares the
*roles* it needs in ``ModelInfo.roles`` — target, features, id, time, value, session, item,
source, destination, text, label … — each with the column kinds it accepts. A run binds
them: a role is a constructor parameter of the same name (``-p target=Churn``,
``-p features='["a","b"]'``); an unbound role is inferred where that is safe:

1. the demo dataset's column for the role (``Role.demo``), when the table has it — so demo
   data keeps running with no parameters at all;
2. otherwise the role's inference rule (``Role.infer``): ``rest`` = every other usable
   column (id-like, constant, all-null and free-text columns are left out, with the reason
   recorded), ``kind`` = the one column of an accepted kind (ambiguous → a clear error
   asking for the binding), ``name`` = a column whose name says it (``churn``, ``label``,
   ``target``, ``流失`` …) when exactly one does.

The result is a :class:`Binding`, which the run record shows (what was given, what was
inferred, what was left out and why). Labels as people write them are handled here too:
:func:`positive_class` finds the positive class of True/False, Yes/No, 是/否, 1/0, 流失/在网,
churn/stay, or refuses with a message naming the values when it cannot tell.

Why here and not in each family: the same table meets many models, and the same rules
(what is an id, what is a category, which label is positive) must hold for all of them —
one place, one conformance suite (``tests/conformance/test_mining_models.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from zhinao.errors import InvalidRequest

#: the kinds a column can have (:func:`column_kind`)
KINDS = ("numeric", "boolean", "categorical", "datetime", "text", "id", "empty")
#: what the CLI and API call the tasks of the catalogue
TASKS = ("classification", "regression", "forecast", "clustering", "association", "sequence", "graph", "tagging")
#: legacy parameter names still accepted for the role of the same meaning
ALIASES = {"id_column": "id", "time_column": "time", "value_column": "value", "text_column": "text",
           "label_column": "label", "target_column": "target", "feature_columns": "features",
           "session_column": "session", "item_column": "item", "source_column": "source",
           "destination_column": "destination", "columns": "features"}

_ID_NAME = re.compile(r"(^|[\s_\-])(id|key|uuid|guid|no|code|number|phone|msisdn|imsi|imei|iccid|account)$|"
                      r"^(id|编号|号码|手机号|电话|账号|客户号|用户号|工号|序号)|(编号|号码|手机号|账号|客户号|用户号|id)$",
                      re.I)
_TARGET_NAME = re.compile(r"^(churn|churned|label|target|class|y|outcome|exited|attrition|是否流失|流失|离网|是否离网|标签)$",
                          re.I)

POSITIVE = {"true", "yes", "y", "t", "1", "1.0", "是", "流失", "离网", "已流失", "已离网", "churn", "churned", "positive",
            "pos", "exited", "left", "leave", "on", "high", "是的", "有"}
NEGATIVE = {"false", "no", "n", "f", "0", "0.0", "否", "在网", "未流失", "未离网", "留存", "stay", "stayed", "retained",
            "negative", "neg", "active", "off", "other", "low", "不是", "无", "没有", "not churn", "non-churn"}


@dataclass(frozen=True)
class Role:
    """One input a model needs, bound to a column (or several) of the user's table."""

    name: str  #: also the constructor parameter that binds it
    kinds: tuple[str, ...] = ("numeric", "boolean", "categorical")  #: accepted column kinds
    many: bool = False  #: a list of columns (``features``)
    required: bool = True
    demo: str | tuple[str, ...] | None = None  #: the demo dataset's column(s), used when present
    infer: str | None = None  #: "rest" | "kind" | "name" | None (must be given)
    help_en: str = ""
    help_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kinds": list(self.kinds), "many": self.many, "required": self.required,
                "demo": list(self.demo) if isinstance(self.demo, tuple) else self.demo, "infer": self.infer,
                "help_en": self.help_en, "help_zh": self.help_zh}


@dataclass(frozen=True)
class Preset:
    """A telecom application model over an entry's estimator: a named set of parameters.

    The talk's table maps each algorithm to applications (离网预警, 套餐匹配 …); a preset is that
    mapping as data, not as separate hard-wired code.
    """

    key: str
    name_zh: str
    name_en: str
    params: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = ""  #: demo dataset it was written for ("" = the entry's)
    note_en: str = ""
    note_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name_zh": self.name_zh, "name_en": self.name_en, "params": dict(self.params),
                "dataset": self.dataset, "note_en": self.note_en, "note_zh": self.note_zh}


@dataclass
class Binding:
    """What a run used: role -> column(s); which roles were inferred; columns left out and why."""

    columns: dict[str, Any] = field(default_factory=dict)
    inferred: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  #: column -> kind, for the columns used

    def __getitem__(self, role: str) -> Any:
        return self.columns[role]

    def get(self, role: str, default: Any = None) -> Any:
        v = self.columns.get(role)
        return default if v is None else v

    def used(self) -> list[str]:
        out: list[str] = []
        for v in self.columns.values():
            for c in (v if isinstance(v, list) else [v]):
                if c is not None and c not in out:
                    out.append(c)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"columns": dict(self.columns), "inferred": list(self.inferred), "dropped": dict(self.dropped),
                "kinds": dict(self.kinds)}


# -- values as people read them ----------------------------------------------------------

def plain(v: Any) -> Any:
    """A numpy/pandas scalar as the Python value it shows (``np.False_`` -> ``False``)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def show(v: Any) -> str:
    """A value for a message: plain, quoted when a string."""
    v = plain(v)
    return repr(v) if isinstance(v, str) else str(v)


def _norm(v: Any) -> str:
    v = plain(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip().lower()


# -- column kinds ------------------------------------------------------------------------

def looks_like_id(name: str) -> bool:
    return bool(_ID_NAME.search(str(name).strip()))


def column_kind(s: pd.Series, name: str | None = None) -> str:
    """The kind of a column, from its values (and its name, for ids): one of :data:`KINDS`."""
    name = str(name if name is not None else s.name)
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        # the common case, kept cheap: a run binds every column of the table on each fit
        arr = s.to_numpy(dtype=float, na_value=np.nan)
        arr = arr[~np.isnan(arr)]
        n = len(arr)
        if n == 0:
            return "empty"
        lo, hi = arr.min(), arr.max()
        if lo == 0 and hi == 1 and bool(np.all((arr == 0) | (arr == 1))):
            return "boolean"
        if looks_like_id(name) and n >= 20 and bool(np.all(np.mod(arr, 1) == 0)) and len(np.unique(arr)) >= 0.9 * n:
            return "id"
        return "numeric"
    nn = s.dropna()
    if isinstance(nn.dtype, pd.StringDtype) or nn.dtype == object:
        nn = nn[nn.astype(str).str.strip().ne("")]
    n = len(nn)
    if n == 0:
        return "empty"
    if pd.api.types.is_bool_dtype(nn):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(nn):
        return "datetime"
    uniq = nn.nunique()
    if pd.api.types.is_numeric_dtype(nn):
        vals = set(nn.unique().tolist()) if uniq <= 2 else set()
        if uniq == 2 and vals <= {0, 1}:
            return "boolean"
        integral = pd.api.types.is_integer_dtype(nn) or bool(np.all(np.mod(nn.to_numpy(dtype=float), 1) == 0))
        if integral and looks_like_id(name) and uniq >= 0.9 * n and n >= 20:
            return "id"
        return "numeric"
    st = nn.astype(str).str.strip()
    low = set(st.str.lower().unique()[:3])
    if uniq <= 2 and low <= (POSITIVE | NEGATIVE):
        return "boolean"
    sample = st.sample(min(n, 200), random_state=0) if n > 200 else st
    # numbers written as text: judged on a sample first (to_numeric over every row is the slow part)
    if pd.to_numeric(sample, errors="coerce").notna().mean() >= 0.98 and \
            pd.to_numeric(st, errors="coerce").notna().mean() >= 0.98:
        if looks_like_id(name) and uniq >= 0.9 * n and n >= 20:
            return "id"
        if st.str.match(r"^0\d{5,}$").mean() > 0.5:  # leading zeros: codes, not numbers (phone, zip)
            return "id"
        return "numeric"
    if sample.str.contains(r"\d").all() and sample.str.contains(r"[-/:年月.]").all():
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.98:
            return "datetime"
    mean_len = float(sample.str.len().mean())
    if uniq >= 0.9 * n and n >= 20:
        return "text" if mean_len > 24 or sample.str.contains(r"\s").mean() > 0.5 else "id"
    if mean_len > 30 or (uniq > max(60, 0.5 * n) and n >= 20):
        return "text"
    return "categorical"


# -- binding ------------------------------------------------------------------------------

def _columns_text(df: pd.DataFrame, limit: int = 40) -> str:
    cols = [str(c) for c in df.columns[:limit]]
    more = f" … (+{len(df.columns) - limit})" if len(df.columns) > limit else ""
    return ", ".join(cols) + more


def column_list(v: Any, param: str, label: str | None = None) -> list[str]:
    """A list of column names given as a list, a JSON list or ``a,b`` text (CLI ``-p features=a,b``).

    ``label`` names the parameter in messages (default: ``param``)."""
    label = label or param
    if v is None or v == "" or v == [] or v == ():
        return []
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            import json

            try:
                v = json.loads(s)
            except ValueError as e:
                raise InvalidRequest(f"{label}: {s!r} is not a JSON list of column names", param=param) from e
        else:
            return [c.strip() for c in s.split(",") if c.strip()]
    if isinstance(v, (list, tuple)):
        return [str(c) for c in v]
    raise InvalidRequest(f"{label} takes a list of column names, got {type(v).__name__}", param=param)


def _as_list(v: Any, role: str) -> list[str]:
    return column_list(v, role, f"role {role!r}")


def bind(roles: Sequence[Role], df: pd.DataFrame, given: Mapping[str, Any] | None = None,
         *, model_key: str = "model") -> Binding:
    """Bind ``roles`` to the columns of ``df``: given columns are checked, the rest inferred.

    Raises :class:`InvalidRequest` naming the role and the column: unknown column, wrong
    kind, a given feature that is all null, an ambiguous inference, a required role that
    cannot be inferred.
    """
    given = {k: v for k, v in dict(given or {}).items() if v is not None and v != [] and v != ()}
    b = Binding()
    cols = [str(c) for c in df.columns]
    if list(df.columns) != cols:
        df = df.rename(columns=str)
    kinds: dict[str, str] = {}

    def kind(c: str) -> str:
        if c not in kinds:
            kinds[c] = column_kind(df[c], c)
        return kinds[c]

    def check(role: Role, c: str) -> str:
        if c not in df.columns:
            raise InvalidRequest(f"{model_key}: role {role.name!r} is bound to column {c!r}, which the table "
                                 f"lacks; columns: {_columns_text(df)}", param=role.name)
        k = kind(c)
        if k == "empty":
            raise InvalidRequest(f"{model_key}: column {c!r} (role {role.name!r}) is entirely empty; "
                                 f"bind another column or fill it", param=role.name)
        if "any" not in role.kinds and k not in role.kinds:
            # an id-looking or code-like column may still be what the user means for a categorical role
            ok = (k == "id" and ("categorical" in role.kinds or "text" in role.kinds or "id" in role.kinds)) or \
                 (k in ("numeric", "boolean") and "categorical" in role.kinds) or \
                 (k == "categorical" and "text" in role.kinds) or (k == "boolean" and "numeric" in role.kinds)
            if not ok:
                raise InvalidRequest(f"{model_key}: column {c!r} looks {k}, but role {role.name!r} needs "
                                     f"{' or '.join(role.kinds)}", param=role.name)
        return c

    # 1. given bindings first, so inference never takes a column the user bound elsewhere
    for role in roles:
        if role.name in given:
            v = given[role.name]
            b.columns[role.name] = [check(role, c) for c in _as_list(v, role.name)] if role.many else \
                check(role, str(v) if not isinstance(v, str) else v)
    taken = set(b.used())
    # 2. demo columns and single-column inference
    for role in roles:
        if role.name in b.columns or role.infer == "rest":
            continue
        found: Any = None
        demo = role.demo
        if demo is not None:
            want = list(demo) if isinstance(demo, tuple) else [demo]
            present = [c for c in want if c in df.columns and c not in taken]
            if role.many and present and len(present) >= max(1, len(want) // 2):
                found = present
            elif not role.many and present:
                found = present[0]
        if found is None and role.infer in ("kind", "name"):
            cands = [c for c in cols if c not in taken and kind(c) in role.kinds]
            if role.infer == "name":
                cands = [c for c in cands if _TARGET_NAME.match(c.strip())]
            if len(cands) == 1:
                found = [cands[0]] if role.many else cands[0]
            elif len(cands) > 1 and role.required:
                raise InvalidRequest(f"{model_key}: cannot tell which column is the {role.name!r}: "
                                     f"{', '.join(map(repr, cands[:8]))} all fit; bind it with "
                                     f"-p {role.name}=COLUMN", param=role.name)
        if found is not None:
            b.columns[role.name] = found
            b.inferred.append(role.name)
            taken |= set(found if isinstance(found, list) else [found])
        elif role.required:
            need = " or ".join(role.kinds)
            raise InvalidRequest(f"{model_key}: bind the {role.name!r} role to a {need} column with "
                                 f"-p {role.name}=COLUMN; columns: {_columns_text(df)}", param=role.name)
    # 3. "rest": every other usable column
    for role in roles:
        if role.name in b.columns or role.infer != "rest":
            continue
        demo = list(role.demo) if isinstance(role.demo, tuple) else ([role.demo] if role.demo else [])
        present = [c for c in demo if c in df.columns and c not in taken]
        pool = present if demo and len(present) == len(demo) else [c for c in cols if c not in taken]
        keep: list[str] = []
        for c in pool:
            k = kind(c)
            if k == "empty":
                b.dropped[c] = "entirely empty"
            elif k == "id":
                b.dropped[c] = "identifier (one value per row)"
            elif k not in role.kinds and not (k == "boolean" and "categorical" in role.kinds):
                b.dropped[c] = f"{k} column (this role takes {' or '.join(role.kinds)})"
            elif df[c].nunique(dropna=True) <= 1:
                b.dropped[c] = "constant"
            else:
                keep.append(c)
        if not keep and role.required:
            raise InvalidRequest(f"{model_key}: no usable column for role {role.name!r} "
                                 f"({'; '.join(f'{c}: {r}' for c, r in b.dropped.items()) or 'none left'}); "
                                 f"bind it with -p {role.name}='[\"col1\", \"col2\"]'", param=role.name)
        b.columns[role.name] = keep
        b.inferred.append(role.name)
    # given feature lists: a column with nothing in it is a mistake worth naming
    for role in roles:
        if role.many and role.name in given:
            for c in b.columns[role.name]:
                if df[c].nunique(dropna=True) <= 1:
                    what = "entirely empty" if df[c].notna().sum() == 0 else "constant"
                    raise InvalidRequest(f"{model_key}: column {c!r} in {role.name!r} is {what}; "
                                         f"leave it out", param=role.name)
    b.kinds = {c: kind(c) for c in b.used()}
    return b


def role_params(model: Any) -> dict[str, Any]:
    """The role bindings a model instance was given (constructor parameters named after roles)."""
    return {r.name: getattr(model, r.name, None) for r in model.info.roles}


# -- labels -------------------------------------------------------------------------------

def positive_class(y: pd.Series, column: str, explicit: Any = None) -> Any:
    """The positive class of a two-class target, as people write it; a clear error otherwise.

    ``explicit`` (``-p positive=流失``) wins and must be one of the values (compared as text, so
    ``1`` matches ``1.0`` and ``True`` matches ``"true"``).
    """
    classes = [plain(v) for v in pd.unique(y.dropna())]
    if len(classes) != 2:
        raise InvalidRequest(f"target {column!r} has {len(classes)} classes "
                             f"({', '.join(show(c) for c in classes[:6])}); a positive class needs exactly two",
                             param="target")
    if explicit is not None:
        for c in classes:
            if _norm(c) == _norm(explicit):
                return c
        raise InvalidRequest(f"positive class {show(explicit)} is not a value of {column!r}; values: "
                             f"{', '.join(show(c) for c in classes)}", param="positive")
    a, b = classes
    na, nb = _norm(a), _norm(b)
    if na in POSITIVE and nb in NEGATIVE:
        return a
    if nb in POSITIVE and na in NEGATIVE:
        return b
    raise InvalidRequest(f"target {column!r} has classes {show(a)} and {show(b)}: which one is the positive "
                         f"(the event to predict)? say it with -p positive={plain(a)}", param="positive")


def binary_target(y: pd.Series, column: str, explicit: Any = None) -> tuple[pd.Series, Any]:
    """``(y01, positive)``: the target as 0/1 (NaN kept) and its positive class."""
    pos = positive_class(y, column, explicit)
    y01 = y.map(lambda v: np.nan if pd.isna(v) else float(_norm(v) == _norm(pos)))
    return y01, pos


# -- evaluation tables operators use ------------------------------------------------------

def lift_table(y01: Iterable[float], scores: Iterable[float], bins: int = 10) -> list[dict[str, Any]]:
    """Lift and capture by decile of score (highest first): operators target the top decile."""
    y = np.asarray(list(y01), dtype=float)
    s = np.asarray(list(scores), dtype=float)
    n = len(y)
    if n == 0:
        return []
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    bins = max(1, min(bins, n))
    edges = np.linspace(0, n, bins + 1).round().astype(int)
    base = y.mean() if y.mean() > 0 else np.nan
    total = y.sum()
    out, cum = [], 0.0
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        part = y[lo:hi]
        if len(part) == 0:
            continue
        cum += part.sum()
        rate = float(part.mean())
        out.append({"decile": i + 1, "rows": int(len(part)), "positives": int(part.sum()),
                    "rate": rate, "lift": float(rate / base) if base == base else None,
                    "cumulative_capture": float(cum / total) if total else None,
                    "min_score": float(s[hi - 1]), "max_score": float(s[lo])})
    return out


def threshold_table(y01: Iterable[float], scores: Iterable[float],
                    thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> list[dict[str, Any]]:
    """Precision, recall, F1 and the share flagged at each score threshold."""
    y = np.asarray(list(y01), dtype=float)
    s = np.asarray(list(scores), dtype=float)
    out = []
    for t in thresholds:
        flag = s >= t
        tp = float((flag & (y == 1)).sum())
        prec = tp / flag.sum() if flag.sum() else 0.0
        rec = tp / (y == 1).sum() if (y == 1).sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out.append({"threshold": float(t), "flagged_share": float(flag.mean()) if len(s) else 0.0,
                    "precision": float(prec), "recall": float(rec), "f1": float(f1)})
    return out


__all__ = ["ALIASES", "Binding", "KINDS", "Preset", "Role", "TASKS", "bind", "binary_target", "column_kind", "column_list",
           "lift_table", "looks_like_id", "plain", "positive_class", "role_params", "show", "threshold_table"]
