"""The Spark engine on users' tables: the same role binding as the embedded run, fitted by MLlib
in ``local[*]``, through the same run API (``engine="spark"``) and the same run record.

One SparkSession serves the whole module (``spark`` fixture; the runner's jobs reuse the same
process-wide session), so only the first test pays the JVM start. Few tests, each a whole run
on real shipped data renamed the way a customer's export names things; the Python side of the
engine (registry, translation, binding → MLlib table) is in ``test_engines.py``, without a JVM.
"""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from zhinao.errors import InvalidRequest

from tests.analytics.test_engines import renamed_telco
from tests.conftest import require_module

require_module("pyspark", "engine 'spark' needs pyspark (pip install 'zhinao[spark]')")

pytestmark = pytest.mark.slow

TENANT = 1


@pytest.fixture(scope="module")
def spark():
    from zhinao.analytics.spark import get_spark, stop_spark

    # C1 JIT only and the serial GC: on two cores the C2 compiler threads cost more than they
    # save in jobs this short (measured: the first run took half as long)
    s = get_spark(shuffle_partitions=2, java_options="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    yield s
    stop_spark()


def _run(service, key, **kw):
    r = service.start_run(TENANT, key, engine="spark", **kw)
    r = service.runs.wait(TENANT, r["id"], timeout=300)
    assert r["status"] == "succeeded", r["error"]
    assert r["engine"] == "spark" and r["explanation"]["mllib_algorithm"]
    assert r["explanation"]["engine"].startswith("Spark ")
    return r


def test_classifier_on_a_users_table_binds_like_the_local_run(service, ws, spark):
    """IBM Telco exported with Chinese column names and a 是/否 target: logistic regression."""
    service.workspaces.save_frame(TENANT, ws, "客户", renamed_telco(3000), source="csv")
    params = {"target": "是否流失"}
    r = _run(service, "churn_logistic", workspace=ws, dataset="客户", params=params)
    local = service.runs.wait(TENANT, service.start_run(TENANT, "churn_logistic", workspace=ws, dataset="客户",
                                                        params=params)["id"], 180)
    assert local["status"] == "succeeded", local["error"]
    assert r["binding"] == local["binding"] and r["binding"]["columns"]["target"] == "是否流失"
    assert "用户编号" not in r["binding"]["columns"]["features"]
    ex = r["explanation"]
    assert ex["mllib_algorithm"] == "logistic_regression" and ex["positive_class"] == "是"
    assert ex["train_rows"] + ex["holdout_rows"] == 3000
    # the explanation speaks the user's columns, not the engine's safe names
    assert "合约类型" in ex["categorical"] and "在网月数" in ex["numeric"] and not any(
        c.startswith("c") and c[1:].isdigit() for c in ex["numeric"] + ex["categorical"])
    assert r["primary_metric"] == "auc" and r["beats_baseline"] is True
    assert 0.78 < r["metrics"]["auc"] <= 1 and r["baseline"]["auc"] == 0.5 and r["metrics"]["f1"] > 0.4
    assert abs(local["metrics"]["auc"] - r["metrics"]["auc"]) < 0.05  # different split, same quality
    # operators target the top decile: lift and capture, a threshold table, interactive plots
    assert ex["lift"][0]["lift"] > 2 and ex["lift"][-1]["cumulative_capture"] == pytest.approx(1.0)
    assert [t["threshold"] for t in ex["thresholds"]][:2] == [0.1, 0.2]
    assert {"roc", "lift", "thresholds", "vs_baseline"} <= set(r["plots"])
    assert set(r["charts"]) >= {"roc", "confusion", "vs_baseline"}
    assert any("MLlib LogisticRegression" in n for n in r["notes"])
    # the fitted MLlib pipeline is saved with the run's version, zipped for download; it cannot score here
    path = service.runs.model_file(TENANT, r["id"])
    assert path.name == "model.zip" and f"v{r['version']}" in path.parts
    assert any(n.startswith("metadata/") for n in zipfile.ZipFile(path).namelist())
    with pytest.raises(InvalidRequest, match="engine 'spark'.*engine 'local' to score"):
        service.runs.load_model(TENANT, r["id"])
    # a table whose target is not there fails the run naming the column, leaving nothing behind
    bad = service.runs.wait(TENANT, service.start_run(TENANT, "churn_logistic", workspace=ws, dataset="客户",
                                                      params={"target": "流失"}, engine="spark")["id"], 120)
    assert bad["status"] == "failed" and "'流失'" in bad["error"] and "columns: 用户编号" in bad["error"]


def test_kmeans_on_a_users_table(service, ws, spark):
    df = renamed_telco(2500)[["用户编号", "在网月数", "月费", "累计消费", "合约类型"]]
    service.workspaces.save_frame(TENANT, ws, "用量", df, source="csv")
    r = _run(service, "sim_farm_kmeans", workspace=ws, dataset="用量",
             params={"features": ["在网月数", "月费", "累计消费"], "n_clusters": 6})
    ex = r["explanation"]
    assert ex["mllib_algorithm"] == "kmeans" and len(ex["cluster_sizes"]) == 6
    assert r["binding"]["columns"]["features"] == ["在网月数", "月费", "累计消费"]
    assert ex["numeric"] == ["在网月数", "月费", "累计消费"]
    assert r["metrics"]["holdout_mse"] < 0.5 * r["baseline"]["holdout_mse"]
    assert "clusters" in r["plots"] and not any("SYNTHETIC" in n for n in r["notes"])


def test_fpgrowth_on_a_users_basket_table(service, ws, spark):
    from zhinao.analytics import datasets

    baskets = datasets.load_groceries()
    long = pd.DataFrame([(f"单{i:05d}", it) for i, b in enumerate(baskets) for it in b], columns=["小票号", "商品名"])
    service.workspaces.save_frame(TENANT, ws, "小票", long, source="csv")
    r = _run(service, "cross_sell_apriori", workspace=ws, dataset="小票",
             params={"session": "小票号", "item": "商品名", "min_support": 0.005})
    ex = r["explanation"]
    assert ex["mllib_algorithm"] == "fpgrowth" and ex["n_rules"] > 10 and ex["top_rules_by_lift"]
    assert r["binding"]["columns"]["session"] == "小票号" and r["binding"]["columns"]["item"] == "商品名"
    assert ex["train_baskets"] + int(round(len(baskets) * 0.25)) == len(baskets)
    assert r["primary_metric"] == "hit_rate@3" and r["beats_baseline"] is True
    assert "rules" in r["plots"]


# -- fit_spark directly on Parquet (MLlib names, no catalogue) -----------------------------------

@pytest.fixture(scope="module")
def telco_parquet(tmp_path_factory):
    from zhinao.analytics import datasets
    from zhinao.analytics.spark import export_parquet

    df = datasets.load_telco()
    df["TotalCharges"] = pd.to_numeric(df["TotalCharges"].astype(str).str.strip(), errors="coerce")
    return export_parquet(df, tmp_path_factory.mktemp("spark") / "telco.parquet")


def test_fit_spark_on_parquet_and_its_bad_input(spark, telco_parquet, tmp_path):
    from zhinao.analytics.spark import export_parquet, fit_spark

    res = fit_spark("gbt", telco_parquet, target="Churn", params={"max_iter": 10})
    assert res.metrics["auc"] > 0.75 and res.baseline["auc"] == 0.5
    assert "customerID" not in res.explanation["categorical"]  # id-like columns are not features
    assert 0 <= res.holdout["proba"].min() and res.holdout["proba"].max() <= 1
    with pytest.raises(InvalidRequest, match="no Spark implementation for 'random_forest'") as e:
        fit_spark("random_forest", telco_parquet, target="Churn")
    assert e.value.param == "engine"
    with pytest.raises(InvalidRequest, match="lacks target column 'churned'"):
        fit_spark("logistic_regression", telco_parquet, target="churned")
    with pytest.raises(InvalidRequest, match="lacks feature column.*'ARPU'"):
        fit_spark("logistic_regression", telco_parquet, target="Churn", features=["tenure", "ARPU"])
    with pytest.raises(InvalidRequest, match="binary only"):
        fit_spark("linear_svm", telco_parquet, target="Contract")
    tiny = export_parquet(pd.DataFrame({"x": range(12), "y": ["a", "b"] * 6}), tmp_path / "tiny.parquet")
    with pytest.raises(InvalidRequest, match="at least 20 training"):
        fit_spark("logistic_regression", tiny, target="y")
    one = export_parquet(pd.DataFrame({"s": range(300), "i": ["a"] * 300}), tmp_path / "one.parquet")
    with pytest.raises(InvalidRequest, match="does 's' group several 'i' rows"):
        fit_spark("fpgrowth", one, session_column="s", item_column="i")


def test_a_dead_jvm_is_replaced_on_the_next_run(spark, telco_parquet):
    """A JVM that died (out of memory, a stack overflow in a long lineage) must not poison every
    later run of the process: the next get_spark() starts a fresh one. Last in the module: it
    ends the module's session."""
    from zhinao.analytics.spark import fit_spark, get_spark

    s = get_spark()
    try:
        s.sparkContext._jvm.System.exit(1)
    except Exception:  # noqa: BLE001 - the call dies with the JVM
        pass
    s2 = get_spark(shuffle_partitions=2, java_options="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    assert s2 is not s and s2.range(5).count() == 5
    res = fit_spark("logistic_regression", telco_parquet, target="Churn", features=["tenure", "Contract"])
    assert res.metrics["auc"] > 0.7
