"""Column roles (issue 10): kinds, binding, inference, labels as people write them, lift tables.

Tables here are built in the test from real shipped data (IBM Telco) renamed the way a
customer's export names things, so nothing depends on the demo's column names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.roles import (Role, bind, binary_target, column_kind, lift_table, plain,
                                            positive_class, threshold_table)
from zhinao.errors import InvalidRequest

ROLES = (Role("target", kinds=("boolean", "categorical"), demo="Churn", infer="name", help_en="t", help_zh="t"),
         Role("features", many=True, infer="rest", help_en="f", help_zh="f"),
         Role("id", kinds=("id",), required=False, demo="customerID", infer="kind", help_en="i", help_zh="i"))


@pytest.fixture(scope="module")
def renamed():
    t = datasets.load_telco().head(400).copy()
    t = t.rename(columns={"customerID": "用户编号", "tenure": "在网月数", "MonthlyCharges": "月费",
                          "Contract": "合约类型", "Churn": "是否流失"})
    t["是否流失"] = t["是否流失"].map({"Yes": "是", "No": "否"})
    t["备注"] = None  # an empty column a real export has
    t["常量"] = "x"
    return t


def test_column_kinds_from_values_and_names(renamed):
    k = {c: column_kind(renamed[c], c) for c in renamed.columns}
    assert k["用户编号"] == "id" and k["在网月数"] == "numeric" and k["合约类型"] == "categorical"
    assert k["是否流失"] == "boolean" and k["备注"] == "empty"
    assert column_kind(pd.Series(pd.date_range("2026-01-01", periods=50, freq="D").astype(str)), "d") == "datetime"
    assert column_kind(pd.Series(["0138%08d" % i for i in range(50)]), "phone") == "id"
    long = pd.Series([f"客户反映第{i}次网络很慢，希望尽快处理并回电说明原因" for i in range(50)])
    assert column_kind(long, "内容") == "text"


def test_binding_infers_target_by_name_and_features_by_kind(renamed):
    b = bind(ROLES, renamed, {"target": "是否流失"})
    assert b["target"] == "是否流失" and b["id"] is None or b.get("id") == "用户编号"
    feats = b["features"]
    assert "用户编号" not in feats and "是否流失" not in feats and "在网月数" in feats and "合约类型" in feats
    assert b.dropped["备注"] == "entirely empty" and b.dropped["常量"] == "constant"
    assert "features" in b.inferred and "target" not in b.inferred
    assert b.to_dict()["kinds"]["在网月数"] == "numeric"


def test_unknown_column_names_the_role_and_the_columns(renamed):
    with pytest.raises(InvalidRequest, match="role 'target' is bound to column 'Churn'.*columns: 用户编号"):
        bind(ROLES, renamed, {"target": "Churn"})


def test_given_feature_that_is_all_null_is_refused(renamed):
    with pytest.raises(InvalidRequest, match="'备注'.*empty"):
        bind(ROLES, renamed, {"target": "是否流失", "features": ["在网月数", "备注"]})


def test_features_as_json_or_comma_list(renamed):
    a = bind(ROLES, renamed, {"target": "是否流失", "features": '["在网月数", "月费"]'})
    b = bind(ROLES, renamed, {"target": "是否流失", "features": "在网月数, 月费"})
    assert a["features"] == b["features"] == ["在网月数", "月费"]


def test_ambiguous_inference_asks_for_the_binding():
    df = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) * 2})
    roles = (Role("value", kinds=("numeric",), infer="kind", help_en="v", help_zh="v"),)
    with pytest.raises(InvalidRequest, match="-p value=COLUMN"):
        bind(roles, df, {})


@pytest.mark.parametrize("values,positive", [
    ([True, False], True), (["Yes", "No"], "Yes"), (["是", "否"], "是"), ([1, 0], 1), (["流失", "在网"], "流失"),
    (["stay", "churn"], "churn"), (["False", "True"], "True"), ([0.0, 1.0], 1.0)])
def test_positive_class_as_people_write_it(values, positive):
    assert positive_class(pd.Series(values * 5), "y") == positive


def test_ambiguous_positive_label_is_a_clear_error_with_plain_values():
    with pytest.raises(InvalidRequest) as e:
        positive_class(pd.Series(["A类", "B类"] * 5), "客户类别")
    assert "-p positive=" in e.value.message and "np." not in e.value.message
    with pytest.raises(InvalidRequest, match="3 classes"):
        positive_class(pd.Series(["a", "b", "c"]), "y")
    # explicit positive: must be one of the values, matched as text
    assert positive_class(pd.Series(["A类", "B类"]), "y", explicit="B类") == "B类"
    assert positive_class(pd.Series([np.True_, np.False_]), "y", explicit="true") is True
    with pytest.raises(InvalidRequest, match="not a value"):
        positive_class(pd.Series(["A类", "B类"]), "y", explicit="C类")


def test_binary_target_maps_to_0_1():
    y01, pos = binary_target(pd.Series(["是", "否", None, "是"]), "y")
    assert pos == "是" and y01.tolist()[:2] == [1.0, 0.0] and np.isnan(y01.iloc[2])
    assert plain(np.False_) is False and isinstance(plain(np.int64(3)), int)


def test_lift_and_threshold_tables():
    rng = np.random.default_rng(0)
    y = rng.random(1000) < 0.2
    s = np.where(y, rng.random(1000) * 0.5 + 0.5, rng.random(1000) * 0.7)
    lt = lift_table(y.astype(float), s)
    assert len(lt) == 10 and sum(r["rows"] for r in lt) == 1000
    assert lt[0]["lift"] > 2 and abs(lt[-1]["cumulative_capture"] - 1.0) < 1e-9
    assert lt[0]["min_score"] >= lt[1]["max_score"]
    tt = threshold_table(y.astype(float), s)
    assert tt[0]["flagged_share"] >= tt[-1]["flagged_share"]
    assert all(0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 for r in tt)


def test_legacy_columns_parameter_maps_to_features():
    # segments_em / segments_kmodes took `columns=` before issue 10; old CLI calls keep working
    from zhinao.analytics.catalog.clustering import GaussianMixtureSegments
    from zhinao.analytics.runs import check_params

    assert check_params(GaussianMixtureSegments, {"columns": ["tenure"]}) == {"features": ["tenure"]}


def test_target_with_one_class_names_the_value_plainly():
    from zhinao.analytics.catalog.protocol import require_target

    with pytest.raises(InvalidRequest) as e:
        require_target(pd.Series([False] * 50), "Churn")
    assert "(False)" in e.value.message and "np." not in e.value.message
