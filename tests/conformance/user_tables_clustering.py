"""User-table cases for the clustering entries (issue 10): tables the entries were not written for.

The IBM Telco customers as a Chinese operator's analyst would export them: every column renamed
into Chinese, yes/no written 是/否 (or a boolean True/False churn flag), no ``customerID``, no
``Churn``, no injected SIM farm. The bindings are the ones a user passes on the command line.
"""

from __future__ import annotations

import pandas as pd

from zhinao.analytics import datasets

ZH = {"customerID": "客户编号", "gender": "性别", "SeniorCitizen": "老年用户", "Partner": "有配偶",
      "Dependents": "有家属", "tenure": "在网月数", "PhoneService": "语音业务", "MultipleLines": "多线",
      "InternetService": "宽带类型", "OnlineSecurity": "网络安全", "OnlineBackup": "在线备份",
      "DeviceProtection": "设备保护", "TechSupport": "技术支持", "StreamingTV": "网络电视",
      "StreamingMovies": "网络电影", "Contract": "合约", "PaperlessBilling": "电子账单", "PaymentMethod": "付款方式",
      "MonthlyCharges": "月消费", "TotalCharges": "累计消费", "Churn": "是否流失"}
VALUES = {"Yes": "是", "No": "否", "No internet service": "无宽带", "No phone service": "无语音",
          "Male": "男", "Female": "女", "Month-to-month": "按月", "One year": "一年", "Two year": "两年",
          "DSL": "DSL", "Fiber optic": "光纤"}


def telco_zh() -> pd.DataFrame:
    df = datasets.load_telco().drop(columns=["TotalCharges_was_blank"]).rename(columns=ZH)
    for c in df.columns:
        if df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            if c != "客户编号":
                df[c] = df[c].map(lambda v: VALUES.get(v, v))
    return df


def sim_farm_case():
    # unsupervised: no label of farmed cards exists on a real table; features inferred
    return telco_zh(), {"id": "客户编号", "n_clusters": 8}


def kmodes_case():
    return telco_zh(), {"label": "是否流失", "id": "客户编号"}


def em_case():
    df = telco_zh()
    df["流失"] = df.pop("是否流失").eq("是")  # a boolean True/False churn flag
    return df, {"label": "流失"}


CASES = {"sim_farm_kmeans": sim_farm_case, "segments_kmodes": kmodes_case, "segments_em": em_case}
