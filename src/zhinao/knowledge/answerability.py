"""Whether the retrieved passages answer the question, decided before answering, with evidence.

The relevance gate (best cosine under a threshold) cannot separate an in-domain question the
library does not answer from one it does: on the China Mobile FAQ both kinds scored
0.875-0.934 (issue 11). Two signals that can, combined:

* **Coverage** (extractive span check): the share of the question's content terms, weighted
  by how rare each is in *this collection* (IDF over its own passages), that the passage
  (with its heading and title) contains. A question about an entity the library never
  mentions ("卫星电话套餐") loses that entity's weight, the heaviest of all (df = 0).
* **The model's judgement**, grammar-constrained: the question and the top passages'
  sentences numbered S1..Sn; the model must answer ``{"answer": "S3"}`` or ``"none"``
  (a JSON-schema enum, so it cannot invent a span; the chosen sentence *is* the quoted
  evidence, and in a list passage it is the asked item).

A paraphrase says what the passage says in other words ("出国一年不用号码" for 停机保号,
"sent from abroad" for "sending ... abroad"): a question term the passage lacks is credited
:data:`SEMANTIC_CREDIT` when it lies, in the index's own embedding space, closer to one of the
passage's terms than in-domain entities the collection never mentions come to any passage's
terms (:class:`TermSpace`; the distance is calibrated per collection, the 99th percentile of
those absent entities' nearest passage term).

The coverage threshold is **calibrated per collection** from its own documents
(:func:`calibrate`): answerable probes are built from its passages (content terms of a
sentence and its heading, plus a common word of the collection the passage lacks, as a
paraphrase would bring), unanswerable probes are the same with one term the index does not
contain (an in-domain entity absent from every passage). The threshold is the one that best
separates the two (answering is preferred on ties); it is cached per collection revision.
No benchmark question is used anywhere.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zhinao.knowledge.grounding import fold, sentences
from zhinao.knowledge.index import STOP_WORDS

log = logging.getLogger(__name__)

#: question words and fillers that carry no content (beyond the index's stop words)
QUESTION_WORDS = set(STOP_WORDS) | {
    "请问", "一下", "我", "我们", "你们", "您", "是否", "怎样", "怎么样", "哪里", "哪儿", "多长", "多大", "多久",
    "啥", "吧", "呢", "啊", "呀", "了", "的", "是", "在", "和", "与", "或", "及", "还", "就", "都", "也", "能否",
    "需要", "想", "想要", "知道", "告诉", "请", "一个", "这个", "那个", "哪", "该", "应该", "如果", "目前", "现在",
    "支持", "包括", "包含", "有没有", "是不是", "收费", "费用", "多少钱", "价格",
    "please", "tell", "about", "would", "could", "should", "will", "need", "want", "know", "any", "some",
    "this", "that", "these", "those", "than", "from", "by", "as", "was", "were", "has", "have", "had",
    "am", "we", "our", "us", "they", "them", "their", "its", "not", "no", "yes", "cost", "costs", "price",
    "fee", "fees", "charge", "charged", "offer", "offers", "support", "supports", "include", "includes",
}
#: in-domain entities used as the "absent" term of unanswerable probes (only those the index lacks)
ABSENT_POOL = ["卫星电话", "海事卫星", "无人机", "南极洲", "火星", "北极科考", "量子加密", "潜艇", "飞艇", "游艇",
               "高铁餐车", "宠物保险", "区块链钱包", "元宇宙", "全息通话", "太空漫游", "月球基地", "冰岛专线",
               "satellite phone", "antarctica", "drone fleet", "submarine", "mars", "hologram", "yacht",
               "blockchain wallet", "iceland line", "moon base"]
JUDGE_SYSTEM = ("You check whether numbered sentences answer a question. Reply with JSON only. "
                "Pick the one sentence that directly answers the question. If no sentence answers it "
                "(the question asks about something the sentences do not mention), answer \"none\".")


def _jieba() -> Any:
    import jieba

    return jieba


#: part-of-speech weights: what a question asks *about* (names, nouns, numbers) counts more than
#: how it asks (verbs, adverbs), which a paraphrase changes freely
POS_WEIGHT = {"n": 1.0, "nr": 1.0, "ns": 1.0, "nt": 1.0, "nz": 1.0, "eng": 1.0, "m": 1.0, "x": 0.6, "vn": 0.8,
              "v": 0.4, "a": 0.4, "d": 0.2, "ad": 0.2, "an": 0.6}


#: interrogative words that jieba glues to a measure word or noun ("几档", "多长时间", "多少钱")
_INTERROGATIVE = re.compile(r"^(?:几|多少|多长|多久|多大|多高|什么|哪些|哪个|哪种|怎么|如何)")


def key_terms(question: str, stats: "Stats | None" = None) -> list[str]:
    """The question's content terms: jieba words, lower case, without question words and punctuation."""
    return [t for t, _ in tagged_terms(question, stats)]


def tagged_terms(question: str, stats: "Stats | None" = None) -> list[tuple[str, float]]:
    """Content terms with their part-of-speech weight (see :data:`POS_WEIGHT`).

    Two single characters jieba split apart ("副" "卡") are kept as one term when the collection
    (``stats``) contains them together ("副卡"): single characters alone are mostly function words.
    """
    import jieba.posseg

    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    words = [(w.word.strip(), w.flag) for w in jieba.posseg.lcut(fold(question))]
    i = 0
    while i < len(words):
        t, flag = words[i]
        i += 1
        if len(t) == 1 and re.fullmatch(r"[\u4e00-\u9fff]", t) and i < len(words) and stats is not None:
            nxt = words[i][0]
            if len(nxt) == 1 and re.fullmatch(r"[\u4e00-\u9fff]", nxt) and stats.literal_df(t + nxt) > 0:
                t, flag, i = t + nxt, "n", i + 1
        if not t or t in QUESTION_WORDS or re.fullmatch(r"[\W_]+", t) or _INTERROGATIVE.match(t):
            continue
        if len(t) == 1 and not t.isdigit() and not re.fullmatch(r"[a-z]", t):
            continue  # single Chinese characters are mostly function words
        if t not in seen:
            seen.add(t)
            out.append((t, POS_WEIGHT.get(flag, POS_WEIGHT.get(flag[:1], 0.5))))
    return out


class Stats:
    """Document frequencies of terms over one collection's passages (substring containment)."""

    def __init__(self, texts: Sequence[str]):
        self.texts = [fold(t) for t in texts]
        self.n = len(self.texts)
        self._df: dict[str, int] = {}
        #: the semantic half of :func:`coverage` (None: lexical only); set by :func:`calibrate`
        self.space: TermSpace | None = None

    def literal_df(self, term: str) -> int:
        """Passages containing ``term`` as a substring."""
        key = "\0" + term
        if key not in self._df:
            self._df[key] = sum(term in t for t in self.texts)
        return self._df[key]

    def df(self, term: str) -> int:
        """Passages containing ``term``; for a term no passage contains literally, those that spell it out
        (:func:`_abbreviates`), so that an abbreviation weighs what its long form weighs, not what an absent
        entity does."""
        if term not in self._df:
            n = self.literal_df(term)
            if n == 0 and _abbreviation_like(term):
                n = sum(_abbreviates(term, t) for t in self.texts)
            self._df[term] = n
        return self._df[term]

    def weight(self, term: str) -> float:
        return math.log((self.n + 1) / (self.df(term) + 0.5))


def _stem(word: str) -> str:
    """A crude English stem (charges -> charg, ordered -> order) so inflections still match."""
    for suf in ("ing", "es", "ed", "s"):
        if len(word) > len(suf) + 3 and word.endswith(suf):
            return word[:-len(suf)]
    return word


def _present(term: str, text: str) -> float:
    """1 if ``term`` is in ``text``; for a long Chinese word the share of its parts that are."""
    if term in text:
        return 1.0
    if re.fullmatch(r"[a-z]+", term) and _stem(term) in text:
        return 1.0
    if len(term) >= 3 and re.search(r"[\u4e00-\u9fff]", term):
        parts = [p for p in _jieba().cut_for_search(term) if len(p) >= 2 and p != term]
        if parts and any(p in text for p in parts):
            return sum(p in text for p in parts) / len(parts) * 0.8
    if _abbreviation_like(term) and _abbreviates(term, text):
        return ABBREVIATION_CREDIT
    return 0.0


#: the credit of a Chinese abbreviation found spelled out ("携转" in "携号转网", "国漫" in "国际漫游")
ABBREVIATION_CREDIT = 0.6


def _abbreviation_like(term: str) -> bool:
    """2-4 Chinese characters or 2-5 Latin letters: the shapes abbreviations take."""
    return bool(re.fullmatch(r"[\u4e00-\u9fff]{2,4}|[a-z]{2,5}", term))


def _abbreviates(term: str, text: str) -> bool:
    """Whether ``text`` spells ``term`` out. Chinese shortens names by keeping one character of each word
    (携号转网 -> 携转): the characters in order, each at most two after the previous one. English keeps
    the initials (SLA = service level agreement): consecutive words starting with the letters. A question
    written with the short form otherwise misses the passage's long one as a substring."""
    if re.fullmatch(r"[a-z]+", term):
        if len(term) < 2:
            return False
        pat = r"\b" + r"[a-z]*[\s-]+".join(map(re.escape, term)) + r"[a-z]*"
        return re.search(pat, text) is not None
    return re.search(".{0,2}".join(map(re.escape, term)), text) is not None


def coverage(terms: Sequence[str] | Sequence[tuple[str, float]], text: str, stats: Stats) -> float:
    """The weighted share of ``terms`` that ``text`` contains (1.0 for no terms): each term weighs its
    IDF in the collection times its part-of-speech weight (plain strings: 1). With ``stats.space``
    (a calibrated :class:`TermSpace`) a term the text lacks but holds a near neighbour of counts
    :data:`SEMANTIC_CREDIT`."""
    t = fold(text)
    pairs = [x if isinstance(x, tuple) else (x, 1.0) for x in terms]
    total = sum(stats.weight(x) * w for x, w in pairs)
    if total <= 0:
        return 1.0
    got = 0.0
    for x, w in pairs:
        p = _present(x, t)
        if p < SEMANTIC_CREDIT and stats.space is not None and stats.space.close(x, t, stats):
            p = SEMANTIC_CREDIT
        got += stats.weight(x) * w * p
    return got / total


#: the credit of a question term the passage lacks but holds a near neighbour of (:class:`TermSpace`):
#: half a term, so that a paraphrase's other words still have to be there. Chosen on the demo set only
#: (offline, over its retrieved passages; docs/benchmarks.md, issue 11): with 0.5 it refused 92.5-95% of its
#: unanswerable questions, with 0.8 75%; with the 0.95 quantile (below) 85%
SEMANTIC_CREDIT = 0.5
#: the share of absent entities' nearest-term similarities a credited term must beat
SEMANTIC_QUANTILE = 0.99
#: passages sampled to calibrate :attr:`TermSpace.tau` (each costs its terms' embeddings, once; with 40 the
#: demo collection's tau moved 0.904-0.910 between seeds, and each 0.005 moves answers: all of a small collection)
SEMANTIC_SAMPLE = 80


class TermSpace:
    """Question and passage terms in the index's embedding space, for the semantic half of coverage.

    Why terms and not the whole question: the question-passage cosine cannot separate an
    unanswerable in-domain question from an answerable one (0.875-0.891 vs 0.885-0.934 on the
    China Mobile FAQ, issue 11), because both are "about" the passage. What separates them is
    whether each *thing the question names* is there: the absent entity of an unanswerable
    question ("云盘会员") has no near neighbour among the passage's terms, while a paraphrase's
    word does ("老年人" / "敬老", "plane" / "flight"). Short terms embed noisily (e5 puts most
    word pairs at 0.8-0.9), so "near" is calibrated per collection: :attr:`tau` is the
    :data:`SEMANTIC_QUANTILE` of the similarity between in-domain entities the collection never
    mentions (:data:`ABSENT_POOL`) and their nearest term in sampled passages. A term closer
    than that to a passage term is credited :data:`SEMANTIC_CREDIT`.

    ``embed(texts, kind=...)``: the index's embedder (vectors L2-normalised). Term vectors are
    cached, bounded, across collections of the same embedder; thread-safe.
    """

    _VECTORS: dict[tuple[str, str], np.ndarray] = {}
    MAX_VECTORS = 20000
    MAX_TEXTS = 4000

    def __init__(self, embed: Any, name: str = ""):
        self.embed, self.name = embed, name
        self.tau = 2.0  # nothing is "near" until calibrated
        self._terms: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.embedded = 0  #: term embeddings this space computed (cost, for the calibration summary)

    def vectors(self, terms: Sequence[str]) -> np.ndarray:
        need = [t for t in dict.fromkeys(terms) if (self.name, t) not in self._VECTORS]
        if need:
            vecs = self.embed(need, kind="query")
            with self._lock:
                if len(self._VECTORS) + len(need) > self.MAX_VECTORS:
                    self._VECTORS.clear()  # coarse but bounded; a miss only costs an embedding
                for t, v in zip(need, vecs):
                    self._VECTORS[(self.name, t)] = np.asarray(v, dtype=np.float32)
                self.embedded += len(need)
        dim = next((v.shape[0] for v in self._VECTORS.values()), 1)
        rows = [self._VECTORS.get((self.name, t)) for t in terms]
        if any(r is None for r in rows):  # evicted by another thread meanwhile: embed those again
            return np.stack([np.asarray(v, dtype=np.float32) for v in self.embed(list(terms), kind="query")])
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    def text_terms(self, text: str, stats: "Stats") -> list[str]:
        """The content terms of a (folded) passage text, cached."""
        got = self._terms.get(text)
        if got is None:
            got = list(dict.fromkeys(t for t, _ in tagged_terms(text[:1500], stats)))
            with self._lock:
                if len(self._terms) >= self.MAX_TEXTS:
                    self._terms.clear()
                self._terms[text] = got
        return got

    def nearest(self, terms: Sequence[str], text: str, stats: "Stats") -> np.ndarray:
        """For each term, its highest similarity to a term of ``text`` (-1 when the text has none)."""
        own = self.text_terms(text, stats)
        if not own or not terms:
            return np.full(len(terms), -1.0)
        return (self.vectors(list(terms)) @ self.vectors(own).T).max(axis=1)

    def close(self, term: str, text: str, stats: "Stats") -> bool:
        """Whether ``text`` holds a term near ``term``; False when the embedder fails (the lexical check
        stands alone then, as before the semantic half existed)."""
        if self.tau > 1.0:
            return False
        try:
            return float(self.nearest([term], text, stats)[0]) >= self.tau
        except Exception as e:  # an embedder that went away mid-question
            log.warning("semantic coverage off for this term: the embedder failed (%s)", e)
            return False

    def calibrate(self, stats: "Stats", absent: Sequence[str], rng: random.Random) -> None:
        """:attr:`tau` from the collection's own passages and the absent entities (see the class doc)."""
        idx = rng.sample(range(stats.n), min(SEMANTIC_SAMPLE, stats.n))
        sims = np.concatenate([self.nearest(absent, stats.texts[i], stats) for i in idx]) if idx else np.zeros(0)
        sims = sims[sims > -1.0]
        if len(sims) >= 20:
            self.tau = float(np.quantile(sims, SEMANTIC_QUANTILE))


def passage_text(h: Any) -> str:
    """What a passage says, for the checks: title, heading path and body."""
    head = " ".join(h.heading or []) if hasattr(h, "heading") else ""
    title = (h.doc or {}).get("title", "") if hasattr(h, "doc") else ""
    return f"{title}\n{head}\n{h.body}"


@dataclass
class Calibration:
    threshold: float
    answerable: list[float] = field(default_factory=list)  #: probe coverages (sorted)
    unanswerable: list[float] = field(default_factory=list)
    passages: int = 0
    seconds: float = 0.0
    semantic_tau: float | None = None  #: :attr:`TermSpace.tau` (None: lexical coverage only)

    @property
    def with_model(self) -> float:
        """The coverage a passage needs when the model has chosen one of its sentences: half the
        calibrated threshold (the model's choice is the other half of the evidence). On the demo
        set, coverage alone at the calibrated threshold keeps about 55% of answerable questions;
        paraphrases ("上不了网" for "无法上网") need the model's reading."""
        return self.threshold * MODEL_SHARE

    @property
    def certain(self) -> float:
        """The coverage above which the model's "none" no longer vetoes: halfway from the calibrated
        threshold to full coverage. The default 0.5B model answers "none" for passages that hold
        every term of the question ("59 元套餐包含多少流量？" over "月租 59 元，包含国内通用流量
        30GB", coverage 1.0, measured on the real model); its "none" is trusted only in the band
        where the terms alone are not conclusive."""
        return self.threshold + (1.0 - self.threshold) * NONE_VETO_SHARE

    def summary(self) -> dict[str, Any]:
        a, u = self.answerable, self.unanswerable
        return {"threshold": round(self.threshold, 3), "with_model": round(self.with_model, 3),
                "certain": round(self.certain, 3), "passages": self.passages, "probes": len(a) + len(u),
                "answerable_kept": round(sum(x >= self.threshold for x in a) / max(1, len(a)), 3),
                "unanswerable_refused": round(sum(x < self.threshold for x in u) / max(1, len(u)), 3),
                "semantic_tau": None if self.semantic_tau is None else round(self.semantic_tau, 3),
                "seconds": round(self.seconds, 2)}


DEFAULT_THRESHOLD = 0.6  #: used when a collection is too small to calibrate
MODEL_SHARE = 0.5  #: see :attr:`Calibration.with_model`
NONE_VETO_SHARE = 0.5  #: see :attr:`Calibration.certain`


def calibrate(texts: Sequence[str], *, probes: int = 60, seed: int = 11, embed: Any = None,
              embed_name: str = "") -> tuple[Calibration, Stats]:
    """The coverage threshold of one collection, from probes built out of its own passages.

    ``embed`` (the index's embedder's ``embed``): coverage credits paraphrased terms too
    (:class:`TermSpace`, its distance calibrated here first, so the probes are scored as questions are).
    """
    t0 = time.perf_counter()
    stats = Stats(texts)
    rng = random.Random(seed)
    absent = [a for a in ABSENT_POOL if stats.df(fold(a)) == 0]
    tau = None
    if embed is not None and absent and stats.n:
        space = TermSpace(embed, embed_name)
        try:
            space.calibrate(stats, [fold(a) for a in absent], random.Random(seed))
        except Exception as e:  # the embedder failed: lexical coverage, as without one
            log.warning("semantic coverage off: the embedder failed during calibration (%s)", e)
        if space.tau <= 1.0:
            stats.space, tau = space, space.tau
    vocab: Counter[tuple[str, float]] = Counter()
    per_text: list[list[tuple[str, float]]] = []
    for t in texts[:2000]:
        terms = tagged_terms(t[:400], stats)
        per_text.append(terms)
        vocab.update(dict.fromkeys(terms, 1))  # not set(): its order follows PYTHONHASHSEED (so did the threshold)
    common = [w for w, c in vocab.most_common(300) if c >= 2]
    usable = [i for i, ts in enumerate(per_text) if len(ts) >= 4]
    if len(usable) < 5 or not absent:
        return Calibration(DEFAULT_THRESHOLD, passages=len(texts), seconds=time.perf_counter() - t0,
                           semantic_tau=tau), stats
    ans, una = [], []
    for _ in range(probes):
        i = rng.choice(usable)
        text = stats.texts[i]
        terms = rng.sample(per_text[i], min(len(per_text[i]), rng.randint(2, 4)))
        # a paraphrase brings words the passage lacks (here: common words of the collection), often
        extra = [w for w in common if w[0] not in text]
        for _ in range(rng.choice((0, 1, 1, 2))):
            if extra:
                terms.append(rng.choice(extra[:80]))
        ans.append(coverage(terms, text, stats))
        una.append(coverage(terms + [(fold(rng.choice(absent)), 1.0)], text, stats))
    ans.sort()
    una.sort()
    best, best_thr = -1.0, DEFAULT_THRESHOLD
    for thr in sorted(set(ans + una)):
        # balanced accuracy of "coverage >= thr means answerable"
        acc = sum(a >= thr for a in ans) / len(ans) + sum(u < thr for u in una) / len(una)
        if acc > best + 1e-9:
            best, best_thr = acc, thr
    # the lowest threshold with the best accuracy keeps answers: move it halfway down to the next unanswerable
    below = [u for u in una if u < best_thr]
    thr = (best_thr + max(below)) / 2 if below else best_thr
    return Calibration(thr, ans, una, len(texts), time.perf_counter() - t0, tau), stats


class CalibrationCache:
    """Calibrations by collection revision (the key the service gives), built once, thread-safe."""

    def __init__(self, size: int = 64):
        self._items: dict[Any, tuple[Calibration, Stats]] = {}
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: Any, texts: Any, embed: Any = None) -> tuple[Calibration, Stats]:
        """``texts``: the passages, or a callable returning them (called only on a miss); ``embed``: see
        :func:`calibrate` (part of the key: a calibration with term vectors is another calibration)."""
        key = (key, _embedder_name(embed))
        with self._lock:
            got = self._items.get(key)
        if got is not None:
            return got
        got = calibrate(texts() if callable(texts) else texts, embed=embed, embed_name=_embedder_name(embed))
        with self._lock:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = got
        return got


def _embedder_name(embed: Any) -> str:
    """Which embedder a bound ``embed`` belongs to (the term-vector cache and calibrations are per embedder)."""
    if embed is None:
        return ""
    owner = getattr(embed, "__self__", embed)
    return f"{type(owner).__name__}:{getattr(owner, 'name', '')}:{getattr(owner, 'variant', '')}:{id(owner)}"


CACHE = CalibrationCache()


@dataclass
class Candidate:
    sid: str  #: S1, S2, ... as the model sees it
    passage: int  #: 1-based index into the hits
    sentence: str  #: as the model sees it (long ones cut)
    score: float  #: lexical coverage of the question by the sentence and its heading
    full: str = ""  #: the whole sentence


@dataclass
class Judgement:
    """The decision and its evidence (shown in the API's ``answerability`` field)."""

    found: bool
    passage: int | None = None  #: 1-based index into the hits of the answering passage
    sentence: str = ""  #: the quoted span that answers
    coverage: float = 0.0  #: of the answering (or best) passage
    threshold: float = 0.0
    model_choice: str | None = None  #: what the model picked (S<n> or none; None when not asked)
    reason: str = ""
    seconds: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)

    def evidence(self) -> dict[str, Any]:
        return {"found": self.found, "passage": self.passage, "span": self.sentence or None,
                "coverage": round(self.coverage, 3), "threshold": round(self.threshold, 3),
                "model_choice": self.model_choice, "reason": self.reason, "seconds": round(self.seconds, 2)}


def candidates(question: str, hits: Sequence[Any], stats: Stats, *, limit: int = 10,
               max_chars: int = 160) -> list[Candidate]:
    """The sentences the model chooses from: the best ``limit`` by coverage, in passage order."""
    terms = tagged_terms(question, stats)
    grams = char_bigrams(question)
    pool: list[tuple[float, int, int, str]] = []
    for pi, h in enumerate(hits, 1):
        head = " ".join(h.heading or [])
        for si, s in enumerate(sentences(h.body)):
            score = coverage(terms, head + " " + s, stats) if terms else 0.0
            # earlier passages win ties; within a passage the sentence that shares more of the question's
            # literal character pairs does (a list's items share every word: "8元语音版" / "8元流量版")
            score += BIGRAM_TIE * bigram_share(grams, s)
            pool.append((score - 0.02 * pi, pi, si, s))
    best = sorted(pool, key=lambda x: -x[0])[:limit]
    best.sort(key=lambda x: (x[1], x[2]))
    return [Candidate(f"S{i}", pi, s if len(s) <= max_chars else s[:max_chars] + "…", sc, s)
            for i, (sc, pi, si, s) in enumerate(best, 1)]


#: weight of the literal overlap in a sentence's score: a tie-break, below one term's coverage
BIGRAM_TIE = 0.05


def char_bigrams(text: str) -> set[str]:
    """The question's character pairs (Chinese and digits; Latin words whole), question words left out."""
    t = fold(text)
    for w in sorted(QUESTION_WORDS, key=len, reverse=True):
        if re.search(r"[\u4e00-\u9fff]", w) and len(w) >= 2:
            t = t.replace(w, " ")
    out: set[str] = set()
    for run in re.findall(r"[\u4e00-\u9fff0-9]+", t):
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    out.update(re.findall(r"[a-z]{3,}", t))
    return out


def bigram_share(grams: set[str], sentence: str) -> float:
    """The share of ``grams`` (:func:`char_bigrams`) that ``sentence`` contains."""
    if not grams:
        return 0.0
    s = fold(sentence)
    return sum(g in s for g in grams) / len(grams)


def judge_prompt(question: str, cands: Sequence[Candidate], hits: Sequence[Any]) -> list[dict[str, str]]:
    lines = []
    for c in cands:
        head = " > ".join(hits[c.passage - 1].heading or [])
        lines.append(f"{c.sid}: " + (f"[{head}] " if head else "") + c.sentence)
    user = "Sentences:\n" + "\n".join(lines) + f"\n\nQuestion: {question}\nWhich sentence answers the question?"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def judge_schema(cands: Sequence[Candidate]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answerability", "strict": True, "schema": {
        "type": "object", "properties": {"answer": {"enum": [c.sid for c in cands] + ["none"]}},
        "required": ["answer"], "additionalProperties": False}}}


def parse_choice(text: str, cands: Sequence[Candidate]) -> str | None:
    m = re.search(r"\b(S\d{1,2}|none)\b", text or "")
    if not m:
        return None
    v = m.group(1)
    return v if v == "none" or any(c.sid == v for c in cands) else None


def best_coverage(question: str, hits: Sequence[Any], stats: Stats) -> float:
    """The coverage of the question by its best covered passage (0 with no passages)."""
    terms = tagged_terms(question, stats)
    return max((coverage(terms, passage_text(h), stats) for h in hits), default=0.0)


def model_can_change(best: float, cal: Calibration) -> bool:
    """Whether the model's judgement can change ``found`` (see :func:`decide`): below
    :attr:`Calibration.with_model` every passage is refused whatever it picks, at or above
    :attr:`Calibration.certain` the best covered one answers even on "none". Outside that band the
    call is skipped: measured on the demo set with the default 0.5B model, the judgement was 14 of
    the 13-16 s a question took (grammar-constrained sampling on 2 cores)."""
    return cal.with_model <= best < cal.certain


def decide(question: str, hits: Sequence[Any], stats: Stats, cal: Calibration, cands: Sequence[Candidate],
           choice: str | None) -> Judgement:
    """Combine the model's choice (None: not asked or unusable) with the coverage check."""
    terms = tagged_terms(question, stats)
    covs = [coverage(terms, passage_text(h), stats) for h in hits]
    best_i = max(range(len(covs)), key=lambda i: covs[i]) if covs else None
    j = Judgement(False, threshold=cal.threshold, model_choice=choice, candidates=list(cands))
    if best_i is None:
        j.reason = "no passages"
        return j
    pick = next((c for c in cands if c.sid == choice), None)
    if pick is not None:
        j.passage, j.sentence, j.coverage = pick.passage, pick.full, covs[pick.passage - 1]
        j.threshold = cal.with_model
        if j.coverage >= cal.with_model:
            j.found, j.reason = True, "model span, covered"
            return j
        # the model picked a poorly covered passage: a better covered one may still answer
        if covs[best_i] >= cal.threshold and cands:
            alt = max((c for c in cands if c.passage == best_i + 1), key=lambda c: c.score, default=None)
            if alt is not None:
                j.found, j.passage, j.sentence, j.coverage = True, alt.passage, alt.full, covs[best_i]
                j.reason = "best covered passage (model span poorly covered)"
                return j
        j.reason = "question terms missing from the passages"
        return j
    j.coverage = covs[best_i]
    if choice == "none" and covs[best_i] < cal.certain:
        j.reason = "model: none of the passages answers"
        return j
    # no (usable) model judgement: coverage alone, the best sentence of the best covered passage
    if covs[best_i] >= cal.threshold:
        alt = max((c for c in cands if c.passage == best_i + 1), key=lambda c: c.score, default=None)
        j.found, j.passage = True, best_i + 1
        j.sentence = alt.full if alt else (sentences(hits[best_i].body) or [hits[best_i].body])[0]
        j.reason = ("covered beyond doubt (model said none)" if choice == "none"
                    else "covered (no model judgement)")
    else:
        j.reason = "question terms missing from the passages"
    return j


def closest_topics(hits: Sequence[Any], limit: int = 3) -> list[str]:
    """Headings (or titles) of the retrieved passages, distinct, for "did you mean" on a refusal."""
    out: list[str] = []
    for h in hits:
        t = (h.heading[-1] if h.heading else "") or (h.doc or {}).get("title", "")
        t = t.strip()
        if t and t not in out:
            out.append(t)
        if len(out) >= limit:
            break
    return out
