"""Text family: the talk's 网页内容分类 (naive Bayes) and KNN 内容分类, on any table with a text column.

Roles ``text`` (the documents; default: the one free-text column) and ``target`` (their
classes: topics, or two classes such as good/bad reviews written True/False, 好评/差评,
1/0 — the positive class detected like every classifier's, :func:`roles.positive_class`).
The demo is THUCNews titles. Chinese text is cut into words with jieba (punctuation and
whitespace dropped). The hold-out is the table's own split when it has one (a ``split``
column with ``dev``/``test``: the demo trains on dev, evaluates on test); otherwise a
stratified 75/25 split. The baseline scores every row with the training class shares
(majority class; for the balanced demo topics that is chance: 10%). Labels are encoded
before sklearn sees them, so a boolean target is no different from a text one (it used to
crash the baseline's metrics: a mix of binary and unknown targets).
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_rows, require_target
from zhinao.analytics.catalog.roles import Binding, Preset, Role, plain, show
from zhinao.analytics.catalog.tabular import (class_labels, classifier_metrics, classifier_plots, encode,
                                              labels_text, operator_tables, score_table)
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


TEXT_ROLES = (
    Role("text", kinds=("text", "categorical"), demo="text", infer="kind",
         help_en="the documents (titles, reviews, page text); default: the one free-text column",
         help_zh="文本列（标题、评论、网页正文）；默认取唯一一个长文本列"),
    Role("target", kinds=("categorical", "boolean", "numeric"), demo="label", infer="name",
         help_en="the class of each document (topics, or two classes such as good/bad; positive detected or "
                 "set with positive=)",
         help_zh="每篇文本的类别（主题，或好评/差评等两类；正类自动识别或用 positive= 指定）"),
)


class _TextClassifier(MiningModel):
    info: ClassVar[ModelInfo]
    supports_predict = True

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_thucnews()

    def _vectorizer(self):
        raise NotImplementedError

    def _classifier(self):
        raise NotImplementedError

    # -- binding ----------------------------------------------------------------------------
    def _prepare(self, df: pd.DataFrame) -> tuple[Binding, pd.DataFrame]:
        """Bind text and target; the rows with both, checked: ``(binding, rows)``."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest(f"{self.info.key}: the input must be a table")
        df = df.rename(columns=str)
        b = self.bind(df)
        text, target = b["text"], b["target"]
        if text == target:
            raise InvalidRequest(f"{self.info.key}: text and target are both {text!r}; bind two columns",
                                 param="text")
        rows = df[df[text].notna() & df[target].notna()]
        require_rows(len(rows), 20, self.info.key)
        require_target(rows[target], target, min_per_class=2)
        return b, rows

    def _fit_texts(self, texts: Any, y: pd.Series, labels: list[Any], pos: Any) -> "_TextClassifier":
        from sklearn.pipeline import Pipeline

        codes = encode(y, labels)
        self.labels_, self.positive_, self.classes_ = list(labels), pos, list(labels)
        self.pipeline_ = Pipeline([("vec", self._vectorizer()), ("clf", self._classifier())]).fit(
            [str(t) for t in texts], codes)
        self.vocabulary_size_ = len(self.pipeline_.named_steps["vec"].vocabulary_)
        if self.vocabulary_size_ == 0:
            raise InvalidRequest(f"column {self.text_column_!r} yields no words to learn from", param="text")
        return self

    def fit(self, X: Any, y: Any = None) -> "_TextClassifier":
        """``fit(table)`` binds text and target and fits on every row; ``fit(texts, labels)`` too."""
        if y is None:
            b, rows = self._prepare(X)
            self.text_column_, self.target_ = b["text"], b["target"]
            texts, yy = rows[b["text"]], rows[b["target"]]
        else:
            texts, yy = list(X), pd.Series(list(y))
            self.text_column_, self.target_ = self.text or "text", self.target or "label"
        labels, pos = class_labels(yy, self.target_, self.positive)
        return self._fit_texts(texts, yy, labels, pos)

    def _proba(self, texts: Any) -> np.ndarray:
        p = self.pipeline_.predict_proba([str(t) for t in texts])
        seen = list(self.pipeline_.classes_)
        if len(seen) == len(self.labels_):
            return p
        full = np.zeros((p.shape[0], len(self.labels_)))
        full[:, seen] = p
        return full

    def predict(self, texts: Any) -> np.ndarray:
        return np.asarray([self.labels_[i] for i in self._proba(texts).argmax(axis=1)], dtype=object)

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        b, rows = self._prepare(data)
        text, target = b["text"], b["target"]
        self.text_column_, self.target_ = text, target
        labels, pos = class_labels(rows[target], target, self.positive)
        codes_all = encode(rows[target], labels)
        own = "split" in rows.columns and {"dev", "test"} <= set(rows["split"].astype(str)) and "split" not in (text, target)
        if own:
            tr = np.flatnonzero(rows["split"].astype(str).eq("dev").to_numpy())
            te = np.flatnonzero(rows["split"].astype(str).eq("test").to_numpy())
            split = {"method": "the table's own split: train on split=dev, evaluate on split=test"}
        else:
            tr, te = train_test_split(np.arange(len(rows)), test_size=0.25, random_state=42, stratify=codes_all)
            split = {"method": "stratified random hold-out", "test_size": 0.25, "random_state": 42}
        if len(set(codes_all[tr].tolist())) < 2 or len(te) == 0:
            raise InvalidRequest(f"{self.info.key}: the training part has one class of {target!r}; "
                                 f"give more rows of each class", param="target")
        X_tr, X_te = rows[text].iloc[tr], rows[text].iloc[te]
        self._fit_texts(X_tr, rows[target].iloc[tr], labels, pos)
        c_tr, c_te = codes_all[tr], codes_all[te]
        proba = self._proba(X_te)
        prior = np.bincount(c_tr, minlength=len(labels)) / len(c_tr)
        base = np.tile(prior, (len(te), 1))
        metrics = classifier_metrics(c_te, proba, len(labels))
        baseline = classifier_metrics(c_te, base, len(labels))
        pred = proba.argmax(axis=1)
        explanation = self._explain()
        per_class = f1_score(c_te, pred, labels=list(range(len(labels))), average=None, zero_division=0)
        explanation["per_class_f1"] = {str(c): float(v) for c, v in zip(labels, per_class)}
        explanation["split"] = {**split, "train_rows": int(len(tr)), "test_rows": int(len(te))}
        explanation["target"] = {"column": target, "classes": [plain(v) for v in labels],
                                 "positive": plain(pos) if pos is not None else None}
        # keys that name no column: "text"/"label" are the demo's column names
        explanation["errors"] = [{"document": str(t), "actual": str(labels[a]), "predicted": str(labels[p])}
                                 for t, a, p in zip(X_te, c_te, pred) if a != p][:10]
        majority = labels[int(np.argmax(prior))]
        tables = None
        if len(labels) == 2:
            tables = operator_tables(c_te, proba[:, 1])
            explanation.update(tables)
        what = (f"{target}={show(pos)} (the other class: {show(labels[0])})" if pos is not None
                else f"{target} ({len(labels)} classes: {labels_text(labels[:10])})")
        explanation.setdefault("notes", []).insert(0, (
            f"Predict {what} from the words of {text}, tokenised with jieba; vocabulary of "
            f"{self.vocabulary_size_} words. {split['method'].capitalize()}: {len(tr)} training and {len(te)} "
            f"evaluation rows. Baseline: the training class shares as scores (majority {show(majority)})."))
        if self.refit:
            self._fit_texts(rows[text], rows[target], labels, pos)
            explanation["fitted_on"] = (f"all {len(rows)} rows (refit=True: refitted on training and evaluation rows "
                                        f"after the evaluation; the metrics are from the hold-out fit)")
        else:
            explanation["fitted_on"] = f"the {len(tr)} training rows (refit=true refits on all {len(rows)})"
        display = self._display_names(rows, target)
        shown = [display.get(c, str(c)) for c in labels]
        keys = self.info.metrics
        cs = {"confusion": charts.confusion_chart([shown[i] for i in c_te], [shown[i] for i in pred], shown),
              "per_class_f1": charts.bar_chart(shown, per_class, "各类 F1 Per-class F1", top=len(labels)),
              "vs_baseline": charts.metric_comparison_chart({k: metrics[k] for k in keys},
                                                            {k: baseline[k] for k in keys}, self.info.name_zh,
                                                            "majority class")}
        if len(labels) == 2:
            cs["roc"] = charts.roc_chart(c_te, proba[:, 1], f"ROC — {self.info.name_zh}", baseline_scores=base[:, 1])
        pl = classifier_plots(c_te, proba, base, shown, {k: metrics[k] for k in keys}, {k: baseline[k] for k in keys},
                              "majority class", self.info.name_zh, tables)
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="majority class (training class shares)",
                          explanation=explanation, charts=cs, plots=pl)

    @staticmethod
    def _display_names(data: pd.DataFrame, target: str) -> dict[Any, str]:
        """Demo topics carry a Chinese name in ``label_zh``: show both where the table has it."""
        if "label_zh" in data.columns and target != "label_zh":
            pairs = data[[target, "label_zh"]].drop_duplicates(subset=[target])
            return {plain(r[0]): f"{r[1]} {r[0]}" for r in pairs.itertuples(index=False)}
        return {}

    def _explain(self) -> dict[str, Any]:
        return {}

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Every input column + ``score`` (probability of the positive / predicted class) + ``prediction``."""
        if not hasattr(self, "pipeline_"):
            raise InvalidRequest(f"model {self.info.key!r} is not fitted; run it before scoring")
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest(f"model {self.info.key!r} scores a table")
        df = df.rename(columns=str)
        if self.text_column_ not in df.columns:
            raise InvalidRequest(f"the table lacks the text column {self.text_column_!r} the model was trained on; "
                                 f"columns: {', '.join(map(str, df.columns[:30]))}", param=self.text_column_)
        proba = self._proba(df[self.text_column_].fillna("").astype(str))
        return score_table(df, proba, self.labels_, None)


def _info(key: str, name_zh: str, name_en: str, algorithm: str, presets: tuple[Preset, ...]) -> ModelInfo:
    return ModelInfo(key=key, name_zh=name_zh, name_en=name_en, algorithm=algorithm, theme="text",
                     application_zh="按主题自动归类网页/资讯内容，用于内容运营与用户兴趣画像；也可对评论、工单等任意文本分类",
                     application_en="Classify web/news content by topic for content operations and interest "
                                    "profiles; any text column (reviews, tickets) with its classes",
                     inputs="one row per document: a text column (Chinese) and a class column",
                     metrics=("macro_f1", "accuracy"), dataset="thucnews", task="classification",
                     roles=TEXT_ROLES, presets=presets)


WEB_CONTENT = Preset("web_content", "网页内容分类", "Web content classification", dataset="thucnews",
                     note_en="Topics of pages or news titles (the demo: THUCNews, 10 topics).",
                     note_zh="网页或资讯标题的主题分类（演示数据：THUCNews 十类主题）。")
REVIEWS = Preset("review_sentiment", "评论与投诉文本分类", "Review and complaint text classification",
                 note_en="Bind text= to the review/ticket column and target= to its class (good/bad, 1/0, "
                         "complaint type).",
                 note_zh="将 text 绑定到评论/工单文本列，target 绑定到类别列（好评/差评、1/0、投诉类型）。")


@register
class NaiveBayesText(_TextClassifier):
    info = _info("text_naive_bayes", "网页内容分类（朴素贝叶斯）", "Web content classification (naive Bayes)",
                 "multinomial naive Bayes", (WEB_CONTENT, REVIEWS))

    def __init__(self, text: Any = None, target: Any = None, positive: Any = None, refit: bool = False,
                 alpha: float = 0.3, min_df: int = 1):
        self.text, self.target, self.positive, self.refit = text, target, positive, refit
        self.alpha, self.min_df = alpha, min_df

    def _vectorizer(self):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(tokenizer=jieba_tokens, token_pattern=None, lowercase=False, min_df=int(self.min_df))

    def _classifier(self):
        from sklearn.naive_bayes import MultinomialNB

        return MultinomialNB(alpha=float(self.alpha))

    def _explain(self) -> dict[str, Any]:
        """Top words per class: highest log P(word|class) - mean over classes (distinctive, not just frequent)."""
        nb = self.pipeline_.named_steps["clf"]
        vocab = np.array(self.pipeline_.named_steps["vec"].get_feature_names_out())
        lp = nb.feature_log_prob_
        lift = lp - lp.mean(axis=0, keepdims=True)
        return {"top_words": {str(self.labels_[c]): vocab[np.argsort(-lift[i])[:12]].tolist()
                              for i, c in enumerate(nb.classes_)},
                "notes": ["Top words are those whose probability in a class most exceeds their average over classes."]}


@register
class KNNText(_TextClassifier):
    info = _info("text_knn", "内容分类（K 近邻）", "Content classification (k-nearest neighbours)",
                 "k-nearest neighbours (cosine, TF-IDF)",
                 (Preset("content", "内容分类", "Content classification", dataset="thucnews",
                         note_en="Topics of titles by their most similar labelled titles.",
                         note_zh="按最相似的已标注标题判断主题。"), REVIEWS))

    def __init__(self, text: Any = None, target: Any = None, positive: Any = None, refit: bool = False,
                 n_neighbors: int = 15):
        self.text, self.target, self.positive, self.refit, self.n_neighbors = text, target, positive, refit, n_neighbors

    def _vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(tokenizer=jieba_tokens, token_pattern=None, lowercase=False, sublinear_tf=True)

    def _classifier(self):
        return CosineKNN(n_neighbors=int(self.n_neighbors))

    def _fit_texts(self, texts, y, labels, pos):
        super()._fit_texts(texts, y, labels, pos)
        self.train_texts_ = [str(t) for t in texts]  # to show the neighbours behind a prediction
        return self

    def _explain(self) -> dict[str, Any]:
        return {"notes": [f"Each document takes the similarity-weighted vote of its {self.n_neighbors} most similar "
                          "training documents (cosine on TF-IDF of jieba words); see neighbours in 'examples'."]}

    def neighbours(self, text: str, k: int = 3) -> list[dict[str, Any]]:
        """The training texts closest to ``text`` (why KNN chose its label)."""
        vec, knn = self.pipeline_.named_steps["vec"], self.pipeline_.named_steps["clf"]
        sim, idx = knn.kneighbors(vec.transform([text]), n_neighbors=k)
        return [{"document": self.train_texts_[i], "class": str(self.labels_[int(knn.classes_[knn.y_[i]])]),
                 "similarity": float(sv)} for sv, i in zip(sim[0], idx[0])]

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        ev = super().evaluate(data)
        ev.explanation["examples"] = [{"document": e["document"], "predicted": e["predicted"],
                                       "neighbours": self.neighbours(e["document"])}
                                      for e in ev.explanation["errors"][:3]]
        return ev
