"""From a user's table to a regular series: the part of forecasting that meets real files.

An operator's export is rarely a clean series: the time column is text (``2024年3月1日``,
``2024/03/01 08:00``), several rows share a timestamp (one per cell, per channel, per
region), some periods are missing, the numbers carry thousands separators. This module turns
the bound roles — ``time``, ``value`` and optionally ``group`` — into one regular series per
forecast, saying in notes everything it did (rows summed, groups chosen, periods filled), and
refuses with a message naming the column and an example value what it cannot read.

It also holds what both forecasting entries share: the frequency table (season, horizon,
lags, hold-out per frequency), the calendar design matrix and the error metrics.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zhinao.analytics.catalog.calendars import DayTypes
from zhinao.analytics.catalog.roles import show
from zhinao.errors import InvalidRequest


@dataclass(frozen=True)
class Freq:
    """One supported frequency: how its timestamps are normalised and how it is forecast."""

    name: str  #: hourly | daily | weekly | monthly
    alias: str  #: pandas frequency of the regular index
    period: int  #: season length in steps (a day of hours, a week of days …)
    horizon: int  #: steps forecast at once from one origin (day-ahead for hourly data)
    lags: tuple[int, ...]  #: same-season lags used as regressors (each >= horizon, so known at the origin)
    max_holdout: int  #: default hold-out cap in steps
    unit_en: str
    unit_zh: str
    season_en: str  #: what "one season earlier" means, for the baseline's name
    season_zh: str

    def floor(self, t: pd.Series) -> pd.Series:
        if self.name == "hourly":
            return t.dt.floor("h")
        if self.name == "daily":
            return t.dt.normalize()
        if self.name == "weekly":
            return t.dt.to_period("W-SUN").dt.start_time
        return t.dt.to_period("M").dt.start_time

    def lag_name(self, k: int) -> str:
        return f"lag_{k}{self.unit_en[0]}"


FREQS = {
    "hourly": Freq("hourly", "h", 24, 24, (24, 168), 168, "hour", "小时", "same hour one day earlier", "前一天同一小时"),
    "daily": Freq("daily", "D", 7, 7, (7, 14), 28, "day", "天", "same weekday one week earlier", "上周同一天"),
    "weekly": Freq("weekly", "W-MON", 52, 4, (4, 52), 26, "week", "周", "same week one year earlier", "去年同一周"),
    "monthly": Freq("monthly", "MS", 12, 3, (3, 12), 12, "month", "月", "same month one year earlier",
                    "去年同月"),
}
_FREQ_WORDS = {"h": "hourly", "H": "hourly", "1h": "hourly", "hour": "hourly", "hours": "hourly", "小时": "hourly",
               "d": "daily", "D": "daily", "1d": "daily", "day": "daily", "days": "daily", "日": "daily",
               "天": "daily", "w": "weekly", "W": "weekly", "week": "weekly", "周": "weekly", "m": "monthly",
               "M": "monthly", "MS": "monthly", "ms": "monthly", "month": "monthly", "月": "monthly"}
AGGREGATES = ("sum", "mean", "max", "min", "last", "none")
FILLS = ("none", "zero", "interpolate")


def parse_frequency(value: Any) -> Freq | None:
    if value is None or str(value).strip() == "":
        return None
    v = str(value).strip()
    name = v.lower() if v.lower() in FREQS else _FREQ_WORDS.get(v, _FREQ_WORDS.get(v.lower()))
    if name is None:
        raise InvalidRequest(f"frequency {v!r} is not one of hourly, daily, weekly, monthly", param="frequency")
    return FREQS[name]


# -- reading the columns ------------------------------------------------------------------

_ZH_DATE = [(re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?"), r"\1-\2-\3 "),
            (re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月"), r"\1-\2"),
            (re.compile(r"(\d{1,2})\s*[时点]\s*(\d{1,2})\s*分?"), r"\1:\2"),
            (re.compile(r"(\d{1,2})\s*[时点]"), r"\1:00")]


def parse_times(s: pd.Series, column: str) -> pd.Series:
    """Dates and times as people write them (ISO, ``2024/3/1 8:00``, ``2024年3月1日 8时``, ``20240301``).

    Refuses with the column, an example value and the share of bad rows. Time zones are
    dropped to local wall time (a forecast is of the local working day).
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
    elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        txt = s.dropna().astype("int64").astype(str)
        if len(txt) and txt.str.fullmatch(r"\d{8}").all():  # 20240301
            out = pd.to_datetime(s.astype("Int64").astype(str), format="%Y%m%d", errors="coerce")
        elif len(txt) and txt.str.fullmatch(r"\d{6}").all():  # 202403 (a month)
            out = pd.to_datetime(s.astype("Int64").astype(str), format="%Y%m", errors="coerce")
        else:
            example = show(s.dropna().iloc[0]) if s.notna().any() else "none"
            raise InvalidRequest(f"column {column!r} (role 'time') holds numbers such as {example}, "
                                 "not dates; bind a date/time column with -p time=COLUMN (numbers are read only "
                                 "as YYYYMMDD or YYYYMM)", param="time")
    else:
        txt = s.astype("string").str.strip()
        # a long table repeats each time once per cell/region: parse the distinct values only
        codes, uniq = pd.factorize(txt)
        norm = pd.Series(uniq, dtype="string")
        if norm.str.contains(r"[年月日号时点]", regex=True, na=False).any():
            for pat, rep in _ZH_DATE:
                norm = norm.str.replace(pat, rep, regex=True)
            norm = norm.str.strip()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format": the mixed pass below handles it
            parsed = pd.to_datetime(norm, errors="coerce")  # one inferred format: fast
        if parsed.isna().any():
            parsed = parsed.fillna(pd.to_datetime(norm.where(parsed.isna()), errors="coerce", format="mixed"))
        vals = parsed.to_numpy()
        out = pd.Series(np.where(codes >= 0, vals[np.maximum(codes, 0)], np.datetime64("NaT")) if len(vals) else
                        np.full(len(txt), np.datetime64("NaT"), "datetime64[ns]"), index=s.index)
        bad = out.isna() & txt.notna() & txt.ne("")
        if bad.any():
            raise InvalidRequest(f"column {column!r} (role 'time') has values that are not dates or times, e.g. "
                                 f"{show(s[bad].iloc[0])} ({int(bad.sum())} of {len(s)} rows); fix them, or bind "
                                 "another column with -p time=COLUMN", param="time")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out


def parse_values(s: pd.Series, column: str) -> pd.Series:
    """Numbers, also as text with thousands separators (``1,234``, ``1，234``); our error otherwise."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    txt = s.astype("string").str.strip().str.replace(r"[,，\s]", "", regex=True)
    out = pd.to_numeric(txt.replace("", pd.NA), errors="coerce")
    bad = out.isna() & txt.notna() & txt.ne("")
    if bad.any():
        raise InvalidRequest(f"column {column!r} (role 'value') is not numeric, e.g. {show(s[bad].iloc[0])} "
                             f"({int(bad.sum())} of {len(s)} rows); fix those rows or bind a numeric column "
                             "with -p value=COLUMN", param="value")
    return out.astype(float)


def infer_frequency(t: pd.Series, column: str) -> Freq:
    u = pd.Series(t.dropna().unique()).sort_values()
    if len(u) < 3:
        raise InvalidRequest(f"column {column!r} has {len(u)} distinct timestamp(s); a forecast needs a series",
                             param="time")
    step = u.diff().dropna().mode().iloc[0]
    hours = step / pd.Timedelta(hours=1)
    if hours == 1:
        return FREQS["hourly"]
    if 23 <= hours <= 25:
        return FREQS["daily"]
    if hours == 24 * 7:
        return FREQS["weekly"]
    if 28 * 24 <= hours <= 31 * 24:
        return FREQS["monthly"]
    what = f"{step}".replace("0 days ", "")
    hint = "hourly" if hours < 1 else "daily" if hours < 24 else "weekly" if hours < 24 * 7 else "monthly"
    raise InvalidRequest(f"column {column!r}: the usual step between timestamps is {what}, which is not hourly, "
                         f"daily, weekly or monthly; set -p frequency={hint} to aggregate the rows to {hint} "
                         "periods", param="frequency")


# -- the series ---------------------------------------------------------------------------

@dataclass
class Prepared:
    """The series to forecast (label -> regular float series), the frequency and what was done."""

    series: dict[Any, pd.Series]
    freq: Freq
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _aggregate(frame: pd.DataFrame, how: str) -> pd.Series:
    g = frame.groupby("t", sort=True)["v"]
    return getattr(g, how)() if how != "last" else g.last()


def prepare(df: pd.DataFrame, time: str, value: str, group: str | None = None, *, group_value: Any = None,
            per_group: bool = False, max_groups: int = 10, frequency: Any = None, aggregate: str = "sum",
            fill_missing: str = "none") -> Prepared:
    """One regular series (or one per group) from the bound columns; notes say what was done."""
    if aggregate not in AGGREGATES:
        raise InvalidRequest(f"aggregate {aggregate!r} is not one of {', '.join(AGGREGATES)}", param="aggregate")
    if fill_missing not in FILLS:
        raise InvalidRequest(f"fill_missing {fill_missing!r} is not one of {', '.join(FILLS)}", param="fill_missing")
    if len(df) == 0:
        raise InvalidRequest("the table has no rows; a forecast needs a time series", code="too_few_rows")
    notes: list[str] = []
    t = parse_times(df[time], time)
    v = parse_values(df[value], value)
    frame = pd.DataFrame({"t": t.to_numpy(), "v": v.to_numpy()})
    if group is not None:
        frame["g"] = df[group].astype("string").fillna("(空/empty)").to_numpy()
    drop = frame["t"].isna() | frame["v"].isna()
    if drop.any():
        notes.append(f"{int(drop.sum())} of {len(frame)} rows have an empty {time!r} or {value!r} and were left out.")
        frame = frame[~drop]
    if frame.empty:
        raise InvalidRequest(f"no row has both a time in {time!r} and a value in {value!r}", param="value")
    freq = parse_frequency(frequency)
    if freq is None:
        freq = infer_frequency(frame["t"], time) if group is None else _group_frequency(frame, time)
        how_freq = "inferred from the timestamps"
    else:
        how_freq = "set by the run (frequency=…)"
    frame["t"] = freq.floor(frame["t"]).to_numpy()
    info: dict[str, Any] = {"time": time, "value": value, "group": group, "frequency": freq.name,
                            "frequency_how": how_freq, "aggregate": aggregate}
    # which series
    if group is not None and group_value is not None:
        sel = frame[frame["g"] == str(group_value)]
        if sel.empty:
            top = frame.groupby("g")["v"].sum().sort_values(ascending=False).index[:8]
            raise InvalidRequest(f"no rows with {group!r} = {show(group_value)}; values include "
                                 f"{', '.join(map(show, top))}", param="group_value")
        parts = {str(group_value): sel}
        notes.append(f"Forecasting the series of {group!r} = {show(group_value)} "
                     f"(one of {frame['g'].nunique()} groups).")
    elif group is not None and per_group:
        totals = frame.groupby("g")["v"].sum().sort_values(ascending=False)
        keep = list(totals.index[: max(1, int(max_groups))])
        parts = {g: frame[frame["g"] == g] for g in keep}
        notes.append(f"One series per {group!r}: the {len(keep)} largest of {len(totals)} groups by total "
                     f"{value!r} (max_groups={int(max_groups)}); metrics pool their hold-outs.")
    else:
        parts = {None: frame}
        if group is not None:
            notes.append(f"The {frame['g'].nunique()} groups of {group!r} are combined into one series "
                         f"({aggregate} of {value!r} per period); pass -p group_value=… for one group or "
                         "-p per_group=true for one series per group.")
    series: dict[Any, pd.Series] = {}
    dup_note = None
    for label, part in parts.items():
        counts = part.groupby("t").size()
        many = counts[counts > 1]
        if len(many) and aggregate == "none":
            raise InvalidRequest(f"column {time!r} has duplicate timestamps, e.g. {many.index[0]} ({int(many.iloc[0])} "
                                 f"rows){_where(group, label)}; set -p aggregate=sum (or mean) to combine them, "
                                 "or bind -p group=COLUMN", param="time")
        if len(many) and dup_note is None and not (group is not None and label is None):
            dup_note = (f"{len(many)} {freq.name} periods of {time!r} have several rows (e.g. {many.index[0]}: "
                        f"{int(many.iloc[0])} rows); their {value!r} was combined by {aggregate} "
                        "(-p aggregate=mean|max|last to change, -p group=COLUMN for one series per group).")
        s = _aggregate(part, "sum" if aggregate == "none" else aggregate)
        s.index = pd.DatetimeIndex(s.index)
        s = _regular(s, freq, time, fill_missing, label, group, notes)
        if s.nunique() <= 1:
            raise InvalidRequest(f"column {value!r} is constant ({show(s.iloc[0])}) over the whole series"
                                 f"{_where(group, label)}: there is nothing to forecast", param="value")
        series[label] = s.astype(float)
    if dup_note:
        notes.append(dup_note)
    return Prepared(series, freq, notes, info)


def _where(group: str | None, label: Any) -> str:
    return f" (in {group!r} = {show(label)})" if group is not None and label is not None else ""


def _group_frequency(frame: pd.DataFrame, time: str) -> Freq:
    big = frame.groupby("g").size().idxmax()  # the step within one group, not across interleaved groups
    return infer_frequency(frame.loc[frame["g"] == big, "t"], time)


def _regular(s: pd.Series, freq: Freq, time: str, fill: str, label: Any, group: str | None,
             notes: list[str]) -> pd.Series:
    full = pd.date_range(s.index[0], s.index[-1], freq=freq.alias)
    if len(full) != len(s) or not full.equals(s.index):
        missing = full.difference(s.index)
        if len(missing) == 0:  # off-grid stamps (weekly data on Sundays): re-anchor
            full = s.index
        elif fill == "none":
            raise InvalidRequest(f"the {freq.name} series{_where(group, label)} misses {len(missing)} of "
                                 f"{len(full)} periods of {time!r}, first {missing[0]}; fill them in the table or "
                                 "set -p fill_missing=zero (nothing happened then) or -p fill_missing=interpolate",
                                 param="fill_missing")
        else:
            s = s.reindex(full)
            s = s.fillna(0.0) if fill == "zero" else s.interpolate(limit_direction="both")
            notes.append(f"{len(missing)} missing {freq.name} periods{_where(group, label)} were filled "
                         f"({fill}), first {missing[0]}.")
    s = s.copy()
    s.index = pd.DatetimeIndex(s.index, freq=freq.alias if len(s) > 2 else None)
    return s


# -- shared modelling pieces --------------------------------------------------------------

def forecast_metrics(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE (%, over non-zero actuals) and symmetric MAPE (%)."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    err = yhat - y
    nz = np.abs(y) > 1e-9
    denom = np.abs(y) + np.abs(yhat)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mape": float(100 * np.mean(np.abs(err[nz]) / np.abs(y[nz]))) if nz.any() else float("nan"),
        "smape": float(100 * np.mean(np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0))),
    }


def calendar_features(index: pd.DatetimeIndex, freq: Freq, days: DayTypes) -> pd.DataFrame:
    """Calendar regressors for ``index``.

    Hourly: hour x day-type (workday / off day) one-hots, weekday, holiday, eve, make-up workday.
    Daily: weekday, holiday, eve (the working day before a holiday), make-up workday.
    Weekly / monthly: the share of off days in the period and the month of year (as a cycle
    for weekly data, one-hots for monthly) — holidays move between weeks and months.
    """
    cols: dict[str, np.ndarray] = {}
    if freq.name in ("hourly", "daily"):
        dates = index.date
        hol = days.holiday(dates)
        off = days.offday(dates)
        nxt = (index + pd.Timedelta(days=1)).date
        eve = days.holiday(nxt) & ~off
        dow = index.dayofweek.to_numpy()
        for k in range(1, 7):
            cols[f"dow_{k}"] = (dow == k).astype(float)
        cols["holiday"] = hol.astype(float)
        cols["eve"] = eve.astype(float)
        cols["makeup_workday"] = days.makeup(dates).astype(float)
        if freq.name == "hourly":
            hour = index.hour.to_numpy()
            for h in range(24):
                cols[f"hour_{h:02d}_workday"] = ((hour == h) & ~off).astype(float)
                cols[f"hour_{h:02d}_offday"] = ((hour == h) & off).astype(float)
        return pd.DataFrame(cols, index=index)
    span = 7 if freq.name == "weekly" else None
    shares = []
    for start in index:
        end = start + (pd.Timedelta(days=span) if span else pd.offsets.MonthBegin(1))
        d = pd.date_range(start, end - pd.Timedelta(days=1), freq="D").date
        off = days.offday(d)
        wk = np.fromiter((x.weekday() >= 5 for x in d), bool, len(d))
        shares.append(((off & ~wk).mean(), (off.mean())))
    arr = np.asarray(shares, float).reshape(-1, 2)
    cols["holiday"] = arr[:, 0]  # share of the period's days that are holidays on weekdays
    cols["offday_share"] = arr[:, 1]
    month = index.month.to_numpy()
    if freq.name == "monthly":
        for m in range(2, 13):
            cols[f"month_{m:02d}"] = (month == m).astype(float)
    else:
        doy = index.dayofyear.to_numpy() / 365.25
        cols["season_sin"] = np.sin(2 * np.pi * doy)
        cols["season_cos"] = np.cos(2 * np.pi * doy)
    return pd.DataFrame(cols, index=index)


def design_matrix(z: pd.Series, index: pd.DatetimeIndex, freq: Freq, lags: tuple[int, ...],
                  days: DayTypes) -> pd.DataFrame:
    """Calendar features plus same-season lags of the (transformed) series ``z``, for ``index``.

    ``index`` may extend past ``z`` by at most ``min(lags)`` steps (the lags must be known).
    """
    full = z.reindex(index.union(z.index))
    X = calendar_features(index, freq, days)
    for k in lags:
        X[freq.lag_name(k)] = full.shift(k).reindex(index).to_numpy()
    if freq.name in ("hourly", "daily"):
        # a lag that fell on a holiday says little about a working day (and vice versa): flag it
        step = pd.Timedelta(hours=1) if freq.name == "hourly" else pd.Timedelta(days=1)
        X["lag_was_holiday"] = days.holiday((index - lags[0] * step).date).astype(float)
    return X


__all__ = ["AGGREGATES", "FILLS", "FREQS", "Freq", "Prepared", "calendar_features", "design_matrix",
           "forecast_metrics", "infer_frequency", "parse_frequency", "parse_times", "parse_values", "prepare"]
