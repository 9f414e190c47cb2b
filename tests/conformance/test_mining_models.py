"""The ``MiningModel`` conformance suite, over every registered catalogue model (as sklearn's
test_common does).

It covers every family that registers itself, including ones added later, and checks the
contract written in ``zhinao/analytics/catalog/__init__.py``: the required methods are
abstract, estimator conventions (sklearn's ``clone`` works, no ``score`` that would clash
with sklearn's ``score(X, y)``), the ``supports_predict`` flag matches ``predict_table``,
demo data, an evaluation on a hold-out that beats its naive baseline, charts, a JSON
explanation, pickling, deterministic scoring, and bad input as our error type.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import time

import joblib
import pandas as pd
import pytest
from sklearn.base import clone

from zhinao.analytics import datasets
from zhinao.analytics.catalog import MiningModel, catalogue
from zhinao.analytics.catalog.protocol import beats_baseline, primary_metric, supports_predict
from zhinao.analytics.runs import jsonable
from zhinao.errors import InvalidRequest, ZhinaoError

KEYS = sorted(catalogue())
THEMES = {"classification", "regression", "forecasting", "clustering", "association", "sequence", "graph", "text"}
_EVALUATED: dict[str, tuple] = {}


def evaluated(key: str):
    """(model, data, evaluation, seconds), computed once per key for the whole module."""
    if key not in _EVALUATED:
        m = catalogue()[key]()
        data = m.load_demo()
        t0 = time.perf_counter()
        ev = m.evaluate(data)
        _EVALUATED[key] = (m, data, ev, time.perf_counter() - t0)
    return _EVALUATED[key]


def learned(m) -> list[str]:
    return [k for k in vars(m) if k.endswith("_") and not k.startswith("_")]


def test_catalogue_has_the_talks_table():
    themes = {c.info.theme for c in catalogue().values()}
    assert {"classification", "text"} <= themes
    assert len(KEYS) >= 7


@pytest.mark.parametrize("key", KEYS)
def test_metadata(key):
    info = catalogue()[key].info
    assert info.key == key and info.theme in THEMES
    for f in ("name_zh", "name_en", "algorithm", "application_zh", "application_en", "inputs"):
        assert getattr(info, f).strip(), f
    assert info.metrics and info.dataset in datasets.DATASETS


@pytest.mark.parametrize("key", KEYS)
def test_estimator_conventions(key):
    cls = catalogue()[key]
    m = cls()
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name != "self":
            assert p.default is not inspect.Parameter.empty, f"{key}: parameter {p.name} needs a default"
    params = m.get_params()
    assert list(params) == names
    clone = cls(**params)
    assert clone.get_params() == params
    assert learned(m) == [], f"{key} sets learned attributes in __init__: {learned(m)}"
    assert m.set_params(**params) is m


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_fit_on_demo_returns_self_and_learns(key):
    m = catalogue()[key]()
    before = m.get_params()
    data = m.load_demo()
    assert m.fit(data) is m
    assert learned(m), f"{key}.fit learned nothing ending in '_'"
    assert m.get_params() == before, "fit must not change constructor parameters"


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_evaluate_on_hold_out_beats_naive_baseline(key):
    m, data, ev, seconds = evaluated(key)
    for name in m.info.metrics:
        assert name in ev.metrics, f"{key} does not report {name}"
        assert isinstance(ev.metrics[name], float | int) and math.isfinite(ev.metrics[name]), name
    assert ev.charts, f"{key} draws no charts"
    for name, png in ev.charts.items():
        assert png[:8] == b"\x89PNG\r\n\x1a\n", name
    expl = json.loads(json.dumps(jsonable(ev.explanation)))
    assert expl, f"{key} does not explain itself"
    if ev.baseline:
        assert ev.baseline_name
        verdict = beats_baseline(ev, primary_metric(m.info))
        assert verdict is not False, (f"{key}: {primary_metric(m.info)}={ev.metrics.get(primary_metric(m.info))} "
                                      f"does not beat {ev.baseline_name}={ev.baseline.get(primary_metric(m.info))}")
    assert learned(m), "evaluate leaves the instance fitted"
    assert seconds < 90, f"{key}.evaluate took {seconds:.0f}s (budget ~20 s on 2 cores)"


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_fitted_model_pickles_and_scores(key):
    m, data, ev, _ = evaluated(key)
    buf = io.BytesIO()
    joblib.dump(m, buf)
    buf.seek(0)
    loaded = joblib.load(buf)
    assert type(loaded) is type(m) and loaded.get_params() == m.get_params()
    if supports_predict(m) and isinstance(data, pd.DataFrame):
        a, b = m.predict_table(data.head(200).copy()), loaded.predict_table(data.head(200).copy())
        assert isinstance(a, pd.DataFrame) and len(a) > 0
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        again = m.predict_table(data.head(200).copy())  # a fitted model scores deterministically
        pd.testing.assert_frame_equal(a.reset_index(drop=True), again.reset_index(drop=True))


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_predict_table_on_a_table_without_the_needed_columns_is_our_error(key):
    m, data, _, _ = evaluated(key)
    if not supports_predict(m):
        return
    with pytest.raises(ZhinaoError):  # never a raw KeyError: the runner shows our message as a 400
        m.predict_table(pd.DataFrame({"no_such_column": [1, 2, 3]}))


# -- the protocol: what is required, what is optional ---------------------------------------

def test_the_runner_requirements_are_abstract():
    assert MiningModel.__abstractmethods__ == {"fit", "load_demo", "evaluate"}

    class FitOnly(MiningModel):  # what a family that forgot evaluate/load_demo looks like
        def fit(self, X, y=None):
            return self

    with pytest.raises(TypeError, match="evaluate"):
        FitOnly()


@pytest.mark.parametrize("key", KEYS)
def test_no_score_method_clashes_with_sklearn(key):
    # sklearn's score(X, y) returns a float; a catalogue score(df) -> DataFrame broke cross_val_score & co
    assert not hasattr(catalogue()[key], "score"), f"{key} defines score(); name it predict_table"


@pytest.mark.parametrize("key", KEYS)
def test_supports_predict_flag_matches_predict_table(key):
    cls = catalogue()[key]
    overridden = cls.predict_table is not MiningModel.predict_table
    assert supports_predict(cls) == overridden, f"{key}: supports_predict={cls.supports_predict}, " \
                                                f"predict_table overridden={overridden}"
    if not overridden:
        with pytest.raises(NotImplementedError):
            cls().predict_table(pd.DataFrame())


@pytest.mark.parametrize("key", KEYS)
def test_sklearn_clone_round_trips(key):
    m = catalogue()[key]()
    c = clone(m)
    assert type(c) is type(m) and c is not m and c.get_params() == m.get_params()


@pytest.mark.parametrize("key", KEYS)
def test_evaluate_on_no_rows_is_our_error(key):
    m = catalogue()[key]()
    data = m.load_demo()
    if isinstance(data, pd.DataFrame):
        empty = data.head(0)
    elif isinstance(data, tuple):  # e.g. (nodes, edges)
        empty = tuple(d.head(0) if isinstance(d, pd.DataFrame) else type(d)() for d in data)
    else:  # baskets, sequences
        empty = []
    with pytest.raises(InvalidRequest):
        m.evaluate(empty)


# -- the user's own tables (issue 10): roles, binding, other column names --------------------
#
# Each family adds ``tests/conformance/user_tables_<family>.py`` with ``CASES = {key: factory}``,
# where ``factory()`` returns ``(frame, params)``: a table with column names the entry was not
# written for (renamed, other language, other data) and the role bindings a user would pass.
# Every registered key must have one: a new entry without a user-table case fails here.

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

from zhinao.analytics.catalog.roles import TASKS, Preset, Role  # noqa: E402


def _user_cases() -> dict:
    cases: dict = {}
    for path in sorted(Path(__file__).parent.glob("user_tables_*.py")):
        spec = importlib.util.spec_from_file_location(f"_conf_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for k, factory in getattr(mod, "CASES", {}).items():
            assert k not in cases, f"{k} has user-table cases in two files"
            cases[k] = factory
    return cases


USER_CASES = _user_cases()
_USER_EVALUATED: dict[str, tuple] = {}


def user_evaluated(key: str):
    if key not in _USER_EVALUATED:
        frame, params = USER_CASES[key]()
        m = catalogue()[key](**params)
        ev = m.evaluate(m.from_frame(frame.copy()))
        _USER_EVALUATED[key] = (m, frame, params, ev)
    return _USER_EVALUATED[key]


@pytest.mark.parametrize("key", KEYS)
def test_declares_task_roles_and_presets(key):
    cls = catalogue()[key]
    info = cls.info
    assert info.task in TASKS, f"{key}: task {info.task!r} not one of {TASKS}"
    assert info.roles and all(isinstance(r, Role) for r in info.roles), f"{key} declares no column roles"
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for r in info.roles:
        assert r.name in names, f"{key}: role {r.name!r} is not a constructor parameter (the binding)"
        assert r.kinds and (r.help_en and r.help_zh), f"{key}: role {r.name!r} needs kinds and zh/en help"
    assert info.presets and all(isinstance(p, Preset) for p in info.presets), f"{key}: no application preset"
    for p in info.presets:
        assert p.name_zh and p.name_en
        cls(**dict(p.params))  # a preset is valid parameters of this estimator
        assert set(p.params) <= set(names), f"{key}: preset {p.key} sets unknown parameters"


@pytest.mark.parametrize("key", KEYS)
def test_every_entry_has_a_user_table_case(key):
    assert key in USER_CASES, (f"{key}: add a case to tests/conformance/user_tables_<family>.py "
                               "(a table with other column names)")


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(USER_CASES))
def test_runs_on_a_user_table_with_other_column_names(key):
    m, frame, params, ev = user_evaluated(key)
    info = m.info
    for name in info.metrics:
        assert name in ev.metrics and math.isfinite(float(ev.metrics[name])), f"{key} does not report {name}"
    if ev.baseline:
        verdict = beats_baseline(ev, primary_metric(info))
        assert verdict is not False, f"{key} on a user table: {ev.metrics} vs {ev.baseline_name} {ev.baseline}"
    b = getattr(m, "binding_", None)
    assert b is not None, f"{key}: evaluate did not bind its roles (call self.bind(df))"
    cols = set(map(str, frame.columns))
    assert set(b.used()) <= cols, f"{key}: binding {b.columns} names columns the table lacks"
    # notes and explanations speak of the user's data: no demo column the table lacks is named
    text = json.dumps(jsonable(ev.explanation), ensure_ascii=False)
    demo_cols = set()
    for r in info.roles:
        demo_cols |= set(r.demo if isinstance(r.demo, tuple) else ([r.demo] if r.demo else []))
    stale = sorted(c for c in demo_cols - cols if len(c) > 3 and (f'"{c}"' in text or f" {c} " in text))
    assert not stale, f"{key}: the explanation names demo columns {stale} on a user table"
    assert ev.plots, f"{key} gives the console no interactive chart data (Evaluation.plots)"
    json.dumps(ev.plots)  # strict JSON


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(USER_CASES))
def test_scores_a_user_table_keeping_its_columns(key):
    m, frame, params, ev = user_evaluated(key)
    if not supports_predict(m):
        return
    out = m.predict_table(frame.head(200).copy())
    assert isinstance(out, pd.DataFrame) and len(out) > 0
    if m.info.task == "classification":
        target = m.binding_.get("target")
        kept = [c for c in frame.columns if c != target]
        assert set(kept) <= set(out.columns), f"{key}: scoring dropped input columns {set(kept) - set(out.columns)}"
        assert {"score", "prediction"} <= set(out.columns), f"{key}: scored table needs score and prediction"
        assert out["score"].between(0, 1).all()
