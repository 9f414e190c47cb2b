"""Run engines (issue 10 item 6): the registry, the runner's dispatch through the ``Engine``
protocol, the Spark translation chosen by task + algorithm, and the MLlib table built from a
run's role binding. No JVM here (``test_spark.py`` fits on Spark): everything below is the
engine's Python side, checked on real data (IBM Telco renamed the way a customer exports it).
"""

from __future__ import annotations

import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog import catalogue
from zhinao.analytics.engines import (Engine, LocalEngine, check_engine, engine_class, engine_names, engines_for,
                                      get_engine, register_engine)
from zhinao.errors import EngineUnavailable, InvalidRequest, NotFound

TENANT = 1


def renamed_telco(n: int | None = None) -> pd.DataFrame:
    """Telco with a customer's column names and a 是/否 target (no demo column name left)."""
    t = datasets.load_telco()
    t = t.sample(n, random_state=1) if n else t
    t = t.rename(columns={"customerID": "用户编号", "gender": "性别", "SeniorCitizen": "老年用户", "tenure": "在网月数",
                          "Contract": "合约类型", "MonthlyCharges": "月费", "TotalCharges": "累计消费",
                          "InternetService": "宽带类型", "PaymentMethod": "付费方式", "Churn": "是否流失"})
    t["是否流失"] = t["是否流失"].map({"Yes": "是", "No": "否"})
    return t.reset_index(drop=True)


# -- registry ---------------------------------------------------------------------------------

def test_builtins_are_registered_and_an_unknown_engine_is_a_400_naming_the_choices():
    assert {"local", "spark"} <= set(engine_names())
    assert get_engine("local").scores_rows is True and get_engine("spark").scores_rows is False
    assert engine_class("spark").__module__ == "zhinao.analytics.spark_runs"
    with pytest.raises(InvalidRequest, match=r"unknown engine 'gpu'; engines: .*local.*spark") as e:
        get_engine("gpu")
    assert e.value.status == 400 and e.value.param == "engine"
    with pytest.raises(TypeError, match="not an Engine subclass"):
        register_engine(object)  # type: ignore[arg-type]


class MetricsOnlyEngine(LocalEngine):
    """A real engine: the embedded evaluation, but nothing saved, so nothing can score afterwards
    (what a remote engine whose models stay remote looks like to the runner)."""

    name = "metrics-only"
    scores_rows = False

    def evaluate(self, model, data, out_dir, *, table=None):
        ev = model.evaluate(data)
        ev.explanation.setdefault("notes", []).append(f"engine {self.name}: {len(table)} table rows")
        return ev

    def save(self, model, out_dir):
        return None


@pytest.fixture
def metrics_only():
    register_engine(MetricsOnlyEngine)
    yield MetricsOnlyEngine.name
    from zhinao.analytics import engines

    engines._extra.pop(MetricsOnlyEngine.name, None)
    engines._instances.pop(MetricsOnlyEngine.name, None)


def test_the_runner_dispatches_through_the_engine_protocol(service, ws, metrics_only):
    service.workspaces.save_frame(TENANT, ws, "客户", renamed_telco(1500), source="csv")
    with pytest.raises(InvalidRequest, match="needs engine 'local'; engine 'metrics-only'") as e:
        service.start_run(TENANT, "churn_logistic", workspace=ws, dataset="客户", engine=metrics_only,
                          score_table="risk", params={"target": "是否流失"})
    assert e.value.param == "score_table" and service.runs.list(TENANT) == []
    r = service.start_run(TENANT, "churn_logistic", workspace=ws, dataset="客户", engine=metrics_only,
                          params={"target": "是否流失"})
    r = service.runs.wait(TENANT, r["id"], timeout=120)
    assert r["status"] == "succeeded", r["error"]
    assert r["engine"] == "metrics-only" and "engine metrics-only: 1500 table rows" in r["explanation"]["notes"]
    assert r["binding"]["columns"]["target"] == "是否流失"  # the runner records model.binding_ for any engine
    with pytest.raises(NotFound, match="saved no model file"):
        service.runs.model_file(TENANT, r["id"])
    assert "metrics-only" in service.model_info("churn_logistic")["engines"]


def test_spark_needs_java_and_says_so(monkeypatch, tmp_path):
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on PATH
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(EngineUnavailable, match="needs Java") as e:
        check_engine("spark", catalogue()["churn_logistic"])
    assert e.value.status == 503


# -- which catalogue entries Spark runs: task + algorithm, not a list of keys -------------------

EXPECTED = {"churn_logistic": "logistic_regression", "churn_mlp": "mlp", "churn_gbm": "gbt",
            "plan_tree": "decision_tree", "value_svm": "linear_svm", "traffic_linear": "linear_regression",
            "sim_farm_kmeans": "kmeans", "segments_em": "gmm", "cross_sell_apriori": "fpgrowth",
            "next_content_prefixspan": "prefixspan", "text_naive_bayes": "naive_bayes",
            # MLlib has none of these
            "hmm_word_tagger": None, "segments_kmodes": None, "karate_circles": None, "social_circles": None,
            "churn_ft_transformer": None, "traffic_arima": None, "basket_item_cf": None}


def test_translation_follows_task_and_algorithm():
    from zhinao.analytics.spark_runs import translation_for

    cat = catalogue()
    for key, algo in EXPECTED.items():
        if key in cat:
            tr = translation_for(cat[key])
            assert (tr.algorithm if tr else None) == algo, key
    spark = get_engine("spark")
    for key, cls in cat.items():  # the catalogue's flag is derived from the engine, never kept beside it
        meta = service_meta(cls)
        assert meta["spark"] == spark.supports(cls) == ("spark" in engines_for(cls)), key
        assert meta["engines"][0] == "local"


def service_meta(cls):
    from zhinao.analytics.service import model_metadata

    return model_metadata(cls)


def test_a_model_class_may_declare_or_refuse_its_mllib_algorithm():
    from zhinao.analytics.spark_runs import translation_for

    base = catalogue()["churn_logistic"]
    refuses = type("NoSpark", (base,), {"spark_algorithm": None})
    boosted = type("Boosted", (base,), {"spark_algorithm": "gbt"})
    assert translation_for(refuses) is None and translation_for(boosted).algorithm == "gbt"
    reason = get_engine("spark").why_not(refuses)
    assert "has no Spark implementation" in reason and "churn_logistic" in reason


def test_a_model_spark_cannot_run_is_a_400_before_anything_is_queued(service):
    for key in ("hmm_word_tagger", "segments_kmodes"):
        with pytest.raises(InvalidRequest, match=f"'{key}' has no Spark implementation") as e:
            service.start_run(TENANT, key, engine="spark")
        assert e.value.status == 400 and e.value.param == "engine"
    with pytest.raises(InvalidRequest, match="unknown engine 'gpu'"):
        service.start_run(TENANT, "churn_logistic", engine="gpu")
    assert service.runs.list(TENANT) == []


# -- the MLlib table is built from the role binding ---------------------------------------------

def test_spark_input_binds_the_users_columns_like_the_local_model():
    from zhinao.analytics.spark_runs import spark_input, translation_for

    cls = catalogue()["churn_logistic"]
    df = renamed_telco(800)
    local = cls(target="是否流失").bind(df)
    m = cls(target="是否流失")
    spec = spark_input(m, translation_for(cls), df)
    assert m.binding_.to_dict() == local.to_dict()  # same binding, so the run record shows the same
    assert spec.positive == "是"
    y = spec.frame["y__"]
    assert set(y) == {"0", "1"} and (y == "1").mean() == pytest.approx((df["是否流失"] == "是").mean())
    used = [spec.names[c] for c in spec.kwargs["features"]]
    assert used == local["features"] and "用户编号" not in used and "是否流失" not in used
    # numbers as floats (累计消费 has blanks in the export), categories as text
    by_name = {v: k for k, v in spec.names.items()}
    assert spec.frame[by_name["累计消费"]].dtype == float and spec.frame[by_name["累计消费"]].notna().all()
    assert spec.frame[by_name["合约类型"]].map(type).eq(str).all()
    # an explicit positive class is honoured; a wrong one names the values
    spec = spark_input(cls(target="是否流失", positive="否"), translation_for(cls), df)
    assert spec.positive == "否" and (spec.frame["y__"] == "1").mean() == pytest.approx((df["是否流失"] == "否").mean())
    with pytest.raises(InvalidRequest, match="positive class '流失' is not a value of '是否流失'"):
        spark_input(cls(target="是否流失", positive="流失"), translation_for(cls), df)


def test_spark_input_for_clusters_uses_the_bound_features():
    from zhinao.analytics.spark_runs import spark_input, translation_for

    cls = catalogue()["sim_farm_kmeans"]
    df = renamed_telco(500)
    m = cls(features=["在网月数", "月费", "累计消费"], n_clusters=5)
    spec = spark_input(m, translation_for(cls), df)
    assert [spec.names[c] for c in spec.kwargs["features"]] == ["在网月数", "月费", "累计消费"]
    assert spec.kwargs["params"]["k"] == 5 and list(spec.frame.dtypes) == [float] * 3
    assert m.binding_["features"] == ["在网月数", "月费", "累计消费"]


def test_spark_input_for_baskets_uses_the_bound_session_and_item():
    from zhinao.analytics.spark_runs import spark_input, translation_for

    baskets = datasets.load_groceries()[:600]
    long = pd.DataFrame([(f"单{i:05d}", it) for i, b in enumerate(baskets) for it in b], columns=["小票号", "商品名"])
    cls = catalogue()["cross_sell_apriori"]
    m = cls(session="小票号", item="商品名")
    spec = spark_input(m, translation_for(cls), long)
    assert spec.names == {"s__": "小票号", "i__": "商品名"} and spec.kwargs["session_column"] == "s__"
    assert spec.frame["s__"].nunique() == len(baskets)


def test_spark_input_for_sessions_orders_by_the_bound_time():
    from zhinao.analytics.spark_runs import spark_input, translation_for

    seqs = datasets.load_msnbc(limit=300)
    rows = [(f"u{i}", pd.Timestamp("2026-03-01") + pd.Timedelta(minutes=j), seqs.categories.get(x, str(x)))
            for i, s in enumerate(seqs.sequences) for j, x in enumerate(s)]
    long = pd.DataFrame(rows, columns=["访问编号", "访问时间", "频道"]).sample(frac=1, random_state=0)
    cls = catalogue()["next_content_prefixspan"]
    m = cls(session="访问编号", item="频道", time="访问时间")
    spec = spark_input(m, translation_for(cls), long)
    assert spec.names == {"s__": "访问编号", "i__": "频道", "o__": "访问时间"}
    assert spec.kwargs["order_column"] == "o__" and spec.frame["o__"].dtype == "int64"
    first = spec.frame[spec.frame["s__"] == "u0"].sort_values("o__")["i__"].tolist()
    assert first == [seqs.categories.get(x, str(x)) for x in seqs.sequences[0]]


def test_spark_input_for_a_forecast_fits_the_models_own_design_on_one_series():
    """A forecaster that offers ``regression_design`` (calendar, holidays, lags on its binding)
    is fitted on exactly that design; one series of the user's table (group_value)."""
    import math

    from zhinao.analytics.spark_runs import spark_input, translation_for

    cells = datasets.load_milan_cells().rename(columns={"cell_id": "小区", "timestamp": "时间", "activity": "话务量"})
    busiest = cells.groupby("小区")["话务量"].sum().idxmax()
    cls = catalogue()["traffic_linear"]
    tr = translation_for(cls)
    params = {"time": "时间", "value": "话务量", "group": "小区", "group_value": busiest}
    m = cls(**params)
    spec = spark_input(m, tr, cells)
    design = cls(**params).regression_design(cells)
    assert m.binding_["time"] == "时间" and m.binding_["value"] == "话务量"
    assert [spec.names[c] for c in spec.kwargs["features"]] == design["features"]
    n = len(spec.frame)
    assert math.ceil(n * spec.kwargs["test_size"]) == design["holdout_rows"]  # the same hold-out
    assert spec.kwargs["time_column"] == "t__" and spec.names["t__"] == "时间"
    assert any("Holiday calendar" in x for x in spec.notes)
    with pytest.raises(InvalidRequest, match="per_group runs on engine 'local'"):
        spark_input(cls(time="时间", value="话务量", group="小区", per_group=True), tr, cells)
    with pytest.raises(InvalidRequest, match="'nowhere'"):
        spark_input(cls(time="时间", value="话务量", group="小区", group_value="nowhere"), tr, cells)


def test_a_binding_that_does_not_fit_the_algorithm_is_a_clear_error():
    from zhinao.analytics.spark_runs import spark_input, translation_for

    cls = catalogue()["churn_logistic"]
    with pytest.raises(InvalidRequest, match="role 'target' is bound to column 'Churn'"):
        spark_input(cls(target="Churn"), translation_for(cls), renamed_telco(200))


def test_engine_base_class_requires_evaluate_and_save():
    with pytest.raises(TypeError):
        type("Half", (Engine,), {"name": "half", "evaluate": lambda *a, **k: None})()
