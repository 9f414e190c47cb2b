"""Forecasting on the real Milan CDR series: day-ahead hold-out against seasonal naive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.forecasting import (ArimaForecast, CalendarRegressionForecast, as_series,
                                                  forecast_metrics)
from zhinao.errors import InvalidRequest


def test_metrics_are_exact_on_a_hand_example():
    m = forecast_metrics(np.array([100.0, 200.0]), np.array([110.0, 180.0]))
    assert m["mae"] == pytest.approx(15.0)
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert m["mape"] == pytest.approx(100 * (0.1 + 0.1) / 2)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [CalendarRegressionForecast, ArimaForecast])
def test_beats_seasonal_naive_on_milan_total(cls):
    m = cls()
    ev = m.evaluate(m.load_demo())
    for k in ("mae", "rmse", "smape"):
        assert ev.metrics[k] < ev.baseline[k], (k, ev.metrics[k], ev.baseline[k])
    # the hold-out is the last 7 days, forecast day-ahead: 168 hourly points
    assert ev.explanation["split"]["holdout"][1].startswith("2014-01-01 23:00")
    assert 0.5 <= ev.metrics["interval_coverage"] <= 1.0
    assert ev.charts["forecast"][:4] == b"\x89PNG"


@pytest.mark.slow
def test_arima_order_is_chosen_by_aic_and_forecasts_forward():
    m = ArimaForecast(max_p=1, max_q=1, max_d=1)
    m.fit(datasets.load_milan_total())
    aics = [g["aic"] for g in m.aic_grid_]
    assert aics == sorted(aics) and len(aics) == 8
    assert list(m.order_) == m.aic_grid_[0]["order"]
    fc = m.forecast(24)
    assert len(fc) == 24 and fc["timestamp"].iloc[0] == pd.Timestamp("2014-01-02 00:00")
    assert (fc["lower"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["upper"]).all()


@pytest.mark.slow
def test_per_cell_forecast_beats_naive():
    cells = datasets.load_milan_cells()
    busiest = cells.groupby("cell_id")["activity"].sum().idxmax()
    m = CalendarRegressionForecast(cell_id=busiest)
    ev = m.evaluate(cells)
    assert ev.metrics["mae"] < ev.baseline["mae"]
    # the selected cell's level, not the city total
    assert m.history_.max() < datasets.load_milan_total()["activity"].max()


def test_holiday_coefficient_is_negative():
    """Milan's holidays (Sant'Ambrogio, Christmas) carry less traffic: the model must see it."""
    m = CalendarRegressionForecast().fit(datasets.load_milan_total())
    coef = dict(zip(m.columns_, m.model_.coef_))
    assert coef["holiday"] < 0


def test_bad_inputs_raise_clear_errors():
    df = datasets.load_milan_total()
    with pytest.raises(InvalidRequest, match="activity"):
        as_series(df.drop(columns="activity"))
    with pytest.raises(InvalidRequest, match="not regular"):
        as_series(df.drop(index=[100]))
    with pytest.raises(InvalidRequest, match="duplicate"):
        as_series(pd.concat([df, df.head(1)]))
    bad = df.copy()
    bad["activity"] = bad["activity"].astype(object)
    bad.loc[5, "activity"] = "n/a"
    with pytest.raises(InvalidRequest, match="not numeric"):
        as_series(bad)
    with pytest.raises(InvalidRequest, match="too short"):
        ArimaForecast().evaluate(df.head(24 * 20))
    with pytest.raises(InvalidRequest, match="cell_id"):
        as_series(datasets.load_milan_cells().head(5000), cell_id="no-such-cell")
