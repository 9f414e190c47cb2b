"""Classification family: the talk's 离网预警, 套餐匹配, 客户价值分类 on any customer table.

Five entries over the shared tabular classifier (:mod:`.tabular`: roles target / features /
id, median-imputed standardised numbers, one-hot categories, a stratified 75/25 hold-out
with a fixed seed against a prior-class baseline, lift and threshold tables, scoring that
keeps every input column). The IBM Telco columns are only the demo defaults; an analyst's
table binds its own (``-p target=Churn``, ``-p features='["a","b"]'``, ``-p positive=是``).

- ``churn_logistic``  logistic regression 核心客户离网预警: coefficients as odds ratios.
- ``churn_mlp``       neural network 客户离网预警（存量保有）: permutation importance.
- ``churn_gbm``       gradient boosting, the comparison entry: impurity importances.
- ``plan_tree``       decision tree; preset 套餐匹配 binds target=Contract on Telco: recommend
  the contract type customers with the same services, usage and tenure hold (a
  recommendation that differs from the current plan marks a migration candidate). Churn is
  left out of that preset's features (an outcome, observed later). On any other target it
  is a readable rule model.
- ``value_svm``       SVM 客户价值分类: by default its label is *derived* — a ``value`` column
  (Telco: ``TotalCharges``) in the top quartile, threshold from the training rows only, the
  revenue columns left out of the features (revenue is almost their product: leakage). It
  also takes an ordinary ``target``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_rows, to_numeric
from zhinao.analytics.catalog.roles import Binding, Preset, Role, show
from zhinao.analytics.catalog.tabular import (BINARY_METRICS, ID_ROLE, MIN_ROWS, MULTI_METRICS, TEST_SIZE,
                                              TabularClassifier, features_role, target_role)
from zhinao.errors import InvalidRequest

SERVICES = ["PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup",
            "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]
PROFILE = ["gender", "SeniorCitizen", "Partner", "Dependents"]
ACCOUNT = ["Contract", "PaperlessBilling", "PaymentMethod"]
CHARGES = ["tenure", "MonthlyCharges", "TotalCharges"]
CHURN_FEATURES = tuple(PROFILE + SERVICES + ACCOUNT + CHARGES)
PLAN_FEATURES = tuple(PROFILE + SERVICES + ["PaperlessBilling", "PaymentMethod", "tenure", "MonthlyCharges"])
VALUE_FEATURES = tuple(PROFILE + SERVICES + ACCOUNT)

CHURN_ROLES = (target_role("Churn"), features_role(CHURN_FEATURES), ID_ROLE)


def churn_info(key: str, name_zh: str, name_en: str, algorithm: str, presets: tuple[Preset, ...],
               roles: tuple[Role, ...] = CHURN_ROLES) -> ModelInfo:
    return ModelInfo(key=key, name_zh=name_zh, name_en=name_en, algorithm=algorithm, theme="classification",
                     application_zh="识别有离网倾向的客户，按风险排序供维系挽留（任意客户表：绑定目标列与特征列）",
                     application_en="Rank customers by churn risk for retention campaigns (any customer table: "
                                    "bind the target and feature columns)",
                     inputs="one row per customer; target: a two-class column (Churn Yes/No, True/False, 是/否 …); "
                            "features: the other columns (default: every usable one)",
                     metrics=BINARY_METRICS, dataset="telco", task="classification", roles=roles, presets=presets)


def churn_preset(key: str = "churn_warning", zh: str = "离网预警", en: str = "Churn warning",
                 **params: Any) -> Preset:
    return Preset(key, zh, en, params=params, note_en="Target: the churn flag of the table (the demo: Churn); "
                  "scores rank customers for retention, the top decile first.",
                  note_zh="目标为表中的离网标记（演示数据为 Churn）；按评分排序，优先维系最高十分位客户。")


STUDENT = Preset("student_identification", "学生客户识别", "Student customer identification", params={"C": 0.5},
                 note_en="Bind target= to the column marking known students (campus plans, ID checks); the "
                         "model ranks the other customers by how student-like they are.",
                 note_zh="将 target 绑定到已知学生标记列（校园套餐、实名信息）；模型按相似度给其余客户排序。")


@register
class ChurnLogistic(TabularClassifier):
    info = churn_info("churn_logistic", "核心客户离网预警（逻辑回归）", "Core-customer churn warning (logistic regression)",
                      "logistic regression", (churn_preset("core_churn_warning", "核心客户离网预警",
                                                           "Core-customer churn warning"), STUDENT))
    purpose_en = "Scores rank retention priority; coefficients read as odds ratios."

    def __init__(self, target: Any = None, features: Any = None, id: Any = None, positive: Any = None,  # noqa: A002
                 exclude: Any = None, refit: bool = False, C: float = 1.0, random_state: int = 42):
        self.target, self.features, self.id, self.positive = target, features, id, positive
        self.exclude, self.refit, self.C, self.random_state = exclude, refit, C, random_state

    def _estimator(self, n_classes: int):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(self.C), max_iter=2000)

    def _explain(self, X_test, codes):
        model = self.pipeline_.named_steps["model"]
        names = self._transformed_names()
        if len(self.labels_) == 2:
            coef = model.coef_[0]
            top = sorted(zip(names, map(float, coef)), key=lambda kv: -abs(kv[1]))
            expl = {"coefficients": [{"feature": n, "coef": c, "odds_ratio": float(np.exp(c))} for n, c in top],
                    "intercept": float(model.intercept_[0]),
                    "notes": [f"Coefficients are per standard deviation for numbers and per category (one-hot) "
                              f"otherwise; odds_ratio > 1 raises the odds of {self.target_}={show(self.positive_)}."]}
        else:
            coef = np.abs(model.coef_).max(axis=0)
            expl = {"coefficients": {str(lab): sorted(({"feature": n, "coef": float(c)} for n, c in zip(names, row)),
                                                      key=lambda d: -abs(d["coef"]))[:15]
                                     for lab, row in zip(self.labels_, model.coef_)},
                    "notes": ["One coefficient vector per class (multinomial); the chart shows the largest "
                              "absolute coefficient of each feature over the classes."]}
        title = f"逻辑回归系数 Coefficients ({self.target_} log-odds)"
        # the coefficients are this model's importance: one spec under the name every classifier uses
        return (expl, {"coefficients": charts.bar_chart(names, coef, title)},
                {"importance": plots.bar(names, coef, title, series_name="coef")})


@register
class ChurnMLP(TabularClassifier):
    info = churn_info("churn_mlp", "客户离网预警（存量保有，神经网络）", "Churn warning for base retention (neural network)",
                      "multi-layer perceptron", (churn_preset("base_retention", "客户离网预警（存量保有）",
                                                              "Churn warning for base retention"),))
    purpose_en = "A small neural network (two hidden layers, early stopping)."

    def __init__(self, target: Any = None, features: Any = None, id: Any = None, positive: Any = None,  # noqa: A002
                 exclude: Any = None, refit: bool = False, hidden: tuple[int, ...] = (32, 16), alpha: float = 1e-3,
                 random_state: int = 42):
        self.target, self.features, self.id, self.positive = target, features, id, positive
        self.exclude, self.refit, self.hidden, self.alpha, self.random_state = exclude, refit, hidden, alpha, random_state

    def _estimator(self, n_classes: int):
        from sklearn.neural_network import MLPClassifier

        hidden = (int(self.hidden),) if isinstance(self.hidden, (int, float)) else tuple(int(h) for h in self.hidden)
        return MLPClassifier(hidden_layer_sizes=hidden, alpha=float(self.alpha), early_stopping=True,
                             max_iter=300, random_state=int(self.random_state))

    def _explain(self, X_test, codes):
        imp = self._permutation(X_test, codes)
        png, pl = self._importance_outputs(imp, "permutation")
        return ({"permutation_importance": imp, "notes": [
                    "A neural network has no coefficients: importance is the drop in hold-out AUC (accuracy for "
                    f"several classes) when a column is shuffled ({self.permutation_repeats} repeats, up to "
                    f"{self.permutation_rows} rows)."]}, png, pl)


@register
class ChurnGBM(TabularClassifier):
    info = churn_info("churn_gbm", "离网预警对比（梯度提升树）", "Churn warning comparison (gradient boosting)",
                      "gradient boosting trees", (churn_preset("churn_comparison", "离网预警对比",
                                                               "Churn warning comparison"),))
    purpose_en = "Gradient-boosted trees as a strong comparison for the other churn models."

    def __init__(self, target: Any = None, features: Any = None, id: Any = None, positive: Any = None,  # noqa: A002
                 exclude: Any = None, refit: bool = False, n_estimators: int = 150, learning_rate: float = 0.05,
                 max_depth: int = 3, random_state: int = 42):
        self.target, self.features, self.id, self.positive = target, features, id, positive
        self.exclude, self.refit = exclude, refit
        self.n_estimators, self.learning_rate, self.max_depth, self.random_state = (
            n_estimators, learning_rate, max_depth, random_state)

    def _estimator(self, n_classes: int):
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=int(self.n_estimators), learning_rate=float(self.learning_rate),
                                          max_depth=int(self.max_depth), random_state=int(self.random_state))

    def _explain(self, X_test, codes):
        imp = self._grouped_importances(self.pipeline_.named_steps["model"].feature_importances_)
        png, pl = self._importance_outputs(imp, "impurity")
        return ({"feature_importance": imp,
                 "notes": ["Impurity-based importances summed over each column's one-hot features."]}, png, pl)


PLAN_MATCHING = Preset(
    "plan_matching", "用户套餐匹配", "Plan matching", params={"target": "Contract"}, dataset="telco",
    note_en="Recommend the contract type held by customers with the same services, profile, tenure and monthly "
            "charge; a recommendation that differs from the current contract marks a plan-migration candidate "
            "(migration_candidate in the scored table). Churn stays out of the features (an outcome).",
    note_zh="按业务、属性、在网时长与月费推荐相似客户持有的合约类型；推荐与现有合约不同者为套餐迁移候选"
            "（评分表的 migration_candidate 列）。离网不作特征（属于结果）。")


@register
class PlanTree(TabularClassifier):
    info = ModelInfo(
        key="plan_tree", name_zh="用户套餐匹配（决策树）", name_en="Plan matching (decision tree)",
        algorithm="decision tree (CART)", theme="classification",
        application_zh="按业务使用与在网时长推荐最匹配的套餐，找出可迁移的用户；也可对任意目标列给出可读的规则",
        application_en="Recommend the plan that fits a customer's services and tenure and flag migration "
                       "candidates; readable rules for any target column",
        inputs="one row per customer; target: the plan column (demo: Contract) or any class column; features: "
               "the other columns (default: every usable one)",
        metrics=MULTI_METRICS, dataset="telco", task="classification",
        roles=(target_role("Contract"), features_role(PLAN_FEATURES), ID_ROLE),
        presets=(PLAN_MATCHING, Preset("churn_rules", "离网规则（决策树）", "Churn rules (decision tree)",
                                       params={"target": "Churn", "max_depth": 4},
                                       note_en="Readable if-then rules for churn (bind target to your churn flag).",
                                       note_zh="用可读的 if-then 规则刻画离网（将 target 绑定到离网标记列）。")))
    purpose_en = "Rules use raw values (numbers are not scaled), so they read as the table's own units."
    scale_numbers = False
    two_class_inferred = False  # plans, segments: several classes are what it is for

    def __init__(self, target: Any = None, features: Any = None, id: Any = None, positive: Any = None,  # noqa: A002
                 exclude: Any = None, refit: bool = False, max_depth: int = 5, min_samples_leaf: int = 20,
                 random_state: int = 42):
        self.target, self.features, self.id, self.positive = target, features, id, positive
        self.exclude, self.refit = exclude, refit
        self.max_depth, self.min_samples_leaf, self.random_state = max_depth, min_samples_leaf, random_state

    def _estimator(self, n_classes: int):
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=int(self.max_depth), min_samples_leaf=int(self.min_samples_leaf),
                                      class_weight="balanced", random_state=int(self.random_state))

    def rules(self) -> str:
        from sklearn.tree import export_text

        tree = self.pipeline_.named_steps["model"]
        text = export_text(tree, feature_names=self._transformed_names(), max_depth=int(self.max_depth))
        for i in sorted(range(len(self.labels_)), reverse=True):  # class codes -> the table's labels
            text = text.replace(f"class: {i}\n", f"class: {self.labels_[i]}\n")
        return text

    def _explain(self, X_test, codes):
        imp = self._grouped_importances(self.pipeline_.named_steps["model"].feature_importances_)
        png, pl = self._importance_outputs(imp, "impurity")
        return ({"rules": self.rules(), "feature_importance": imp,
                 "notes": ["A one-hot feature such as COLUMN_value is 1 when the row has that value.",
                           "class_weight='balanced', so rarer classes are not ignored."]}, png, pl)

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Scores as the base; with several classes and the target present, ``migration_candidate``
        marks rows whose recommended class differs from the current one (those first)."""
        out = super().predict_table(df)
        target = getattr(self, "target_", None)
        if len(self.labels_) > 2 and target in out.columns:
            cur = out[target].map(lambda v: None if pd.isna(v) else str(v))
            out["migration_candidate"] = cur.notna() & cur.ne(out["prediction"].map(str))
            out = out.sort_values(["migration_candidate", "score"], ascending=[False, False], kind="stable")
            out = out.reset_index(drop=True)
        return out


VALUE_ROLE = Role("value", kinds=("numeric",), required=False, demo="TotalCharges", infer=None,
                  help_en="a numeric value column (revenue); without a target the label is 'value in the top "
                          "quantile' (threshold from the training rows only)",
                  help_zh="数值价值列（收入）；未绑定目标时，标签为“价值位于最高分位”（阈值只取自训练部分）")


@register
class ValueSVM(TabularClassifier):
    info = ModelInfo(
        key="value_svm", name_zh="客户价值分类（支持向量机）", name_en="Customer value classification (SVM)",
        algorithm="support vector machine (RBF kernel)", theme="classification",
        application_zh="根据客户属性、业务订购与合约识别高价值客户（价值列最高 25%），或预测任意两类/多类目标",
        application_en="Identify high-value customers (top-quartile value) from profile, services and contract, "
                       "or predict any class column",
        inputs="one row per customer; value: a numeric revenue column defining the label (demo: TotalCharges), "
               "or target: a class column; features: the other columns",
        metrics=BINARY_METRICS, dataset="telco", task="classification",
        roles=(Role("target", kinds=("boolean", "categorical", "numeric"), required=False, infer=None,
                    help_en="a class column to predict instead of the derived value label",
                    help_zh="要预测的类别列（替代由价值列派生的标签）"),
               VALUE_ROLE, features_role(VALUE_FEATURES), ID_ROLE),
        presets=(Preset("customer_value", "客户价值分类", "Customer value classification",
                        params={"value": "TotalCharges", "quantile": 0.75}, dataset="telco",
                        note_en="High value = lifetime revenue in the top quartile; tenure and the monthly charge "
                                "stay out of the features (revenue is almost their product).",
                        note_zh="高价值 = 累计收入位于最高四分之一；在网时长与月费不作特征（收入近似二者之积）。"),
                 Preset("svm_churn", "离网预警（支持向量机）", "Churn warning (SVM)", params={"target": "Churn"},
                        note_en="An ordinary target: bind target= to the churn flag.",
                        note_zh="普通目标：将 target 绑定到离网标记列。")))
    purpose_en = "RBF-kernel SVM with Platt-calibrated probabilities."

    def __init__(self, target: Any = None, value: Any = None, features: Any = None, id: Any = None,  # noqa: A002
                 positive: Any = None, exclude: Any = None, refit: bool = False, quantile: float = 0.75,
                 C: float = 1.0, random_state: int = 42):
        self.target, self.value, self.features, self.id, self.positive = target, value, features, id, positive
        self.exclude, self.refit, self.quantile, self.C, self.random_state = exclude, refit, quantile, C, random_state

    def _active_roles(self) -> tuple[Role, ...]:
        if self.target is not None and self.value is None:
            # an ordinary target: the demo's value column is no label here, so it stays a possible feature
            return tuple(r for r in self.info.roles if r.name != "value")
        return self.info.roles

    def _bind(self, df, given=None):
        b = super()._bind(df, given)
        if b.get("target") is None and b.get("value") is None:
            raise InvalidRequest("value_svm: bind target= to a class column, or value= to a numeric column whose "
                                 "top quantile is the label", param="target")
        return b

    def _derived(self, b: Binding) -> bool:
        return b.get("target") is None

    def _target_name(self, b: Binding) -> str:
        return b["target"] if not self._derived(b) else f"{b['value']}_class"

    def _target_values(self, df: pd.DataFrame, b: Binding) -> pd.Series:
        if not self._derived(b):
            return df[b["target"]]
        v = to_numeric(df[b["value"]], b["value"])
        thr = getattr(self, "_split_threshold", None)
        if thr is None:
            if v.notna().sum() == 0:
                raise InvalidRequest(f"value column {b['value']!r} is entirely null", param="value")
            thr = float(v.quantile(float(self.quantile)))
        self.threshold_ = thr
        return pd.Series(np.where(v.isna(), None, np.where(v >= thr, "high", "other")), index=df.index, dtype=object)

    def _split(self, n: int, codes: np.ndarray):
        if getattr(self, "_split_threshold", None) is None:
            return super()._split(n, codes)
        # the same draw as the threshold's: the label must not be learned from the evaluation rows
        tr, te = train_test_split(np.arange(n), test_size=TEST_SIZE, random_state=int(self.random_state))
        return tr, te, "random hold-out (the value threshold comes from the training part only)"

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        if not isinstance(data, pd.DataFrame):
            raise InvalidRequest("value_svm: the input must be a table")
        df = data.rename(columns=str)
        b = self._bind(df)
        self._split_threshold = None
        if self._derived(b):
            v = to_numeric(df[b["value"]], b["value"]).dropna()
            require_rows(len(v), MIN_ROWS, self.info.key)  # before the split, which fails on too few rows
            tr, _ = train_test_split(np.arange(len(v)), test_size=TEST_SIZE, random_state=int(self.random_state))
            self._split_threshold = float(v.iloc[tr].quantile(float(self.quantile)))
        try:
            ev = super().evaluate(df)
        finally:
            thr, self._split_threshold = self._split_threshold, None
        if thr is not None:
            self.threshold_ = thr
            ev.explanation["threshold"] = thr
            ev.explanation["notes"].insert(1, (
                f"Label: {b['value']} >= {thr:,.2f} (the {float(self.quantile):.0%} quantile of the training rows) "
                f"is 'high'. Columns that make up the value (its per-period parts, duration) leak it: leave them "
                f"out with exclude=."))
        return ev

    def fit(self, X, y=None):
        self._split_threshold = None
        return super().fit(X, y)

    def _estimator(self, n_classes: int):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt-calibrated probabilities for scoring (SVC(probability=True) is deprecated)
        return CalibratedClassifierCV(SVC(C=float(self.C), kernel="rbf"), ensemble=False, cv=3)

    def _explain(self, X_test, codes):
        imp = self._permutation(X_test, codes)
        n_sv = int(self.pipeline_.named_steps["model"].calibrated_classifiers_[0].estimator.n_support_.sum())
        png, pl = self._importance_outputs(imp, "permutation")
        return ({"permutation_importance": imp, "support_vectors": n_sv,
                 "notes": [f"{n_sv} support vectors. An RBF kernel has no coefficients: importance is the drop "
                           "in hold-out AUC when a column is shuffled."]}, png, pl)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_split_threshold", None)
        return state
