"""Forecasting on real series and on users' own tables: roles, calendars, bad input.

Real data: the Milan CDR series (city total and per cell). Synthetic series only where the
test needs a known truth (a working-day effect under the mainland-China calendar with its
make-up workdays), generated here, never shipped.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog import calendars
from zhinao.analytics.catalog.forecasting import ArimaForecast, CalendarRegressionForecast
from zhinao.analytics.catalog.timeseries import forecast_metrics, parse_times, parse_values, prepare
from zhinao.analytics.runs import check_params, jsonable
from zhinao.errors import InvalidRequest


def test_metrics_are_exact_on_a_hand_example():
    m = forecast_metrics(np.array([100.0, 200.0]), np.array([110.0, 180.0]))
    assert m["mae"] == pytest.approx(15.0)
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert m["mape"] == pytest.approx(100 * (0.1 + 0.1) / 2)


# -- the demo and per-cell series ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("cls", [CalendarRegressionForecast, ArimaForecast])
def test_beats_seasonal_naive_on_milan_total(cls):
    m = cls()
    ev = m.evaluate(m.load_demo())
    for k in ("mae", "rmse", "smape"):
        assert ev.metrics[k] < ev.baseline[k], (k, ev.metrics[k], ev.baseline[k])
    # the hold-out is the last 7 days, forecast day-ahead: 168 hourly points
    assert ev.explanation["split"]["holdout"][1].startswith("2014-01-01 23:00")
    assert ev.explanation["split"]["holdout_points"] == 168
    assert 0.5 <= ev.metrics["interval_coverage"] <= 1.0
    assert ev.charts["forecast"][:4] == b"\x89PNG"
    # the demo knows its calendar, and the notes say which ran
    assert ev.explanation["calendar"]["code"] == "IT-MI"
    assert any("Italy, Milan (IT-MI)" in n for n in ev.explanation["notes"])
    assert any(r[2] == "Saint Ambrose's Day" for r in ev.explanation["special_days"])
    spec = ev.plots["forecast"]
    assert spec["type"] == "forecast" and len(spec["x"]) == 168 and spec["baseline"] and spec["history"]["x"]
    assert all(lo <= up for lo, up in zip(spec["lower"], spec["upper"]))
    json.dumps(ev.plots, allow_nan=False)


@pytest.mark.slow
def test_arima_order_is_chosen_by_aic_and_forecasts_forward():
    m = ArimaForecast(max_p=1, max_q=1, max_d=1)
    m.fit(m.load_demo())
    aics = [g["aic"] for g in m.aic_grid_]
    assert aics == sorted(aics) and len(aics) == 4  # p, q in {0, 1}; d by KPSS, the same for all
    assert len({g["order"][1] for g in m.aic_grid_}) == 1
    assert list(m.order_) == m.aic_grid_[0]["order"]
    fc = m.forecast(24)
    assert len(fc) == 24 and fc["timestamp"].iloc[0] == pd.Timestamp("2014-01-02 00:00")
    assert (fc["lower"] <= fc["prediction"]).all() and (fc["prediction"] <= fc["upper"]).all()


@pytest.mark.slow
def test_one_cell_of_a_long_table_beats_naive():
    cells = datasets.load_milan_cells()
    busiest = cells.groupby("cell_id")["activity"].sum().idxmax()
    # group role: the demo's cell_id column; a workspace table does not know its place: Milan's calendar
    m = CalendarRegressionForecast(group_value=busiest, calendar="IT-MI")
    ev = m.evaluate(cells)
    assert ev.metrics["mae"] < ev.baseline["mae"]
    # without it (auto on English column names: no calendar) the holidays are missed, and it shows
    none = CalendarRegressionForecast(group_value=busiest).evaluate(cells)
    assert none.explanation["calendar"]["code"] == "none" and none.metrics["mae"] > ev.metrics["mae"]
    assert m.binding_.columns["group"] == "cell_id"
    # the selected cell's level, not the city total
    assert m.history_[str(busiest)].max() < datasets.load_milan_total()["activity"].max()
    assert any(f"= {busiest}" in n for n in ev.explanation["notes"])


def _chinese_cells(ids):
    c = datasets.load_milan_cells()
    c = c[c["cell_id"].isin(ids)].sort_values(["cell_id", "timestamp"])
    return pd.DataFrame({"小区": c["cell_id"].to_numpy(), "时间": c["timestamp"].dt.strftime("%Y年%m月%d日 %H时").to_numpy(),
                         "话务量": c["activity"].to_numpy()})


def test_per_group_forecasts_each_group_and_scores_with_the_users_columns():
    t = _chinese_cells([1, 10, 100, 1003])
    m = CalendarRegressionForecast(time="时间", value="话务量", group="小区", per_group=True, max_groups=2,
                                   calendar="IT-MI")
    ev = m.evaluate(t)
    totals = t.groupby("小区")["话务量"].sum().sort_values(ascending=False)
    assert [g["group"] for g in ev.explanation["groups"]] == [str(x) for x in totals.index[:2]]
    assert ev.explanation["split"]["groups"] == 2 and ev.plots["groups"]["type"] == "table"
    # pooled hold-out: two series of 168 hours
    assert ev.explanation["series"]["points"] == {str(x): 1488 for x in totals.index[:2]}
    out = m.predict_table(t)
    assert list(out.columns) == ["小区", "时间", "prediction", "lower", "upper"]
    assert sorted(out["小区"].unique()) == sorted(str(x) for x in totals.index[:2])
    assert (out.groupby("小区").size() == 24).all()
    assert out["时间"].min() == pd.Timestamp("2014-01-02 00:00")
    text = json.dumps(jsonable(ev.explanation), ensure_ascii=False)
    assert "activity" not in text and "cell_id" not in text


def test_holiday_coefficient_is_negative():
    """Milan's holidays (Sant'Ambrogio, Christmas) carry less traffic: the model must see it."""
    m = CalendarRegressionForecast(calendar="IT-MI").fit(datasets.load_milan_total())
    assert m.coef_["holiday"] < 0


def test_predict_table_leaves_the_fitted_model_unchanged():
    m = CalendarRegressionForecast()
    demo = m.load_demo()
    m.fit(demo)
    before = dict(m.coef_)
    a = m.predict_table(demo.head(400))
    assert m.coef_ == before and len(a) == 24
    assert a["timestamp"].iloc[0] == demo["timestamp"].iloc[399] + pd.Timedelta(hours=1)


# -- calendars --------------------------------------------------------------------------------

def test_mainland_china_calendar_knows_make_up_workdays():
    cal = calendars.HolidayCalendar("CN")
    days = pd.date_range("2024-01-28", "2024-02-26").date
    t = cal.days(days)
    sunday_worked = pd.Timestamp("2024-02-04").date()  # 调休: Sunday before the Spring Festival
    assert sunday_worked in t.workdays and sunday_worked.weekday() == 6
    off = dict(zip(days, t.offday(days)))
    assert not off[sunday_worked] and off[pd.Timestamp("2024-02-12").date()]  # Spring Festival Monday
    assert off[pd.Timestamp("2024-02-25").date()] and not off[pd.Timestamp("2024-02-26").date()]


def test_calendar_codes_are_checked():
    assert calendars.parse("it-mi") == "IT-MI" and calendars.parse("cn") == "CN" and calendars.parse("None") == "none"
    with pytest.raises(InvalidRequest, match="'XQ' is not a country code"):
        calendars.parse("XQ")
    with pytest.raises(InvalidRequest, match="no subdivision 'ZZ'"):
        calendars.parse("IT-ZZ")
    with pytest.raises(InvalidRequest, match="calendar 'Mars'"):  # at construction: a 400 when a run starts
        CalendarRegressionForecast(calendar="Mars")


def test_auto_calendar_follows_the_table_and_the_setting(monkeypatch):
    from zhinao.settings import get_settings

    assert calendars.resolve(None, columns=["日期", "收入"]).code == "CN"
    assert calendars.resolve(None, columns=["date", "revenue"]).code == "none"
    assert calendars.resolve("US", columns=["日期"]).code == "US"
    demo = datasets.load_milan_total()
    demo.attrs[calendars.DEMO_ATTR] = "IT-MI"
    assert calendars.resolve(None, columns=["timestamp"], data=demo).code == "IT-MI"
    monkeypatch.setenv("ZHINAO_ANALYTICS_HOLIDAY_CALENDAR", "DE")
    get_settings.cache_clear()
    try:
        cal = calendars.resolve(None, columns=["日期"])
        assert cal.code == "DE" and "ZHINAO_ANALYTICS_HOLIDAY_CALENDAR=DE" in cal.reason_en
    finally:
        monkeypatch.delenv("ZHINAO_ANALYTICS_HOLIDAY_CALENDAR")
        get_settings.cache_clear()


def _working_day_series(start: str, end: str, seed: int = 0) -> pd.DataFrame:
    """Daily revenue that depends on China's working days (调休 included), with noise."""
    cal = calendars.HolidayCalendar("CN")
    idx = pd.date_range(start, end, freq="D")
    off = cal.days(idx.date).offday(idx.date)
    rng = np.random.default_rng(seed)
    level = np.where(off, 400.0, 1000.0) * np.exp(rng.normal(0, 0.03, len(idx)))
    return pd.DataFrame({"账期日期": idx.strftime("%Y%m%d").astype(int), "日收入（元）": [f"{v:,.2f}" for v in level]})


def test_zh_table_gets_the_china_calendar_and_it_matters():
    """Around the 2024 Spring Festival (holidays and worked weekends), the CN calendar beats none."""
    df = _working_day_series("2023-06-01", "2024-03-03")
    auto = CalendarRegressionForecast(time="账期日期", value="日收入（元）", holdout=35)
    ev = auto.evaluate(df)
    assert ev.explanation["calendar"]["code"] == "CN" and "zh locale" in ev.explanation["calendar"]["reason_en"]
    assert ev.explanation["series"]["frequency"] == "daily"
    none = CalendarRegressionForecast(time="账期日期", value="日收入（元）", holdout=35, calendar="none").evaluate(df)
    assert ev.metrics["mae"] < 0.5 * none.metrics["mae"], (ev.metrics, none.metrics)
    assert ev.metrics["mae"] < ev.baseline["mae"]
    assert any(r[2] == "make-up workday 调休上班" for r in ev.explanation["special_days"])


def test_revenue_preset_aggregates_rows_to_days():
    params = check_params(CalendarRegressionForecast, {"time": "下单时间", "value": "金额"}, preset="revenue")
    assert params["frequency"] == "daily" and params["aggregate"] == "sum"
    rng = np.random.default_rng(1)
    hours = pd.date_range("2024-03-01", "2024-06-30 23:00", freq="h")
    orders = pd.DataFrame({"下单时间": np.repeat(hours, 2).strftime("%Y/%m/%d %H:%M"),
                           "金额": rng.gamma(2.0, 50.0, 2 * len(hours))})
    m = CalendarRegressionForecast(**params)
    ev = m.evaluate(orders)
    assert ev.explanation["series"]["frequency"] == "daily"
    assert ev.explanation["series"]["frequency_how"].startswith("set by the run")
    daily = orders.assign(d=pd.to_datetime(orders["下单时间"]).dt.normalize()).groupby("d")["金额"].sum()
    assert m.history_[None].iloc[0] == pytest.approx(daily.iloc[0])
    assert ev.explanation["calendar"]["code"] == "CN"


# -- reading users' columns -----------------------------------------------------------------

def test_times_and_values_as_people_write_them():
    t = parse_times(pd.Series(["2024年3月1日 8时", "2024年03月01日 09时30分", "2024/3/1 10:00"]), "时间")
    assert list(t) == [pd.Timestamp("2024-03-01 08:00"), pd.Timestamp("2024-03-01 09:30"), pd.Timestamp("2024-03-01 10:00")]
    assert parse_times(pd.Series([20240301, 20240302]), "d").iloc[1] == pd.Timestamp("2024-03-02")
    assert parse_times(pd.Series(["2024年3月", "2024年4月"]), "月份").iloc[1] == pd.Timestamp("2024-04-01")
    assert list(parse_values(pd.Series(["1,234", "1，000.5", " 7 "]), "v")) == [1234.0, 1000.5, 7.0]


def test_frequencies_are_inferred():
    for freq, n, want in (("D", 60, "daily"), ("W-MON", 60, "weekly"), ("MS", 40, "monthly")):
        idx = pd.date_range("2020-01-06", periods=n, freq=freq)
        p = prepare(pd.DataFrame({"t": idx, "v": np.arange(n, dtype=float) % 7}), "t", "v")
        assert p.freq.name == want and len(p.series[None]) == n


@pytest.mark.slow
def test_weekly_and_monthly_series_run_end_to_end():
    rng = np.random.default_rng(3)
    idx = pd.date_range("2016-01-01", periods=96, freq="MS")
    y = 1000 + 200 * np.sin(2 * np.pi * idx.month / 12) + np.arange(96) * 3 + rng.normal(0, 20, 96)
    ev = ArimaForecast(time="月份", value="收入").evaluate(pd.DataFrame({"月份": idx.strftime("%Y年%m月"), "收入": y}))
    assert ev.explanation["series"]["frequency"] == "monthly" and ev.metrics["mae"] < ev.baseline["mae"]
    assert ev.baseline_name == "seasonal naive (same month one year earlier)"
    w = pd.date_range("2019-01-07", periods=200, freq="W-MON")
    yw = 500 + 100 * np.cos(2 * np.pi * w.dayofyear / 365.25) + rng.normal(0, 10, 200)
    ev = CalendarRegressionForecast(time="week", value="calls").evaluate(pd.DataFrame({"week": w, "calls": yw}))
    assert ev.explanation["series"]["frequency"] == "weekly" and ev.metrics["mae"] < ev.baseline["mae"]


# -- bad input: clear messages naming the column ----------------------------------------------

def _daily(n=120):
    idx = pd.date_range("2024-01-01", periods=n, freq="D")
    return pd.DataFrame({"日期": idx.strftime("%Y-%m-%d"), "话务量": 100 + (np.arange(n) % 7) * 10.0})


def test_a_time_column_that_does_not_parse_names_it_and_an_example():
    df = _daily()
    df.loc[5, "日期"] = "上周三"
    with pytest.raises(InvalidRequest, match=r"'日期' \(role 'time'\).*'上周三' \(1 of 120 rows\)"):
        CalendarRegressionForecast(time="日期", value="话务量").evaluate(df)
    with pytest.raises(InvalidRequest, match=r"'话务量' \(role 'time'\) holds numbers"):
        CalendarRegressionForecast(time="话务量", value="话务量").evaluate(df)


def test_a_value_column_that_is_not_numeric_names_it():
    df = _daily()
    df["话务量"] = df["话务量"].astype(object)
    df.loc[7, "话务量"] = "n/a"
    with pytest.raises(InvalidRequest, match=r"'话务量' \(role 'value'\) is not numeric, e.g. 'n/a'"):
        ArimaForecast(time="日期", value="话务量").evaluate(df)


def test_unknown_column_is_named():
    with pytest.raises(InvalidRequest, match="'收入', which the table lacks"):
        CalendarRegressionForecast(time="日期", value="收入").evaluate(_daily())


def test_too_few_points():
    with pytest.raises(InvalidRequest, match=r"too few points: the daily series has 20 days; it needs at least"):
        CalendarRegressionForecast(time="日期", value="话务量").evaluate(_daily(20))
    with pytest.raises(InvalidRequest, match="too few points"):
        ArimaForecast().evaluate(datasets.load_milan_total().head(24 * 3))


def test_a_constant_series_is_refused():
    df = _daily()
    df["话务量"] = 5.0
    with pytest.raises(InvalidRequest, match=r"'话务量' is constant \(5.0\).*nothing to forecast"):
        CalendarRegressionForecast(time="日期", value="话务量").evaluate(df)


def test_duplicate_timestamps_are_combined_and_said_or_refused():
    df = _daily()
    dup = pd.concat([df, df.iloc[[10, 11]]]).reset_index(drop=True)
    m = CalendarRegressionForecast(time="日期", value="话务量")
    ev = m.evaluate(dup)
    assert any("2 daily periods of '日期' have several rows" in n and "combined by sum" in n
               for n in ev.explanation["notes"])
    assert m.history_[None].loc["2024-01-11"] == 2 * df.loc[10, "话务量"]
    with pytest.raises(InvalidRequest, match=r"'日期' has duplicate timestamps, e.g. 2024-01-11.*aggregate=sum"):
        CalendarRegressionForecast(time="日期", value="话务量", aggregate="none").evaluate(dup)


def test_missing_periods_are_refused_or_filled():
    df = _daily().drop(index=[30, 31]).reset_index(drop=True)
    with pytest.raises(InvalidRequest, match=r"misses 2 of 120 periods of '日期', first 2024-01-31.*fill_missing"):
        CalendarRegressionForecast(time="日期", value="话务量").evaluate(df)
    ev = CalendarRegressionForecast(time="日期", value="话务量", fill_missing="interpolate").evaluate(df)
    assert any("2 missing daily periods were filled (interpolate)" in n for n in ev.explanation["notes"])


def test_group_value_that_is_absent_lists_values():
    t = _chinese_cells([1, 10])
    with pytest.raises(InvalidRequest, match=r"no rows with '小区' = 999; values include"):
        CalendarRegressionForecast(time="时间", value="话务量", group="小区", group_value=999).evaluate(t)
    with pytest.raises(InvalidRequest, match="group_value needs a group column"):
        CalendarRegressionForecast(time="日期", value="话务量", group_value=1).evaluate(_daily())


def test_an_odd_step_asks_for_a_frequency():
    idx = pd.date_range("2024-01-01", periods=300, freq="15min")
    df = pd.DataFrame({"ts": idx, "kpi": np.arange(300) % 96 + 1.0})
    with pytest.raises(InvalidRequest, match="set -p frequency=hourly"):
        CalendarRegressionForecast(time="ts", value="kpi").evaluate(df)
    p = prepare(df, "ts", "kpi", frequency="hourly")
    assert len(p.series[None]) == 75 and p.series[None].iloc[0] == 1 + 2 + 3 + 4


def test_flags_as_text_and_bad_options_are_clear():
    t = _chinese_cells([1, 10])
    with pytest.raises(InvalidRequest, match="per_group must be true or false, got 'maybe'"):
        CalendarRegressionForecast(time="时间", value="话务量", group="小区", per_group="maybe")
    with pytest.raises(InvalidRequest, match="aggregate 'median' is not one of"):
        ArimaForecast(time="时间", value="话务量", aggregate="median")
    with pytest.raises(InvalidRequest, match="frequency 'fortnightly' is not one of"):
        CalendarRegressionForecast(time="时间", value="话务量", frequency="fortnightly")
    with pytest.raises(InvalidRequest, match="alpha must be between 0 and 1"):
        CalendarRegressionForecast(alpha=5)
    with pytest.raises(InvalidRequest, match="holdout must be a whole number >= 1, got 'a week'"):
        CalendarRegressionForecast(holdout="a week")
    with pytest.raises(InvalidRequest, match="max_p must be a whole number, got -1"):
        ArimaForecast(max_p=-1)
    ev = CalendarRegressionForecast(time="时间", value="话务量", group="小区", per_group="false",
                                    calendar="IT-MI").evaluate(t)
    assert "groups" not in ev.explanation
    assert any("The 2 groups of '小区' are combined into one series" in n for n in ev.explanation["notes"])


# -- through the runner: a workspace table, the run record, the scored table ------------------

@pytest.mark.slow
def test_a_run_on_a_workspace_table_with_chinese_columns(service, ws):
    from tests.analytics.conftest import TENANT

    service.workspaces.save_frame(TENANT, ws, "cells", _chinese_cells([1, 10]), source="csv", replace=True)
    r = service.start_run(TENANT, "traffic_linear", workspace=ws, dataset="cells", preset="cell_traffic",
                          params={"time_column": "时间", "value": "话务量", "group": "小区", "calendar": "IT-MI"},
                          score_table="cells_forecast")
    r = service.runs.wait(TENANT, r["id"], timeout=300)
    assert r["status"] == "succeeded", r["error"]
    assert r["binding"]["columns"] == {"time": "时间", "value": "话务量", "group": "小区"}
    assert r["metrics"]["mae"] < r["baseline"]["mae"]
    out = service.workspaces.frame(TENANT, ws, "cells_forecast")
    assert {"小区", "时间", "prediction", "lower", "upper"} <= set(out.columns) and len(out) == 2 * 24
    assert service.runs.plots(TENANT, r["id"])["forecast"]["type"] == "forecast"
    # bad input fails the run with one clear message naming the column and an example value
    bad = _chinese_cells([1])
    bad.loc[bad.index[3], "时间"] = "昨天下午"
    service.workspaces.save_frame(TENANT, ws, "bad", bad, source="csv", replace=True)
    r = service.start_run(TENANT, "traffic_arima", workspace=ws, dataset="bad", params={"time": "时间", "value": "话务量"})
    r = service.runs.wait(TENANT, r["id"], timeout=120)
    assert r["status"] == "failed" and "'时间'" in r["error"] and "昨天下午" in r["error"]


def test_forecast_rolls_past_the_shortest_lag_and_design_serves_other_engines():
    m = CalendarRegressionForecast().fit(datasets.load_milan_total())
    fc = m.forecast(72)  # three days: day two and three are forecast from the model's own day one
    assert len(fc) == 72 and fc["timestamp"].is_monotonic_increasing and fc["prediction"].notna().all()
    assert (fc["lower"] <= fc["upper"]).all()
    with pytest.raises(InvalidRequest, match="steps must be between"):
        m.forecast(10_000)
    d = CalendarRegressionForecast(time="时间", value="话务量", group="小区", group_value=1,
                                   calendar="IT-MI").regression_design(_chinese_cells([1, 10]))
    f = d["frame"]
    assert d["holdout_rows"] == 168 and d["log_target"] and set(d["features"]) <= set(f.columns)
    assert len(f) == 1488 - 168 and f[d["features"]].notna().all().all()  # rows with both lags known
    assert np.allclose(f["baseline"].iloc[24:], f["y"].iloc[:-24])  # seasonal naive: same hour a day earlier
