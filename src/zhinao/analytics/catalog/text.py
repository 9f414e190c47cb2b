"""Text family on THUCNews titles: the talk's 网页内容分类 (naive Bayes) and KNN 内容分类.

Chinese titles are cut into words with jieba (punctuation and whitespace dropped). The
hold-out is the data set's own split: train on ``dev`` (10,000 titles), evaluate on
``test`` (10,000); a table without a ``split`` column gets a stratified 75/25 split. The
baseline is the majority class (the topics are balanced, so it is chance: 10%).
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_columns, require_rows, require_target
from zhinao.errors import InvalidRequest

_DROP = re.compile(r"^[\s\W_]+$", re.UNICODE)


def jieba_tokens(text: str) -> list[str]:
    """Words of a Chinese (or mixed) text; module-level so fitted vectorisers pickle."""
    return list(_cut(str(text)))


@functools.lru_cache(maxsize=65536)
def _cut(text: str) -> tuple[str, ...]:
    """Cached: the same titles are cut again by every run and by scoring (~0.2 ms each)."""
    import jieba

    jieba.setLogLevel(60)
    return tuple(w.lower() for w in jieba.lcut(text) if w.strip() and not _DROP.match(w))


class CosineKNN(ClassifierMixin, BaseEstimator):
    """k-nearest neighbours on L2-normalised sparse rows: similarity is a sparse dot product.

    sklearn's brute-force cosine KNN took ~13.5 s for 10k x 10k titles here; a chunked
    sparse product with ``argpartition`` does the same vote in ~5 s.
    """

    def __init__(self, n_neighbors: int = 15, chunk: int = 1000):
        self.n_neighbors, self.chunk = n_neighbors, chunk

    def fit(self, X, y):
        from sklearn.preprocessing import normalize

        self.X_ = normalize(X).astype(np.float32).tocsr()
        self.classes_, self.y_ = np.unique(np.asarray(y), return_inverse=True)
        return self

    def kneighbors(self, X, n_neighbors: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, indices) of the nearest training rows, most similar first."""
        from sklearn.preprocessing import normalize

        k = min(n_neighbors or self.n_neighbors, self.X_.shape[0])
        Xn = normalize(X).astype(np.float32).tocsr()
        sims, idxs = [], []
        for i in range(0, Xn.shape[0], self.chunk):
            S = (Xn[i:i + self.chunk] @ self.X_.T).toarray()  # (chunk, n_train)
            idx = np.argpartition(-S, k - 1, axis=1)[:, :k] if k < S.shape[1] else np.tile(np.arange(S.shape[1]), (S.shape[0], 1))
            sim = np.take_along_axis(S, idx, axis=1)
            order = np.argsort(-sim, axis=1)
            sims.append(np.take_along_axis(sim, order, axis=1))
            idxs.append(np.take_along_axis(idx, order, axis=1))
        return np.vstack(sims), np.vstack(idxs)

    def predict_proba(self, X) -> np.ndarray:
        sim, idx = self.kneighbors(X)
        w = np.maximum(sim, 0) + 1e-6  # similarity-weighted vote
        proba = np.zeros((sim.shape[0], len(self.classes_)))
        for j in range(idx.shape[1]):
            np.add.at(proba, (np.arange(len(idx)), self.y_[idx[:, j]]), w[:, j])
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class _TextClassifier(MiningModel):
    info: ClassVar[ModelInfo]

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_thucnews()

    def _vectorizer(self):
        raise NotImplementedError

    def _classifier(self):
        raise NotImplementedError

    def _xy(self, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        require_columns(df, [self.text_column, self.target], "table")
        df = df[df[self.text_column].notna() & df[self.target].notna()]
        require_rows(len(df), 20, self.info.key)
        require_target(df[self.target], self.target, min_per_class=2)
        return df[self.text_column].astype(str), df[self.target]

    def fit(self, X: Any, y: Any = None) -> "_TextClassifier":
        if y is None:
            X, y = self._xy(X)
        from sklearn.pipeline import Pipeline

        self.pipeline_ = Pipeline([("vec", self._vectorizer()), ("clf", self._classifier())]).fit(list(X), list(y))
        self.classes_ = list(self.pipeline_.classes_)
        self.vocabulary_size_ = len(self.pipeline_.named_steps["vec"].vocabulary_)
        if self.vocabulary_size_ == 0:
            raise InvalidRequest(f"column {self.text_column!r} yields no words to learn from")
        return self

    def predict(self, texts: Any) -> np.ndarray:
        return self.pipeline_.predict(list(texts))

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        require_columns(data, [self.text_column, self.target], "table")
        if "split" in data.columns and {"dev", "test"} <= set(data["split"].astype(str)):
            train, test = data[data["split"] == "dev"], data[data["split"] == "test"]
            split = {"method": "dataset's own split: train on dev, evaluate on test"}
        else:
            X, y = self._xy(data)
            train, test = train_test_split(data.loc[X.index], test_size=0.25, random_state=42, stratify=y)
            split = {"method": "stratified random hold-out", "test_size": 0.25, "random_state": 42}
        X_tr, y_tr = self._xy(train)
        X_te, y_te = self._xy(test)
        self.fit(X_tr, y_tr)
        pred = self.predict(X_te)
        majority = y_tr.value_counts().idxmax()
        bpred = np.full(len(y_te), majority, dtype=object)
        metrics = {"macro_f1": float(f1_score(y_te, pred, average="macro", zero_division=0)),
                   "accuracy": float(accuracy_score(y_te, pred))}
        baseline = {"macro_f1": float(f1_score(y_te, bpred, average="macro", zero_division=0)),
                    "accuracy": float(accuracy_score(y_te, bpred))}
        per_class = f1_score(y_te, pred, labels=self.classes_, average=None, zero_division=0)
        explanation = self._explain()
        explanation["per_class_f1"] = {str(c): float(v) for c, v in zip(self.classes_, per_class)}
        explanation["split"] = {**split, "train_rows": len(X_tr), "test_rows": len(X_te)}
        explanation["errors"] = [{"text": t, "actual": str(a), "predicted": str(p)}
                                 for t, a, p in zip(X_te, y_te, pred) if a != p][:10]
        explanation.setdefault("notes", []).append(
            f"Tokenised with jieba; vocabulary of {self.vocabulary_size_} words. Baseline predicts "
            f"the majority class of the training part ({majority!r}).")
        display = self._display_names(data)
        cs = {"confusion": charts.confusion_chart(y_te, pred, self.classes_, [display.get(c, str(c)) for c in self.classes_]),
              "per_class_f1": charts.bar_chart([display.get(c, str(c)) for c in self.classes_], per_class,
                                               "各类 F1 Per-class F1", top=len(self.classes_)),
              "vs_baseline": charts.metric_comparison_chart(metrics, baseline, self.info.name_zh, "majority class")}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="majority class",
                          explanation=explanation, charts=cs)

    def _display_names(self, data: pd.DataFrame) -> dict[Any, str]:
        if "label_zh" in data.columns and self.target != "label_zh":
            pairs = data[[self.target, "label_zh"]].drop_duplicates()
            return {r[0]: f"{r[1]} {r[0]}" for r in pairs.itertuples(index=False)}
        return {}

    def _explain(self) -> dict[str, Any]:
        return {}

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Predicted topic and its probability for every text in ``text_column``."""
        if not hasattr(self, "pipeline_"):
            raise InvalidRequest(f"model {self.info.key!r} is not fitted; run it before scoring")
        require_columns(df, [self.text_column], "table")
        texts = df[self.text_column].fillna("").astype(str)
        proba = self.pipeline_.predict_proba(list(texts))
        out = pd.DataFrame({self.text_column: texts.to_numpy(),
                            "predicted": [self.classes_[i] for i in proba.argmax(axis=1)],
                            "probability": proba.max(axis=1)})
        if self.target in df.columns:
            out["actual"] = df[self.target].to_numpy()
        return out


def _info(key: str, name_zh: str, name_en: str, algorithm: str) -> ModelInfo:
    return ModelInfo(key=key, name_zh=name_zh, name_en=name_en, algorithm=algorithm, theme="text",
                     application_zh="按主题自动归类网页/资讯内容，用于内容运营与用户兴趣画像",
                     application_en="Classify web/news content by topic for content operations and interest profiles",
                     inputs="one row per document: a text column (Chinese) and a label column",
                     metrics=("macro_f1", "accuracy"), dataset="thucnews")


@register
class NaiveBayesText(_TextClassifier):
    info = _info("text_naive_bayes", "网页内容分类（朴素贝叶斯）", "Web content classification (naive Bayes)",
                 "multinomial naive Bayes")

    def __init__(self, text_column: str = "text", target: str = "label", alpha: float = 0.3, min_df: int = 1):
        self.text_column, self.target, self.alpha, self.min_df = text_column, target, alpha, min_df

    def _vectorizer(self):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(tokenizer=jieba_tokens, token_pattern=None, lowercase=False, min_df=self.min_df)

    def _classifier(self):
        from sklearn.naive_bayes import MultinomialNB

        return MultinomialNB(alpha=self.alpha)

    def _explain(self) -> dict[str, Any]:
        """Top words per class: highest log P(word|class) - mean over classes (distinctive, not just frequent)."""
        nb = self.pipeline_.named_steps["clf"]
        vocab = np.array(self.pipeline_.named_steps["vec"].get_feature_names_out())
        lp = nb.feature_log_prob_
        lift = lp - lp.mean(axis=0, keepdims=True)
        return {"top_words": {str(c): vocab[np.argsort(-lift[i])[:12]].tolist() for i, c in enumerate(self.classes_)},
                "notes": ["Top words are those whose probability in a class most exceeds their average over classes."]}


@register
class KNNText(_TextClassifier):
    info = _info("text_knn", "内容分类（K 近邻）", "Content classification (k-nearest neighbours)",
                 "k-nearest neighbours (cosine, TF-IDF)")

    def __init__(self, text_column: str = "text", target: str = "label", n_neighbors: int = 15):
        self.text_column, self.target, self.n_neighbors = text_column, target, n_neighbors

    def _vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(tokenizer=jieba_tokens, token_pattern=None, lowercase=False, sublinear_tf=True)

    def _classifier(self):
        return CosineKNN(n_neighbors=self.n_neighbors)

    def fit(self, X: Any, y: Any = None) -> "KNNText":
        if y is None:
            X, y = self._xy(X)
        super().fit(X, y)
        self.train_texts_ = [str(t) for t in X]  # to show the neighbours behind a prediction
        return self

    def _explain(self) -> dict[str, Any]:
        return {"notes": [f"Each title takes the similarity-weighted vote of its {self.n_neighbors} most similar "
                          "training titles (cosine on TF-IDF of jieba words); see neighbours in 'examples'."]}

    def neighbours(self, text: str, k: int = 3) -> list[dict[str, Any]]:
        """The training titles closest to ``text`` (why KNN chose its label)."""
        vec, knn = self.pipeline_.named_steps["vec"], self.pipeline_.named_steps["clf"]
        sim, idx = knn.kneighbors(vec.transform([text]), n_neighbors=k)
        return [{"text": self.train_texts_[i], "label": str(knn.classes_[knn.y_[i]]), "similarity": float(sv)}
                for sv, i in zip(sim[0], idx[0])]

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        ev = super().evaluate(data)
        ev.explanation["examples"] = [{"text": e["text"], "predicted": e["predicted"],
                                       "neighbours": self.neighbours(e["text"])} for e in ev.explanation["errors"][:3]]
        return ev
