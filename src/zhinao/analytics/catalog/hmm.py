"""HMM 语义识别: word tagging and new-word discovery, or an HMM tagger on the user's own labels.

:class:`HmmWordTagger` is a supervised hidden Markov model (smoothed counts, Viterbi
decoding) in one of two shapes, bound by column roles (:mod:`.roles`):

- **text** (role ``text``, any column name): a character-level tagger with the four BMES
  states (Begin / Middle / End of a word, Single-character word), trained on the texts as
  jieba segments them. It is the engine behind "semantic recognition" of keywords in free
  text (complaints, tickets, titles), and, because it labels characters rather than looking
  words up, it proposes *new words* no dictionary holds (new product names, slang) -- the
  reason an operator wants it next to a dictionary. Judged by word-level F1 against jieba's
  segmentation of held-out texts (a silver standard, not human annotation); baseline:
  every character a word.
- **tagged** (roles ``token`` (or ``text``) + ``label`` + ``sentence``): a table of the
  user's own labelled tokens, one row per token (a character with its BMES tag, a word with
  its BIO entity tag or part of speech), grouped into sentences by the sentence id. The HMM
  learns the user's tag set, so the operator's annotation (not jieba's) is what is learned
  and what is evaluated: tag accuracy and F1 of the labelled units (words for BMES, entity
  chunks for BIO, tokens otherwise) on held-out sentences; baseline: each token's most
  frequent label in training.

Decoding is vectorised over states with numpy, so a tag set of dozens of labels (parts of
speech) stays fast; BMES keeps its hard constraints (a word is B M* E or S).
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections import Counter, defaultdict
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_rows
from zhinao.analytics.catalog.roles import Binding, Preset, Role, _columns_text, bind, plain
from zhinao.errors import InvalidRequest

STATES = "BMES"
# allowed transitions: a word is B M* E or S
_ALLOWED = {"B": "ME", "M": "ME", "E": "BS", "S": "BS"}
_START = "BS"
_CLASSES = ("<DIGIT>", "<LATIN>", "<PUNCT>", "<UNK>")
MAX_TEXT_CHARS = 10_000
NEG = -1e9

ROLES = (
    Role("text", kinds=("text",), demo="text", infer="kind",
         help_en="the free-text column (Chinese) to segment; with a label bound, the token column of a tagged table",
         help_zh="要分词的文本列（中文）；若同时绑定 label，则为已标注表的词/字列"),
    Role("token", kinds=("categorical", "text", "id", "numeric"), required=False,
         help_en="tagged table: one token (character or word) per row", help_zh="已标注表：每行一个字或词"),
    Role("label", kinds=("categorical", "boolean", "text"), required=False,
         help_en="tagged table: the token's label (BMES, BIO, part of speech …), learned and evaluated as given",
         help_zh="已标注表：该字/词的标签（BMES、BIO、词性等），按用户标注学习与评估"),
    Role("sentence", kinds=("id", "categorical", "numeric", "text"), required=False,
         help_en="tagged table: the sentence (or document) id; its rows, in table order, are one sequence",
         help_zh="已标注表：句子（或文档）编号；同一编号的行按表中顺序组成一个序列"),
)


def _char_class(ch: str) -> str:
    """Back-off symbol for tokens never seen in training."""
    if ch.isdigit():
        return "<DIGIT>"
    if ch.isascii() and ch.isalpha():
        return "<LATIN>"
    if ch and all(unicodedata.category(c)[0] in "PS" for c in ch):
        return "<PUNCT>"
    return "<UNK>"


def jieba_words(text: str) -> list[str]:
    """Reference segmentation (jieba precise mode), whitespace tokens dropped."""
    import jieba

    return [w for w in jieba.lcut(text) if w.strip()]


def spans(words: Sequence[str]) -> set[tuple[int, int]]:
    out, i = set(), 0
    for w in words:
        out.add((i, i + len(w)))
        i += len(w)
    return out


def _prf(tp: int, n_ref: int, n_pred: int) -> dict[str, float]:
    prec, rec = tp / max(n_pred, 1), tp / max(n_ref, 1)
    return {"word_f1": 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec),
            "word_precision": prec, "word_recall": rec}


def word_prf(refs: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Word-level precision/recall/F1: a word counts when both its boundaries match."""
    tp = n_ref = n_pred = 0
    for r, p in zip(refs, preds):
        sr, sp = spans(r), spans(p)
        tp += len(sr & sp)
        n_ref += len(sr)
        n_pred += len(sp)
    return _prf(tp, n_ref, n_pred)


def tag_scheme(labels: Sequence[str]) -> str:
    """``bmes`` | ``bio`` | ``tokens``: which units a tag set labels (for span F1)."""
    s = {str(x) for x in labels}
    if s and s <= set(STATES) and len(s) >= 2:
        return "bmes"
    if "O" in s and all(x == "O" or re.match(r"^[BIES][-_]", x) for x in s):
        return "bio"
    return "tokens"


def units(tags: Sequence[str], scheme: str) -> set[tuple]:
    """The labelled units of a tag sequence: word spans (BMES), typed chunks (BIO), or (i, tag)."""
    out: set[tuple] = set()
    if scheme == "bmes":
        start = 0
        for i, t in enumerate(tags):
            if t in "BS":
                start = i
            if t in "ES" or i == len(tags) - 1:
                out.add((start, i + 1))
        return out
    if scheme == "bio":
        cur: list | None = None
        for i, t in enumerate(list(tags) + ["O"]):
            head, typ = (t[0], t[2:]) if t != "O" else ("O", "")
            if cur is not None and (head in "BSO" or typ != cur[2]):
                out.add((cur[0], i, cur[2]))
                cur = None
            if head in "BS" or (head in "IE" and cur is None):
                cur = [i, i, typ]
        return out
    return {(i, t) for i, t in enumerate(tags)}


def _texts(data: Any, column: str) -> list[str]:
    if isinstance(data, pd.DataFrame):
        if column not in data.columns:
            raise InvalidRequest(f"the table lacks the text column {column!r}; columns: {_columns_text(data)}",
                                 param="text")
        texts = data[column].dropna().astype(str).tolist()
    elif isinstance(data, (list, tuple)):
        texts = [str(t) for t in data]
    else:
        raise InvalidRequest("text input must be a table with a text column or a list of strings")
    texts = ["".join(t.split()) for t in texts]  # whitespace separates nothing in Chinese titles
    too_long = next((t for t in texts if len(t) > MAX_TEXT_CHARS), None)
    if too_long is not None:
        raise InvalidRequest(f"a text has {len(too_long)} characters; the limit is {MAX_TEXT_CHARS}")
    return [t for t in texts if t]


def _words_to_tagged(words: Sequence[str]) -> tuple[list[str], list[str]]:
    chars, tags = [], []
    for w in words:
        chars.extend(w)
        tags.extend("S" if len(w) == 1 else "B" + "M" * (len(w) - 2) + "E")
    return chars, tags


@register
class HmmWordTagger(MiningModel):
    """Supervised HMM: start, transition and emission probabilities are smoothed counts."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="hmm_word_tagger", name_zh="语义识别（HMM 分词与新词发现）",
        name_en="Semantic recognition: HMM word tagging and new-word discovery",
        algorithm="hidden Markov model (Viterbi)", theme="sequence",
        application_zh="语义识别：对投诉、工单、标题等文本逐字标注词语边界，识别关键词并发现词典外的新词；"
                       "或在用户自己标注的字/词标签（BMES、BIO、词性）上训练标注器",
        application_en="tag word boundaries in tickets/complaints/titles, spot keywords and discover new words; or "
                       "learn the user's own token labels (BMES, BIO, parts of speech)",
        inputs="a text column (role text, Chinese), or a tagged table: token + label + sentence id",
        metrics=("word_f1", "word_precision", "word_recall"), dataset="thucnews", task="tagging", roles=ROLES,
        presets=(
            Preset("word_segmentation", "中文分词", "Chinese word segmentation and new words", {},
                   dataset="thucnews", note_en="learns from jieba's segmentation of the texts",
                   note_zh="从 jieba 对文本的分词中学习"),
            Preset("complaint_keywords", "投诉工单语义识别", "Keywords and new words in complaints and tickets",
                   {"min_new_word_count": 3, "max_train": 20_000}, dataset="",
                   note_en="bind text to the ticket or complaint column", note_zh="将 text 绑定到工单/投诉内容列"),
        ))

    def __init__(self, text: str | None = None, token: str | None = None, label: str | None = None,
                 sentence: str | None = None, holdout_column: str | None = "split", smoothing: float = 0.5,
                 min_new_word_count: int = 2, max_train: int = 10_000, test_size: float = 0.2, seed: int = 0):
        self.text = text
        self.token = token
        self.label = label
        self.sentence = sentence
        self.holdout_column = holdout_column
        self.smoothing = smoothing
        self.min_new_word_count = min_new_word_count
        self.max_train = max_train
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_thucnews()

    # -- binding ---------------------------------------------------------------------------

    def bind(self, df: pd.DataFrame) -> Binding:
        """Text shape (``text``) or tagged shape (``label`` given: token/text + label + sentence)."""
        df = df.rename(columns=str)
        roles = {r.name: r for r in self.info.roles}
        if self.label is None and self.token is None:
            b = bind([roles["text"]], df, {"text": self.text}, model_key=self.info.key)
        else:
            if self.label is None:
                raise InvalidRequest(f"{self.info.key}: a tagged table needs its label column: -p label=COLUMN "
                                     "(BMES, BIO or any tag per token)", param="label")
            tok = "token" if self.token is not None else "text"
            if self.token is None and self.text is None:
                raise InvalidRequest(f"{self.info.key}: bind the token column of the tagged table with "
                                     "-p token=COLUMN", param="token")
            if self.sentence is None:
                raise InvalidRequest(f"{self.info.key}: bind the sentence id of the tagged table with "
                                     "-p sentence=COLUMN (the rows of one sentence share it)", param="sentence")
            use = [Role(tok, kinds=("categorical", "text", "id", "numeric"), help_en=".", help_zh="."),
                   Role("label", kinds=("categorical", "boolean", "text"), help_en=".", help_zh="."),
                   Role("sentence", kinds=("id", "categorical", "numeric", "text"), help_en=".", help_zh=".")]
            b = bind(use, df, {tok: getattr(self, tok), "label": self.label, "sentence": self.sentence},
                     model_key=self.info.key)
            if b[tok] == b["label"]:
                raise InvalidRequest(f"{self.info.key}: token and label are both {b['label']!r}", param="label")
            if tok == "text":  # one role name for the tokens in the record
                b.columns["token"] = b.columns.pop("text")
        self.binding_ = b
        return b

    def _tagged(self, df: pd.DataFrame, b: Binding) -> tuple[list[tuple[list[str], list[str]]], list[Any]]:
        tok, lab, sen = b["token"], b["label"], b["sentence"]
        d = df[df[tok].notna() & df[lab].notna() & df[sen].notna()]
        if len(d) == 0:
            raise InvalidRequest(f"{self.info.key}: no row has a token in {tok!r}, a label in {lab!r} and a "
                                 f"sentence id in {sen!r}", param="label")
        codes, uniq = pd.factorize(d[sen], sort=False)
        toks, labs = d[tok].map(lambda v: str(plain(v))).tolist(), d[lab].map(lambda v: str(plain(v))).tolist()
        groups: list[tuple[list[str], list[str]]] = [([], []) for _ in range(len(uniq))]
        for c, t, y in zip(codes, toks, labs):
            groups[c][0].append(t)
            groups[c][1].append(y)
        return groups, list(uniq)

    # -- learning ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> "HmmWordTagger":
        """Learn from segmented texts (a list of word lists), raw texts / a text table (segmented
        by jieba), a tagged table, or a list of ``(tokens, tags)`` pairs."""
        if isinstance(X, pd.DataFrame):
            b = self.bind(X)
            if "label" in b.columns:
                return self._fit_pairs(self._tagged(X.rename(columns=str), b)[0])
            texts = _texts(X.rename(columns=str), b["text"])[: int(self.max_train)]
            return self._fit_pairs([_words_to_tagged(jieba_words(t)) for t in texts])
        if isinstance(X, (list, tuple)) and X and isinstance(X[0], tuple) and len(X[0]) == 2 \
                and isinstance(X[0][0], (list, tuple)):
            return self._fit_pairs([(list(a), list(b)) for a, b in X])
        if isinstance(X, (list, tuple)) and X and isinstance(X[0], (list, tuple)):
            return self._fit_pairs([_words_to_tagged([w for w in s if str(w).strip()]) for s in X])
        return self._fit_pairs([_words_to_tagged(jieba_words(t)) for t in _texts(X, "text")[: int(self.max_train)]])

    def _fit_pairs(self, pairs: list[tuple[list[str], list[str]]]) -> "HmmWordTagger":
        pairs = [(t, y) for t, y in pairs if t]
        require_rows(len(pairs), 20, self.info.key)
        a = float(self.smoothing)
        labels = sorted({t for _, y in pairs for t in y})
        self.scheme_ = tag_scheme(labels)
        states = list(STATES) if self.scheme_ == "bmes" else labels
        if len(states) < 2:
            raise InvalidRequest(f"{self.info.key}: every token has the label {show_label(states)}; a tagger needs "
                                 "at least two labels", param="label")
        K = len(states)
        si = {s: i for i, s in enumerate(states)}
        allowed = np.ones((K, K), dtype=bool)
        start_ok = np.ones(K, dtype=bool)
        self.end_ok_ = np.ones(K, dtype=bool)
        if self.scheme_ == "bmes":
            allowed = np.array([[s1 in _ALLOWED[s0] for s1 in states] for s0 in states])
            start_ok = np.array([s in _START for s in states])
            self.end_ok_ = np.array([s in "ES" for s in states])
        start = np.zeros(K)
        trans = np.zeros((K, K))
        vocab_index: dict[str, int] = {}
        emit_rows: list[tuple[int, int]] = []
        ci = {c: i for i, c in enumerate(_CLASSES)}
        for toks, tags in pairs:
            idx = [si[t] for t in tags]
            start[idx[0]] += 1
            for i0, i1 in zip(idx, idx[1:]):
                trans[i0, i1] += 1
            for tok, s in zip(toks, idx):
                j = vocab_index.setdefault(tok, len(vocab_index))
                emit_rows.append((s, j))
        with np.errstate(divide="ignore"):
            ls = np.log((start + a) / ((start + a) * start_ok).sum())
            self.log_start_ = np.where(start_ok, ls, NEG)
            tr = (trans + a) * allowed
            self.log_trans_ = np.where(allowed, np.log(tr / tr.sum(axis=1, keepdims=True)), NEG)
        V = len(vocab_index)
        emit = np.zeros((K, V))
        if emit_rows:
            r = np.asarray(emit_rows)
            np.add.at(emit, (r[:, 0], r[:, 1]), 1)
        c_s = emit.sum(axis=1, keepdims=True)
        freq = emit.sum(axis=0)
        # known tokens: a Dirichlet prior of total mass `a` spread by token frequency, so a rare
        # state does not soak up probability from every token (add-a per token would, with a
        # large tag set); unseen tokens: how often the state emits a token seen only once, of
        # the same class (digit, latin, punctuation, other) -- open classes (nouns, word
        # middles) take new tokens, closed ones do not
        self.log_emit_ = np.log((emit + a * freq / max(freq.sum(), 1)) / (c_s + a))
        hapax = np.zeros((K, len(_CLASSES)))
        once = freq == 1
        inv = {j: t for t, j in vocab_index.items()}
        for j in np.flatnonzero(once):
            hapax[:, ci[_char_class(inv[j])]] += emit[:, j]
        self.log_emit_class_ = np.log((hapax + 0.1) / (c_s + 1.0))
        self.states_ = tuple(states)
        self.vocab_index_ = vocab_index
        self.tag_counts_ = {s: int(c) for s, c in zip(states, emit.sum(axis=1))}
        if self.scheme_ == "bmes":  # the words seen in training (max-match context, OOV recall)
            vocab: Counter = Counter()
            for toks, tags in pairs:
                cur = ""
                for ch, t in zip(toks, tags):
                    cur += ch
                    if t in "ES":
                        vocab[cur] += 1
                        cur = ""
            self.vocab_ = vocab
        else:
            self.vocab_ = Counter(t for toks, _ in pairs for t in toks)
        return self

    def _emissions(self, toks: Sequence[str]) -> np.ndarray:
        cols = [self.vocab_index_.get(t, -1) for t in toks]
        E = np.empty((len(toks), len(self.states_)))
        for n, (t, j) in enumerate(zip(toks, cols)):
            E[n] = self.log_emit_[:, j] if j >= 0 else self.log_emit_class_[:, _CLASSES.index(_char_class(t))]
        return E

    def tag_tokens(self, toks: Sequence[str]) -> list[str]:
        """Viterbi labels of a token sequence (one label per token)."""
        if not len(toks):
            return []
        E = self._emissions(toks)
        V = self.log_start_ + E[0]
        back = np.empty((len(toks) - 1, len(self.states_)), dtype=int)
        cols = np.arange(len(self.states_))
        for n in range(1, len(toks)):
            scores = V[:, None] + self.log_trans_
            best = scores.argmax(axis=0)
            back[n - 1] = best
            V = scores[best, cols] + E[n]
        last = int(np.where(self.end_ok_, V, -np.inf).argmax())  # a BMES text ends at a word end
        path = [last]
        for n in range(len(toks) - 2, -1, -1):
            path.append(int(back[n, path[-1]]))
        return [self.states_[i] for i in reversed(path)]

    def tag(self, text: str) -> str:
        """Viterbi BMES tags of ``text`` (one tag per character)."""
        return "".join(self.tag_tokens(list(text)))

    def segment(self, text: str) -> list[str]:
        text = "".join(str(text).split())
        words, cur = [], ""
        for ch, t in zip(text, self.tag(text)):
            cur += ch
            if t in "ES":
                words.append(cur)
                cur = ""
        if cur:
            words.append(cur)
        return words

    # -- scoring -------------------------------------------------------------------------

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Text shape: every input row with its ``words`` and candidate ``new_words`` (not in jieba's
        dictionary). Tagged shape: every input row with ``predicted_label``."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest("scoring takes a table")
        df = df.rename(columns=str)
        fitted = getattr(self, "binding_", None)
        b = fitted if fitted is not None and fitted.columns else self.bind(df)
        need = [c for c in b.used() if c != b.columns.get("label")]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise InvalidRequest(f"{self.info.key}: the table lacks {', '.join(map(repr, missing))}, which the model "
                                 f"was fitted with; columns: {_columns_text(df)}", param=missing[0])
        out = df.copy()
        if "token" in b.columns:
            tok, sen = b["token"], b["sentence"]
            pred = pd.Series(index=df.index, dtype=object)
            ok = df[tok].notna() & df[sen].notna()
            for _, g in df[ok].groupby(sen, sort=False):
                pred.loc[g.index] = self.tag_tokens([str(plain(v)) for v in g[tok]])
            out["predicted_label"] = pred
            return out
        col = b["text"]
        dic = _jieba_dictionary() if self.scheme_ == "bmes" else set()
        words, new = [], []
        for v in df[col].tolist():
            t = "" if v is None or (not isinstance(v, str) and pd.isna(v)) else "".join(str(v).split())[:MAX_TEXT_CHARS]
            ws = self.segment(t) if t else []
            words.append(" / ".join(ws))
            new.append(" ".join(w for w in ws if len(w) >= 2 and w not in dic))
        out["words"], out["new_words"] = words, new
        return out

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, data: Any) -> Evaluation:
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame({"text": list(data)})
        if len(data) == 0:
            raise InvalidRequest(f"model {self.info.key!r} needs at least 20 texts, the table is empty",
                                 code="too_few_rows")
        data = data.rename(columns=str)
        b = self.bind(data)
        return self._evaluate_tagged(data, b) if "label" in b.columns else self._evaluate_text(data, b)

    def _holdout(self, data: pd.DataFrame) -> tuple[pd.Series | None, str]:
        hc = self.holdout_column
        if hc and hc in data.columns and data[hc].astype(str).str.lower().eq("test").any():
            return data[hc].astype(str).str.lower().eq("test"), \
                f"the table's own split: rows with {hc!r} = test are the hold-out, the rest train"
        return None, ""

    def _evaluate_text(self, data: pd.DataFrame, b: Binding) -> Evaluation:
        col = b["text"]
        is_test, split = self._holdout(data)
        if is_test is not None:
            train, test = data[~is_test], data[is_test]
        else:
            idx = np.random.default_rng(int(self.seed)).permutation(len(data))
            cut = int(len(data) * 0.5)
            train, test = data.iloc[idx[:cut]], data.iloc[idx[cut:]]
            split = "random 50/50 split of the rows (seeded)"
        train_texts = _texts(train, col)[: int(self.max_train)]
        test_texts = _texts(test, col)[:3000]
        require_rows(len(test_texts), 10, "hold-out texts")
        t0 = time.perf_counter()
        self._fit_pairs([_words_to_tagged(jieba_words(t)) for t in train_texts])
        fit_s = time.perf_counter() - t0
        refs = [jieba_words(t) for t in test_texts]
        t1 = time.perf_counter()
        preds = [self.segment(t) for t in test_texts]
        tag_s = time.perf_counter() - t1
        metrics = word_prf(refs, preds)
        baseline = word_prf(refs, [list(t) for t in test_texts])
        mm = word_prf(refs, [max_match(t, self.vocab_) for t in test_texts])
        # recall on reference words never seen in training: what a dictionary cannot do
        oov_tot = oov_hit = 0
        for r, p in zip(refs, preds):
            sp = spans(p)
            i = 0
            for w in r:
                if w not in self.vocab_ and len(w) >= 2:
                    oov_tot += 1
                    oov_hit += (i, i + len(w)) in sp
                i += len(w)
        dic = _jieba_dictionary()
        new = Counter(w for p in preds for w in p if len(w) >= 2 and w not in dic and not w.isdigit()
                      and not re.fullmatch(r"[\W_]+", w))
        new_words = [(w, c) for w, c in new.most_common(40) if c >= int(self.min_new_word_count)][:25]
        st = self.states_
        expl = {"split": {"train_texts": len(train_texts), "holdout_texts": len(test_texts), "protocol": split},
                "evaluated": f"word boundaries of the HMM on {len(test_texts):,} hold-out texts of {col!r} against "
                             "jieba's segmentation of the same texts (a silver standard, not human annotation)",
                "fit_seconds": round(fit_s, 3), "tag_seconds": round(tag_s, 3),
                "max_match_with_training_vocab": {k: round(v, 4) for k, v in mm.items()},
                "oov_recall": round(oov_hit / max(oov_tot, 1), 4), "oov_words_in_reference": oov_tot,
                "new_words_not_in_jieba_dictionary": [{"word": w, "count": c} for w, c in new_words],
                "example": {"input": test_texts[0], "hmm": preds[0], "jieba": refs[0]},
                "transition_probs": {f"{st[i]}->{st[j]}": round(math.exp(self.log_trans_[i, j]), 3)
                                     for i in range(len(st)) for j in range(len(st)) if self.log_trans_[i, j] > -1e8},
                "notes": [f"Texts: column {col!r}; {len(train_texts):,} training texts (cap max_train="
                          f"{self.max_train}), hold-out capped at 3,000 texts to keep evaluation fast.",
                          "The HMM learns only from jieba's output on the training texts; to learn your own "
                          "annotation, bind a tagged table (token, label, sentence).",
                          "Forward maximum matching with the training vocabulary is reported for context: a "
                          "dictionary wins on known words, the HMM's value is recall on unseen words "
                          "(oov_recall) and new-word discovery."]}
        fig, ax = charts.figure(6.4, 3.6)
        names = ["HMM", "逐字 per-char", "最大匹配 max-match"]
        vals = [metrics["word_f1"], baseline["word_f1"], mm["word_f1"]]
        ax.bar(names, vals, color=["#c0392b", "#95a5a6", "#2e86c1"])
        for i, v in enumerate(vals):
            ax.text(i, v + 0.01, f"{v:.3f}", ha="center")
        ax.set_ylim(0, 1)
        ax.set_ylabel("词级 F1 (vs jieba)")
        ax.set_title("HMM 分词: 词级 F1 (hold-out)")
        out = {"word_f1": charts.to_png(fig)}
        if new_words:
            out["new_words"] = charts.bar_chart([w for w, _ in new_words[:15]], [c for _, c in new_words[:15]],
                                                "HMM 发现的新词 (jieba 词典外)", xlabel="count", top=15)
        ex_tags = self.tag(test_texts[0])
        pl = {"word_f1": {"type": "bar", "title": "词级 F1 Word F1 vs jieba (hold-out)", "horizontal": False,
                          "categories": names, "series": [{"name": "word_f1", "values": [round(v, 6) for v in vals]}]},
              "tags": plots.table(["字 char", "标签 tag"], list(zip(test_texts[0], ex_tags)),
                                  "HMM 标注示例 BMES tags of a hold-out text"),
              "new_words": plots.table(["新词 word", "次数 count"], new_words,
                                       "jieba 词典外的新词 New words (not in jieba's dictionary)")}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="every character a word",
                          explanation=expl, charts=out, plots=pl)

    def _evaluate_tagged(self, data: pd.DataFrame, b: Binding) -> Evaluation:
        groups, ids = self._tagged(data, b)
        require_rows(len(groups), 30, f"{self.info.key} (sentences of {b['sentence']!r})")
        is_test, split = self._holdout(data)
        if is_test is not None:
            sen = b["sentence"]
            test_ids = set(data.loc[is_test, sen].tolist())
            te = [i for i, s in enumerate(ids) if s in test_ids]
        else:
            rng = np.random.default_rng(int(self.seed))
            te = rng.permutation(len(groups))[: int(round(len(groups) * float(self.test_size)))].tolist()
            split = (f"random {100 - int(round(100 * self.test_size))}/{int(round(100 * self.test_size))} split of "
                     f"the sentences of {b['sentence']!r} (seeded)")
        tes = set(te)
        train = [g for i, g in enumerate(groups) if i not in tes]
        test = [groups[i] for i in sorted(tes)]
        require_rows(len(test), 5, "hold-out sentences")
        t0 = time.perf_counter()
        self._fit_pairs(train)
        fit_s = time.perf_counter() - t0
        preds = [self.tag_tokens(t) for t, _ in test]
        # baseline: each token's most frequent label in training (unseen tokens: the most frequent label)
        by_tok: dict[str, Counter] = defaultdict(Counter)
        for toks, tags in train:
            for t, y in zip(toks, tags):
                by_tok[t][y] += 1
        top = Counter(y for _, tags in train for y in tags).most_common(1)[0][0]
        base = [[by_tok[t].most_common(1)[0][0] if t in by_tok else top for t in toks] for toks, _ in test]

        def score(pred: list[list[str]]) -> dict[str, float]:
            tp = nr = npd = ok = n = 0
            for (_, gold), p in zip(test, pred):
                ug, up = units(gold, self.scheme_), units(p, self.scheme_)
                tp += len(ug & up)
                nr += len(ug)
                npd += len(up)
                ok += sum(a == c for a, c in zip(gold, p))
                n += len(gold)
            return {**_prf(tp, nr, npd), "tag_accuracy": ok / max(n, 1)}

        metrics, baseline = score(preds), score(base)
        unit = {"bmes": "words (from the BMES tags)", "bio": "entity chunks (from the BIO tags, typed)",
                "tokens": "tokens (one unit per token and label)"}[self.scheme_]
        per_tag = []
        for s in self.states_:
            g = sum(y == s for _, gold in test for y in gold)
            pr = sum(y == s for p in preds for y in p)
            hit = sum(a == c == s for (_, gold), p in zip(test, preds) for a, c in zip(gold, p))
            per_tag.append([s, g, round(hit / max(pr, 1), 4), round(hit / max(g, 1), 4)])
        tok = b["token"]
        expl = {"split": {"train_sentences": len(train), "holdout_sentences": len(test), "protocol": split},
                "evaluated": f"the HMM's labels of {b['token']!r} against your labels in {b['label']!r} on the "
                             f"hold-out sentences: tag accuracy, and precision/recall/F1 of {unit}",
                "scheme": self.scheme_, "labels": list(self.states_), "fit_seconds": round(fit_s, 3),
                "per_label": [{"label": r[0], "holdout_tokens": r[1], "precision": r[2], "recall": r[3]}
                              for r in per_tag],
                "notes": [f"{len(groups):,} sentences of {b['sentence']!r} ({sum(len(t) for t, _ in groups):,} tokens "
                          f"of {tok!r}, labels {', '.join(self.states_[:12])}"
                          f"{' …' if len(self.states_) > 12 else ''}); "
                          "tokens in table order within each sentence.",
                          "Baseline: each token's most frequent label in the training sentences (unseen tokens get "
                          "the most frequent label); word_f1 here is the F1 of the labelled units."]}
        fig, ax = charts.figure(6.4, 3.6)
        names = ["HMM", "最常见标签 most frequent label"]
        vals = [metrics["word_f1"], baseline["word_f1"]]
        ax.bar(names, vals, color=["#c0392b", "#95a5a6"])
        ax.set_ylim(0, 1)
        ax.set_ylabel("F1")
        ax.set_title("HMM 标注 F1 (hold-out)")
        toks, gold = test[0]
        pl = {"vs_baseline": plots.compare(metrics, baseline, "模型与基线 Model vs baseline", "most frequent label"),
              "labels": plots.table(["标签 label", "留出集数量 hold-out tokens", "精确率 precision", "召回率 recall"],
                                    per_tag, "各标签的表现 Per-label precision and recall"),
              "tags": plots.table(["词/字 token", "标注 your label", "HMM"], list(zip(toks, gold, preds[0])),
                                  "HMM 标注示例 A hold-out sentence")}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="most frequent label of each token",
                          explanation=expl, charts={"tag_f1": charts.to_png(fig)}, plots=pl)


def show_label(states: Sequence[str]) -> str:
    return repr(states[0]) if states else "(none)"


_DICT: set[str] | None = None


def _jieba_dictionary() -> set[str]:
    global _DICT
    if _DICT is None:
        import jieba

        jieba.initialize()
        _DICT = {w for w, f in jieba.dt.FREQ.items() if f > 0}
    return _DICT


def max_match(text: str, vocab: Counter | set, max_len: int = 6) -> list[str]:
    """Forward maximum matching against ``vocab``."""
    out, i = [], 0
    while i < len(text):
        for L in range(min(max_len, len(text) - i), 0, -1):
            w = text[i:i + L]
            if L == 1 or w in vocab:
                out.append(w)
                i += L
                break
    return out
