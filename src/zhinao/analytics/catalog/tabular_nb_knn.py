"""Naive Bayes and k-nearest neighbours on a customer table (the text family has its own).

The talk lists naive Bayes and KNN among the classifiers; before issue 10 they existed only
for text, so ``text_naive_bayes -p text_column=State`` was the only way to put a table
through them (and it crashed on a boolean target). These two are the tabular versions over
the shared classifier (:mod:`.tabular`: the same roles, split, baseline, lift and scoring).

- ``churn_naive_bayes``: a *mixed* naive Bayes. sklearn's NB classes each assume one kind of
  feature, so numbers get a Gaussian likelihood (GaussianNB) and categories a smoothed
  categorical one (CategoricalNB, an extra slot for values unseen in training); the joint
  log-likelihoods add (naive independence) and the class prior is counted once. Scaling is
  irrelevant to it, so numbers stay raw and its evidence table reads in the table's units.
- ``churn_knn``: KNN on standardised numbers and one-hot categories, distance-weighted vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from zhinao.analytics.catalog.classification import churn_info, churn_preset
from zhinao.analytics.catalog.base import register
from zhinao.analytics.catalog.roles import show
from zhinao.analytics.catalog.tabular import TabularClassifier


class MixedNB(ClassifierMixin, BaseEstimator):
    """Naive Bayes over a DataFrame: Gaussian for ``numeric`` columns, categorical for the rest."""

    def __init__(self, numeric: tuple[str, ...] = (), categorical: tuple[str, ...] = (), alpha: float = 1.0,
                 var_smoothing: float = 1e-9):
        self.numeric, self.categorical, self.alpha, self.var_smoothing = numeric, categorical, alpha, var_smoothing

    def _codes(self, X: pd.DataFrame) -> np.ndarray:
        cols = []
        for c, cats in zip(self.categorical, self.categories_):
            index = {v: i for i, v in enumerate(cats)}
            # unseen or missing -> the extra slot len(cats), which only the smoothing fills
            cols.append(X[c].map(lambda v, ix=index, n=len(cats): ix.get(v, n)).to_numpy(dtype=np.int64))
        return np.column_stack(cols) if cols else np.zeros((len(X), 0), np.int64)

    def _numbers(self, X: pd.DataFrame) -> np.ndarray:
        if not self.numeric:
            return np.zeros((len(X), 0))
        return X[list(self.numeric)].astype(float).fillna(pd.Series(self.medians_)).to_numpy()

    def fit(self, X: pd.DataFrame, y: Any) -> "MixedNB":
        from sklearn.naive_bayes import CategoricalNB, GaussianNB

        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.medians_ = {c: float(np.nanmedian(X[c].astype(float))) if X[c].notna().any() else 0.0
                         for c in self.numeric}
        self.categories_ = [sorted(X[c].dropna().unique().tolist()) for c in self.categorical]
        self.gauss_ = GaussianNB(var_smoothing=float(self.var_smoothing)).fit(self._numbers(X), y) \
            if self.numeric else None
        self.cat_ = CategoricalNB(alpha=float(self.alpha), min_categories=[len(c) + 1 for c in self.categories_]) \
            .fit(self._codes(X), y) if self.categorical else None
        counts = np.array([(y == c).sum() for c in self.classes_], dtype=float)
        self.class_log_prior_ = np.log(counts / counts.sum())
        return self

    def _joint_log(self, X: pd.DataFrame) -> np.ndarray:
        jll = np.tile(self.class_log_prior_, (len(X), 1))
        if self.gauss_ is not None:  # each part's joint log-likelihood includes the prior: count it once
            jll = jll + self.gauss_.predict_joint_log_proba(self._numbers(X)) - np.log(self.gauss_.class_prior_)
        if self.cat_ is not None:
            jll = jll + self.cat_.predict_joint_log_proba(self._codes(X)) - self.cat_.class_log_prior_
        return jll

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        jll = self._joint_log(X)
        jll -= jll.max(axis=1, keepdims=True)
        p = np.exp(jll)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@register
class ChurnNaiveBayes(TabularClassifier):
    info = churn_info("churn_naive_bayes", "离网预警（朴素贝叶斯）", "Churn warning (naive Bayes)",
                      "naive Bayes (Gaussian for numbers, categorical for categories)",
                      (churn_preset("churn_warning", "离网预警（朴素贝叶斯）", "Churn warning (naive Bayes)"),))
    purpose_en = "Naive Bayes: each column's evidence multiplies, assuming independence given the class."
    scale_numbers = False

    def __init__(self, target: Any = None, features: Any = None, id: Any = None, positive: Any = None,  # noqa: A002
                 exclude: Any = None, refit: bool = False, alpha: float = 1.0, var_smoothing: float = 1e-9,
                 random_state: int = 42):
        self.target, self.features, self.id, self.positive = target, features, id, positive
        self.exclude, self.refit, self.alpha, self.var_smoothing = exclude, refit, alpha, var_smoothing
        self.random_state = random_state

    def _estimator(self, n_classes: int):  # the pipeline is built by _pipeline (no one-hot step)
        raise NotImplementedError

    def _pipeline(self, numeric, categorical, n_classes):
        return MixedNB(tuple(numeric), tuple(categorical), float(self.alpha), float(self.var_smoothing))

    def _explain(self, X_test, codes):
        nb: MixedNB = self.pipeline_
        rows: list[dict[str, Any]] = []
        if len(self.labels_) == 2:
            # evidence: how much a value moves the odds of the positive class (log likelihood ratio)
            if nb.cat_ is not None:
                for c, cats, lp in zip(nb.categorical, nb.categories_, nb.cat_.feature_log_prob_):
                    for j, v in enumerate(cats):
                        rows.append({"column": c, "value": v, "log_likelihood_ratio": float(lp[1, j] - lp[0, j])})
            if nb.gauss_ is not None:
                for i, c in enumerate(nb.numeric):
                    rows.append({"column": c, "value": "mean by class",
                                 "mean_negative": float(nb.gauss_.theta_[0, i]),
                                 "mean_positive": float(nb.gauss_.theta_[1, i])})
            rows.sort(key=lambda r: -abs(r.get("log_likelihood_ratio", 0.0)))
        imp = self._permutation(X_test, codes)
        png, pl = self._importance_outputs(imp, "permutation")
        expl = {"evidence": rows[:40], "permutation_importance": imp,
                "notes": ["Numbers: Gaussian likelihood per class (raw units); categories: smoothed frequencies "
                          f"(alpha={self.alpha}) with a slot for values unseen in training."
                          + (f" log_likelihood_ratio > 0 favours {self.target_}={show(self.positive_)}."
                             if len(self.labels_) == 2 else "")]}
        return expl, png, pl


@register
class ChurnKNN(TabularClassifier):
    info = churn_info("churn_knn", "离网预警（K 近邻）", "Churn warning (k-nearest neighbours)",
                      "k-nearest neighbours (standardised numbers, one-hot categories)",
                      (churn_preset("similar_customers", "离网预警（相似客户 K 近邻）",
                                    "Churn warning from similar customers (KNN)"),))
    purpose_en = "Each customer takes the distance-weighted vote of its most similar training customers."
    dense = True  # brute-force distances on a dense matrix, not on sparse one-hot rows
    permutation_rows, permutation_repeats = 300, 2  # every shuffle is a full neighbour search

    def __init__(self, target: Any = None, features: Any = None, id: Any = None, positive: Any = None,  # noqa: A002
                 exclude: Any = None, refit: bool = False, n_neighbors: int = 25, weights: str = "distance",
                 random_state: int = 42):
        self.target, self.features, self.id, self.positive = target, features, id, positive
        self.exclude, self.refit, self.n_neighbors, self.weights = exclude, refit, n_neighbors, weights
        self.random_state = random_state

    def _estimator(self, n_classes: int):
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=int(self.n_neighbors), weights=str(self.weights), algorithm="brute")

    def _explain(self, X_test, codes):
        imp = self._permutation(X_test, codes)
        png, pl = self._importance_outputs(imp, "permutation")
        return ({"permutation_importance": imp,
                 "notes": [f"{self.n_neighbors} neighbours, {self.weights}-weighted vote; every one-hot category "
                           "counts like one standardised number in the distance."]}, png, pl)
