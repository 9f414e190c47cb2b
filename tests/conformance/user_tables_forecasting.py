"""User-table cases for the forecasting entries (read by tests/conformance/test_mining_models.py).

The demo is the city-wide hourly total with columns ``timestamp`` / ``activity``. These are
what an operator's network team exports instead: a per-cell table in long format with
Chinese column names, the time written the Chinese way (``2013年11月01日 08时``) or with
slashes, the cell id as a number, and a column the model must ignore. The data are real
(Telecom Italia Milan per-cell CDR activity, /work/shared/data via the packaged copy), so the
calendar a user would pass is Milan's (``IT-MI``); the auto/zh-locale path (CN) is tested in
tests/analytics/test_forecasting.py.
"""

from __future__ import annotations

import pandas as pd

from zhinao.analytics import datasets


def _cells(ids: list[int]) -> pd.DataFrame:
    c = datasets.load_milan_cells()
    return c[c["cell_id"].isin(ids)].sort_values(["cell_id", "timestamp"]).reset_index(drop=True)


def arima_one_cell():
    """Three cells, one forecast: the user names the cell (group_value)."""
    c = _cells([1, 10, 100])
    frame = pd.DataFrame({"小区编号": c["cell_id"].to_numpy(),
                          "时间": c["timestamp"].dt.strftime("%Y年%m月%d日 %H时").to_numpy(),
                          "话务量": c["activity"].to_numpy(),
                          "备注": "导出自网管 / NMS export"})
    return frame, {"time": "时间", "value": "话务量", "group": "小区编号", "group_value": 1, "calendar": "IT-MI"}


def linear_per_cell():
    """Three other cells, one series per cell (per_group), time as ``2013/11/01 00:00`` text."""
    c = _cells([1003, 1011, 1129])
    frame = pd.DataFrame({"cell": c["cell_id"].astype(str).radd("LAC-").to_numpy(),
                          "统计时间": c["timestamp"].dt.strftime("%Y/%m/%d %H:%M").to_numpy(),
                          "业务量": c["activity"].astype(float).to_numpy()})
    return frame, {"time": "统计时间", "value": "业务量", "group": "cell", "per_group": True, "max_groups": 3,
                   "calendar": "IT-MI"}


CASES = {"traffic_arima": arima_one_cell, "traffic_linear": linear_per_cell}
