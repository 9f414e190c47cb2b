"""Foreign tables for the forecasting entries (traffic_arima, traffic_linear).

The entries' demo is the packaged hourly *city total* (``timestamp`` / ``activity``). Here they
meet what a network team exports instead, read from the ORIGINAL per-cell matrix in ../shared
(``data/milan-telecom-timeseries/matrixTS.csv``: one row per grid cell, one column per hour,
no header, with ``ID_labels.csv`` for the cell ids) and reshaped into long tables with Chinese
column names and Chinese-written times:

- one mid-sized cell of a long per-cell table (the user names the cell: ``group_value``);
- the five busiest cells, one series per cell (``per_group``: 小区话务量预测);
- daily traffic from the same hourly rows (``frequency=daily``: the entry aggregates 24 rows
  per cell-day itself, as in 收入预测 on order rows) — only 62 days, 14 held out, so a hard case.

Only one measure exists in this data set (the source does not say whether it is SMS, calls or
internet), so "another measure" is not available; the STC-3 dialogues have no timestamps, so
they give no count series. The data are Milan's, so the runs pass Milan's calendar (IT-MI) as a
user would; the daily case is also run with ``calendar=auto`` (Chinese column names -> CN, the
wrong calendar for Milan) to show what the default costs on foreign data.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MILAN = SHARED / "data" / "milan-telecom-timeseries"
START = pd.Timestamp("2013-11-01 00:00")  # the provider's inferred hour 0 (see its SOURCE.md)


@lru_cache(maxsize=1)
def per_cell_long() -> pd.DataFrame:
    """All 281 cells x their hours as a long table: 小区编号, 统计时间 (2013年11月01日 00时), 话务量."""
    m = pd.read_csv(MILAN / "matrixTS.csv", header=None)
    ids = pd.read_csv(MILAN / "ID_labels.csv", header=None)[0].astype(int).to_numpy()
    rows = []
    hours = pd.date_range(START, periods=m.shape[1], freq="h").strftime("%Y年%m月%d日 %H时").to_numpy()
    for i, cell in enumerate(ids):
        v = m.iloc[i].to_numpy(dtype=float)
        ok = ~np.isnan(v)
        rows.append(pd.DataFrame({"小区编号": cell, "统计时间": hours[ok], "话务量": v[ok]}))
    return pd.concat(rows, ignore_index=True)


def _complete_cells() -> pd.Series:
    t = per_cell_long()
    size = t.groupby("小区编号").size()
    return t[t["小区编号"].isin(size[size == size.max()].index)].groupby("小区编号")["话务量"].sum().sort_values()


def median_cell() -> int:
    s = _complete_cells()
    return int(s.index[len(s) // 2])


CASES = [
    dict(key="traffic_arima", table="Milan per-cell matrix (original matrixTS.csv), long with Chinese names; the "
         "median complete cell, hourly", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "group": "小区编号", "group_value": median_cell(),
                 "calendar": "IT-MI"}),
    dict(key="traffic_linear", table="Milan per-cell matrix (original matrixTS.csv), long with Chinese names; the "
         "median complete cell, hourly", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "group": "小区编号", "group_value": median_cell(),
                 "calendar": "IT-MI"}),
    dict(key="traffic_linear", table="Milan per-cell matrix, one series per cell for the 5 busiest cells "
         "(per_group, 小区话务量预测), hourly", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "group": "小区编号", "per_group": True, "max_groups": 5,
                 "calendar": "IT-MI"}),
    dict(key="traffic_arima", table="Milan per-cell matrix, one series per cell for the 3 busiest cells "
         "(per_group), hourly", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "group": "小区编号", "per_group": True, "max_groups": 3,
                 "calendar": "IT-MI"}),
    dict(key="traffic_linear", table="Milan per-cell hourly rows aggregated by the entry to daily totals over all "
         "281 cells (frequency=daily; 62 days)", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "frequency": "daily", "calendar": "IT-MI"}),
    dict(key="traffic_arima", table="Milan per-cell hourly rows aggregated by the entry to daily totals over all "
         "281 cells (frequency=daily; 62 days)", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "frequency": "daily", "calendar": "IT-MI"}),
    dict(key="traffic_arima", table="same daily totals, calendar=auto (Chinese column names -> CN: the wrong "
         "calendar for Milan)", load=per_cell_long,
         params={"time": "统计时间", "value": "话务量", "frequency": "daily"}),
]
