"""Forecasting: 话务量预测 (traffic) and 收入预测 (revenue) on any time/value columns.

Two catalogue entries share one evaluation protocol so their numbers compare:

- :class:`ArimaForecast`: regression with ARIMA errors -- a calendar profile plus an
  ARIMA(p, d, q) on its residuals, the order chosen by AIC over a small grid. Automatic
  order selection is what makes ARIMA usable by analysts who will not read ACF plots.
- :class:`CalendarRegressionForecast`: linear regression on calendar features
  (hour x day-type, day of week, holidays, make-up workdays) plus same-season lags.

Both run on the user's table through column roles (:mod:`.roles`): ``time`` (dates/times
as people write them), ``value`` (numbers), optional ``group`` (cell, region, channel: one
group's series, one series per group, or their total). :mod:`.timeseries` turns the table
into a regular hourly / daily / weekly / monthly series and says what it did; the holiday
calendar is a parameter (:mod:`.calendars`: ``CN`` with 调休 for zh tables, the Milan demo's
own, any ISO country code, or none).

Protocol (time-based hold-out): the last part of the series is hidden and forecast block by
block from each block's origin -- day-ahead (24 hours at once) for hourly data, week-ahead
for daily, four weeks for weekly, a quarter for monthly -- how an operator plans capacity
and revenue. The baseline is seasonal naive (same hour one day earlier, same weekday one week
earlier …). The models work on ``log1p`` of non-negative series because traffic and revenue
are multiplicative (a busier day scales every hour) and back-transform their forecasts.
"""

from __future__ import annotations

import dataclasses
import time as _time
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import calendars, charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.roles import Preset, Role, bind, role_params, show
from zhinao.analytics.catalog.timeseries import Freq, Prepared, design_matrix, forecast_metrics, prepare
from zhinao.errors import InvalidRequest

__all__ = ["ArimaForecast", "CalendarRegressionForecast", "ROLES", "design_matrix", "forecast_metrics"]

_NOTES_TS = ("Milan demo: timestamps are inferred by the data provider (hour 0 = 2013-11-01 00:00 CET), "
             "not source data; the Italian/Milan holiday calendar assumes those dates.")

ROLES = (
    Role("time", kinds=("datetime",), demo="timestamp", infer="kind",
         help_en="date/time of each row (ISO, 2024/3/1 8:00, 2024年3月1日, 20240301); hourly, daily, weekly or "
                 "monthly steps",
         help_zh="每行的日期/时间（如 2024-03-01、2024/3/1 8:00、2024年3月1日、20240301），按小时、日、周或月"),
    Role("value", kinds=("numeric",), demo="activity", infer="kind",
         help_en="the quantity to forecast: traffic, calls, data volume, revenue (numbers; 1,234 is read)",
         help_zh="要预测的量：话务量、通话次数、流量、收入（数值，可带千分位逗号）"),
    Role("group", kinds=("categorical", "id", "numeric", "boolean"), required=False, demo="cell_id",
         help_en="optional series key (cell, region, channel): combined into one total, one group "
                 "(group_value=…) or one series per group (per_group=true)",
         help_zh="可选的序列键（小区、地区、渠道）：合计为一条序列、只取一组（group_value=…）或逐组预测（per_group=true）"),
)


def _presets(linear: bool) -> tuple[Preset, ...]:
    return (
        Preset("traffic", "话务量预测", "Traffic forecasting", {"calendar": "IT-MI"}, dataset="milan_total",
               note_en="the Milan demo: hourly CDR activity, day-ahead, Italian holidays with Milan's "
                       "Sant'Ambrogio",
               note_zh="米兰演示数据：小时级话务量，日前预测，意大利节假日（含米兰圣安布罗斯节）"),
        Preset("revenue", "收入预测", "Revenue forecasting", {"frequency": "daily", "aggregate": "sum"},
               note_en="daily revenue: bind -p time=<date column> -p value=<revenue column>; rows of one day are "
                       "summed; holidays from the setting / the table's locale (CN for Chinese tables)",
               note_zh="按日收入：用 -p time=日期列 -p value=收入列 绑定；同一天的多行相加；节假日按配置或表的语言（中文表用中国大陆日历）"),
        Preset("cell_traffic", "小区话务量预测" if not linear else "小区话务量预测（逐小区回归）",
               "Per-cell traffic forecasting", {"per_group": True, "max_groups": 5}, dataset="milan_cells",
               note_en="one series per cell (group role), the five busiest cells; capacity planning per cell",
               note_zh="按小区（group 角色）逐一预测，取话务量最大的 5 个小区，用于小区级容量规划"),
    )


# -- per-series cores: fitted on one regular series, forecast from any origin -----------------

class _Core:
    """What one series' fit knows: frequency, lags, value transform, calendar."""

    kind = "core"

    def __init__(self, freq: Freq, lags: tuple[int, ...], calendar: calendars.HolidayCalendar, alpha: float):
        self.freq, self.lags, self.calendar, self.alpha = freq, tuple(lags), calendar, float(alpha)
        self.transform = "log1p"

    def z(self, s: pd.Series) -> pd.Series:
        return np.log1p(s) if self.transform == "log1p" else s.astype(float)

    def back(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(np.expm1(z), 0.0) if self.transform == "log1p" else np.asarray(z, float)

    def design(self, z: pd.Series, index: pd.DatetimeIndex) -> pd.DataFrame:
        days = self.calendar.days(pd.date_range(min(z.index[0], index[0]).normalize(),
                                                max(z.index[-1], index[-1]).normalize() + pd.Timedelta(days=35),
                                                freq="D").date)
        return design_matrix(z, index, self.freq, self.lags, days)

    def fit(self, s: pd.Series) -> "_Core":
        self.transform = "log1p" if float(s.min()) >= 0 else "none"
        z = self.z(s)
        X = self.design(z, z.index)
        ok = X.notna().all(axis=1).to_numpy()
        if ok.sum() < 8:
            raise InvalidRequest(f"too few points to fit: {int(ok.sum())} after the {max(self.lags)}-"
                                 f"{self.freq.unit_en} lag; give a longer series", code="too_few_rows")
        # a calendar flag seen on fewer than 3 training rows cannot be estimated (two holidays that
        # both fell on a weekend say nothing about a holiday on a Wednesday): leave it out, say so
        Xt = X[ok]
        rare = {c: int((Xt[c] != 0).sum()) for c in X.columns
                if set(np.unique(Xt[c])) <= {0.0, 1.0} and 0 < (Xt[c] != 0).sum() < 3}
        self.rare = rare
        self.columns = [c for c in X.columns if c not in rare]
        self._fit(Xt[self.columns].to_numpy(), z.to_numpy()[ok], z.iloc[np.flatnonzero(ok)])
        return self

    def _fit(self, X: np.ndarray, y: np.ndarray, z: pd.Series) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _next(self, z_hist: pd.Series, idx: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def predict(self, history: pd.Series, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``steps`` values after ``history`` (original scale) with the interval; beyond the shortest
        lag the forecast rolls forward on its own predictions (the interval then understates)."""
        z = self.z(history)
        chunk = min(self.lags)
        outs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            idx = pd.date_range(z.index[-1], periods=n + 1, freq=self.freq.alias)[1:]
            m, lo, hi = self._next(z, idx)
            outs.append((m, lo, hi))
            z = pd.concat([z, pd.Series(m, index=idx)])
            z.index = pd.DatetimeIndex(z.index, freq=self.freq.alias)
            done += n
        m, lo, hi = (np.concatenate([o[i] for o in outs]) for i in range(3))
        return self.back(m), self.back(lo), self.back(hi)


class _LinearCore(_Core):
    kind = "linear"

    def __init__(self, freq, lags, calendar, alpha, ridge: float = 1.0):
        super().__init__(freq, lags, calendar, alpha)
        self.ridge = float(ridge)

    def _fit(self, X, y, z) -> None:
        from sklearn.linear_model import Ridge

        self.model = Ridge(alpha=self.ridge).fit(X, y)
        resid = y - self.model.predict(X)
        self.resid_quantiles = (float(np.quantile(resid, self.alpha / 2)), float(np.quantile(resid, 1 - self.alpha / 2)))
        self.resid_std = float(np.std(resid))

    def _next(self, z_hist, idx):
        X = self.design(z_hist, idx)[self.columns]
        if X.isna().any().any():
            raise InvalidRequest(f"need at least {max(self.lags)} {self.freq.unit_en}s of history before the forecast",
                                 code="too_few_rows")
        zz = self.model.predict(X.to_numpy())
        lo, hi = self.resid_quantiles
        return zz, zz + lo, zz + hi

    def coefficients(self) -> dict[str, float]:
        return dict(zip(self.columns, map(float, self.model.coef_)))


class _ArimaCore(_Core):
    kind = "arima"

    def __init__(self, freq, lags, calendar, alpha, max_p=2, max_q=2, max_d=1, order=None):
        super().__init__(freq, lags, calendar, alpha)
        self.max_p, self.max_q, self.max_d, self.fixed_order = int(max_p), int(max_q), int(max_d), order

    def _profile(self, X: np.ndarray) -> np.ndarray:
        return X @ self.beta + self.intercept

    def _fit(self, X, y, z) -> None:
        from sklearn.linear_model import Ridge
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        reg = Ridge(alpha=1.0).fit(X, y)
        self.beta, self.intercept = reg.coef_, float(reg.intercept_)
        r = y - self._profile(X)
        if self.fixed_order:
            orders = [tuple(self.fixed_order)]
            self.kpss_pvalue = None
        else:
            # d by a KPSS test (AIC does not compare across differencing orders), then p, q by AIC:
            # the Hyndman-Khandakar auto.arima recipe, and half the fits of a (p, d, q) grid
            d, self.kpss_pvalue = _differencing(r, self.max_d)
            orders = [(p, d, q) for p in range(self.max_p + 1) for q in range(self.max_q + 1)]
        grid, best = [], None
        for order in orders:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    # the scale concentrated out: one parameter fewer (~3x faster); a white-noise order has
                    # no other parameter, so it keeps sigma2
                    conc = order[0] + order[2] > 0
                    res = SARIMAX(r, order=order, trend="n", concentrate_scale=conc).fit(disp=False, maxiter=100)
                except (np.linalg.LinAlgError, ValueError):
                    continue
            aic = float(res.aic)
            grid.append({"order": list(order), "aic": round(aic, 2)})
            if np.isfinite(aic) and (best is None or aic < best[0]):
                best = (aic, order, res, conc)
        if best is None:
            raise InvalidRequest("no ARIMA order could be fitted to this series; try traffic_linear")
        self.aic_grid = sorted(grid, key=lambda g: g["aic"])
        self.order = tuple(best[1])
        self.params = np.asarray(best[2].params)
        self.param_names = list(best[2].model.param_names)
        self.aic = best[0]
        self.concentrated = best[3]

    def _next(self, z_hist, idx):
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        # re-filter the history's residuals with the fitted parameters (no re-estimation):
        # cheap, and the hold-out never touches the parameters
        Xh = self.design(z_hist, z_hist.index)[self.columns]
        ok = Xh.notna().all(axis=1).to_numpy()
        first = int(np.argmax(ok))
        r = z_hist.to_numpy()[first:] - self._profile(Xh.to_numpy()[first:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = SARIMAX(r, order=self.order, trend="n", concentrate_scale=self.concentrated).filter(self.params)
        fc = res.get_forecast(len(idx))
        ci = np.asarray(fc.conf_int(alpha=self.alpha))
        X = self.design(z_hist, idx)[self.columns]
        if X.isna().any().any():
            raise InvalidRequest(f"need at least {max(self.lags)} {self.freq.unit_en}s of history before the forecast",
                                 code="too_few_rows")
        prof = self._profile(X.to_numpy())
        return prof + np.asarray(fc.predicted_mean), prof + ci[:, 0], prof + ci[:, 1]

    def coefficients(self) -> dict[str, float]:
        return dict(zip(self.columns, map(float, self.beta)))


def _differencing(r: np.ndarray, max_d: int) -> tuple[int, float | None]:
    """0 when a KPSS test does not reject level stationarity at 5 %, else 1 (at most ``max_d``)."""
    if max_d < 1:
        return 0, None
    from statsmodels.tsa.stattools import kpss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # p-values outside the table are clipped, with a warning
        try:
            p = float(kpss(r, regression="c", nlags="auto")[1])
        except (ValueError, np.linalg.LinAlgError):
            return 0, None
    return (0 if p > 0.05 else 1), p


# -- the shared protocol -------------------------------------------------------------------

class _Forecaster(MiningModel):
    """Shared: role binding, series preparation, block-ahead hold-out, baseline, charts, scoring."""

    supports_predict = True
    time: Any
    value: Any
    group: Any
    group_value: Any
    per_group: bool
    max_groups: int
    frequency: Any
    aggregate: str
    fill_missing: str
    calendar: Any
    holdout: Any
    alpha: float

    def load_demo(self) -> pd.DataFrame:
        df = datasets.load_milan_total()
        df.attrs[calendars.DEMO_ATTR] = "IT-MI"  # the demo knows where it comes from
        return df

    def _core(self, freq: Freq, lags: tuple[int, ...], cal: calendars.HolidayCalendar, label: Any = None) -> _Core:
        raise NotImplementedError  # pragma: no cover

    def bind(self, df: Any):
        """Bind roles; a *given* time or value column is taken whatever it looks like, so a bad value
        is reported by the parser with an example (not as "looks categorical")."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest("forecasting input must be a table with a time and a value column")
        given = role_params(self)
        roles_ = tuple(dataclasses.replace(r, kinds=("any",)) if r.name in ("time", "value") and given.get(r.name)
                       is not None else r for r in self.info.roles)
        self.binding_ = bind(roles_, df, given, model_key=self.info.key)
        return self.binding_

    def _prepare(self, data: Any) -> tuple[Prepared, calendars.HolidayCalendar]:
        b = self.bind(data)
        if self.group_value is not None and b.get("group") is None:
            raise InvalidRequest("group_value needs a group column: bind it with -p group=COLUMN", param="group")
        prep = prepare(data, b["time"], b["value"], b.get("group"), group_value=self.group_value,
                       per_group=_flag(self.per_group, "per_group"), max_groups=int(self.max_groups), frequency=self.frequency,
                       aggregate=str(self.aggregate), fill_missing=str(self.fill_missing))
        cal = calendars.resolve(self.calendar, columns=b.used(), data=data)
        return prep, cal

    def _holdout(self, n: int, freq: Freq) -> int:
        if self.holdout is not None:
            h = int(self.holdout)
            if h < 1 or h >= n:
                raise InvalidRequest(f"holdout must be between 1 and {n - 1} {freq.unit_en}s", param="holdout")
            return h
        blocks = max(1, int(round(0.2 * n / freq.horizon)))
        return min(freq.max_holdout, blocks * freq.horizon)

    @staticmethod
    def _lags(freq: Freq, n_train: int) -> tuple[int, ...]:
        need = max(2 * freq.horizon, 8)
        return tuple(k for k in freq.lags if n_train - k >= need)

    def _fit_one(self, s: pd.Series, freq: Freq, cal, label: Any, n_holdout: int = 0) -> _Core:
        lags = self._lags(freq, len(s) - n_holdout)
        if not lags:
            need = freq.lags[0] + max(2 * freq.horizon, 8)
            raise InvalidRequest(f"too few points: the {freq.name} series{_where(self, label)} has {len(s)} "
                                 f"{freq.unit_en}s; it needs at least {need + n_holdout} ({n_holdout} held out, "
                                 f"{freq.lags[0]} for the first same-season lag, {max(2 * freq.horizon, 8)} to "
                                 f"fit); give a longer series{' or a smaller -p holdout' if n_holdout else ''}",
                                 code="too_few_rows", param="holdout" if n_holdout else None)
        return self._core(freq, lags, cal, label).fit(s.iloc[:len(s) - n_holdout] if n_holdout else s)

    # -- fit / forecast / score ----------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "_Forecaster":
        prep, cal = self._prepare(X)
        self.fits_ = {label: self._fit_one(s, prep.freq, cal, label) for label, s in prep.series.items()}
        self.history_ = dict(prep.series)
        self.freq_, self.calendar_ = prep.freq, cal
        self._remember(next(iter(self.fits_.values())))
        return self

    def _remember(self, core: _Core) -> None:
        """The main series' fitted parameters, also as top-level attributes (for inspection)."""

    def forecast(self, steps: int | None = None) -> pd.DataFrame:
        """``steps`` periods after the fitted data (one horizon by default), per series, with intervals."""
        if not hasattr(self, "fits_"):
            raise InvalidRequest("fit the model first")
        steps = int(steps or self.freq_.horizon)
        if steps < 1 or steps > 24 * 31:
            raise InvalidRequest("steps must be between 1 and 744", param="steps")
        b = self.binding_
        frames = []
        for label, core in self.fits_.items():
            hist = self.history_[label]
            m, lo, hi = core.predict(hist, steps)
            idx = pd.date_range(hist.index[-1], periods=steps + 1, freq=self.freq_.alias)[1:]
            f = pd.DataFrame({b["time"]: idx, "prediction": m, "lower": lo, "upper": hi})
            if label is not None:
                f.insert(0, b["group"], label)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Forecast the next horizon after ``df``'s history (a day for hourly data, a week for daily):
        the same specification (frequency, lags, calendar, ARIMA order when known) re-fitted on ``df``.
        Columns: the bound group (when one), the bound time column, ``prediction``, ``lower``, ``upper``.
        The instance itself is not changed, so a saved model scores deterministically."""
        twin = type(self)(**self.get_params())
        twin._fixed_order = getattr(self, "order_", None)
        return twin.fit(df).forecast()

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, data: Any) -> Evaluation:
        prep, cal = self._prepare(data)
        freq, b = prep.freq, self.binding_
        results, skipped = [], {}
        for label, s in prep.series.items():
            try:
                results.append(self._evaluate_series(label, s, freq, cal))
            except InvalidRequest as e:
                if len(prep.series) == 1:
                    raise
                skipped[str(label)] = e.message
        if not results:
            raise InvalidRequest("no group's series could be evaluated: " + "; ".join(f"{k}: {v}" for k, v in
                                                                                     list(skipped.items())[:3]))
        y = np.concatenate([r["y"] for r in results])
        pred = np.concatenate([r["pred"] for r in results])
        lo = np.concatenate([r["lo"] for r in results])
        hi = np.concatenate([r["hi"] for r in results])
        naive = np.concatenate([r["naive"] for r in results])
        metrics = forecast_metrics(y, pred)
        metrics["interval_coverage"] = float(np.mean((y >= lo) & (y <= hi)))
        baseline = forecast_metrics(y, naive)
        main = results[0]
        self.fits_ = {r["label"]: r["core"] for r in results}
        self.history_ = {r["label"]: r["train"] for r in results}
        self.freq_, self.calendar_ = freq, cal
        self._remember(main["core"])
        ev_name = main["baseline_name"]
        expl = self._explain(main["core"])
        notes = list(prep.notes)
        notes.append(f"Series: {b['value']!r} by {b['time']!r}, {freq.name} ({prep.info['frequency_how']}).")
        notes.append(f"Holiday calendar: {cal.name_en} — {cal.reason_en} / 节假日日历：{cal.name_zh}，{cal.reason_zh}")
        if main["core"].rare:
            notes.append("Left out calendar flags seen on fewer than 3 training rows (cannot be estimated): "
                         + ", ".join(f"{k} ({v})" for k, v in main["core"].rare.items()) + ".")
        if main["core"].transform == "none":
            notes.append(f"{b['value']!r} has values below zero: modelled on its own scale (no log).")
        if getattr(data, "attrs", {}).get(calendars.DEMO_ATTR):
            notes.append(_NOTES_TS)
        notes.extend(expl.pop("notes", []))
        if skipped:
            notes.append(f"{len(skipped)} group(s) could not be evaluated and were left out: "
                         + "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3]))
        split = {"train": [str(main["train"].index[0]), str(main["train"].index[-1])],
                 "holdout": [str(main["test"].index[0]), str(main["test"].index[-1])],
                 "train_points": len(main["train"]), "holdout_points": len(main["test"]),
                 "protocol": f"time-based hold-out: the last {len(main['test'])} {freq.unit_en}s, forecast "
                             f"{freq.horizon} {freq.unit_en}s at a time from each origin, model parameters fixed "
                             f"at the training fit",
                 "protocol_zh": f"按时间留出最后 {len(main['test'])} 个{freq.unit_zh}，每次从预测起点向前预测 "
                                f"{freq.horizon} 个{freq.unit_zh}，模型参数固定为训练所得"}
        if len(results) > 1:
            split["groups"] = len(results)
        expl.update({
            "split": split,
            "series": {**prep.info, "points": {str(r["label"]): len(r["train"]) + len(r["test"]) for r in results}
                       if len(results) > 1 else len(main["train"]) + len(main["test"]),
                       "transform": main["core"].transform, "lags": [freq.lag_name(k) for k in main["core"].lags]},
            "calendar": cal.describe(),
            "special_days": calendars.holiday_rows(cal, pd.DatetimeIndex(main["train"].index.append(main["test"].index))),
            "fit_seconds": round(sum(r["fit_s"] for r in results), 3),
            "interval": f"{int(round(100 * (1 - float(self.alpha))))}% prediction interval",
            "notes": notes,
        })
        if len(results) > 1:
            expl["groups"] = [{"group": str(r["label"]), **{k: round(v, 3) for k, v in r["metrics"].items()},
                               "baseline_mae": round(r["baseline"]["mae"], 3)} for r in results]
        title = f"{self.info.name_zh}：{b['value']}{'（' + str(main['label']) + '）' if main['label'] is not None else ''}"
        png = _forecast_chart(main, b["value"], title)
        ev_plots = self._plots(main, results, metrics, baseline, ev_name, cal, b)
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name=ev_name, explanation=expl,
                          charts={"forecast": png}, plots=ev_plots)

    def _evaluate_series(self, label: Any, s: pd.Series, freq: Freq, cal) -> dict[str, Any]:
        n = len(s)
        n_test = self._holdout(n, freq)
        t0 = _time.perf_counter()
        core = self._fit_one(s, freq, cal, label, n_holdout=n_test)
        fit_s = _time.perf_counter() - t0
        train, test = s.iloc[:-n_test], s.iloc[-n_test:]
        H = freq.horizon
        parts = [core.predict(s.iloc[: len(train) + k], min(H, n_test - k)) for k in range(0, n_test, H)]
        pred, lo, hi = (np.concatenate([p[i] for p in parts]) for i in range(3))
        if len(train) >= freq.period:
            naive = s.shift(freq.period).iloc[-n_test:].to_numpy()
            bname = f"seasonal naive ({freq.season_en})"
        else:  # too short for a season: the last value at each origin
            origins = np.repeat(np.arange(len(train), n, H), H)[:n_test] - 1
            naive = s.to_numpy()[origins]
            bname = "naive (last value at the forecast origin)"
        y = test.to_numpy()
        return {"label": label, "core": core, "train": train, "test": test, "y": y, "pred": pred, "lo": lo, "hi": hi,
                "naive": naive, "baseline_name": bname, "fit_s": fit_s, "metrics": forecast_metrics(y, pred),
                "baseline": forecast_metrics(y, naive)}

    def _explain(self, core: _Core) -> dict[str, Any]:
        return {}

    def _coef_plot(self, core: _Core) -> dict[str, Any]:
        coef = core.coefficients()
        names = [k for k in coef if not k.startswith("hour_")] or list(coef)
        vals = [100 * (np.exp(coef[k]) - 1) if core.transform == "log1p" else coef[k] for k in names]
        unit = "% effect (exp(coef)-1)" if core.transform == "log1p" else "coefficient"
        return plots.bar(names, vals, f"回归系数 Calendar and lag effects ({unit})", series_name=unit)

    def _plots(self, main, results, metrics, baseline, bname, cal, b) -> dict[str, Any]:
        hist = main["train"].iloc[-3 * main["core"].freq.horizon:]
        out = {"forecast": plots.forecast(list(main["test"].index), main["y"], main["pred"], main["lo"], main["hi"],
                                          title=f"预测 vs 实际 Forecast vs actual: {b['value']}"
                                                + (f" ({main['label']})" if main["label"] is not None else ""),
                                          history=(list(hist.index), hist.to_numpy()), baseline=main["naive"],
                                          baseline_name=bname),
               "errors": plots.compare(metrics, baseline, "误差对比 Errors vs baseline", baseline_name=bname),
               "residuals": {"type": "line", "title": "留出期误差 Hold-out errors (forecast − actual)",
                             "x_label": b["time"], "y_label": b["value"],
                             "series": [{"name": "模型 model", "points": _pts(main["test"].index, main["pred"] - main["y"])},
                                        {"name": f"基线 {bname}", "dashed": True,
                                         "points": _pts(main["test"].index, main["naive"] - main["y"])}]}}
        rows = calendars.holiday_rows(cal, main["train"].index.append(main["test"].index))
        if rows:
            out["special_days"] = plots.table(["date 日期", "weekday 星期", "holiday 节假日"], rows,
                                              f"节假日与调休 Special days ({cal.code})")
        if len(results) > 1:
            out["groups"] = plots.table([f"{b['group']}", "mae", "baseline_mae", "smape"],
                                        [[str(r["label"]), r["metrics"]["mae"], r["baseline"]["mae"],
                                          r["metrics"]["smape"]] for r in results],
                                        f"逐组误差 Errors per {b['group']}")
        out.update(self._model_plots(main["core"]))
        return out

    def _model_plots(self, core: _Core) -> dict[str, Any]:
        return {}

    # -- for engines that fit the same regression elsewhere (Spark) -----------------------------

    def regression_design(self, data: Any) -> dict[str, Any]:
        """The linear model's design on ``data``'s (first) series: ``frame`` (features, ``y`` on the
        model scale, ``baseline`` = seasonal naive on that scale, ``t`` = position), ``features``,
        ``holdout_rows`` and notes — so another engine fits the same regression on the same binding."""
        prep, cal = self._prepare(data)
        label, s = next(iter(prep.series.items()))
        freq = prep.freq
        n_test = self._holdout(len(s), freq)
        lags = self._lags(freq, len(s) - n_test)
        if not lags:
            raise InvalidRequest(f"series of {len(s)} {freq.unit_en}s is too short for a {n_test}-point hold-out",
                                 param="holdout", code="too_few_rows")
        core = _Core(freq, lags, cal, float(self.alpha))
        core.transform = "log1p" if float(s.min()) >= 0 else "none"
        z = core.z(s)
        X = core.design(z, z.index)
        frame = X.assign(y=z.to_numpy(), baseline=z.shift(freq.period).to_numpy(), t=np.arange(len(X)))
        frame = frame[X.notna().all(axis=1).to_numpy()].reset_index(drop=True)
        return {"frame": frame, "features": list(X.columns), "holdout_rows": n_test, "log_target": core.transform == "log1p",
                "notes": list(prep.notes) + [f"Holiday calendar: {cal.name_en} ({cal.reason_en})"]}


def _check_options(m: "_Forecaster") -> None:
    """Cheap checks at construction, so a run with a bad option is a 400 when it starts, not a failed
    job later (values are stored unchanged: sklearn's ``clone`` keeps working)."""
    from zhinao.analytics.catalog.timeseries import AGGREGATES, FILLS, parse_frequency

    if m.aggregate not in AGGREGATES:
        raise InvalidRequest(f"aggregate {m.aggregate!r} is not one of {', '.join(AGGREGATES)}", param="aggregate")
    if m.fill_missing not in FILLS:
        raise InvalidRequest(f"fill_missing {m.fill_missing!r} is not one of {', '.join(FILLS)}", param="fill_missing")
    parse_frequency(m.frequency)
    if m.calendar is not None and str(m.calendar).strip():
        calendars.parse(m.calendar)
    _flag(m.per_group, "per_group")
    for name in ("holdout", "max_groups", "max_p", "max_q", "max_d"):
        v = getattr(m, name, None)
        if v is None and name != "max_groups":
            continue
        try:
            ok = float(v) == int(v) and int(v) >= (0 if name.startswith("max_") and name != "max_groups" else 1)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidRequest(f"{name} must be a whole number{' >= 1' if name in ('holdout', 'max_groups') else ''}, "
                                 f"got {show(v)}", param=name)
    try:
        alpha = float(m.alpha)
    except (TypeError, ValueError):
        alpha = -1.0
    if not 0 < alpha < 1:
        raise InvalidRequest(f"alpha must be between 0 and 1 (0.05 = a 95% interval), got {show(m.alpha)}",
                             param="alpha")


def _flag(v: Any, name: str) -> bool:
    """A boolean parameter, also as the text an API client or a form sends ("true", "否" …)."""
    if isinstance(v, (bool, np.bool_)) or v is None:
        return bool(v)
    t = str(v).strip().lower()
    if t in ("1", "true", "yes", "y", "on", "是"):
        return True
    if t in ("0", "false", "no", "n", "off", "否", ""):
        return False
    raise InvalidRequest(f"{name} must be true or false, got {show(v)}", param=name)


def _where(model: Any, label: Any) -> str:
    g = getattr(model, "binding_", None)
    return f" of {g.get('group')!r} = {show(label)}" if g is not None and label is not None and g.get("group") else ""


def _pts(idx: pd.DatetimeIndex, vals: np.ndarray) -> list[list[Any]]:
    keep = plots._thin(len(idx))
    return [[str(idx[i]), plots._f(vals[i])] for i in keep]


def _forecast_chart(main: dict[str, Any], value: str, title: str) -> bytes:
    hist = main["train"].iloc[-3 * main["core"].freq.horizon:]
    fig, ax = charts.figure(9.0, 4.2)
    actual = pd.concat([hist, main["test"]])
    idx = main["test"].index
    ax.plot(actual.index, actual.to_numpy(), color="black", lw=1.0, label="实际 actual")
    ax.plot(idx, main["pred"], color="#c0392b", lw=1.2, label="预测 forecast")
    ax.fill_between(idx, main["lo"], main["hi"], color="#c0392b", alpha=0.18, label="预测区间 interval")
    ax.plot(idx, main["naive"], color="grey", lw=0.8, ls="--", label="基线 seasonal naive")
    ax.set_title(title)
    ax.set_ylabel(str(value))
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return charts.to_png(fig)


_COMMON_DOC = ("time, value, group: column roles (None = the demo column if present, else inferred); "
               "group_value: forecast only this group; per_group: one series per group (the max_groups largest); "
               "frequency: hourly|daily|weekly|monthly (None = inferred; a coarser one aggregates); aggregate: how "
               "rows sharing a period combine (sum|mean|max|min|last|none = refuse); fill_missing: none|zero|"
               "interpolate for missing periods; calendar: ISO country code (CN, IT-MI, US …), auto or none "
               "(None = ZHINAO_ANALYTICS_HOLIDAY_CALENDAR); holdout: hold-out points (None = 20%, capped).")

_INPUTS = ("roles time (dates/times) + value (numbers), optional group (cell, region); hourly, daily, weekly or "
           "monthly; rows sharing a period are summed (aggregate=…)")


@register
class ArimaForecast(_Forecaster):
    """Regression with ARIMA errors on log1p(values): calendar profile + ARIMA(p,d,q) by AIC.

    A seasonal SARIMA(.)(0,1,1)[24] took ~3 minutes for an AIC grid on 2 cores and knows no
    holidays; a regression on the calendar (hour x day-type, weekday, holidays) and on the
    same season one and two seasons earlier removes the daily and weekly seasonality, and a
    small ARIMA on its residuals carries the short-term dynamics (a busy morning stays busy)
    -- the ``auto.arima(xreg=...)`` recipe, in ~1 s per series. Parameters: """ + _COMMON_DOC

    info: ClassVar[ModelInfo] = ModelInfo(
        key="traffic_arima", name_zh="话务量预测 / 收入预测（ARIMA）", name_en="Traffic / revenue forecasting (ARIMA)",
        algorithm="ARIMA (regression with ARIMA errors), order chosen by AIC", theme="forecasting",
        application_zh="话务量预测、收入预测：按小时/日/周/月预测下一周期，用于容量规划与收入预估",
        application_en="traffic and revenue forecasting: the next day / week / quarter for capacity planning and "
                       "revenue outlook",
        inputs=_INPUTS, metrics=("mae", "rmse", "mape", "smape", "interval_coverage"), dataset="milan_total",
        task="forecast", roles=ROLES, presets=_presets(False))

    def __init__(self, time: Any = None, value: Any = None, group: Any = None, group_value: Any = None,
                 per_group: bool = False, max_groups: int = 10, frequency: Any = None, aggregate: str = "sum",
                 fill_missing: str = "none", calendar: Any = None, holdout: Any = None, alpha: float = 0.05,
                 max_p: int = 2, max_q: int = 2, max_d: int = 1):
        self.time = time
        self.value = value
        self.group = group
        self.group_value = group_value
        self.per_group = per_group
        self.max_groups = max_groups
        self.frequency = frequency
        self.aggregate = aggregate
        self.fill_missing = fill_missing
        self.calendar = calendar
        self.holdout = holdout
        self.alpha = alpha
        self.max_p = max_p
        self.max_q = max_q
        self.max_d = max_d
        _check_options(self)

    def _core(self, freq, lags, cal, label=None) -> _Core:
        order = getattr(self, "_fixed_order", None)
        return _ArimaCore(freq, lags, cal, self.alpha, self.max_p, self.max_q, self.max_d, order=order)

    def _remember(self, core: _Core) -> None:
        self.order_, self.aic_grid_, self.aic_ = core.order, core.aic_grid, core.aic

    def _explain(self, core: _Core) -> dict[str, Any]:
        p, d, q = core.order
        coef = core.coefficients()
        out = {"order": list(core.order),
               "model": f"{'log1p(value)' if core.transform == 'log1p' else 'value'} = calendar + same-season lags "
                        f"regression + ARIMA({p},{d},{q}) errors",
               "aic": round(core.aic, 2), "aic_grid": core.aic_grid[:10],
               "arima_params": {n: round(float(v), 4) for n, v in zip(core.param_names, core.params)},
               "kpss_pvalue": None if core.kpss_pvalue is None else round(core.kpss_pvalue, 3),
               "notes": [(f"ARIMA order on the training part only: d = {d} by a KPSS test on the calendar "
                          f"regression's residuals (d <= {self.max_d}), then p, q <= {self.max_p}, {self.max_q} by "
                          "AIC." if core.fixed_order is None else
                          f"ARIMA order {list(core.order)} kept from the earlier fit (not searched again)."),
                         "Prediction interval from the ARIMA errors' forecast variance (the calendar profile's "
                         "own uncertainty is not included)."]}
        if "holiday" in coef and core.transform == "log1p":
            out["holiday_effect_pct"] = round(100 * (np.exp(coef["holiday"]) - 1), 1)
        return out

    def _model_plots(self, core: _Core) -> dict[str, Any]:
        return {"coefficients": self._coef_plot(core),
                "arima": plots.table(["parameter 参数", "value 值"],
                                     [[n, float(v)] for n, v in zip(core.param_names, core.params)],
                                     f"ARIMA{tuple(core.order)} 参数 parameters (AIC {core.aic:.1f})"),
                "aic_grid": plots.table(["order (p,d,q)", "AIC"], [[str(g["order"]), g["aic"]] for g in core.aic_grid],
                                        "AIC 定阶 Order search")}


@register
class CalendarRegressionForecast(_Forecaster):
    """Linear regression on calendar features and same-season lags (log1p scale). Parameters: """ + _COMMON_DOC

    info: ClassVar[ModelInfo] = ModelInfo(
        key="traffic_linear", name_zh="话务量预测（线性回归 + 日历特征）",
        name_en="Traffic forecasting (linear regression on calendar features)",
        algorithm="linear regression", theme="forecasting",
        application_zh="话务量/收入预测：用小时、星期、节假日、调休与滞后项解释并预测",
        application_en="traffic / revenue forecasting explained by hour, weekday, holidays, make-up workdays and lags",
        inputs=_INPUTS, metrics=("mae", "rmse", "mape", "smape", "interval_coverage"), dataset="milan_total",
        task="forecast", roles=ROLES, presets=_presets(True))

    def __init__(self, time: Any = None, value: Any = None, group: Any = None, group_value: Any = None,
                 per_group: bool = False, max_groups: int = 10, frequency: Any = None, aggregate: str = "sum",
                 fill_missing: str = "none", calendar: Any = None, holdout: Any = None, alpha: float = 0.05,
                 ridge: float = 1.0):
        self.time = time
        self.value = value
        self.group = group
        self.group_value = group_value
        self.per_group = per_group
        self.max_groups = max_groups
        self.frequency = frequency
        self.aggregate = aggregate
        self.fill_missing = fill_missing
        self.calendar = calendar
        self.holdout = holdout
        self.alpha = alpha
        self.ridge = ridge
        _check_options(self)

    def _core(self, freq, lags, cal, label=None) -> _Core:
        return _LinearCore(freq, lags, cal, self.alpha, self.ridge)

    def _remember(self, core: _Core) -> None:
        self.coef_ = core.coefficients()

    def _explain(self, core: _Core) -> dict[str, Any]:
        coef = core.coefficients()
        top = sorted(coef.items(), key=lambda kv: -abs(kv[1]))[:12]
        out: dict[str, Any] = {
            "coefficients" + ("_log_scale" if core.transform == "log1p" else ""): {k: round(v, 4) for k, v in top},
            "lag_coefficients": {k: round(v, 4) for k, v in coef.items() if k.startswith("lag_")},
            "notes": [("Coefficients are on log1p(value): exp(coef)-1 is the relative effect."
                       if core.transform == "log1p" else "Coefficients are in the value's own units."),
                      "Prediction interval from the training residuals' empirical quantiles."]}
        if "holiday" in coef and core.transform == "log1p":
            out["holiday_effect_pct"] = round(100 * (np.exp(coef["holiday"]) - 1), 1)
        return out

    def _model_plots(self, core: _Core) -> dict[str, Any]:
        return {"coefficients": self._coef_plot(core)}
