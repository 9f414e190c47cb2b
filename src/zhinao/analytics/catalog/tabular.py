"""Supervised classifiers on any table: one binding, one pipeline, one evaluation.

Every classifier of the talk's table (logistic regression, decision tree, naive Bayes, KNN,
MLP, SVM, boosting) meets the analyst's table the same way, so the shared part lives here
and an entry only says which estimator it wraps and how it explains itself:

- **Roles** ``target`` (two or more classes; positive class detected as people write it,
  :func:`roles.positive_class`, or set with ``positive=``), ``features`` (default: every other
  usable column — ids, constants, empty, free-text and date columns left out, with the reason
  in the binding), optional ``id``. The demo's Telco columns are only the ``demo=`` defaults.
- **Pipeline** numbers (by the binding's column kind, not by pandas dtype, so a number
  stored as text is still a number) median-imputed and standardised; categories and flags
  one-hot encoded, tolerant of values unseen in training.
- **Evaluation** a stratified hold-out with a fixed seed against a prior-class baseline
  (``DummyClassifier``: AUC 0.5, F1 0 — "nobody churns"), lift and capture by decile and a
  threshold table for two-class targets (operators target the top decile), ROC / lift /
  importance as interactive plot specs beside the PNG charts. ``refit=True`` refits on
  every row after the evaluation; the explanation says which rows the saved model saw.
- **Scoring** keeps every input column, adds ``score`` (probability of the positive class;
  for several classes, of the predicted one) and ``prediction`` (a label as written in the
  table), ranked by score; without an ``id`` binding an explicit ``row`` column keeps the
  input order recoverable.

Why one base and not one per entry: the same table meets every classifier, and the same
rules (which column is a feature, which label is positive, what the baseline is) must hold
for all of them so their figures can be compared side by side.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo
from zhinao.analytics.catalog.protocol import require_rows, require_target, to_numeric
from zhinao.analytics.catalog.roles import Binding, Role, bind, plain, positive_class, role_params, show
from zhinao.analytics.catalog.roles import column_list, lift_table, threshold_table
from zhinao.errors import InvalidRequest

MIN_ROWS = 40
MAX_CLASSES = 50
TEST_SIZE = 0.25
BINARY_METRICS = ("auc", "f1", "accuracy", "precision", "recall")
MULTI_METRICS = ("macro_f1", "accuracy", "weighted_f1")


# -- roles every tabular classifier declares ------------------------------------------------

def target_role(demo: str | None = "Churn") -> Role:
    return Role("target", kinds=("boolean", "categorical", "numeric"), demo=demo, infer="name",
                help_en="the column to predict (two or more classes); the positive class of a two-class target "
                        "is detected (True/Yes/是/1/流失 …) or set with positive=",
                help_zh="要预测的列（两类或多类）；两类目标的正类自动识别（True/Yes/是/1/流失 …），或用 positive= 指定")


def features_role(demo: Sequence[str] | None) -> Role:
    return Role("features", kinds=("numeric", "boolean", "categorical"), many=True,
                demo=tuple(demo) if demo else None, infer="rest",
                help_en="input columns; default: every other usable column (ids, constants, empty, free-text and "
                        "date columns are left out); numbers are scaled, categories one-hot encoded",
                help_zh="输入列；默认为其余全部可用列（编号、常量、空列、长文本与日期列除外）；数值标准化，类别独热编码")


ID_ROLE = Role("id", kinds=("id", "any"), required=False, demo="customerID", infer="kind",
               help_en="optional row identifier (kept in scored tables, never a feature); default: the one "
                       "id-like column, if there is exactly one",
               help_zh="可选的行标识列（评分表保留，不作特征）；默认取唯一一个形似编号的列")


def labels_text(values: Sequence[Any]) -> str:
    return ", ".join(show(v) for v in values)


# -- features -------------------------------------------------------------------------------

def feature_frame(df: pd.DataFrame, columns: Sequence[str], kinds: dict[str, str]) -> pd.DataFrame:
    """The feature columns as the pipeline takes them: numbers as float, the rest as text (NaN kept)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InvalidRequest(f"the table lacks feature column(s) {', '.join(map(repr, missing))} the model was "
                             f"trained on; columns: {', '.join(map(str, df.columns[:30]))}", param=missing[0])
    out = {}
    for c in columns:
        s = df[c]
        if kinds.get(c) == "numeric":
            out[c] = to_numeric(s, c)
        else:  # text labels, missing kept as NaN (vectorised: a per-cell map was a third of a fast fit)
            miss = s.isna().to_numpy()
            txt = s.astype(str).to_numpy(dtype=object)
            txt[miss] = np.nan
            out[c] = pd.Series(txt, index=s.index, dtype=object)
    return pd.DataFrame(out, index=df.index)


def preprocessor(numeric: Sequence[str], categorical: Sequence[str], scale: bool = True,
                 dense: bool = False) -> ColumnTransformer:
    num_steps = [("impute", SimpleImputer(strategy="median"))] + ([("scale", StandardScaler())] if scale else [])
    parts = []
    if numeric:
        parts.append(("num", Pipeline(num_steps), list(numeric)))
    if categorical:
        parts.append(("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                       ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense))]),
                      list(categorical)))
    return ColumnTransformer(parts)


def source_column(feature: str, columns: Sequence[str]) -> str:
    """Map a transformed feature name (``cat__Contract_Two year``) back to its input column."""
    name = feature.split("__", 1)[-1]
    for c in sorted(columns, key=len, reverse=True):
        if name == c or name.startswith(c + "_"):
            return c
    return name


# -- labels and metrics ---------------------------------------------------------------------

def class_labels(y: pd.Series, column: str, positive: Any = None) -> tuple[list[Any], Any]:
    """``(labels, positive)``: the classes in a fixed order (the positive last for two classes)."""
    vals = [plain(v) for v in pd.unique(y.dropna())]
    if len(vals) > MAX_CLASSES:
        numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
        raise InvalidRequest(f"target {column!r} has {len(vals)} distinct values (at most {MAX_CLASSES} classes): "
                             + ("a number to predict needs a regression model; " if numeric else
                                "group rare classes first, or ") + "bind a column of classes with -p target=COLUMN",
                             param="target")
    if len(vals) == 2:
        pos = positive_class(y, column, positive)
        return [v for v in vals if v != pos] + [pos], pos
    if positive is not None:
        raise InvalidRequest(f"positive={show(positive)} applies to a two-class target; {column!r} has "
                             f"{len(vals)} classes ({labels_text(vals[:8])})", param="positive")
    return sorted(vals, key=lambda v: (str(type(v)), str(v))), None


def encode(y: pd.Series, labels: Sequence[Any]) -> np.ndarray:
    """Labels -> 0..k-1 codes (compared as plain values, so ``np.True_`` matches ``True``)."""
    index = {plain(v): i for i, v in enumerate(labels)}
    codes = [index.get(plain(v), -1) for v in y]
    return np.asarray(codes, dtype=int)


def classifier_metrics(codes: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """Every metric of both kinds, so an entry's ``info.metrics`` are there on any target.

    Two classes: AUC of the positive-class score, F1/precision/recall of the positive class at
    0.5. Several: macro one-vs-rest AUC, macro F1/precision/recall.
    """
    pred = proba.argmax(axis=1)
    out = {"accuracy": float(accuracy_score(codes, pred)),
           "macro_f1": float(f1_score(codes, pred, average="macro", zero_division=0)),
           "weighted_f1": float(f1_score(codes, pred, average="weighted", zero_division=0))}
    if n_classes == 2:
        s = proba[:, 1]
        out.update(auc=float(roc_auc_score(codes, s)) if len(set(codes)) == 2 else 0.5,
                   f1=float(f1_score(codes, pred, zero_division=0)),
                   precision=float(precision_score(codes, pred, zero_division=0)),
                   recall=float(recall_score(codes, pred, zero_division=0)))
    else:
        present = sorted(set(codes.tolist()))
        try:
            p = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-12, None)
            auc = float(roc_auc_score(codes, p, multi_class="ovr", average="macro", labels=present))
        except ValueError:
            auc = 0.5
        out.update(auc=auc, f1=out["macro_f1"],
                   precision=float(precision_score(codes, pred, average="macro", zero_division=0)),
                   recall=float(recall_score(codes, pred, average="macro", zero_division=0)))
    return out


def operator_tables(codes: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Lift/capture by decile and the threshold table (two-class targets)."""
    return {"lift_by_decile": lift_table(codes, scores), "thresholds": threshold_table(codes, scores)}


def classifier_plots(codes: np.ndarray, proba: np.ndarray, base_proba: np.ndarray, labels: Sequence[Any],
                     metrics: dict[str, float], baseline: dict[str, float], baseline_name: str, title: str,
                     tables: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """ROC, lift, thresholds (two classes) or per-class F1 and confusion (several), and model vs baseline."""
    out: dict[str, dict[str, Any]] = {}
    if len(labels) == 2:
        out["roc"] = plots.roc(codes, proba[:, 1], f"ROC — {title}", baseline_scores=base_proba[:, 1],
                               baseline_name=baseline_name)
        if tables:
            out["lift"] = plots.lift(tables["lift_by_decile"])
            t = tables["thresholds"]
            out["thresholds"] = plots.table(["threshold", "flagged_share", "precision", "recall", "f1"],
                                            [[r[k] for k in ("threshold", "flagged_share", "precision", "recall", "f1")]
                                             for r in t], "阈值表 Threshold table")
    else:
        pred = proba.argmax(axis=1)
        per = f1_score(codes, pred, labels=list(range(len(labels))), average=None, zero_division=0)
        out["per_class_f1"] = plots.bar([str(v) for v in labels], per, "各类 F1 Per-class F1", top=len(labels),
                                        series_name="F1", horizontal=False)
        cm = pd.crosstab(pd.Series(codes, name="actual"), pd.Series(pred, name="predicted"))
        cm = cm.reindex(index=range(len(labels)), columns=range(len(labels)), fill_value=0)
        out["confusion"] = plots.table(["actual \\ predicted"] + [str(v) for v in labels],
                                       [[str(labels[i])] + [int(x) for x in cm.iloc[i]] for i in range(len(labels))],
                                       "混淆矩阵 Confusion matrix")
    out["vs_baseline"] = plots.compare(metrics, baseline, f"模型与基线 Model vs baseline — {title}", baseline_name)
    return out


def score_table(df: pd.DataFrame, proba: np.ndarray, labels: Sequence[Any], id_column: str | None,
                threshold: float = 0.5) -> pd.DataFrame:
    """Every input column + ``score`` + ``prediction`` (+ ``decile`` for two classes), ranked by score."""
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    if id_column is None:
        name = "row" if "row" not in out.columns else "_row"
        out.insert(0, name, np.arange(1, len(out) + 1))
    if len(labels) == 2:
        s = proba[:, 1]
        pred = np.where(s >= threshold, 1, 0)
    else:
        pred = proba.argmax(axis=1)
        s = proba[np.arange(len(proba)), pred]
    for c in ("score", "prediction", "decile"):
        if c in out.columns:
            out = out.rename(columns={c: f"{c}_input"})
    out["score"] = s.astype(float)
    lab = np.empty(len(pred), dtype=object)
    lab[:] = [labels[i] for i in pred]
    out["prediction"] = lab
    out = out.iloc[np.argsort(-s, kind="stable")].reset_index(drop=True)
    if len(labels) == 2 and len(out):
        out["decile"] = (np.arange(len(out)) * 10 // len(out) + 1).astype(int)
    return out


def split_note(split: dict[str, Any]) -> str:
    return (f"Hold-out: {split['method']}, {split['train_rows']} training rows, {split['test_rows']} evaluation rows "
            f"(random_state={split.get('random_state')}).")


# -- the base -------------------------------------------------------------------------------

class TabularClassifier(MiningModel):
    """Shared fit / evaluate / score for the tabular classifiers; subclasses give the estimator.

    Subclass contract: ``__init__`` takes the role parameters ``target``, ``features``, ``id``
    plus ``positive``, ``exclude``, ``refit``, ``random_state`` and the estimator's own; define
    :meth:`_estimator` and optionally :meth:`_explain`.
    """

    info: ClassVar[ModelInfo]
    supports_predict = True
    scale_numbers: ClassVar[bool] = True  #: trees split on raw values, so their rules stay readable
    permutation_rows: ClassVar[int] = 600  #: hold-out rows the permutation importance shuffles
    permutation_repeats: ClassVar[int] = 3
    dense: ClassVar[bool] = False
    #: an inferred (not given) target must have two classes: a churn model guessing a topic column is no run
    two_class_inferred: ClassVar[bool] = True  #: one-hot as a dense matrix (distance-based estimators are far faster on it)
    purpose_en: ClassVar[str] = ""  #: one sentence on what the entry is for (no demo columns)
    purpose_zh: ClassVar[str] = ""

    # -- hooks ------------------------------------------------------------------------------
    def _estimator(self, n_classes: int):
        raise NotImplementedError

    def _explain(self, X_test: pd.DataFrame, codes: np.ndarray) -> tuple[dict[str, Any], dict[str, bytes], dict]:
        """(explanation, PNG charts, plot specs) specific to the estimator."""
        return {}, {}, {}

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    # -- binding ----------------------------------------------------------------------------
    def _roles_given(self) -> dict[str, Any]:
        return role_params(self)

    def _active_roles(self) -> tuple[Role, ...]:
        return self.info.roles

    def _bind(self, df: pd.DataFrame, given: dict[str, Any] | None = None) -> Binding:
        """Bind the roles; a failed or odd target inference says that the demo's column is absent."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest(f"{self.info.key}: the input must be a table")
        df = df.rename(columns=str)
        params = dict(self._roles_given() if given is None else given)
        exclude = column_list(getattr(self, "exclude", None), "exclude")
        bad = [c for c in exclude if c not in df.columns]
        if bad:
            raise InvalidRequest(f"{self.info.key}: exclude names column(s) {', '.join(map(repr, bad))} the table "
                                 f"lacks", param="exclude")
        view = df.drop(columns=exclude) if exclude else df
        demo_target = next((r.demo for r in self.info.roles if r.name == "target"), None)
        try:
            roles = self._active_roles()
            b = bind(roles, view, {k: v for k, v in params.items() if k in {r.name for r in roles}},
                     model_key=self.info.key)
        except InvalidRequest as e:
            if e.param == "target" and params.get("target") is None and demo_target and demo_target not in df.columns:
                raise InvalidRequest(f"{e.message} (the demo's target column {demo_target!r} is not in this table)",
                                     param="target") from e
            raise
        for c in exclude:
            b.dropped[c] = "excluded (exclude=)"
        self.binding_ = b
        return b

    def bind(self, df: pd.DataFrame) -> Binding:
        return self._bind(df)

    def _target_name(self, b: Binding) -> str:
        return b.get("target") or "target"

    def _target_values(self, df: pd.DataFrame, b: Binding) -> pd.Series:
        return df[b["target"]]

    def _prepare(self, df: pd.DataFrame, given: dict[str, Any] | None = None
                 ) -> tuple[Binding, pd.DataFrame, pd.Series]:
        """Bind, check the rows and the target, convert the features: ``(binding, X, y)``."""
        df = df.rename(columns=str)
        b = self._bind(df, given)
        y = self._target_values(df, b)
        target = self._target_name(b)
        if y.isna().all():
            raise InvalidRequest(f"target column {target!r} is entirely null", param=target)
        keep = y.notna()
        require_rows(int(keep.sum()), MIN_ROWS, self.info.key)
        if y[keep].nunique() > MAX_CLASSES:
            class_labels(y[keep], target)  # the message: a number to predict is no class column
        demo = next((r.demo for r in self.info.roles if r.name == "target"), None)
        if self.two_class_inferred and "target" in b.inferred and target != demo and y[keep].nunique() != 2:
            raise InvalidRequest(f"{self.info.key}: the table has no {demo!r} column, and {target!r} (taken for the "
                                 f"target by its name) has {y[keep].nunique()} classes, not two; bind the target "
                                 f"with -p target=COLUMN", param="target")
        require_target(y[keep], target, min_per_class=5)
        X = feature_frame(df.loc[keep], b["features"], b.kinds)
        return b, X, y[keep]

    # -- estimator API ----------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> "TabularClassifier":
        """``fit(table)`` binds the roles and fits on every row; ``fit(X, y)`` takes the target apart."""
        if y is not None:
            X = pd.DataFrame(X).rename(columns=str)
            name = self.target or (y.name if isinstance(y, pd.Series) and y.name not in X.columns else None) \
                or "target"
            X = X.assign(**{str(name): np.asarray(y)})
            b, Xf, yy = self._prepare(X, {**self._roles_given(), "target": str(name)})
        else:
            b, Xf, yy = self._prepare(X)
        return self._fit_prepared(b, Xf, yy)

    def _fit_prepared(self, b: Binding, X: pd.DataFrame, y: pd.Series, labels: Sequence[Any] | None = None
                      ) -> "TabularClassifier":
        target = self._target_name(b)
        if labels is None:
            labels, pos = class_labels(y, target, self.positive)
        else:
            pos = labels[-1] if len(labels) == 2 else None
        codes = encode(y, labels)
        self.labels_, self.positive_ = list(labels), pos
        self.target_ = target
        self.feature_names_in_ = list(X.columns)
        self.feature_kinds_ = {c: b.kinds.get(c, "categorical") for c in X.columns}
        self.id_column_ = b.get("id")
        num = [c for c in X.columns if self.feature_kinds_[c] == "numeric"]
        cat = [c for c in X.columns if c not in num]
        self.pipeline_ = self._pipeline(num, cat, len(labels)).fit(X, codes)
        self.classes_ = list(labels)
        return self

    def _pipeline(self, numeric: list[str], categorical: list[str], n_classes: int):
        return Pipeline([("prep", preprocessor(numeric, categorical, self.scale_numbers, self.dense)),
                         ("model", self._estimator(n_classes))])

    def _check_fitted(self) -> None:
        if not hasattr(self, "pipeline_"):
            raise InvalidRequest(f"model {self.info.key!r} is not fitted; run it before scoring")

    def _proba_frame(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities in ``labels_`` order for an already converted feature frame."""
        p = self.pipeline_.predict_proba(X[self.feature_names_in_])
        seen = list(self.pipeline_.classes_)
        if len(seen) == len(self.labels_):
            return p
        full = np.zeros((len(X), len(self.labels_)))
        full[:, seen] = p
        return full

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return self._proba_frame(feature_frame(df.rename(columns=str), self.feature_names_in_, self.feature_kinds_))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        p = self.predict_proba(df)
        return np.asarray([self.labels_[i] for i in p.argmax(axis=1)], dtype=object)

    # -- runner API -------------------------------------------------------------------------
    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        b, X, y = self._prepare(data)
        target = self._target_name(b)
        labels, pos = class_labels(y, target, self.positive)
        codes_all = encode(y, labels)
        idx_tr, idx_te, method = self._split(len(X), codes_all)
        X_tr, X_te = X.iloc[idx_tr], X.iloc[idx_te]
        self._fit_prepared(b, X_tr, y.iloc[idx_tr], labels)
        c_tr, c_te = codes_all[idx_tr], codes_all[idx_te]
        proba = self._proba_frame(X_te)
        prior = np.bincount(c_tr, minlength=len(labels)) / len(c_tr)
        base_proba = np.tile(prior, (len(c_te), 1))
        metrics = classifier_metrics(c_te, proba, len(labels))
        baseline = classifier_metrics(c_te, base_proba, len(labels))
        baseline_name = "majority class (training class shares as scores)"
        split = {"method": method, "test_size": TEST_SIZE,
                 "random_state": int(self.random_state), "train_rows": int(len(idx_tr)),
                 "test_rows": int(len(idx_te))}
        expl, extra_png, extra_plots = self._explain(X_te, c_te)
        notes = [self._framing(b, labels, pos), split_note(split)]
        if len(labels) == 2:
            tables = operator_tables(c_te, proba[:, 1])
            top = tables["lift_by_decile"][0] if tables["lift_by_decile"] else None
            if top:
                notes.append(f"Top decile of the hold-out by score: {top['positives']} of {top['rows']} rows have "
                             f"{target}={show(pos)} (lift {top['lift']:.2f} over the base rate; "
                             f"{top['cumulative_capture']:.0%} of all positives).")
            expl.update(tables)
        else:
            tables = None
            per = f1_score(c_te, proba.argmax(axis=1), labels=list(range(len(labels))), average=None, zero_division=0)
            expl["per_class_f1"] = {str(v): float(f) for v, f in zip(labels, per)}
        notes.append(f"Baseline: every row scored with the training class shares "
                     f"({', '.join(f'{show(v)} {p:.1%}' for v, p in zip(labels, prior))}).")
        if b.dropped:
            notes.append("Left out of the features: " + "; ".join(f"{c} ({r})" for c, r in list(b.dropped.items())[:12])
                         + (" …" if len(b.dropped) > 12 else ""))
        expl["notes"] = notes + list(expl.get("notes", []))
        expl["split"] = split
        expl["target"] = {"column": target, "classes": [plain(v) for v in labels],
                          "positive": plain(pos) if pos is not None else None,
                          "counts": {str(v): int((codes_all == i).sum()) for i, v in enumerate(labels)}}
        expl["features"] = list(self.feature_names_in_)
        if self.refit:
            self._fit_prepared(b, X, y, labels)
            expl["fitted_on"] = (f"all {len(X)} rows (refit=True: refitted on training and evaluation rows after "
                                 f"the evaluation; the metrics above are from the hold-out fit)")
        else:
            expl["fitted_on"] = (f"the {len(idx_tr)} training rows of the hold-out split (refit=true refits on all "
                                 f"{len(X)} rows after the evaluation)")
        title = self.info.name_zh
        cs: dict[str, bytes] = {}
        if len(labels) == 2:
            cs["roc"] = charts.roc_chart(c_te, proba[:, 1], f"ROC — {title}", baseline_scores=base_proba[:, 1])
        shown = [str(v) for v in labels]
        cs["confusion"] = charts.confusion_chart([shown[i] for i in c_te], [shown[i] for i in proba.argmax(axis=1)],
                                                 shown)
        shown_m = {k: metrics[k] for k in self.info.metrics if k in metrics}
        shown_b = {k: baseline[k] for k in shown_m}
        cs["vs_baseline"] = charts.metric_comparison_chart(shown_m, shown_b, title, "majority class")
        cs.update(extra_png)
        pl = classifier_plots(c_te, proba, base_proba, labels, shown_m, shown_b, "majority class", title, tables)
        pl.update(extra_plots)
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name=baseline_name, explanation=expl,
                          charts=cs, plots=pl)

    def _split(self, n: int, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """Row positions of the training and the evaluation part, and how they were drawn."""
        tr, te = train_test_split(np.arange(n), test_size=TEST_SIZE, random_state=int(self.random_state),
                                  stratify=codes)
        return tr, te, "stratified random hold-out"

    def _framing(self, b: Binding, labels: Sequence[Any], pos: Any) -> str:
        feats = b["features"]
        shown = ", ".join(feats[:8]) + (f" … ({len(feats)} columns)" if len(feats) > 8 else "")
        target = self._target_name(b)
        what = (f"Predict {target}={show(pos)} (positive class; the other is {show(labels[0])})" if pos is not None
                else f"Predict {target} ({len(labels)} classes: {labels_text(labels[:8])})")
        return f"{what} from {shown}. {self.purpose_en}".strip()

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Every input column + ``score`` + ``prediction``, highest score first."""
        self._check_fitted()
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest(f"model {self.info.key!r} scores a table")
        df = df.rename(columns=str)
        proba = self._proba_frame(feature_frame(df, self.feature_names_in_, self.feature_kinds_))
        idc = self.id_column_ if self.id_column_ in df.columns else None
        return score_table(df, proba, self.labels_, idc)

    # -- explanation helpers ----------------------------------------------------------------
    def _transformed_names(self) -> list[str]:
        return [n.split("__", 1)[-1] for n in self.pipeline_.named_steps["prep"].get_feature_names_out()]

    def _grouped_importances(self, raw: Sequence[float]) -> dict[str, float]:
        out: dict[str, float] = {}
        names = list(self.pipeline_.named_steps["prep"].get_feature_names_out())
        for f, v in zip(names, raw):
            col = source_column(f, self.feature_names_in_)
            out[col] = out.get(col, 0.0) + float(v)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def _permutation(self, X: pd.DataFrame, codes: np.ndarray) -> dict[str, float]:
        """Permutation importance on (a sample of) the hold-out, per input column."""
        from sklearn.inspection import permutation_importance

        rng = np.random.default_rng(0)
        if len(X) > self.permutation_rows:
            pick = np.sort(rng.choice(len(X), self.permutation_rows, replace=False))
            X, codes = X.iloc[pick], codes[pick]
        scoring = "roc_auc" if len(self.labels_) == 2 and len(set(codes.tolist())) == 2 else "accuracy"
        r = permutation_importance(self.pipeline_, X[self.feature_names_in_], codes, scoring=scoring,
                                   n_repeats=self.permutation_repeats, random_state=0)
        return dict(sorted(zip(self.feature_names_in_, map(float, r.importances_mean)), key=lambda kv: -kv[1]))

    def _importance_outputs(self, imp: dict[str, float], kind: str) -> tuple[dict[str, bytes], dict]:
        title = {"permutation": "置换重要性 Permutation importance (Δ score)",
                 "impurity": "特征重要性 Feature importance"}[kind]
        return ({"importance": charts.bar_chart(list(imp), list(imp.values()), title)},
                {"importance": plots.bar(list(imp), list(imp.values()), title, series_name="importance")})


__all__ = ["BINARY_METRICS", "ID_ROLE", "MIN_ROWS", "MULTI_METRICS", "TabularClassifier", "class_labels",
           "classifier_metrics", "classifier_plots", "encode", "feature_frame", "features_role", "operator_tables",
           "preprocessor", "score_table", "target_role"]
