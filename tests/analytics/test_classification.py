"""The classifiers on the analyst's own tables (issue 10): binding, labels as people write them,
evaluation tables operators use, refit, scoring that keeps the table, and bad input.

Tables are IBM Telco under other names and Chinese reviews (real data); the Orange churn files
are the benchmark's (bench/analytics.py) and never appear here.
"""

from __future__ import annotations

import io
import json

import joblib
import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog import catalogue
from zhinao.analytics.catalog.classification import ChurnLogistic, PlanTree, ValueSVM
from zhinao.analytics.catalog.tabular_nb_knn import ChurnKNN, ChurnNaiveBayes, MixedNB
from zhinao.analytics.catalog.text import NaiveBayesText
from zhinao.analytics.runs import check_params, jsonable
from zhinao.errors import InvalidRequest

CLASSIFIERS = ["churn_logistic", "churn_mlp", "churn_gbm", "plan_tree", "value_svm", "churn_ft_transformer",
               "churn_naive_bayes", "churn_knn", "text_naive_bayes", "text_knn"]


def renamed(n=1500, seed=0, churn=("流失", "在网")) -> pd.DataFrame:
    """Telco with other column names, no customerID, the churn flag spelled ``churn``."""
    t = datasets.load_telco().sample(n, random_state=seed).reset_index(drop=True)
    return pd.DataFrame({"在网月数": t["tenure"], "月费": t["MonthlyCharges"], "合约": t["Contract"],
                         "宽带": t["InternetService"], "技术支持": t["TechSupport"], "缴费": t["PaymentMethod"],
                         "状态": np.where(t["Churn"].eq("Yes"), churn[0], churn[1])})


def test_every_classifier_of_the_table_is_registered_with_roles():
    cat = catalogue()
    for key in CLASSIFIERS:
        info = cat[key].info
        assert info.task == "classification", key
        assert "target" in {r.name for r in info.roles}, key


def test_positive_class_as_people_write_it_and_the_explanation_speaks_of_the_users_columns():
    df = renamed()
    m = ChurnLogistic(target="状态")
    ev = m.evaluate(df)
    assert ev.explanation["target"] == {"column": "状态", "classes": ["在网", "流失"], "positive": "流失",
                                        "counts": {"在网": int((df["状态"] == "在网").sum()),
                                                   "流失": int((df["状态"] == "流失").sum())}}
    assert m.binding_.columns["features"] == ["在网月数", "月费", "合约", "宽带", "技术支持", "缴费"]
    assert "features" in m.binding_.inferred and m.binding_.get("id") is None
    text = json.dumps(jsonable(ev.explanation), ensure_ascii=False)
    assert "状态='流失'" in text and "Churn" not in text and "customerID" not in text
    assert ev.metrics["auc"] > 0.75 and ev.baseline["auc"] == 0.5
    # the hold-out split is shown
    assert ev.explanation["split"]["train_rows"] + ev.explanation["split"]["test_rows"] == len(df)
    # the same labels spelled in English give the same model (positive detected either way)
    en = df.assign(状态=df["状态"].map({"流失": "churn", "在网": "stay"}))
    ev_en = ChurnLogistic(target="状态").evaluate(en)
    assert ev_en.metrics["auc"] == pytest.approx(ev.metrics["auc"])


def test_ambiguous_labels_need_positive_and_a_wrong_positive_names_the_values():
    df = renamed(churn=("A", "B"))
    with pytest.raises(InvalidRequest, match="positive") as e:
        ChurnLogistic(target="状态").evaluate(df)
    assert "'A'" in e.value.message and "'B'" in e.value.message
    ev = ChurnLogistic(target="状态", positive="A").evaluate(df)
    assert ev.explanation["target"]["positive"] == "A" and ev.metrics["auc"] > 0.75
    with pytest.raises(InvalidRequest, match="not a value of"):
        ChurnLogistic(target="状态", positive="C").evaluate(df)


def test_lift_threshold_tables_and_interactive_plots():
    ev = ChurnNaiveBayes(target="状态").evaluate(renamed(seed=3))
    lift = ev.explanation["lift_by_decile"]
    assert [r["decile"] for r in lift] == list(range(1, 11))
    assert lift[0]["lift"] > 1.5 and lift[-1]["cumulative_capture"] == pytest.approx(1.0)
    assert sum(r["rows"] for r in lift) == ev.explanation["split"]["test_rows"]
    th = ev.explanation["thresholds"]
    assert [r["threshold"] for r in th] == pytest.approx([0.1 * i for i in range(1, 10)])
    assert th[0]["flagged_share"] >= th[-1]["flagged_share"]
    assert {"roc", "lift", "importance", "thresholds", "vs_baseline"} <= set(ev.plots)
    assert ev.plots["lift"]["type"] == "lift" and len(ev.plots["lift"]["lift"]) == 10
    json.dumps(ev.plots, allow_nan=False)
    assert ev.explanation["evidence"]  # naive Bayes says which values move the odds


def test_scoring_keeps_every_column_adds_score_and_prediction_ranked_with_an_explicit_row():
    df = renamed(seed=4)
    m = ChurnKNN(target="状态")
    m.evaluate(df)
    new = df.drop(columns=["状态"]).head(300)
    out = m.predict_table(new)
    assert list(out.columns) == ["row", *new.columns, "score", "prediction", "decile"]
    assert "customerID" not in out.columns and len(out) == 300
    assert out["score"].is_monotonic_decreasing and out["score"].between(0, 1).all()
    assert set(out["prediction"]) <= {"流失", "在网"}
    assert (out["prediction"] == "流失").equals(out["score"] >= 0.5)
    # the row column maps every scored row back to its input row
    back = out.sort_values("row").reset_index(drop=True)
    pd.testing.assert_frame_equal(back[list(new.columns)], new.reset_index(drop=True))
    assert out["decile"].iloc[0] == 1 and out["decile"].iloc[-1] == 10
    # the score is the probability of the positive class
    assert np.allclose(np.sort(m.predict_proba(new)[:, 1])[::-1], out["score"].to_numpy())


def test_an_id_column_is_kept_and_never_a_feature():
    t = datasets.load_telco().head(1200)
    m = ChurnLogistic()
    m.fit(t)
    assert m.binding_.get("id") == "customerID" and "customerID" not in m.feature_names_in_
    out = m.predict_table(t.head(100))
    assert "row" not in out.columns and out["customerID"].isin(t["customerID"]).all()


def test_refit_on_all_rows_after_the_evaluation_says_which_rows_it_saw():
    df = renamed(seed=5)
    a, b = ChurnLogistic(target="状态"), ChurnLogistic(target="状态", refit=True)
    ev_a, ev_b = a.evaluate(df), b.evaluate(df)
    assert ev_a.metrics == ev_b.metrics  # the metrics are the hold-out fit's either way
    assert ev_a.explanation["fitted_on"].startswith(f"the {ev_a.explanation['split']['train_rows']} training rows")
    assert ev_b.explanation["fitted_on"].startswith(f"all {len(df)} rows")
    ca = a.pipeline_.named_steps["model"].coef_
    cb = b.pipeline_.named_steps["model"].coef_
    refit = ChurnLogistic(target="状态").fit(df).pipeline_.named_steps["model"].coef_
    assert not np.allclose(ca, cb) and np.allclose(cb, refit)


def test_text_naive_bayes_on_a_boolean_target_no_longer_crashes():
    # the crash: a boolean target made the baseline's metrics fail (binary vs unknown)
    t = datasets.load_telco()
    df = pd.DataFrame({"套餐描述": t["Contract"] + " " + t["InternetService"] + " " + t["PaymentMethod"],
                       "已流失": t["Churn"].eq("Yes")})
    m = NaiveBayesText(text="套餐描述", target="已流失")
    ev = m.evaluate(df)
    assert ev.explanation["target"]["positive"] is True
    assert ev.metrics["macro_f1"] > ev.baseline["macro_f1"] and ev.metrics["auc"] > 0.7
    assert "lift_by_decile" in ev.explanation and "roc" in ev.plots
    out = m.predict_table(df.head(50))
    assert {"套餐描述", "已流失", "score", "prediction"} <= set(out.columns)
    assert set(out["prediction"]) <= {True, False}


def test_text_refit_fits_every_row_after_the_evaluation():
    t = datasets.load_telco().head(1500)
    df = pd.DataFrame({"描述": t["Contract"] + " " + t["PaymentMethod"], "流失": t["Churn"]})
    a, b = NaiveBayesText(text="描述", target="流失"), NaiveBayesText(text="描述", target="流失", refit=True)
    ev_a, ev_b = a.evaluate(df), b.evaluate(df)
    assert ev_a.metrics == ev_b.metrics and ev_b.explanation["fitted_on"].startswith("all 1500 rows")
    counts = lambda m: m.pipeline_.named_steps["clf"].class_count_.sum()  # noqa: E731
    assert counts(a) == ev_a.explanation["split"]["train_rows"] and counts(b) == 1500


def test_legacy_parameter_names_still_reach_the_roles():
    assert check_params(NaiveBayesText, {"text_column": "标题", "target": "类"}) == {"text": "标题", "target": "类"}
    assert check_params(ChurnLogistic, {"id_column": "编号", "feature_columns": ["a"]}) == {"id": "编号",
                                                                                            "features": ["a"]}
    assert check_params(PlanTree, {}, preset="plan_matching") == {"target": "Contract"}


def test_plan_tree_matches_plans_and_marks_migration_candidates():
    t = datasets.load_telco().sample(2500, random_state=0)
    m = PlanTree(**check_params(PlanTree, {}, preset="plan_matching"))
    ev = m.evaluate(t)
    assert ev.explanation["target"]["column"] == "Contract" and "Churn" not in m.feature_names_in_
    assert ev.metrics["macro_f1"] > ev.baseline["macro_f1"] and "class: Two year" in ev.explanation["rules"]
    assert {"per_class_f1", "confusion", "importance"} <= set(ev.plots)
    out = m.predict_table(t.head(200))
    assert set(out["prediction"]) <= {"Month-to-month", "One year", "Two year"}
    flagged = out[out["migration_candidate"]]
    assert (flagged["prediction"] != flagged["Contract"]).all()
    assert out["migration_candidate"].iloc[: len(flagged)].all()  # candidates first


def test_value_svm_derives_its_label_from_the_training_rows_or_takes_a_target():
    df = renamed(1200, seed=6)
    df["累计"] = df["在网月数"] * df["月费"]
    m = ValueSVM(value="累计", exclude=["在网月数", "月费"])
    ev = m.evaluate(df)
    assert ev.explanation["split"]["method"].startswith("random hold-out (the value threshold")
    tr_n = ev.explanation["split"]["train_rows"]
    assert tr_n == int(len(df) * 0.75)
    assert m.threshold_ == ev.explanation["threshold"] and "累计" not in m.feature_names_in_
    assert not {"在网月数", "月费"} & set(m.feature_names_in_)
    assert ev.explanation["target"]["positive"] == "high" and ev.metrics["auc"] > 0.6
    # an ordinary target works too
    m2 = ValueSVM(target="状态")
    ev2 = m2.evaluate(df)
    assert ev2.explanation["target"]["column"] == "状态" and "累计" in m2.feature_names_in_
    with pytest.raises(InvalidRequest, match="value="):
        ValueSVM().evaluate(df)


def test_mixed_naive_bayes_counts_the_prior_once():
    X = pd.DataFrame({"n": [1.0, 2.0, 3.0, 10.0, 11.0, 12.0], "c": ["a", "a", "b", "b", "b", "a"]})
    y = np.array([0, 0, 0, 1, 1, 1])
    nb = MixedNB(("n",), ("c",)).fit(X, y)
    from sklearn.naive_bayes import CategoricalNB, GaussianNB

    g = GaussianNB().fit(X[["n"]].to_numpy(), y)
    c = CategoricalNB(min_categories=[3]).fit(np.array([[0], [0], [1], [1], [1], [0]]), y)
    expect = g.predict_joint_log_proba(X[["n"]].to_numpy()) + c.predict_joint_log_proba(
        np.array([[0], [0], [1], [1], [1], [0]])) - np.log(g.class_prior_)
    expect = np.exp(expect - expect.max(axis=1, keepdims=True))
    assert np.allclose(nb.predict_proba(X), expect / expect.sum(axis=1, keepdims=True))
    # a category unseen in training is not an error
    assert nb.predict_proba(pd.DataFrame({"n": [2.0], "c": ["zzz"]})).shape == (1, 2)


@pytest.mark.parametrize("params, df_change, match", [
    ({"target": "状态", "features": ["在网月数", "无此列"]}, None, "'无此列'"),
    ({"target": "无此列"}, None, "'无此列'"),
    ({"target": "状态"}, lambda d: d.assign(状态="在网"), "constant"),
    ({"target": "状态", "features": ["在网月数", "空列"]}, lambda d: d.assign(空列=None), "'空列'"),
    ({"target": "状态", "exclude": ["无此列"]}, None, "exclude"),
    ({"target": "月费"}, None, "distinct values"),
    ({"target": "合约", "positive": "是"}, None, "two-class"),
    ({}, lambda d: d.drop(columns=["状态"]), "target"),
])
def test_bad_input_is_a_clear_message(params, df_change, match):
    df = renamed(400, seed=7)
    if df_change:
        df = df_change(df)
    with pytest.raises(InvalidRequest, match=match):
        ChurnLogistic(**params).evaluate(df)


def test_scoring_a_table_without_the_features_names_them():
    m = ChurnLogistic(target="状态").fit(renamed(600, seed=8))
    with pytest.raises(InvalidRequest, match="'合约'"):
        m.predict_table(renamed(50, seed=9).drop(columns=["合约"]))


def test_fitted_classifier_pickles_and_scores_the_same():
    df = renamed(800, seed=10)
    m = ChurnNaiveBayes(target="状态").fit(df)
    buf = io.BytesIO()
    joblib.dump(m, buf)
    buf.seek(0)
    pd.testing.assert_frame_equal(m.predict_table(df.head(80)), joblib.load(buf).predict_table(df.head(80)))


# -- a GBK file with a 是/否 target, through the workspace import and a run ----------------------

def test_gbk_file_with_a_是否_target_reads_and_runs_end_to_end(service, ws):
    t = datasets.load_telco().sample(1500, random_state=11).reset_index(drop=True)
    df = pd.DataFrame({"用户号码": [f"1390000{i:04d}" for i in range(len(t))], "在网月数": t["tenure"],
                       "月租费": t["MonthlyCharges"], "合约类型": t["Contract"].map(
                           {"Month-to-month": "按月", "One year": "一年", "Two year": "两年"}),
                       "宽带": t["InternetService"].map({"DSL": "铜线", "Fiber optic": "光纤", "No": "无"}),
                       "是否流失": t["Churn"].map({"Yes": "是", "No": "否"})})
    raw = df.to_csv(index=False).encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really GBK
    TENANT = 1
    ds = service.workspaces.import_bytes(TENANT, ws, raw, "客户流失.csv", name="gbk_churn")
    assert ds["source_detail"]["encoding"] in ("gb18030", "gbk")
    back = service.workspaces.frame(TENANT, ws, "gbk_churn")
    assert list(back.columns) == list(df.columns)
    assert back["是否流失"].value_counts().to_dict() == df["是否流失"].value_counts().to_dict()
    r = service.start_run(TENANT, "churn_gbm", workspace=ws, dataset="gbk_churn",
                          params={"target": "是否流失", "n_estimators": 40}, score_table="gbk_scores")
    r = service.runs.wait(TENANT, r["id"], timeout=180)
    assert r["status"] == "succeeded", r["error"]
    expl = r["explanation"]
    assert expl["target"]["positive"] == "是"
    assert expl["target"]["counts"]["是"] == int((df["是否流失"] == "是").sum()) > 0  # not all-negative
    assert r["metrics"]["auc"] > 0.75 and r["beats_baseline"] is True
    scored = service.workspaces.frame(TENANT, ws, "gbk_scores")
    assert {"用户号码", "是否流失", "score", "prediction"} <= set(scored.columns)
    assert set(scored["prediction"]) <= {"是", "否"} and "customerID" not in scored.columns
    top = scored.head(len(scored) // 10)
    assert (top["是否流失"] == "是").mean() > 2 * (scored["是否流失"] == "是").mean()
