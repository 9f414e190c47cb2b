"""User tables for the association entries (issue 10): baskets under other names and shapes.

- ``cross_sell_apriori`` was written for the IBM Telco service columns (a wide table); here it
  meets a long receipt table — the groceries baskets, one row per item, under Chinese column
  names (小票号 / 商品名称) — bound with ``session`` and ``item``.
- ``basket_item_cf`` was written for the groceries long table; here it meets a wide customer
  table — the IBM Telco customers with Chinese column names and 是/否 values (无互联网服务 for
  "no internet service"), the services bound with ``features``.
"""

from __future__ import annotations

from zhinao.analytics import datasets

ZH_SERVICES = {"PhoneService": "电话业务", "MultipleLines": "多线路", "InternetService": "宽带类型",
               "OnlineSecurity": "网络安全", "OnlineBackup": "在线备份", "DeviceProtection": "设备保护",
               "TechSupport": "技术支持", "StreamingTV": "流媒体电视", "StreamingMovies": "流媒体电影"}
ZH_VALUES = {"Yes": "是", "No": "否", "No internet service": "无互联网服务", "No phone service": "无电话服务",
             "Fiber optic": "光纤"}


def receipts():
    df = datasets.groceries_frame().rename(columns={"transaction_id": "小票号", "item": "商品名称"})
    return df, {"session": "小票号", "item": "商品名称", "min_support": 0.004, "min_confidence": 0.05, "max_len": 3}


def zh_customers():
    df = datasets.load_telco().rename(columns={"customerID": "客户编号", **ZH_SERVICES, "Churn": "是否流失"})
    for c in [*ZH_SERVICES.values(), "是否流失"]:
        df[c] = df[c].replace(ZH_VALUES)
    return df, {"features": list(ZH_SERVICES.values()), "id": "客户编号"}


CASES = {"cross_sell_apriori": receipts, "basket_item_cf": zh_customers}
