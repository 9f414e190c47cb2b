"""Personal data in workspace tables: detected at import, editable, masked in answers.

Issue 12 item 4: columns that hold phone numbers, ID numbers, names, addresses or e-mail
addresses are marked when a table is imported (:func:`detect`, called by
``WorkspaceManager.save_frame``, stored in the dataset profile as ``"personal": {column: kind}``),
the marks can be edited (:func:`set_personal`: a wrong guess removed, a missed column added —
edits survive a re-import), and the agent masks those columns in result tables and charts
(:func:`mask`) unless the caller's role is in ``Settings.agent_personal_roles``
(:func:`may_see_personal`). Aggregates are left alone: a ``COUNT(DISTINCT phone)`` or an
average is not personal data, and only values that still look like the personal value
(text, or a number long enough to be a phone or ID number) are masked.

Detection is by **value shape** first (a sample of up to 500 non-empty values, most must
match): Chinese mobiles ``1[3-9]\\d{9}`` with or without ``+86``, international numbers in
``+CC …`` form, 18-digit Chinese resident ID numbers whose ISO 7064 check digit and birth
date are valid, e-mail addresses. Names and addresses also need a **column-name hint** (zh
and en: 姓名/联系人/name/surname, 地址/住址/address/street), except Chinese personal names in
a column where almost every value is a common surname plus one or two characters. Yes/No
columns such as the telco table's ``PhoneService`` therefore stay unmarked.

It lives in the analytics capability because the marks are dataset metadata (the agent, a
use-case above, reads them); it depends on pandas and the standard library only, so an
import pays nothing for it.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

KINDS = ("phone", "id_number", "name", "address", "email")
SAMPLE = 500
MIN_SHARE = 0.8  #: share of sampled values that must have the shape

_CN_MOBILE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$")
_INTL = re.compile(r"^\+\d{1,3}\d{6,13}$")  # after separators are removed
_PHONE_CHARS = re.compile(r"[\s\-().]")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$")
_ID18 = re.compile(r"^\d{17}[\dXx]$")
_CJK = re.compile(r"^[\u4e00-\u9fff·]{2,4}$")
_EN_NAME = re.compile(r"^[A-Z][a-zA-Z'\-]+(?:[ .]+[A-Z][a-zA-Z'\-]*){0,3}$")
_ZH_ADDR = re.compile(r"[省市区县镇乡村路街道巷弄号楼室]")
_EN_ADDR = re.compile(r"\d+\s+\w+.*\b(st|street|rd|road|ave|avenue|lane|ln|blvd|boulevard|dr|drive|way|ct|court|"
                      r"place|pl|square|sq|highway|hwy)\b", re.IGNORECASE)
#: the 100 most common Chinese surnames (more than 85% of the population)
_SURNAMES = set("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
                "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
_NAME_HINTS_ZH = ("姓名", "名字", "客户名", "用户名称", "联系人", "户主", "收件人", "经办人", "负责人", "机主")
_NAME_HINTS_EN = re.compile(r"(^|_)(full_?name|first_?name|last_?name|given_?name|family_?name|surname|"
                            r"customer_?name|client_?name|contact(_?name)?|person|owner|holder|name)$", re.IGNORECASE)
_NOT_NAME = re.compile(r"(product|plan|package|item|table|file|city|province|region|company|brand|dept|department|"
                       r"service|column|host|device|app|cell|station|store|shop)_?name", re.IGNORECASE)
_ADDR_HINTS = re.compile(r"(地址|住址|住所|户籍|家庭住址|address|addr|street|residence)", re.IGNORECASE)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _digits(v: Any) -> str:
    return _PHONE_CHARS.sub("", str(v))


def is_phone(v: Any) -> bool:
    """A Chinese mobile (``13812345678``, ``+86 138 1234 5678``) or an ``+CC`` international number."""
    s = _digits(v)
    if _CN_MOBILE.match(s):
        return True
    return bool(_INTL.match(s))


def is_id_number(v: Any) -> bool:
    """An 18-character Chinese resident ID number with a valid check digit and birth date."""
    s = str(v).strip()
    if not _ID18.match(s):
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != s[17].upper():
        return False
    try:
        born = _dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return _dt.date(1900, 1, 1) <= born <= _dt.date.today()


def is_email(v: Any) -> bool:
    return bool(_EMAIL.match(str(v).strip()))


def _is_cn_name(v: Any) -> bool:
    s = str(v).strip()
    return bool(_CJK.match(s)) and (s[0] in _SURNAMES or s[:2] in ("欧阳", "司马", "诸葛", "上官", "东方"))


def _is_en_name(v: Any) -> bool:
    return bool(_EN_NAME.match(str(v).strip()))


def _is_address(v: Any) -> bool:
    s = str(v).strip()
    return (len(s) >= 6 and len(_ZH_ADDR.findall(s)) >= 2) or bool(_EN_ADDR.search(s))


def _name_hint(col: str) -> bool:
    c = str(col).strip()
    if _NOT_NAME.search(c):
        return False
    return any(h in c for h in _NAME_HINTS_ZH) or bool(_NAME_HINTS_EN.search(c.replace(" ", "_")))


def _share(values: Sequence[Any], test) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def _sample(series: Any) -> list[Any]:
    import pandas as pd

    s = series.dropna()
    if pd.api.types.is_float_dtype(s.dtype):
        s = s[(s == s.round()) & (s.abs() < 1e18)].astype("int64")  # a phone column read as floats
    if not (pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)
            or s.dtype == object):
        return []
    s = s.astype(str).str.strip()
    s = s[s != ""]
    if len(s) > SAMPLE:
        s = s.sample(SAMPLE, random_state=0)
    return s.tolist()


def detect_column(name: str, series: Any) -> str | None:
    """The personal kind of one column, or None."""
    import pandas as pd

    values = _sample(series)
    if not values:
        return None
    numeric = pd.api.types.is_numeric_dtype(series.dtype)
    if _share(values, is_id_number) >= MIN_SHARE:
        return "id_number"
    if _share(values, is_phone) >= MIN_SHARE:
        return "phone"
    if numeric:
        return None
    if _share(values, is_email) >= MIN_SHARE:
        return "email"
    if _ADDR_HINTS.search(str(name)) and _share(values, _is_address) >= 0.6:
        return "address"
    if _name_hint(name) and _share(values, lambda v: _is_cn_name(v) or _is_en_name(v)) >= 0.6:
        return "name"
    distinct = len(set(values)) / len(values)
    if _share(values, _is_cn_name) >= 0.9 and distinct >= 0.5 and not _ADDR_HINTS.search(str(name)):
        return "name"
    if _share(values, _is_address) >= 0.9 and distinct >= 0.5 and _share(values, lambda v: len(str(v)) >= 8) >= 0.9:
        return "address"
    return None


def detect(df: Any) -> dict[str, str]:
    """``{column: kind}`` for the columns of ``df`` that hold personal data (kinds: :data:`KINDS`)."""
    out: dict[str, str] = {}
    for col in df.columns:
        kind = detect_column(str(col), df[col])
        if kind:
            out[str(col)] = kind
    return out


# -- masking ------------------------------------------------------------------------------------

def mask_value(v: Any, kind: str | None = None) -> Any:
    """One value masked: ``138****5678``, ``110***********1234``, ``张*``, ``j***@example.com``;
    None, and numbers too short to be a phone or ID number (an aggregate), unchanged."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, float) and v != v:
        return v
    if isinstance(v, (int, float)):
        text = str(int(v)) if float(v).is_integer() else str(v)
        if len(text.lstrip("-")) < 7:
            return v  # a count or an average, not a phone or ID number
    else:
        text = str(v)
    s = text.strip()
    if not s:
        return v
    if kind == "id_number" or (kind is None and (is_id_number(s) or re.fullmatch(r"\d{15,}[\dXx]?", s))):
        return s[:3] + "*" * max(len(s) - 7, 1) + s[-4:] if len(s) > 7 else "*" * len(s)
    if kind == "phone" or (kind is None and is_phone(s)):
        d = _digits(s)
        return d[:-8] + "****" + d[-4:] if len(d) >= 8 else "*" * len(d)
    if kind == "email" or (kind is None and is_email(s)):
        user, _, domain = s.partition("@")
        return (user[:1] + "***@" + domain) if domain else "***"
    if kind == "address":
        keep = 6 if re.search(r"[\u4e00-\u9fff]", s) else 0
        return s[:keep] + "***" if keep else "*** " + s.split(",")[-1].strip()[-12:]
    if re.search(r"[\u4e00-\u9fff]", s):  # names and anything else Chinese: first character
        return s[0] + "*" * max(len(s) - 1, 1)
    parts = s.split()
    return " ".join(p[0] + "." if i < len(parts) - 1 else p[0] + "***" for i, p in enumerate(parts))


def mask(columns: Sequence[str], rows: Iterable[Sequence[Any]], personal: Iterable[str] | Mapping[str, str]) -> list[list[Any]]:
    """``rows`` with the values of the ``personal`` columns masked (everything else unchanged).

    Args:
        columns: the result's column names.
        personal: column names (a set), or ``{column: kind}`` for the kind-specific mask.
    """
    kinds: dict[str, str | None] = dict(personal) if isinstance(personal, Mapping) else {c: None for c in personal}
    idx = [(i, kinds[c]) for i, c in enumerate(columns) if c in kinds]
    out = []
    for r in rows:
        row = list(r)
        for i, kind in idx:
            if i < len(row):
                row[i] = mask_value(row[i], kind)
        out.append(row)
    return out


def mask_frame(df: Any, personal: Mapping[str, str]) -> Any:
    """A copy of ``df`` with its personal columns masked (what a sandbox copy of a table gets)."""
    out = df.copy()
    for col, kind in personal.items():
        if col in out.columns:
            out[col] = out[col].map(lambda v, k=kind: mask_value(v, k)).astype(object)
    return out


def may_see_personal(principal: Any, settings: Any = None) -> bool:
    """True when the caller's role is in ``agent_personal_roles`` (no principal: a local CLI
    or benchmark run, which reads the files directly anyway)."""
    if principal is None:
        return True
    roles = getattr(settings, "agent_personal_roles", "admin,operator") if settings is not None else "admin,operator"
    allowed = {r.strip() for r in str(roles).split(",") if r.strip()}
    return getattr(principal, "role", None) in allowed


# -- stored marks -------------------------------------------------------------------------------

def mark_profile(profile: dict[str, Any], df: Any, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``profile`` with ``"personal"`` set from :func:`detect`, earlier manual edits
    (``"personal_overrides"``) re-applied for columns still present."""
    out = dict(profile or {})
    marks = detect(df)
    overrides = {c: k for c, k in ((previous or {}).get("personal_overrides") or {}).items() if c in df.columns}
    for c, k in overrides.items():
        if k is None:
            marks.pop(c, None)
        else:
            marks[c] = k
    out["personal"] = marks
    if overrides:
        out["personal_overrides"] = overrides
    return out


def set_personal(manager: Any, tenant_id: int, workspace: str, dataset: str,
                 changes: Mapping[str, str | None]) -> dict[str, Any]:
    """Mark (``{"phone_no": "phone"}``) or unmark (``{"remark": None}``) columns of a dataset.

    Args:
        manager: the :class:`~zhinao.analytics.workspace.WorkspaceManager`.

    Returns:
        The dataset as :meth:`WorkspaceManager.dataset` returns it, profile ``personal`` updated.

    Raises:
        NotFound: no such workspace or dataset. InvalidRequest: an unknown column or kind.
    """
    from zhinao.errors import InvalidRequest
    from zhinao.store.db import utcnow

    if not isinstance(changes, Mapping) or not changes:
        raise InvalidRequest("give the columns to mark, as {column: kind or null}; kinds: " + ", ".join(KINDS),
                             param="personal")
    with manager.db.session() as s:
        ds = manager._ds(s, tenant_id, workspace, dataset)
        profile = dict(ds.profile or {})
        known = {c["name"] for c in profile.get("columns", [])}
        marks = dict(profile.get("personal") or {})
        overrides = dict(profile.get("personal_overrides") or {})
        for col, kind in changes.items():
            if col not in known:
                raise InvalidRequest(f"dataset {dataset!r} has no column {col!r}", param=str(col))
            if kind is not None and kind not in KINDS:
                raise InvalidRequest(f"unknown personal kind {kind!r} for column {col!r}; use one of "
                                     + ", ".join(KINDS) + " or null to unmark", param=str(col))
            if kind is None:
                marks.pop(col, None)
            else:
                marks[col] = kind
            overrides[col] = kind
        profile["personal"], profile["personal_overrides"] = marks, overrides
        ds.profile = profile  # a new dict: the JSON column sees the change
        ds.updated_at = utcnow()
        s.flush()
    return manager.dataset(tenant_id, workspace, dataset)


def workspace_marks(manager: Any, tenant_id: int, workspace: str) -> dict[str, dict[str, str]]:
    """``{table: {column: kind}}`` for every dataset of a workspace that has personal columns."""
    out: dict[str, dict[str, str]] = {}
    for d in manager.datasets(tenant_id, workspace):
        marks = (manager.dataset(tenant_id, workspace, d["name"]).get("profile") or {}).get("personal") or {}
        if marks:
            out[d["name"]] = dict(marks)
    return out


def result_personal(columns: Sequence[str], marks: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Which result columns carry a marked column's values, by name (``{column: kind}``):
    a result column named like a marked column of any table in the workspace (qualified
    ``table.column`` names match too). Renamed aggregates (``n``, ``avg_fee``) do not."""
    by_name: dict[str, str] = {}
    for table, cols in marks.items():
        for c, k in cols.items():
            by_name.setdefault(c.lower(), k)
            by_name.setdefault(f"{table}.{c}".lower(), k)
    return {c: by_name[c.lower()] for c in columns if c.lower() in by_name}




def may_see(principal: Any) -> bool:
    """:func:`may_see_personal` with the process's settings (what the agent service calls)."""
    from zhinao.settings import get_settings

    return may_see_personal(principal, get_settings())


__all__ = ["KINDS", "detect", "detect_column", "is_email", "is_id_number", "is_phone", "mark_profile", "mask",
           "mask_frame", "mask_value", "may_see", "may_see_personal", "result_personal", "set_personal", "workspace_marks"]
