"""Holiday calendars for the forecasting entries: which days are off, and which weekend days are worked.

Traffic and revenue follow the working week, so a forecaster needs to know the holidays of
the place the series comes from. One calendar does not fit every table: mainland China moves
working days onto weekends around its holidays (调休, make-up workdays: a Saturday that is a
working day carries a working day's traffic), Milan has Sant'Ambrogio, an American operator
has Thanksgiving. So the calendar is a run parameter (``-p calendar=CN``), with a deployment
default (``ZHINAO_ANALYTICS_HOLIDAY_CALENDAR``) and, under ``auto``, a choice from the table:

1. a demo dataset that knows its own calendar (the Milan demo: Italy + Milan's patron saint);
2. a table whose bound column names are Chinese: the zh locale, mainland China (``CN``);
3. otherwise no calendar — and the run's notes say so, and how to set one.

Holidays come from the ``holidays`` package (offline: its rules are code, nothing is
fetched); every ISO 3166 country code it supports works, with an optional subdivision
(``IT-MI`` Milan, ``US-CA``, ``CN`` has none). Make-up workdays are the package's
``weekend_workdays`` where it has them (China, Taiwan …). Years outside the package's known
schedules still get the fixed-date and lunar holidays the package computes; announcements it
does not yet know (a future year's 调休) cannot be known — the notes say the year range used.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from zhinao.errors import InvalidRequest

#: attribute a demo loader sets on its frame (``DataFrame.attrs``) to say which calendar its data has
DEMO_ATTR = "zhinao_holiday_calendar"
NONE = "none"
AUTO = "auto"

_NAMES = {"CN": ("mainland China", "中国大陆"), "IT": ("Italy", "意大利"), "IT-MI": ("Italy, Milan", "意大利米兰"),
          "HK": ("Hong Kong", "中国香港"), "MO": ("Macau", "中国澳门"), "TW": ("Taiwan", "中国台湾"),
          "US": ("United States", "美国"), "GB": ("United Kingdom", "英国"), "DE": ("Germany", "德国"),
          "FR": ("France", "法国"), "JP": ("Japan", "日本"), "KR": ("South Korea", "韩国"),
          "SG": ("Singapore", "新加坡")}
_CJK = re.compile(r"[\u3400-\u9fff]")


@functools.lru_cache(maxsize=1)
def supported() -> dict[str, tuple[str, ...]]:
    """Country code -> its subdivision codes, as the installed ``holidays`` package knows them."""
    import holidays

    return {c: tuple(s) for c, s in holidays.list_supported_countries().items()}


@dataclass(frozen=True)
class HolidayCalendar:
    """A country (and subdivision) calendar, or none; ``days(dates)`` says what each date is."""

    code: str  #: "CN", "IT-MI", "US-CA" … or "none"
    reason_en: str = ""
    reason_zh: str = ""

    @property
    def country(self) -> str | None:
        return None if self.code == NONE else self.code.split("-", 1)[0]

    @property
    def subdiv(self) -> str | None:
        return self.code.split("-", 1)[1] if "-" in self.code else None

    @property
    def name_en(self) -> str:
        return "no holiday calendar" if self.code == NONE else \
            f"{_NAMES.get(self.code, _NAMES.get(self.country or '', (self.code, '')))[0]} ({self.code})"

    @property
    def name_zh(self) -> str:
        if self.code == NONE:
            return "不使用节假日日历"
        zh = _NAMES.get(self.code, _NAMES.get(self.country or "", ("", "")))[1]
        return f"{zh or self.code}（{self.code}）"

    def days(self, dates: Iterable[dt.date]) -> "DayTypes":
        """Holiday and make-up-workday flags (and holiday names) for ``dates``."""
        dates = list(dates)
        if self.code == NONE or not dates:
            return DayTypes({}, set(), None)
        years = sorted({d.year for d in dates} | {min(dates).year - 1, max(dates).year + 1})
        hol, work = _tables(self.country, self.subdiv, tuple(years))
        return DayTypes(hol, work, (years[1], years[-2]) if len(years) > 2 else (years[0], years[-1]))

    def describe(self) -> dict[str, Any]:
        return {"code": self.code, "name_en": self.name_en, "name_zh": self.name_zh,
                "reason_en": self.reason_en, "reason_zh": self.reason_zh}


@dataclass(frozen=True)
class DayTypes:
    holidays: dict[dt.date, str]  #: date -> holiday name
    workdays: set[dt.date]  #: weekend dates that are working days (调休 / make-up workdays)
    years: tuple[int, int] | None

    def holiday(self, dates: Iterable[dt.date]) -> np.ndarray:
        return np.fromiter((d in self.holidays for d in dates), bool)

    def makeup(self, dates: Iterable[dt.date]) -> np.ndarray:
        return np.fromiter((d in self.workdays for d in dates), bool)

    def offday(self, dates: Iterable[dt.date]) -> np.ndarray:
        """Holidays, and weekends that are not make-up workdays."""
        dates = list(dates)
        wk = np.fromiter((d.weekday() >= 5 for d in dates), bool, len(dates))
        return self.holiday(dates) | (wk & ~self.makeup(dates))


@functools.lru_cache(maxsize=64)
def _tables(country: str, subdiv: str | None, years: tuple[int, ...]) -> tuple[dict[dt.date, str], set[dt.date]]:
    import holidays

    hol = holidays.country_holidays(country, subdiv=subdiv, years=years)
    names = {d: str(n) for d, n in hol.items()}
    # weekend days moved to working days (调休上班), where the package knows them
    work = {d for d in getattr(hol, "weekend_workdays", set()) if d.weekday() >= 5}
    return names, work


def parse(spec: Any) -> str:
    """Normalise a calendar parameter: ``cn`` -> ``CN``, ``it-mi`` -> ``IT-MI``; refuse unknown codes."""
    s = str(spec).strip()
    if s.lower() in (NONE, "off", "no", "false", "无", "不使用"):
        return NONE
    if s.lower() == AUTO:
        return AUTO
    code = s.upper().replace("_", "-")
    country, _, sub = code.partition("-")
    known = supported()
    if country not in known:
        near = ", ".join(c for c in ("CN", "HK", "TW", "IT", "US", "GB", "DE", "JP", "KR") if c in known)
        raise InvalidRequest(f"calendar {s!r} is not a country code the holidays package knows; use an ISO "
                             f"3166 code such as {near} (with a subdivision: IT-MI), 'auto' or 'none'",
                             param="calendar")
    if sub and sub not in known[country]:
        subs = ", ".join(known[country][:12]) or "none"
        raise InvalidRequest(f"calendar {s!r}: {country} has no subdivision {sub!r}; subdivisions: {subs}",
                             param="calendar")
    return code


def zh_table(columns: Iterable[Any]) -> bool:
    """A table whose (bound) column names are Chinese: the zh locale."""
    return any(_CJK.search(str(c)) for c in columns if c is not None)


def resolve(spec: Any, *, columns: Iterable[Any] = (), data: Any = None) -> HolidayCalendar:
    """The calendar a run uses, and why (the run's notes quote the reason).

    ``spec``: the run's ``calendar`` parameter (None: the deployment setting); ``columns``: the
    bound column names (Chinese names -> the zh locale); ``data``: the input frame, whose
    ``attrs`` may name a demo's own calendar.
    """
    setting = None
    if spec is None or str(spec).strip() == "":
        from zhinao.settings import get_settings

        setting = get_settings().analytics_holiday_calendar
        spec = setting
    code = parse(spec)
    how_en = (f"the deployment setting ZHINAO_ANALYTICS_HOLIDAY_CALENDAR={setting}" if setting is not None
              else f"the run's parameter calendar={spec}")
    how_zh = (f"部署配置 ZHINAO_ANALYTICS_HOLIDAY_CALENDAR={setting}" if setting is not None
              else f"运行参数 calendar={spec}")
    if code != AUTO:
        return HolidayCalendar(code, how_en, how_zh)
    demo = getattr(data, "attrs", {}).get(DEMO_ATTR) if data is not None else None
    if demo:
        return HolidayCalendar(parse(demo), f"auto ({how_en}): the demo dataset's own calendar",
                               f"自动（{how_zh}）：演示数据自带的日历")
    if zh_table(columns):
        return HolidayCalendar("CN", f"auto ({how_en}): the table's column names are Chinese (zh locale), so the "
                                     "mainland-China calendar with make-up workdays (调休)",
                               f"自动（{how_zh}）：表的列名为中文（中文区域），采用中国大陆节假日与调休日历")
    return HolidayCalendar(NONE, f"auto ({how_en}): no locale or calendar known for this table; pass "
                                 "-p calendar=CN (or another ISO country code) to model its holidays",
                           f"自动（{how_zh}）：无法判断此表的地区，未使用节假日；可用 -p calendar=CN 等指定")


def holiday_rows(cal: HolidayCalendar, index: pd.DatetimeIndex, limit: int = 30) -> list[list[Any]]:
    """(date, weekday, holiday or make-up workday name) for the special days inside ``index``'s span."""
    if cal.code == NONE or len(index) == 0:
        return []
    days = pd.date_range(index.min().normalize(), index.max().normalize(), freq="D").date
    t = cal.days(days)
    rows = []
    for d in days:
        if d in t.holidays:
            rows.append([d.isoformat(), d.strftime("%a"), t.holidays[d]])
        elif d in t.workdays:
            rows.append([d.isoformat(), d.strftime("%a"), "make-up workday 调休上班"])
    return rows[:limit]


__all__ = ["AUTO", "DEMO_ATTR", "DayTypes", "HolidayCalendar", "NONE", "holiday_rows", "parse", "resolve",
           "supported", "zh_table"]
