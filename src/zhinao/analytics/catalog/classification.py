"""Classification family on IBM Telco churn: the talk's 离网预警, 套餐匹配, 客户价值分类.

Five entries share one tabular pipeline (median-imputed, standardised numbers; one-hot
categories that tolerate unseen values) and one evaluation: a stratified 75/25 hold-out
with a fixed seed, compared with a majority-class baseline (``DummyClassifier``), which
for churn means "nobody churns" (AUC 0.5, F1 0) — the bar any warning model must clear.

- ``churn_logistic``  logistic regression 核心客户离网预警: coefficients as odds ratios.
- ``churn_mlp``       neural network 客户离网预警（存量保有）: permutation importance.
- ``churn_gbm``       gradient boosting, the comparison entry: impurity importances.
- ``plan_tree``       decision tree 用户套餐匹配: *framing* — recommend the contract type
  (month-to-month / one year / two year) that customers with the same services, usage
  and tenure hold; a customer whose recommended plan differs from the current one is a
  plan-migration candidate. Churn is excluded (it is an outcome, observed later).
- ``value_svm``       SVM 客户价值分类: *framing* — is a customer in the top quartile of
  lifetime revenue (``TotalCharges``)? Predicted from profile, services, contract and
  payment only; ``TotalCharges``, ``MonthlyCharges`` and ``tenure`` are excluded because
  revenue is (almost) their product, which would make the task a lookup (leakage).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import (require_columns, require_rows, require_target,
                                               to_numeric, usable_features)
from zhinao.errors import InvalidRequest

SERVICES = ["PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup",
            "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]
PROFILE = ["gender", "SeniorCitizen", "Partner", "Dependents"]
ACCOUNT = ["Contract", "PaperlessBilling", "PaymentMethod"]
CHARGES = ["tenure", "MonthlyCharges", "TotalCharges"]
MIN_ROWS = 40


def _preprocessor(X: pd.DataFrame, scale: bool = True) -> ColumnTransformer:
    num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    cat = [c for c in X.columns if c not in num]
    num_steps = [("impute", SimpleImputer(strategy="median"))] + ([("scale", StandardScaler())] if scale else [])
    return ColumnTransformer([
        ("num", Pipeline(num_steps), num),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore"))]), cat),
    ])


def _source_column(feature: str, columns: list[str]) -> str:
    """Map a transformed feature name (``cat__Contract_Two year``) back to its input column."""
    name = feature.split("__", 1)[-1]
    for c in sorted(columns, key=len, reverse=True):
        if name == c or name.startswith(c + "_"):
            return c
    return name


class _TabularClassifier(MiningModel):
    """Shared fit/evaluate/score for the Telco entries; subclasses set features and estimator."""

    info: ClassVar[ModelInfo]
    default_target: ClassVar[str] = "Churn"
    positive_label: ClassVar[Any] = "Yes"  #: binary targets: the class whose probability is scored
    feature_columns: ClassVar[tuple[str, ...]] = tuple(PROFILE + SERVICES + ACCOUNT + CHARGES)
    scale_numbers: ClassVar[bool] = True  #: trees split on raw values, so their rules stay readable

    # -- subclass hooks -------------------------------------------------------------------
    def _estimator(self):
        raise NotImplementedError

    def _target(self, df: pd.DataFrame) -> pd.Series:
        return df[self.target]

    def _explain(self, X_test: pd.DataFrame, y_test: pd.Series) -> tuple[dict[str, Any], dict[str, bytes]]:
        return {}, {}

    # -- data -----------------------------------------------------------------------------
    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    def _features(self, df: pd.DataFrame) -> pd.DataFrame:
        cols = [c for c in self.feature_columns if c in df.columns]
        if not cols:
            require_columns(df, self.feature_columns, "table")
        X = df[cols].copy()
        for c in ("tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"):
            if c in X.columns:
                X[c] = to_numeric(X[c], c)
        return X

    def _xy(self, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        require_columns(df, [self.target], "table")
        require_rows(len(df), MIN_ROWS, self.info.key)
        y = self._target(df)
        keep = y.notna()
        X, y = self._features(df.loc[keep]), y.loc[keep]
        require_target(y, self.target, min_per_class=5)
        return X, y

    # -- estimator API --------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> "_TabularClassifier":
        if y is None:
            X, y = self._xy(X)
        else:
            X = self._features(X)
        cols = usable_features(X, X.columns)
        X = X[cols]
        self.feature_names_in_ = cols
        self.pipeline_ = Pipeline([("prep", _preprocessor(X, self.scale_numbers)), ("model", self._estimator())]).fit(X, y)
        self.classes_ = list(self.pipeline_.classes_)
        self.positive_class_ = self._positive_class(y)
        return self

    def _positive_class(self, y: pd.Series) -> Any:
        """The class whose probability is scored: "Yes"-like if present, else the rarer class."""
        if len(self.classes_) != 2:
            return None
        for cand in (self.positive_label, 1, True, "1", "yes", "Y", "y", "True", "true"):
            if cand in self.classes_:
                return cand
        return pd.Series(y).value_counts().idxmin()

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(self._features(X)[self.feature_names_in_])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(self._features(X)[self.feature_names_in_])

    def _positive_scores(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X)[:, self.classes_.index(self.positive_class_)]

    # -- runner API -----------------------------------------------------------------------
    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        X, y = self._xy(data)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=self.random_state,
                                                  stratify=y)
        self.fit(X_tr, y_tr)
        base = DummyClassifier(strategy="prior").fit(X_tr, y_tr)
        pred, bpred = self.predict(X_te), base.predict(X_te)
        binary = len(self.classes_) == 2
        if binary:
            pos = self.positive_class_
            s, bs = self._positive_scores(X_te), base.predict_proba(X_te)[:, list(base.classes_).index(pos)]
            yb = (y_te == pos).astype(int)
            metrics = self._binary_metrics(yb, s, pred == pos)
            baseline = self._binary_metrics(yb, bs, bpred == pos)
        else:
            metrics = self._multi_metrics(y_te, pred)
            baseline = self._multi_metrics(y_te, bpred)
        explanation, extra = self._explain(X_te, y_te)
        explanation.setdefault("notes", []).insert(0, self.framing)
        explanation["split"] = {"method": "stratified random hold-out", "test_size": 0.25,
                                "random_state": self.random_state, "train_rows": len(X_tr),
                                "test_rows": len(X_te)}
        explanation["features"] = self.feature_names_in_
        cs: dict[str, bytes] = {}
        if binary:
            cs["roc"] = charts.roc_chart(yb, s, f"ROC — {self.info.name_zh}", baseline_scores=bs)
        cs["confusion"] = charts.confusion_chart(y_te, pred, self.classes_)
        cs["vs_baseline"] = charts.metric_comparison_chart(metrics, baseline, self.info.name_zh, "majority class")
        cs.update(extra)
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="majority class",
                          explanation=explanation, charts=cs)

    @staticmethod
    def _binary_metrics(y: pd.Series, scores: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        return {"auc": float(roc_auc_score(y, scores)),
                "f1": float(f1_score(y, pred, zero_division=0)),
                "accuracy": float(accuracy_score(y, pred)),
                "precision": float(precision_score(y, pred, zero_division=0)),
                "recall": float(recall_score(y, pred, zero_division=0))}

    @staticmethod
    def _multi_metrics(y: pd.Series, pred: np.ndarray) -> dict[str, float]:
        return {"macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
                "accuracy": float(accuracy_score(y, pred)),
                "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0))}

    def _ids(self, df: pd.DataFrame) -> pd.Series:
        if self.id_column and self.id_column in df.columns:
            return df[self.id_column].astype(str)
        return pd.Series(df.index.astype(str), index=df.index, name="row")

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Churn-risk list: one row per customer, highest probability first."""
        if not hasattr(self, "pipeline_"):
            raise InvalidRequest(f"model {self.info.key!r} is not fitted; run it before scoring")
        p = self._positive_scores(df)
        out = pd.DataFrame({self.id_column or "row": self._ids(df).to_numpy(), "churn_probability": p})
        out["risk_decile"] = pd.qcut(out["churn_probability"].rank(method="first", ascending=False),
                                     min(10, len(out)), labels=False) + 1
        out = out.sort_values("churn_probability", ascending=False).reset_index(drop=True)
        out.insert(0, "risk_rank", np.arange(1, len(out) + 1))
        return out

    framing: ClassVar[str] = ""

    def _coefficient_names(self) -> list[str]:
        return list(self.pipeline_.named_steps["prep"].get_feature_names_out())

    def _permutation(self, X: pd.DataFrame, y: pd.Series, scoring: str) -> dict[str, float]:
        """Permutation importance on (a 600-row sample of) the hold-out, per input column."""
        from sklearn.inspection import permutation_importance

        if len(X) > 600:
            X = X.sample(600, random_state=0)
            y = y.loc[X.index]
        Xs, ys = X, y
        r = permutation_importance(self.pipeline_, Xs[self.feature_names_in_], ys, scoring=scoring,
                                   n_repeats=3, random_state=0)
        return dict(sorted(zip(self.feature_names_in_, map(float, r.importances_mean)), key=lambda kv: -kv[1]))


def _churn_info(key: str, name_zh: str, name_en: str, algorithm: str) -> ModelInfo:
    return ModelInfo(key=key, name_zh=name_zh, name_en=name_en, algorithm=algorithm, theme="classification",
                     application_zh="识别有离网倾向的客户，按风险排序供维系挽留",
                     application_en="Rank customers by churn risk for retention campaigns",
                     inputs="one row per customer: profile, services, contract, tenure, charges; target Churn (Yes/No)",
                     metrics=("auc", "f1", "accuracy", "precision", "recall"), dataset="telco")


@register
class ChurnLogistic(_TabularClassifier):
    info = _churn_info("churn_logistic", "核心客户离网预警（逻辑回归）", "Core-customer churn warning (logistic regression)",
                       "logistic regression")
    framing = "Predict Churn=Yes from profile, services, contract, tenure and charges; scores rank retention priority."

    def __init__(self, target: str = "Churn", id_column: str = "customerID", C: float = 1.0,
                 random_state: int = 42):
        self.target, self.id_column, self.C, self.random_state = target, id_column, C, random_state

    def _estimator(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=2000)

    def _explain(self, X_test, y_test):
        coef = self.pipeline_.named_steps["model"].coef_[0]
        names = [n.split("__", 1)[-1] for n in self._coefficient_names()]
        top = sorted(zip(names, map(float, coef)), key=lambda kv: -abs(kv[1]))
        expl = {"coefficients": [{"feature": n, "coef": c, "odds_ratio": float(np.exp(c))} for n, c in top],
                "intercept": float(self.pipeline_.named_steps["model"].intercept_[0]),
                "notes": ["Coefficients are per standard deviation for numbers and per category (one-hot) "
                          "otherwise; odds_ratio > 1 raises churn odds."]}
        return expl, {"coefficients": charts.bar_chart(names, coef, "逻辑回归系数 Coefficients (churn log-odds)")}


@register
class ChurnMLP(_TabularClassifier):
    info = _churn_info("churn_mlp", "客户离网预警（存量保有，神经网络）", "Churn warning for base retention (neural network)",
                       "multi-layer perceptron")
    framing = "Predict Churn=Yes with a small neural network (two hidden layers, early stopping)."

    def __init__(self, target: str = "Churn", id_column: str = "customerID", hidden: tuple[int, ...] = (32, 16),
                 alpha: float = 1e-3, random_state: int = 42):
        self.target, self.id_column, self.hidden, self.alpha, self.random_state = target, id_column, hidden, alpha, random_state

    def _estimator(self):
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=tuple(self.hidden), alpha=self.alpha, early_stopping=True,
                             max_iter=300, random_state=self.random_state)

    def _explain(self, X_test, y_test):
        imp = self._permutation(X_test, y_test, "roc_auc")
        return ({"permutation_importance": imp, "notes": [
                    "A neural network has no coefficients: importance is the drop in hold-out AUC when a "
                    "column is shuffled (3 repeats, up to 600 rows)."]},
                {"importance": charts.bar_chart(list(imp), list(imp.values()), "置换重要性 Permutation importance (ΔAUC)")})


@register
class ChurnGBM(_TabularClassifier):
    info = _churn_info("churn_gbm", "离网预警对比（梯度提升树）", "Churn warning comparison (gradient boosting)",
                       "gradient boosting trees")
    framing = "Gradient-boosted trees on the same features and split, as a strong comparison for the churn models."

    def __init__(self, target: str = "Churn", id_column: str = "customerID", n_estimators: int = 150,
                 learning_rate: float = 0.05, max_depth: int = 3, random_state: int = 42):
        self.target, self.id_column = target, id_column
        self.n_estimators, self.learning_rate, self.max_depth, self.random_state = n_estimators, learning_rate, max_depth, random_state

    def _estimator(self):
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                          max_depth=self.max_depth, random_state=self.random_state)

    def _explain(self, X_test, y_test):
        imp = _grouped_importances(self)
        return ({"feature_importance": imp, "notes": ["Impurity-based importances summed over each column's one-hot features."]},
                {"importance": charts.bar_chart(list(imp), list(imp.values()), "特征重要性 Feature importance")})


def _grouped_importances(m: _TabularClassifier) -> dict[str, float]:
    raw = m.pipeline_.named_steps["model"].feature_importances_
    out: dict[str, float] = {}
    for f, v in zip(m._coefficient_names(), raw):
        col = _source_column(f, m.feature_names_in_)
        out[col] = out.get(col, 0.0) + float(v)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@register
class PlanTree(_TabularClassifier):
    info = ModelInfo(
        key="plan_tree", name_zh="用户套餐匹配（决策树）", name_en="Plan matching (decision tree)",
        algorithm="decision tree (CART)", theme="classification",
        application_zh="按业务使用与在网时长推荐最匹配的合约套餐，找出可迁移到长期合约的用户",
        application_en="Recommend the contract plan that fits a customer's services and tenure; flag migration candidates",
        inputs="one row per customer: services, profile, tenure, MonthlyCharges; target Contract",
        metrics=("macro_f1", "accuracy", "weighted_f1"), dataset="telco")
    framing = ("Framing: recommend the Contract type (Month-to-month / One year / Two year) held by customers "
               "with the same services, profile, tenure and monthly charge; a recommendation that differs "
               "from the current contract marks a plan-migration candidate. Churn is excluded (an outcome).")
    default_target = "Contract"
    scale_numbers = False
    feature_columns = tuple(PROFILE + SERVICES + ["PaperlessBilling", "PaymentMethod", "tenure", "MonthlyCharges"])

    def __init__(self, target: str = "Contract", id_column: str = "customerID", max_depth: int = 5,
                 min_samples_leaf: int = 20, random_state: int = 42):
        self.target, self.id_column, self.max_depth, self.min_samples_leaf, self.random_state = (
            target, id_column, max_depth, min_samples_leaf, random_state)

    def _estimator(self):
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                                      class_weight="balanced", random_state=self.random_state)

    def rules(self) -> str:
        from sklearn.tree import export_text

        names = [n.split("__", 1)[-1] for n in self._coefficient_names()]
        return export_text(self.pipeline_.named_steps["model"], feature_names=names, max_depth=self.max_depth)

    def _explain(self, X_test, y_test):
        imp = _grouped_importances(self)
        return ({"rules": self.rules(), "feature_importance": imp,
                 "notes": ["Rules use raw values (tenure in months, MonthlyCharges in USD); a one-hot "
                           "feature such as InternetService_Fiber optic is 1 when the customer has it.",
                           "class_weight='balanced' so the rarer one- and two-year plans are not ignored."]},
                {"importance": charts.bar_chart(list(imp), list(imp.values()), "特征重要性 Feature importance")})

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Recommended plan per customer; migration candidates (recommendation != current) first."""
        if not hasattr(self, "pipeline_"):
            raise InvalidRequest("model 'plan_tree' is not fitted; run it before scoring")
        proba = self.predict_proba(df)
        best = proba.argmax(axis=1)
        out = pd.DataFrame({self.id_column or "row": self._ids(df).to_numpy(),
                            "recommended_plan": [self.classes_[i] for i in best],
                            "confidence": proba.max(axis=1)})
        if self.target in df.columns:
            out["current_plan"] = df[self.target].to_numpy()
            out["migration_candidate"] = out["current_plan"].ne(out["recommended_plan"])
            out = out.sort_values(["migration_candidate", "confidence"], ascending=[False, False])
        else:
            out = out.sort_values("confidence", ascending=False)
        return out.reset_index(drop=True)


@register
class ValueSVM(_TabularClassifier):
    info = ModelInfo(
        key="value_svm", name_zh="客户价值分类（支持向量机）", name_en="Customer value classification (SVM)",
        algorithm="support vector machine (RBF kernel)", theme="classification",
        application_zh="根据客户属性、业务订购与合约识别高价值客户（累计消费前 25%）",
        application_en="Identify high-value customers (top-quartile lifetime revenue) from profile, services and contract",
        inputs="one row per customer: profile, services, contract, payment; TotalCharges defines the label",
        metrics=("auc", "f1", "accuracy", "precision", "recall"), dataset="telco")
    framing = ("Framing: label = TotalCharges in the top quartile (threshold from the training part only); "
               "features exclude TotalCharges, MonthlyCharges and tenure, whose product is the revenue (leakage).")
    feature_columns = tuple(PROFILE + SERVICES + ACCOUNT)
    positive_label = "high"

    def __init__(self, value_column: str = "TotalCharges", id_column: str = "customerID", quantile: float = 0.75,
                 C: float = 1.0, random_state: int = 42):
        self.value_column, self.id_column, self.quantile, self.C, self.random_state = (
            value_column, id_column, quantile, C, random_state)

    @property
    def target(self) -> str:  # the label is derived from value_column
        return self.value_column

    def _target(self, df: pd.DataFrame) -> pd.Series:
        v = to_numeric(df[self.value_column], self.value_column)
        thr = getattr(self, "threshold_", None)
        if thr is None:
            thr = float(v.quantile(self.quantile))
        return pd.Series(np.where(v.isna(), None, np.where(v >= thr, "high", "other")), index=df.index)

    def fit(self, X: pd.DataFrame, y: Any = None) -> "ValueSVM":
        if y is None:
            v = to_numeric(X[self.value_column], self.value_column) if self.value_column in X.columns else None
            if v is not None:
                self.threshold_ = float(v.quantile(self.quantile))
        return super().fit(X, y)

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        require_columns(data, [self.value_column], "table")
        require_rows(len(data), MIN_ROWS, self.info.key)  # before the split, which fails on too few rows
        # The threshold must come from the training rows only: split first, then label.
        tr_idx, _ = train_test_split(data.index, test_size=0.25, random_state=self.random_state)
        self.threshold_ = float(to_numeric(data.loc[tr_idx, self.value_column], self.value_column).quantile(self.quantile))
        ev = super().evaluate(data)
        ev.explanation["threshold"] = self.threshold_
        return ev

    def _estimator(self):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt-calibrated probabilities for scoring (SVC(probability=True) is deprecated)
        return CalibratedClassifierCV(SVC(C=self.C, kernel="rbf"), ensemble=False, cv=3)

    def _explain(self, X_test, y_test):
        imp = self._permutation(X_test, y_test, "roc_auc")
        n_sv = int(self.pipeline_.named_steps["model"].calibrated_classifiers_[0].estimator.n_support_.sum())
        return ({"permutation_importance": imp, "support_vectors": n_sv,
                 "notes": [f"Value threshold learned on the training part; {n_sv} support vectors.",
                           "RBF kernel has no coefficients: importance is the drop in hold-out AUC "
                           "when a column is shuffled."]},
                {"importance": charts.bar_chart(list(imp), list(imp.values()), "置换重要性 Permutation importance (ΔAUC)")})

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "pipeline_"):
            raise InvalidRequest("model 'value_svm' is not fitted; run it before scoring")
        p = self._positive_scores(df)
        out = pd.DataFrame({self.id_column or "row": self._ids(df).to_numpy(), "high_value_probability": p,
                            "value_class": np.where(p >= 0.5, "high", "other")})
        return out.sort_values("high_value_probability", ascending=False).reset_index(drop=True)
