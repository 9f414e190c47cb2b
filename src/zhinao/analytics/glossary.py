"""The default telecom business glossary (zh + en) and column descriptions of the demo data.

A new workspace starts with this glossary; tenants edit it. The analyst agent reads the
glossary next to the schema, so definitions say how to compute a term from columns.
"""

from __future__ import annotations

#: (term, term_en, definition_zh, definition_en, formula)
DEFAULT_GLOSSARY: list[tuple[str, str, str, str, str]] = [
    ("ARPU", "Average Revenue Per User", "每用户平均收入：统计期内通信收入除以平均用户数，衡量用户价值。",
     "Average revenue per user: period revenue divided by the average number of users.",
     "SUM(revenue) / AVG(active_users); Telco demo: AVG(MonthlyCharges)"),
    ("DOU", "Data Of Usage", "户均移动互联网接入流量（月），单位 GB 或 MB。",
     "Average mobile data usage per user per month (GB or MB).", "SUM(data_volume) / COUNT(DISTINCT user)"),
    ("MOU", "Minutes Of Usage", "户均通话分钟数（月），主叫与被叫合计。",
     "Average voice minutes per user per month (originating + terminating).",
     "SUM(call_minutes) / COUNT(DISTINCT user)"),
    ("离网率", "Churn rate", "统计期内离网（销户、转网）用户数占期初用户数的比例。",
     "Share of subscribers who leave (cancel or port out) during the period.",
     "COUNT(churned) / COUNT(users at start); Telco demo: AVG(Churn = 'Yes')"),
    ("在网时长", "Tenure", "用户自入网起累计在网的月数。", "Months since the customer joined.", "Telco demo: tenure"),
    ("合约类型", "Contract type", "用户签订的合约期限：月付、一年、两年；长期合约用户离网率低。",
     "Commitment term: month-to-month, one year, two years; longer terms churn less.", "Telco demo: Contract"),
    ("存量保有", "Base retention", "针对现有用户的维系挽留工作，核心是离网预警与精准维系。",
     "Keeping existing customers: churn warning and targeted retention offers.", ""),
    ("离网预警", "Churn warning", "用模型预测用户未来离网概率并排序，交给维系渠道提前干预。",
     "Predicting and ranking each customer's churn probability so retention can act first.", ""),
    ("套餐匹配", "Plan matching", "根据用户业务使用行为推荐最合适的资费套餐或合约。",
     "Recommending the tariff plan or contract that fits a customer's usage.", ""),
    ("话务量", "Traffic volume (Erlang)", "一段时间内话务/业务活动的总量，小时话务量以爱尔兰计。",
     "Total call/activity volume in a period; hourly voice traffic in Erlangs.", "Milan demo: activity"),
    ("忙时", "Busy hour", "一天中业务量最大的小时，网络容量按忙时规划。",
     "The hour of the day with the highest traffic; capacity is planned for it.", ""),
    ("养卡", "SIM farming", "批量持有号卡并以异常方式使用（薅羊毛、诈骗、刷量）的行为，需预警。",
     "Holding many SIM cards used abnormally (promotion abuse, fraud, fake traffic).", ""),
    ("携号转网", "Number portability", "用户保留号码转到其他运营商，是离网的一种。",
     "Moving to another operator while keeping the number; a form of churn.", ""),
    ("渗透率", "Penetration rate", "使用某业务（如5G、宽带）的用户占总用户的比例。",
     "Share of users who take a given service (5G, broadband ...).", "COUNT(users with service) / COUNT(users)"),
    ("融合业务", "Converged bundle", "移动、宽带、固话、电视等多业务捆绑的套餐。",
     "A bundle of mobile, broadband, fixed line and TV.", ""),
    ("CHBN", "Customer, Home, Business, New", "运营商的四大市场：个人、家庭、政企、新兴。",
     "The operator's four markets: customers, homes, businesses, new services.", ""),
    ("NPS", "Net Promoter Score", "净推荐值：推荐者比例减贬损者比例。",
     "Share of promoters minus share of detractors.", "(promoters - detractors) / respondents"),
    ("投诉率", "Complaint rate", "统计期内投诉用户数（或投诉量）与用户数之比，常以每万户计。",
     "Complaints per user (often per 10,000 users) in the period.", "COUNT(complaints) / COUNT(users) * 10000"),
    ("LTV", "Customer lifetime value", "客户生命周期价值：用户在网期间贡献的累计收入。",
     "Revenue a customer brings over their whole tenure.", "Telco demo: TotalCharges"),
    ("交叉销售", "Cross-selling", "向已有用户推荐其尚未订购的相关业务。",
     "Offering existing customers related services they do not yet have.", ""),
]

TELCO_COLUMNS: dict[str, str] = {
    "customerID": "客户编号（唯一） / customer id (unique)",
    "gender": "性别 Male/Female / gender",
    "SeniorCitizen": "是否老年用户 1/0 / senior citizen flag",
    "Partner": "是否有伴侣 / has a partner",
    "Dependents": "是否有家属需抚养 / has dependents",
    "tenure": "在网时长（月） / tenure in months",
    "PhoneService": "是否开通语音业务 / has phone service",
    "MultipleLines": "是否多线路 / multiple lines",
    "InternetService": "宽带类型 DSL / Fiber optic / No / internet service type",
    "OnlineSecurity": "在线安全服务 / online security add-on",
    "OnlineBackup": "在线备份服务 / online backup add-on",
    "DeviceProtection": "终端保护服务 / device protection add-on",
    "TechSupport": "技术支持服务 / tech support add-on",
    "StreamingTV": "流媒体电视 / streaming TV",
    "StreamingMovies": "流媒体电影 / streaming movies",
    "Contract": "合约类型：月付/一年/两年 / contract term",
    "PaperlessBilling": "电子账单 / paperless billing",
    "PaymentMethod": "支付方式 / payment method",
    "MonthlyCharges": "月费（美元），可作 ARPU / monthly charge (USD), the ARPU basis",
    "TotalCharges": "累计消费（美元）；在网 0 个月的 11 名客户原为空白，已置 0 / total charges (USD); blank for the 11 tenure-0 customers, set to 0",
    "TotalCharges_was_blank": "TotalCharges 原值是否为空白（1=是） / 1 where TotalCharges was blank in the source",
    "Churn": "上月是否离网 Yes/No / churned within the last month",
}

DEMO_COLUMNS: dict[str, dict[str, str]] = {
    "telco": TELCO_COLUMNS,
    "milan_total": {"hour_index": "小时序号（0 起） / hour index from 0",
                    "timestamp": "推断的时间戳（CET，起点 2013-11-01） / inferred timestamp (CET)",
                    "activity": "211 个小区的小时话务活动合计 / hourly CDR activity summed over 211 cells"},
    "thucnews": {"text": "新闻标题 / news title", "label": "主题（英文） / topic (English)",
                 "label_zh": "主题（中文） / topic (Chinese)", "label_id": "主题编号 0-9 / topic id",
                 "split": "原始划分 dev/test / the source's split"},
    "groceries": {"transaction_id": "交易（购物篮）编号 / basket id", "item": "商品类别 / product category"},
}
