"""KMeans SIM-farm warning, KModes and EM segmentation: on the IBM Telco demo and on user tables.

The demo keeps its synthetic farm and Telco columns; the user tables are the same customers
renamed into Chinese with 是/否 or True/False values (tests/conformance/user_tables_clustering.py),
and small generated tables where the right answer is known by construction.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.clustering import (GaussianMixtureSegments, KModesSegments, SimFarmKMeans,
                                                 inject_sim_farm, usage_features)
from zhinao.analytics.catalog.clusterkit import as_number, mode_profile
from zhinao.analytics.runs import check_params
from zhinao.errors import InvalidRequest

_spec = importlib.util.spec_from_file_location(
    "_user_tables_clustering", Path(__file__).parents[1] / "conformance" / "user_tables_clustering.py")
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)
telco_zh = _cases.telco_zh


def test_injection_is_seeded_labelled_and_synthetic():
    telco = datasets.load_telco()
    a, b = inject_sim_farm(telco), inject_sim_farm(telco)
    assert a.equals(b)
    farm = a[a["is_sim_farm"] == 1]
    assert len(farm) == round(0.04 * len(telco)) and farm["customerID"].str.startswith("SYNFARM-").all()
    assert (a["is_sim_farm"] == 0).sum() == len(telco)
    assert SimFarmKMeans.info.synthetic
    f = usage_features(a)
    assert not f.isna().any().any()


def test_yes_no_as_people_write_them_become_numbers():
    assert as_number(pd.Series(["是", "否", None, "是"]), "x").tolist()[:2] == [1.0, 0.0]
    assert as_number(pd.Series([True, False]), "x").tolist() == [1.0, 0.0]
    assert as_number(pd.Series(["1.5", "2", ""]), "x").iloc[:2].tolist() == [1.5, 2.0]
    with pytest.raises(InvalidRequest, match="not numeric"):
        as_number(pd.Series(["1", "many"]), "用量")


def test_mode_profile_names_the_segment_s_own_values():
    C = pd.DataFrame({"套餐": ["A"] * 8 + ["B"] * 12, "地区": ["北"] * 10 + ["南"] * 10})
    m = np.arange(20) < 8
    prof = mode_profile(C, m)
    assert set(prof) == {"套餐", "地区"} and prof["套餐"].startswith("A (100%")


@pytest.mark.slow
def test_sim_farm_cluster_beats_threshold_rule():
    m = SimFarmKMeans()
    ev = m.evaluate(m.load_demo())
    assert m.mode_ == "telco" and m.binding_["label"] == "is_sim_farm"
    assert ev.metrics["f1"] > ev.baseline["f1"] + 0.2
    assert ev.metrics["recall"] > 0.8 and ev.metrics["precision"] > ev.baseline["precision"]
    assert ev.metrics["silhouette"] > ev.baseline["silhouette"]
    assert any("SYNTHETIC" in n for n in ev.explanation["notes"])
    assert {"clusters", "cluster_profiles", "vs_baseline"} <= set(ev.plots)
    json.dumps(ev.plots, allow_nan=False)
    demo = m.load_demo()
    scored = m.predict_table(demo.tail(300))
    # the injected cards sit at the tail of the table: most are flagged; every input column is kept
    assert scored["flagged"].sum() > 200 and set(demo.columns) <= set(scored.columns)
    assert scored["flagged"].is_monotonic_decreasing


def _planted(n: int = 1200, farm: int = 60, seed: int = 3, spell=("是", "否")) -> pd.DataFrame:
    """A user table with a planted group of near-identical rows (the farm) among varied ones."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame({"月租": rng.gamma(3, 30, n), "通话分钟": rng.gamma(2, 150, n), "流量GB": rng.gamma(2, 4, n),
                         "入网月数": rng.integers(1, 72, n).astype(float)})
    f = pd.DataFrame({"月租": rng.normal(9.0, 0.1, farm), "通话分钟": rng.normal(1.0, 0.2, farm).clip(0),
                      "流量GB": rng.normal(0.01, 0.002, farm).clip(0), "入网月数": rng.integers(1, 3, farm).astype(float)})
    df = pd.concat([base, f], ignore_index=True)
    df["已确认养卡"] = [spell[1]] * n + [spell[0]] * farm
    df["号码"] = [f"1390{i:07d}" for i in range(len(df))]
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.slow
def test_kmeans_flags_a_planted_farm_on_a_user_table_with_a_label():
    df = _planted()
    m = SimFarmKMeans(n_clusters=6, label="已确认养卡", id="号码")
    ev = m.evaluate(df)
    assert m.mode_ == "columns" and m.binding_["features"] == ["月租", "通话分钟", "流量GB", "入网月数"]
    assert m.binding_["id"] == "号码"
    # the planted group is the flagged cluster (with some genuinely low-usage new base rows beside it)
    assert ev.metrics["recall"] > 0.9 and ev.metrics["precision"] > 0.6
    assert ev.metrics["f1"] > ev.baseline["f1"] + 0.5 and ev.metrics["silhouette"] > ev.baseline["silhouette"]
    text = json.dumps(ev.explanation, ensure_ascii=False)
    assert "已确认养卡" in text and "tenure" not in text and "is_sim_farm" not in text
    out = m.predict_table(df.drop(columns="已确认养卡"))
    assert list(out.columns[:5]) == ["月租", "通话分钟", "流量GB", "入网月数", "号码"]
    assert "customerID" not in out.columns and out["flagged"].iloc[:50].all()


@pytest.mark.slow
def test_kmeans_without_label_is_judged_by_silhouette_against_the_shuffled_table():
    df = _planted().drop(columns="已确认养卡")
    m = SimFarmKMeans(n_clusters=6)
    ev = m.evaluate(df)
    assert "f1" not in ev.metrics and ev.metrics["silhouette"] > ev.baseline["silhouette"]
    assert ev.metrics["flagged_tightness_ratio"] < 0.5  # the tight planted group
    assert any("No label bound" in n for n in ev.explanation["notes"])
    assert m.binding_.dropped.get("号码", "").startswith("identifier")


@pytest.mark.slow
def test_kmodes_segments_separate_churn():
    m = KModesSegments()
    ev = m.evaluate(datasets.load_telco())
    for k in ("silhouette_matching", "label_mutual_info_bits", "label_rate_range"):
        assert ev.metrics[k] > ev.baseline[k], k
    assert len(ev.explanation["segments"]) == 4


@pytest.mark.slow
def test_kmodes_on_chinese_columns_profiles_and_churn_rates_are_filled():
    df = telco_zh()
    m = KModesSegments(label="是否流失")
    ev = m.evaluate(df)
    assert m.binding_["label"] == "是否流失" and "性别" in m.binding_["features"]
    assert "客户编号" not in m.binding_["features"] and "月消费" not in m.binding_["features"]
    segs = ev.explanation["segments"]
    assert all(s["distinctive"] for s in segs), "a profile is empty on non-Telco columns"
    rates = [s["label_rate"] for s in segs]
    assert max(rates) > 0.3 > min(rates)  # churn counted for 是/否 (was 0.0 everywhere)
    assert ev.metrics["label_rate_range"] > ev.baseline["label_rate_range"]
    scored = m.predict_table(df.head(50))
    assert set(df.columns) <= set(scored.columns) and scored["segment"].between(0, 3).all()


@pytest.mark.slow
def test_em_mixture_beats_single_gaussian():
    m = GaussianMixtureSegments(max_components=6)
    ev = m.evaluate(datasets.load_telco())
    assert ev.metrics["holdout_loglik"] > ev.baseline["holdout_loglik"]
    assert ev.metrics["bic"] < ev.baseline["bic"]
    assert m.n_components_ == min(m.bic_path_, key=m.bic_path_.get) and m.n_components_ > 1
    probs = m.predict_table(datasets.load_telco().head(50))["probability"]
    assert ((probs > 0) & (probs <= 1)).all()


@pytest.mark.slow
@pytest.mark.parametrize("spell", [(True, False), ("是", "否"), (1, 0), ("Yes", "No")])
def test_em_counts_churn_however_it_is_written(spell):
    df = telco_zh()
    yes = df.pop("是否流失").eq("是")
    df["流失标记"] = np.where(yes, spell[0], spell[1])
    m = GaussianMixtureSegments(max_components=4, label="流失标记")
    ev = m.evaluate(df)
    rates = [s["label_rate"] for s in ev.explanation["segments"] if "label_rate" in s]
    assert rates and max(rates) > 0.2, rates  # the old code counted only "Yes": 0.0 everywhere
    assert m.binding_["features"] == ["在网月数", "月消费", "累计消费"]
    assert "Churn" not in json.dumps(ev.explanation, ensure_ascii=False)


def test_presets_are_parameter_sets_of_the_same_estimator():
    for cls in (SimFarmKMeans, KModesSegments, GaussianMixtureSegments):
        keys = [p.key for p in cls.info.presets]
        assert keys and all(p.note_zh and p.note_en for p in cls.info.presets)
        for p in cls.info.presets:
            assert type(cls(**check_params(cls, {}, p.key))) is cls
    assert SimFarmKMeans.info.presets[0].name_zh == "养卡预警"
    assert "学生客户识别" in {p.name_zh for p in KModesSegments.info.presets}
    assert check_params(KModesSegments, {"n_clusters": 3}, "students")["n_clusters"] == 3


def test_bad_inputs():
    telco = datasets.load_telco()
    with pytest.raises(InvalidRequest, match="Contract"):
        usage_features(telco.drop(columns="Contract"))
    with pytest.raises(InvalidRequest, match="tenure"):
        bad = telco.head(100).copy()
        bad["tenure"] = "many"
        GaussianMixtureSegments(features=["tenure", "MonthlyCharges"]).fit(bad)
    with pytest.raises(InvalidRequest, match="at least"):
        KModesSegments().fit(telco.head(5))
    assert np.isfinite(usage_features(telco)["spend_drift"]).all()
    df = telco_zh().head(300)
    with pytest.raises(InvalidRequest, match="月费.*lacks"):  # unknown column in a binding
        GaussianMixtureSegments(features=["月费"]).evaluate(df)
    df["空列"] = np.nan
    with pytest.raises(InvalidRequest, match="空列.*empty"):  # a bound feature that is all null
        SimFarmKMeans(features=["在网月数", "空列"]).evaluate(df)
    with pytest.raises(InvalidRequest, match="空列.*empty"):
        KModesSegments(features=["性别", "空列"]).evaluate(df)
    with pytest.raises(InvalidRequest, match="usage_profile='telco'"):
        SimFarmKMeans(usage_profile="telco").fit(df)
    with pytest.raises(InvalidRequest, match="usage_profile"):
        SimFarmKMeans(usage_profile="nonsense").fit(df)
    with pytest.raises(InvalidRequest, match="one value"):
        df["常量"] = "A"
        df["常量2"] = "A"
        KModesSegments(label="常量").evaluate(df.drop(columns="常量2"))
    m = SimFarmKMeans(n_clusters=4).fit(df.drop(columns=["空列"]))
    with pytest.raises(InvalidRequest, match="lacks feature"):
        m.predict_table(pd.DataFrame({"其他": [1, 2, 3]}))


def test_inferred_duplicate_columns_are_left_out_with_the_reason():
    df = telco_zh()
    df["年消费"] = df["月消费"] * 12  # the same figure twice (a charge that is a rate times a constant)
    m = GaussianMixtureSegments(max_components=2)
    m.fit(df)
    assert "年消费" not in m.binding_["features"] and "duplicates '月消费'" in m.binding_.dropped["年消费"]
    m = GaussianMixtureSegments(max_components=2, features=["月消费", "年消费"]).fit(df)  # bound: kept
    assert m.binding_["features"] == ["月消费", "年消费"]


@pytest.mark.slow
def test_a_run_on_a_workspace_table_records_binding_and_scores_keeping_columns(service, ws):
    from tests.analytics.conftest import TENANT

    df, params = _cases.em_case()
    service.workspaces.save_frame(TENANT, ws, "客户", df.head(1500), source="csv")
    r = service.runs.wait(TENANT, service.start_run(TENANT, "segments_em", workspace=ws, dataset="客户",
                                                    params={**params, "max_components": 4})["id"], 120)
    assert r["status"] == "succeeded", r["error"]
    assert r["binding"]["columns"]["label"] == "流失" and r["binding"]["columns"]["features"] == ["在网月数", "月消费",
                                                                                                  "累计消费"]
    assert {"segments", "clusters", "bic"} <= set(r["plots"]) and r["beats_baseline"] is True
    scored = service.workspaces.frame(TENANT, ws, service.score(TENANT, r["id"], ws, "客户", "细分")["name"])
    assert {"客户编号", "合约", "segment", "probability"} <= set(scored.columns) and "customerID" not in scored
    bad = service.runs.wait(TENANT, service.start_run(TENANT, "segments_kmodes", workspace=ws, dataset="客户",
                                                      params={"features": ["合约", "无此列"]})["id"], 60)
    assert bad["status"] == "failed" and "'无此列'" in bad["error"]


def test_bad_options_are_refused_at_construction():
    # the runner builds the model when a run starts: a bad option is a 400 then, not a failed job
    with pytest.raises(InvalidRequest, match="n_clusters must be a whole number >= 2"):
        SimFarmKMeans(n_clusters=1)
    with pytest.raises(InvalidRequest, match="n_clusters"):
        KModesSegments(n_clusters="many")
    with pytest.raises(InvalidRequest, match="test_size must be between 0 and 1"):
        GaussianMixtureSegments(test_size=30)
    with pytest.raises(InvalidRequest, match="max_components"):
        GaussianMixtureSegments(max_components=0)
    with pytest.raises(InvalidRequest, match="usage_profile"):
        check_params(SimFarmKMeans, {"usage_profile": "bogus"}) and SimFarmKMeans(usage_profile="bogus")
    assert SimFarmKMeans(n_clusters="8").n_clusters == "8"  # stored unchanged (sklearn's clone)
