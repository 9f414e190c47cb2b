"""Sequence models: sequential patterns for next-content recommendation (应用精准推荐), and the
HMM tagger (:mod:`.hmm`, re-exported here: one family, two modules to stay under ~800 lines).

:class:`NextContentPrefixSpan` mines sequential patterns (PrefixSpan) from sessions and turns
them into "next content" recommendations: the patterns whose prefix matches the end of a
session vote for what comes next. Sessions come from any table, bound by column roles
(:mod:`.roles`): ``session`` (session / user / dialogue id, any name) + ``item`` (the page,
app, category or event of the row) + optional ``time`` (a timestamp or a position number
that orders the rows of a session; table order otherwise). Judged by hit@3 on held-out
sessions (predict each session's last item from the ones before it) against the most
popular items.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import Counter, defaultdict
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.hmm import (HmmWordTagger, jieba_words, max_match, spans, tag_scheme,  # noqa: F401
                                          units, word_prf)
from zhinao.analytics.catalog.protocol import require_rows, to_datetime, to_numeric
from zhinao.analytics.catalog.roles import Binding, Preset, Role, _columns_text, bind, plain
from zhinao.errors import InvalidRequest

# -- sequential patterns ----------------------------------------------------------------

def _is_subsequence(pat: Sequence[int], seq: Sequence[int]) -> bool:
    it = iter(seq)
    return all(any(x == y for y in it) for x in pat)


ROLES = (
    Role("session", kinds=("id", "categorical", "numeric", "text"), demo="session_id",
         help_en="the session / user / dialogue id: the rows with the same value form one sequence",
         help_zh="会话/用户/对话编号：同一值的行组成一个序列"),
    Role("item", kinds=("categorical", "text", "id", "numeric", "boolean"), demo=("category", "item"),
         help_en="what happened at that step: the page, app, content category or event",
         help_zh="该步的内容：页面、应用、内容栏目或事件"),
    Role("time", kinds=("datetime", "numeric"), required=False, demo="position",
         help_en="optional: a timestamp or position number that orders a session's rows (table order otherwise)",
         help_zh="可选：会话内排序用的时间或序号（否则按表中顺序）"),
    Role("sequence", kinds=("text", "categorical"), required=False,
         help_en="instead of item: one row per session, its items in order in one column (separated by spaces, "
                 "commas, ';' or '→')",
         help_zh="代替 item：每行一个会话，其内容按顺序写在一列中（以空格、逗号、分号或 → 分隔）"),
)
_SEP = re.compile(r"\s*(?:→|->|>|,|，|;|；|\|)\s*|\s+")


def _key(v: Any) -> Any:
    v = plain(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def to_sequences(data: Any) -> list[list[Any]]:
    """Sessions of ``datasets.Sequences``, lists, or a table (through the role binding of
    :class:`NextContentPrefixSpan`: session, item, optional time)."""
    if isinstance(data, datasets.Sequences):
        return [list(s) for s in data.sequences]
    if isinstance(data, pd.DataFrame):
        return NextContentPrefixSpan().sequences(data)[0]
    if isinstance(data, (list, tuple)):
        return [list(s) for s in data]
    raise InvalidRequest("sequence input must be sessions (lists) or a table (bind session, item, optional time)")


@register
class NextContentPrefixSpan(MiningModel):
    """PrefixSpan patterns as next-item rules; longest matching context wins, then confidence."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="next_content_prefixspan", name_zh="应用精准推荐（序列模式挖掘）",
        name_en="Next-content recommendation (sequential pattern mining)", algorithm="PrefixSpan",
        theme="sequence",
        application_zh="应用精准推荐：从用户访问/使用序列中挖掘频繁序列模式，预测并推荐下一个内容或应用",
        application_en="mine frequent click/usage sequences and recommend the next content or app",
        inputs="sessions: a table with session + item columns (any names), optional time/position; or lists",
        metrics=("hit@3", "mrr@3"), dataset="msnbc", task="sequence", roles=ROLES,
        presets=(
            Preset("app_recommendation", "应用精准推荐", "Next app / content recommendation", {}, dataset="msnbc",
                   note_en="click or app-usage sessions", note_zh="点击或应用使用会话"),
            Preset("service_journey", "客服对话流程预测", "Next step of a service journey",
                   {"min_support": 0.005, "context": 3, "max_len": 4}, dataset="",
                   note_en="bind session to the dialogue / ticket id, item to the step or event",
                   note_zh="将 session 绑定到对话/工单编号，item 绑定到步骤或事件"),
        ))

    def __init__(self, session: str | None = None, item: str | None = None, time: str | None = None,
                 sequence: str | None = None, min_support: float = 0.001, max_len: int = 4, context: int = 4,
                 k: int = 3,
                 max_sessions: int = 50_000, truncate: int = 20, test_size: float = 0.2, seed: int = 0):
        self.session = session
        self.item = item
        self.time = time
        self.sequence = sequence
        self.min_support = min_support
        self.max_len = max_len
        self.context = context
        self.k = k
        self.max_sessions = max_sessions
        self.truncate = truncate
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> datasets.Sequences:
        return datasets.load_msnbc(limit=int(self.max_sessions))

    def from_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        return df

    def bind(self, df: pd.DataFrame) -> Binding:
        """Long shape (session + item, optional time) or, with ``sequence`` given, one row per session."""
        if self.sequence is None:
            roles = [r for r in self.info.roles if r.name != "sequence"]
            self.binding_ = bind(roles, df, {r.name: getattr(self, r.name) for r in roles}, model_key=self.info.key)
            return self.binding_
        if self.item is not None or self.time is not None:
            raise InvalidRequest(f"{self.info.key}: with sequence (one row per session) leave item and time unbound",
                                 param="sequence")
        roles = {r.name: r for r in self.info.roles}
        use = [dataclasses.replace(roles["sequence"], required=True),
               dataclasses.replace(roles["session"], required=False)]
        self.binding_ = bind(use, df, {"sequence": self.sequence, "session": self.session}, model_key=self.info.key)
        return self.binding_

    def sequences(self, df: pd.DataFrame, binding: Binding | None = None) -> tuple[list[list[Any]], list[Any], dict]:
        """``(sequences, session ids, about)`` of a table, through the role binding."""
        df = df.rename(columns=str)
        b = binding or self.bind(df)
        if "sequence" in b.columns:
            q, s = b["sequence"], b.get("session")
            for c in (q, s):
                if c is not None and c not in df.columns:
                    raise InvalidRequest(f"{self.info.key}: the table lacks column {c!r}, which the model was "
                                         f"fitted with; columns: {_columns_text(df)}", param=c)
            d = df[df[q].notna()]
            seqs = [[x for x in _SEP.split(str(v).strip()) if x] for v in d[q].tolist()]
            keep = [n for n, x in enumerate(seqs) if x]
            ids = d[s].map(plain).tolist() if s else list(range(1, len(d) + 1))
            about = {"rows": len(df), "rows_used": len(keep), "session": s or "row", "item": None, "time": None,
                     "sequence": q}
            return [seqs[n] for n in keep], [ids[n] for n in keep], about
        s, i, t = b["session"], b["item"], b.get("time")
        for c in (s, i, t):
            if c is not None and c not in df.columns:
                raise InvalidRequest(f"{self.info.key}: the table lacks column {c!r}, which the model was fitted "
                                     f"with; columns: {_columns_text(df)}", param=c)
        if s == i:
            raise InvalidRequest(f"{self.info.key}: session and item are both bound to {s!r}; bind them to two "
                                 "columns", param="item")
        d = df[df[s].notna() & df[i].notna() & df[i].astype(str).str.strip().ne("")]
        if t is not None:
            order = to_numeric(d[t], t) if b.kinds.get(t) == "numeric" else to_datetime(d[t], t)
            if order.isna().any():
                raise InvalidRequest(f"{self.info.key}: column {t!r} (role time) is empty in "
                                     f"{int(order.isna().sum())} rows; fill it or leave time unbound", param="time")
            d = d.assign(__order=order.to_numpy()).sort_values("__order", kind="stable")
        codes, uniq = pd.factorize(d[s], sort=False)
        seqs: list[list[Any]] = [[] for _ in range(len(uniq))]
        for c, it in zip(codes, d[i].map(_key).tolist()):
            seqs[c].append(it)
        about = {"rows": len(df), "rows_used": int(len(d)), "session": s, "item": i, "time": t}
        return seqs, [plain(x) for x in uniq], about

    def fit(self, X: Any, y: Any = None) -> "NextContentPrefixSpan":
        from prefixspan import PrefixSpan

        raw = self.sequences(X)[0] if isinstance(X, pd.DataFrame) else to_sequences(X)
        seqs = [s[: int(self.truncate)] for s in raw if s]
        require_rows(len(seqs), 20, self.info.key)
        minsup = max(2, int(math.ceil(float(self.min_support) * len(seqs))))
        ps = PrefixSpan(seqs)
        ps.maxlen = int(self.max_len)
        pats = ps.frequent(minsup)
        self.support_ = {tuple(p): int(c) for c, p in pats}
        self.n_sessions_ = len(seqs)
        # rules: antecedent (len >= 1) -> next item, confidence = sup(a+c) / sup(a)
        rules: dict[tuple, list[tuple[float, int, Any]]] = defaultdict(list)
        for p, c in self.support_.items():
            if len(p) >= 2 and p[:-1] in self.support_:
                rules[p[:-1]].append((c / self.support_[p[:-1]], c, p[-1]))
        self.rules_ = {a: sorted(v, key=lambda r: (-r[0], -r[1], str(r[2]))) for a, v in rules.items()}
        by_last: dict[Any, list] = defaultdict(list)  # a rule applies only when it ends with the latest item
        for a, v in self.rules_.items():
            by_last[a[-1]].append((a, v))
        self.rules_by_last_ = dict(by_last)
        counts = Counter(i for s in seqs for i in s)
        self.popularity_ = [i for i, _ in counts.most_common()]
        self.popularity_share_ = {i: c / max(sum(counts.values()), 1) for i, c in counts.items()}
        return self

    def recommend_scored(self, prefix: Sequence[Any], k: int | None = None) -> list[tuple[Any, float, str]]:
        """``(item, confidence, pattern)``: the best rule per item; popular items fill the rest."""
        k = int(k or self.k)
        tail = list(prefix)[-int(self.context):]
        memo = getattr(self, "_memo", None)  # evaluate asks for several k of the same session
        if memo is not None and tuple(tail) in memo:
            ranked_all = memo[tuple(tail)]
        else:
            scores: dict[Any, tuple[int, float, tuple]] = {}
            if tail:
                for a, rules in self.rules_by_last_.get(tail[-1], ()):
                    # the antecedent must end with the latest item and occur in the recent context
                    if not _is_subsequence(a[:-1], tail[:-1]):
                        continue
                    for conf, _, item in rules:
                        key = (len(a), conf, a)
                        if item not in scores or key[:2] > scores[item][:2]:
                            scores[item] = key
            ranked_all = sorted(scores.items(), key=lambda kv: (-kv[1][0], -kv[1][1], str(kv[0])))
            if memo is not None:
                memo[tuple(tail)] = ranked_all
        ranked = ranked_all[:k]
        out = [(i, float(v[1]), " → ".join(map(str, v[2])) + f" → {i}") for i, v in ranked]
        have = {i for i, _, _ in out}
        return out + [(i, float(self.popularity_share_.get(i, 0.0)), "popular 热门")
                      for i in self.popularity_ if i not in have][: k - len(out)]

    def recommend(self, prefix: Sequence[Any], k: int | None = None) -> list[Any]:
        return [i for i, _, _ in self.recommend_scored(prefix, k)]

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """The next ``k`` items for every session of ``df``, with the rule's confidence and pattern."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest("next-item recommendations are scored for a table of sessions")
        fitted = getattr(self, "binding_", None)
        seqs, ids, about = self.sequences(df, fitted if fitted is not None and fitted.columns else None)
        sc = about["session"]
        rows = [{sc: sid, "last_items": " → ".join(map(str, s[-int(self.context):])), "rank": r + 1,
                 "next_item": item, "confidence": round(conf, 6), "pattern": why}
                for sid, s in zip(ids, seqs) for r, (item, conf, why) in enumerate(self.recommend_scored(s))]
        return pd.DataFrame(rows, columns=[sc, "last_items", "rank", "next_item", "confidence", "pattern"])

    def evaluate(self, data: Any) -> Evaluation:
        names: dict = {}
        if isinstance(data, pd.DataFrame):
            if len(data) == 0:
                raise InvalidRequest(f"model {self.info.key!r} needs at least 100 sessions, the table is empty",
                                     code="too_few_rows")
            all_seqs, _, about = self.sequences(data)
        else:
            all_seqs = to_sequences(data)
            about = {"msnbc": isinstance(data, datasets.Sequences)}
            names = data.categories if isinstance(data, datasets.Sequences) else {}
            self.binding_ = Binding()
        seqs = all_seqs[: int(self.max_sessions)]
        require_rows(len(seqs), 100, self.info.key)
        if max(map(len, seqs)) < 2:
            what = (f"every row of {about['sequence']!r} (role sequence) holds one item" if about.get("sequence") else
                    f"column {about['session']!r} (role session) has one item per session"
                    if "session" in about else "every session has one item")
            raise InvalidRequest(f"{self.info.key}: {what}: nothing to sequence. Bind session to the column that "
                                 "groups several steps into one session (a user, visit or dialogue id) and item to "
                                 "what happened at each step", param="session")
        rng = np.random.default_rng(int(self.seed))
        idx = rng.permutation(len(seqs))
        n_te = int(len(seqs) * float(self.test_size))
        train = [seqs[i] for i in idx[n_te:]]
        test = [seqs[i][: int(self.truncate) + 1] for i in idx[:n_te] if len(seqs[i]) >= 2]
        if len(test) < 10:
            raise InvalidRequest(f"{self.info.key}: only {len(test)} hold-out sessions have >= 2 items (need 10)",
                                 code="too_few_rows")
        t0 = time.perf_counter()
        self.fit(train)
        fit_s = time.perf_counter() - t0
        self._memo: dict | None = {}
        try:
            return self._evaluated(seqs, all_seqs, train, test, about, names, fit_s)
        finally:
            self._memo = None

    def _evaluated(self, seqs, all_seqs, train, test, about, names, fit_s: float) -> Evaluation:
        k = int(self.k)

        def evaluate_with(rec, kk: int) -> dict[str, float]:
            hit = rr = 0.0
            for s in test:
                recs = rec(s[:-1], kk)
                if s[-1] in recs:
                    hit += 1
                    rr += 1 / (recs.index(s[-1]) + 1)
            return {f"hit@{kk}": hit / len(test), f"mrr@{kk}": rr / len(test)}

        model = lambda p, kk: self.recommend(p, kk)  # noqa: E731
        popular = lambda p, kk: self.popularity_[:kk]  # noqa: E731
        metrics, baseline = evaluate_with(model, k), evaluate_with(popular, k)
        if k != 3:  # the catalogue's primary metric is always there
            metrics.update(evaluate_with(model, 3))
            baseline.update(evaluate_with(popular, 3))
        last_item = evaluate_with(lambda p, kk: ([p[-1]] + [i for i in self.popularity_ if i != p[-1]])[:kk], k)
        curve = {kk: (evaluate_with(model, kk)[f"hit@{kk}"], evaluate_with(popular, kk)[f"hit@{kk}"])
                 for kk in (1, 2, 3, 5)}
        label = lambda i: names.get(i, str(i))  # noqa: E731
        top = sorted(((c, p) for p, c in self.support_.items() if len(p) >= 2), reverse=True)[:15]
        pct = int(round(100 * float(self.test_size)))
        if about.get("sequence"):
            used = (f"all {len(seqs):,} sessions" if len(seqs) == len(all_seqs) else
                    f"the first {len(seqs):,} of {len(all_seqs):,} sessions in table order (max_sessions)")
            source = (f"Sessions: {used}, one per row of {about['sequence']!r} (items in the order written)"
                      + (f", ids from {about['session']!r}" if about["session"] != "row" else ""))
        elif "session" in about:
            order = f"ordered by {about['time']!r}" if about.get("time") else "in table order"
            used = (f"all {len(seqs):,} sessions" if len(seqs) == len(all_seqs) else
                    f"the first {len(seqs):,} of {len(all_seqs):,} sessions in table order (max_sessions)")
            source = (f"Sessions: {used} of {about['session']!r}, items from {about['item']!r} {order} "
                      f"({about['rows_used']:,} of {about['rows']:,} rows have a session and an item)")
        elif about.get("msnbc"):
            source = f"Subsample: the first {len(seqs):,} MSNBC sessions of the demo file"
        else:
            source = f"Sessions: {len(seqs):,} given as lists"
        expl = {"n_patterns": len(self.support_), "n_rules_contexts": len(self.rules_),
                "top_patterns": [{"pattern": [label(i) for i in p], "support": c,
                                  "support_share": round(c / self.n_sessions_, 4)} for c, p in top],
                "repeat_last_item_baseline": {kk: round(v, 4) for kk, v in last_item.items()},
                "hit_by_k": {str(kk): {"model": round(a, 4), "popular": round(b, 4)} for kk, (a, b) in curve.items()},
                "fit_seconds": round(fit_s, 3),
                "split": {"train_sessions": len(train), "holdout_sessions": len(test),
                          "protocol": f"random {100 - pct}/{pct} session split (seeded); predict the last step "
                                      "of each hold-out session from the steps before it"},
                "notes": [f"{source}; training sessions truncated to {self.truncate} items for mining.",
                          "Patterns are subsequences (gaps allowed); a rule's confidence is "
                          "support(pattern + next) / support(pattern)."]}
        fig, ax = charts.figure(7.0, max(3.0, 0.32 * len(top) + 1.2))
        ax.barh([" → ".join(label(i) for i in p) for _, p in top][::-1], [c for c, _ in top][::-1], color="#2e86c1")
        ax.set_xlabel("支持度 support (sessions)")
        ax.set_title("频繁序列模式 top frequent sequential patterns")
        pat_names = [" → ".join(label(i) for i in p) for _, p in top]
        pl = {"top_patterns": plots.table(["模式 pattern", "支持度 support (sessions)", "占比 share"],
                                          [[n, c, round(c / self.n_sessions_, 4)] for n, (c, _) in zip(pat_names, top)],
                                          "频繁序列模式 Top sequential patterns"),
              "top_patterns_bar": plots.bar(pat_names, [c for c, _ in top], "频繁序列模式 Top patterns by support",
                                            series_name="support"),
              "next_item_rules": plots.table(
                  ["最近内容 context", "下一个 next", "置信度 confidence", "支持度 support"],
                  sorted(([" → ".join(label(x) for x in a), label(item), round(conf, 4), sup]
                          for a, rs in self.rules_.items() for conf, sup, item in rs[:1]),
                         key=lambda r: -r[3])[: plots.MAX_ROWS], "下一个内容规则 Next-item rules (by support)"),
              "hit_rate": {"type": "line", "title": "命中率 Hit@k (hold-out)", "x_label": "k", "y_label": "hit rate",
                           "series": [{"name": "模型 model",
                                       "points": [[kk, round(a, 6)] for kk, (a, _) in curve.items()]},
                                      {"name": "基线 most popular", "dashed": True,
                                       "points": [[kk, round(b, 6)] for kk, (_, b) in curve.items()]}]},
              "vs_baseline": plots.compare(metrics, baseline, "模型与基线 Model vs baseline", "most popular items")}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="most popular items",
                          explanation=expl, charts={"top_patterns": charts.to_png(fig)}, plots=pl)
