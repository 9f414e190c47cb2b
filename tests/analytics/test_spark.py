"""The Spark engine: every MLlib counterpart of a catalogue model, on the shipped real data,
through the same run API as the embedded engine (``engine="spark"``), in ``local[*]`` mode.

One SparkSession serves the whole module (``spark`` fixture; the runner's jobs reuse the
same process-wide session), so every test but the first skips the JVM start. Data sizes are the demo sets (7k customers, 2.4k hours of
Milan traffic, 10k news titles, 5k MSNBC sessions) so the module stays well under 3 minutes.
"""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from zhinao.errors import InvalidRequest

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


@pytest.fixture(scope="module")
def telco_parquet(tmp_path_factory):
    from zhinao.analytics import datasets
    from zhinao.analytics.spark import export_parquet

    df = datasets.load_telco()
    df["TotalCharges"] = pd.to_numeric(df["TotalCharges"].astype(str).str.strip(), errors="coerce")
    return export_parquet(df, tmp_path_factory.mktemp("spark") / "telco.parquet")


def _run(service, key, **kw):
    r = service.start_run(TENANT, key, engine="spark", **kw)
    r = service.runs.wait(TENANT, r["id"], timeout=170)
    assert r["status"] == "succeeded", r["error"]
    assert r["engine"] == "spark" and r["explanation"]["mllib_algorithm"]
    assert r["explanation"]["engine"].startswith("Spark ")
    return r


# -- the catalogue's models on Spark, through the run API -------------------------------------

def test_logistic_regression_churn_matches_the_embedded_engine(service, spark):
    r = _run(service, "churn_logistic")
    assert r["explanation"]["mllib_algorithm"] == "logistic_regression"
    assert r["primary_metric"] == "auc" and r["beats_baseline"] is True
    assert r["metrics"]["auc"] > 0.80 and r["baseline"]["auc"] == 0.5 and r["metrics"]["f1"] > 0.4
    assert set(r["charts"]) >= {"roc", "confusion", "vs_baseline"}
    assert service.runs.chart(TENANT, r["id"], "roc")[:4] == b"\x89PNG"
    # the fitted MLlib pipeline is saved with the run's version, zipped for download
    path = service.runs.model_file(TENANT, r["id"])
    assert path.name == "model.zip" and f"v{r['version']}" in path.parts
    assert any(n.startswith("metadata/") for n in zipfile.ZipFile(path).namelist())
    with pytest.raises(InvalidRequest, match="engine 'local' to score"):
        service.runs.load_model(TENANT, r["id"])
    # the same model on the embedded engine reaches the same quality (different split seed)
    local = service.runs.wait(TENANT, service.start_run(TENANT, "churn_logistic")["id"], 120)
    assert local["engine"] == "local" and abs(local["metrics"]["auc"] - r["metrics"]["auc"]) < 0.04


def test_decision_tree_plan_matching(service, spark):
    r = _run(service, "plan_tree", params={"max_depth": 4})
    assert r["explanation"]["mllib_algorithm"] == "decision_tree"
    assert r["explanation"]["tree_depth"] <= 4
    assert r["primary_metric"] == "macro_f1" and r["beats_baseline"] is True
    assert r["metrics"]["macro_f1"] > r["baseline"]["macro_f1"] + 0.2


def test_naive_bayes_classifies_news_titles_on_the_datasets_own_split(service, spark):
    r = _run(service, "text_naive_bayes")
    assert r["explanation"]["mllib_algorithm"] == "naive_bayes"
    assert "own split" in r["explanation"]["split"]["method"]
    assert r["explanation"]["vocabulary_size"] > 1000
    assert r["metrics"]["macro_f1"] > 0.6 and r["baseline"]["macro_f1"] < 0.1


def test_mlp_churn(service, spark):
    r = _run(service, "churn_mlp", params={"hidden": [16]})
    assert r["explanation"]["mllib_algorithm"] == "mlp"
    assert r["metrics"]["auc"] > 0.78 and r["beats_baseline"] is True


def test_linear_svm_customer_value(service, spark):
    r = _run(service, "value_svm")
    assert r["explanation"]["mllib_algorithm"] == "linear_svm"
    assert r["explanation"]["labels"] == ["0", "1"]  # 1 = top-quartile value
    assert r["metrics"]["auc"] > 0.8 and r["metrics"]["f1"] > r["baseline"]["f1"]


def test_linear_regression_traffic_beats_seasonal_naive_on_a_time_split(service, spark):
    r = _run(service, "traffic_linear")
    assert r["explanation"]["mllib_algorithm"] == "linear_regression"
    assert r["explanation"]["split"]["method"].startswith("time-based")
    assert r["baseline_name"] == "naive: naive_week"
    assert r["primary_metric"] == "mae" and r["beats_baseline"] is True
    assert r["explanation"]["holdout_rows"] == 7 * 24


def test_kmeans_sim_farm_features(service, spark):
    r = _run(service, "sim_farm_kmeans", params={"n_clusters": 8})
    assert r["explanation"]["mllib_algorithm"] == "kmeans"
    assert len(r["explanation"]["cluster_sizes"]) == 8
    assert r["primary_metric"] == "holdout_mse" and r["beats_baseline"] is True
    assert r["metrics"]["holdout_mse"] < 0.5 * r["baseline"]["holdout_mse"]
    assert any("SYNTHETIC" in n for n in r["explanation"]["notes"])


def test_gmm_segments(service, spark):
    r = _run(service, "segments_em")
    assert r["explanation"]["mllib_algorithm"] == "gmm"
    assert len(r["explanation"]["weights"]) == 4
    assert r["primary_metric"] == "holdout_loglik" and r["beats_baseline"] is True


def test_fpgrowth_cross_selling(service, spark):
    r = _run(service, "cross_sell_apriori")
    assert r["explanation"]["mllib_algorithm"] == "fpgrowth"
    assert r["explanation"]["n_rules"] > 10 and r["explanation"]["top_rules_by_lift"]
    assert r["primary_metric"] == "hit_rate@3" and r["beats_baseline"] is True


def test_prefixspan_next_content(service, spark):
    r = _run(service, "next_content_prefixspan", params={"max_sessions": 5000})
    assert r["explanation"]["mllib_algorithm"] == "prefixspan"
    assert r["explanation"]["n_patterns"] > 20
    assert r["primary_metric"] == "hit@3" and r["beats_baseline"] is True
    assert (service.runs.artifact_dir(TENANT, r["id"]) / "mllib" / "patterns.json").is_file()


def test_spark_run_on_a_workspace_table(service, ws, spark):
    from zhinao.analytics import datasets

    df = datasets.load_telco().sample(1500, random_state=0)
    service.workspaces.save_frame(TENANT, ws, "cust", df, source="csv")
    r = _run(service, "churn_logistic", workspace=ws, dataset="cust")
    assert r["dataset"] == "cust" and r["explanation"]["train_rows"] + r["explanation"]["holdout_rows"] == 1500
    # the workspace table lacks the target: the run fails naming the column
    service.workspaces.save_frame(TENANT, ws, "nochurn", df.drop(columns=["Churn"]), source="csv")
    bad = service.runs.wait(TENANT, service.start_run(TENANT, "churn_logistic", workspace=ws, dataset="nochurn",
                                                      engine="spark")["id"], 120)
    assert bad["status"] == "failed" and "'Churn'" in bad["error"]


# -- fit_spark directly on Parquet (the MLlib names) -------------------------------------------

def test_fit_spark_reads_parquet(spark, telco_parquet):
    from zhinao.analytics.spark import fit_spark

    res = fit_spark("logistic_regression", telco_parquet, target="Churn")
    assert res.metrics["auc"] > 0.75 and res.baseline["auc"] == 0.5
    assert "customerID" not in res.explanation["categorical"]  # id-like columns are not features


def test_linear_regression_on_parquet_with_random_split(spark, telco_parquet, tmp_path):
    from zhinao.analytics.spark import fit_spark

    res = fit_spark("linear_regression", telco_parquet, target="MonthlyCharges",
                    features=["InternetService", "StreamingTV", "StreamingMovies", "PhoneService", "MultipleLines"],
                    save_to=tmp_path / "lr")
    assert res.metrics["r2"] > 0.9 and res.baseline["r2"] < 0.01
    assert (tmp_path / "lr" / "metadata").exists()


# -- bad input -----------------------------------------------------------------------------------

def test_unknown_algorithm_and_engine_are_clear_errors(service, spark, telco_parquet):
    from zhinao.analytics.spark import fit_spark

    with pytest.raises(InvalidRequest, match="no Spark implementation for 'random_forest'") as e:
        fit_spark("random_forest", telco_parquet, target="Churn")
    assert e.value.param == "engine"
    with pytest.raises(InvalidRequest, match="'hmm_word_tagger' has no Spark implementation"):
        service.start_run(TENANT, "hmm_word_tagger", engine="spark")
    with pytest.raises(InvalidRequest, match="unknown engine 'gpu'"):
        service.start_run(TENANT, "churn_logistic", engine="gpu")
    service.ensure_demo(TENANT, tables=("telco",))
    with pytest.raises(InvalidRequest, match="needs engine 'local'") as e:
        service.start_run(TENANT, "churn_logistic", engine="spark", workspace="demo", score_table="risk")
    assert e.value.param == "score_table"
    assert service.runs.list(TENANT) == []  # nothing was queued


def test_missing_target_wrong_type_and_too_few_rows(spark, telco_parquet, tmp_path):
    from zhinao.analytics.spark import export_parquet, fit_spark

    with pytest.raises(InvalidRequest, match="lacks target column 'churned'") as e:
        fit_spark("logistic_regression", telco_parquet, target="churned")
    assert e.value.param == "churned"
    with pytest.raises(InvalidRequest, match="needs a target column"):
        fit_spark("mlp", telco_parquet)
    with pytest.raises(InvalidRequest, match="lacks feature column.*'ARPU'"):
        fit_spark("logistic_regression", telco_parquet, target="Churn", features=["tenure", "ARPU"])
    with pytest.raises(InvalidRequest, match="target 'Contract' must be numeric"):
        fit_spark("linear_regression", telco_parquet, target="Contract")
    with pytest.raises(InvalidRequest, match="binary only"):
        fit_spark("linear_svm", telco_parquet, target="Contract")
    tiny = export_parquet(pd.DataFrame({"x": range(12), "y": ["a", "b"] * 6}), tmp_path / "tiny.parquet")
    with pytest.raises(InvalidRequest, match="at least 20 training"):
        fit_spark("logistic_regression", tiny, target="y")
    const = export_parquet(pd.DataFrame({"x": range(200), "y": ["a"] * 200}), tmp_path / "const.parquet")
    with pytest.raises(InvalidRequest, match="constant"):
        fit_spark("decision_tree", const, target="y")
    with pytest.raises(InvalidRequest, match=r"fpgrowth reads a \(transaction_id, item\) table"):
        fit_spark("fpgrowth", telco_parquet)


def test_catalogue_marks_the_models_spark_can_run(service):
    from zhinao.analytics.spark import CATALOGUE_KEYS, ALGORITHMS

    cat = {m["key"]: m for m in service.catalogue()}
    assert set(CATALOGUE_KEYS) <= set(cat)
    assert {k for k, m in cat.items() if m["spark"]} == set(CATALOGUE_KEYS)
    # every MLlib algorithm the issue lists has a catalogue model behind it
    assert set(CATALOGUE_KEYS.values()) == ALGORITHMS
