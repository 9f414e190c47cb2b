"""The run ``Engine`` conformance suite, over every registered engine (entry points included).

The contract (``zhinao.analytics.engines.Engine``): built by its registered name with no
arguments; ``available()`` returns or raises :class:`EngineUnavailable` (503, saying what to
install); ``why_not`` is None or a message for every catalogue entry, and ``supports`` agrees;
``evaluate`` on an entry it supports gives an :class:`Evaluation` with the entry's metrics and
a baseline on the same names, strict-JSON explanation and plots, PNG charts, and leaves
``model.binding_`` set (the run record shows it); ``save`` writes under the run's folder and
returns that file (or None); an engine that does not ``scores_rows`` saves nothing joblib can
load. An engine that is registered but not installed here (no pyspark / Java) is skipped with
the reason, never passed.
"""

from __future__ import annotations

import json

import pytest

from zhinao.analytics.catalog import catalogue
from zhinao.analytics.catalog.base import Evaluation
from zhinao.analytics.engines import Engine, engine_class, engine_names, get_engine
from zhinao.errors import EngineUnavailable

NAMES = engine_names()
#: a small classification every engine of this repository runs: a user's table, not the demo's names
KEY = "churn_logistic"


def user_table():
    from zhinao.analytics import datasets

    t = datasets.load_telco().sample(900, random_state=3).reset_index(drop=True)
    t = t.rename(columns={"customerID": "客户号", "tenure": "在网月数", "Contract": "合约", "Churn": "流失标记"})
    t["流失标记"] = t["流失标记"].map({"Yes": True, "No": False})
    return t


def test_the_built_ins_are_registered():
    assert {"local", "spark"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_is_an_engine_with_its_registered_name(name):
    cls = engine_class(name)
    assert issubclass(cls, Engine) and cls.name == name and isinstance(cls.scores_rows, bool)
    eng = get_engine(name)
    assert get_engine(name) is eng  # one shared, stateless instance
    try:
        eng.available()
    except EngineUnavailable as e:
        assert e.status == 503 and "install" in e.message.lower(), e.message


@pytest.mark.parametrize("name", NAMES)
def test_says_for_every_catalogue_entry_whether_it_runs_it(name):
    eng = get_engine(name)
    for key, cls in catalogue().items():
        reason = eng.why_not(cls)
        assert reason is None or (isinstance(reason, str) and key in reason), (name, key, reason)
        assert eng.supports(cls) is (reason is None)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_evaluates_and_saves_like_a_run(name, tmp_path):
    eng = get_engine(name)
    try:
        eng.available()
    except EngineUnavailable as e:
        pytest.skip(f"engine {name!r} is not installed here: {e.message}")
    cls = catalogue()[KEY]
    if not eng.supports(cls):
        pytest.fail(f"engine {name!r} cannot run {KEY!r}: give the suite a model it runs")
    if name == "spark":
        from zhinao.analytics.spark import get_spark

        get_spark(shuffle_partitions=2, java_options="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    table = user_table()
    model = cls(target="流失标记")
    out = tmp_path / "run"
    (out / "charts").mkdir(parents=True)
    ev = eng.evaluate(model, model.from_frame(table), out, table=table)
    assert isinstance(ev, Evaluation)
    assert model.binding_.columns["target"] == "流失标记" and "客户号" not in model.binding_.columns["features"]
    assert "auc" in ev.metrics and "auc" in ev.baseline and ev.baseline_name
    assert all(isinstance(v, float) for v in ev.metrics.values())
    json.dumps(ev.explanation, allow_nan=False, default=str)
    json.dumps(ev.plots, allow_nan=False)
    assert all(png[:4] == b"\x89PNG" for png in ev.charts.values())
    assert ev.explanation.get("split"), "the hold-out split is shown"
    saved = eng.save(model, out)
    assert saved is None or (saved.is_file() and out in saved.parents)
    if saved is not None and not eng.scores_rows:
        assert saved.suffix != ".joblib", "a model the runner would try to score with"
