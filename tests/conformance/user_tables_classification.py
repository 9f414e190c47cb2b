"""User-table cases for the classifiers (issue 10): tables with column names the entries were not
written for, other label spellings, other real data (``CASES = {key: factory}``, see
tests/conformance/test_mining_models.py).

- IBM Telco as a Chinese operator's export: every column renamed into Chinese, labels 是/否,
  the senior flag True/False, a different row sample per case;
- Telco under English snake_case names with a boolean ``churned`` target;
- Chinese reviews (waimai, two classes written True/False: the boolean target that crashed
  text_naive_bayes) and online-shopping reviews by product category (ten classes).

No benchmark data (Orange) here: that is measured in bench/analytics.py, never tested on.
"""

from __future__ import annotations

import pandas as pd

from zhinao.analytics import datasets

ZH = {"customerID": "客户编号", "gender": "性别", "SeniorCitizen": "老年用户", "Partner": "有配偶", "Dependents": "有家属",
      "tenure": "在网月数", "PhoneService": "语音业务", "MultipleLines": "多线", "InternetService": "宽带类型",
      "OnlineSecurity": "网络安全", "OnlineBackup": "云备份", "DeviceProtection": "终端保障", "TechSupport": "技术支持",
      "StreamingTV": "视频点播", "StreamingMovies": "电影点播", "Contract": "合约类型", "PaperlessBilling": "电子账单",
      "PaymentMethod": "缴费方式", "MonthlyCharges": "月费", "TotalCharges": "累计费用", "Churn": "是否流失"}
YESNO = {"Yes": "是", "No": "否"}


def telco_zh(n: int = 2400, seed: int = 1) -> pd.DataFrame:
    t = datasets.load_telco().drop(columns=["TotalCharges_was_blank"]).sample(n, random_state=seed)
    t = t.reset_index(drop=True)
    for c in ("Partner", "Dependents", "PhoneService", "PaperlessBilling", "Churn"):
        t[c] = t[c].map(YESNO)
    t["SeniorCitizen"] = t["SeniorCitizen"].astype(bool)
    t["Contract"] = t["Contract"].map({"Month-to-month": "月付", "One year": "一年期", "Two year": "两年期"})
    return t.rename(columns=ZH)


def telco_snake(n: int = 2400, seed: int = 2) -> pd.DataFrame:
    t = datasets.load_telco().drop(columns=["TotalCharges_was_blank"]).sample(n, random_state=seed)
    t = t.reset_index(drop=True)
    t.columns = ["subscriber_key", "sex", "senior", "partner", "dependents", "months_active", "voice", "lines",
                 "internet", "security", "backup", "protection", "support", "tv", "movies", "contract", "paperless",
                 "payment", "monthly_fee", "lifetime_fee", "churned"]
    t["churned"] = t["churned"].eq("Yes")  # a real boolean column: True/False
    return t


def reviews_bool(n: int = 3000) -> pd.DataFrame:
    w = _shared("zh-review-sentiment/waimai_10k.csv").sample(n, random_state=3).reset_index(drop=True)
    return pd.DataFrame({"订单评价": w["text"].astype(str), "是否好评": w["label_id"].eq(1), "来源": w["domain"]})


def shopping_categories(n: int = 3000) -> pd.DataFrame:
    s = _shared("zh-review-sentiment/online_shopping_10_cats_part1.csv")
    s = s.sample(frac=1.0, random_state=4).groupby("category").head(400)  # up to 400 per category
    s = s.sample(min(n, len(s)), random_state=4).reset_index(drop=True)
    return pd.DataFrame({"评价内容": s["text"].astype(str), "品类": s["category"]})


def _shared(rel: str) -> pd.DataFrame:
    from pathlib import Path

    for root in (Path(__file__).resolve().parents[3] / "shared" / "data", Path("/work/shared/data")):
        if (root / rel).is_file():
            return pd.read_csv(root / rel)
    raise FileNotFoundError(rel)


CASES = {
    # target inferred from its name (是否流失), id (客户编号) inferred as the one id-like column
    "churn_logistic": lambda: (telco_zh(seed=1), {}),
    "churn_mlp": lambda: (telco_zh(seed=5), {"target": "是否流失", "positive": "是", "hidden": [16]}),
    "churn_gbm": lambda: (telco_snake(seed=2), {"target": "churned", "n_estimators": 60}),
    "churn_naive_bayes": lambda: (telco_snake(seed=6), {"target": "churned", "id": "subscriber_key"}),
    "churn_knn": lambda: (telco_zh(seed=7), {"target": "是否流失",
                                            "features": ["在网月数", "月费", "合约类型", "宽带类型", "缴费方式", "技术支持"]}),
    # 套餐匹配 on the Chinese export: the plan column, churn left out as an outcome
    "plan_tree": lambda: (telco_zh(seed=8), {"target": "合约类型", "exclude": ["是否流失"]}),
    # derived label from a renamed value column; its parts (tenure, monthly fee) excluded
    "value_svm": lambda: (telco_zh(1800, seed=9), {"value": "累计费用", "exclude": ["月费", "在网月数"]}),
    "churn_ft_transformer": lambda: (telco_snake(1600, seed=10), {"target": "churned", "max_epochs": 3,
                                                                  "time_budget_s": float("inf")}),
    "text_naive_bayes": lambda: (reviews_bool(), {"text": "订单评价", "target": "是否好评"}),
    # text column inferred (the one free-text column), ten product categories
    "text_knn": lambda: (shopping_categories(), {"target": "品类"}),
}
