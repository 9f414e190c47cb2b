"""Association and collaborative filtering: 客户业务关联 (cross-selling).

- :class:`AprioriCrossSell`: Apriori frequent itemsets and association rules (mlxtend) on
  the services each customer holds (IBM Telco) or on shopping baskets; recommends the
  consequents of the most confident rules whose antecedent the customer already has.
- :class:`ItemCFRecommender`: item-item collaborative filtering (cosine similarity of item
  co-occurrence columns) on baskets (groceries by default).

Both are judged the same way: each hold-out basket with >= 2 items hides one item (seeded)
and the model must put it in its top ``k`` recommendations among items the basket lacks
(hit-rate@k). Baseline: recommend the most popular items the basket lacks.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_rows
from zhinao.errors import InvalidRequest

#: IBM Telco service columns -> item label when the customer has the service
TELCO_SERVICES: dict[str, str] = {
    "PhoneService": "电话 Phone",
    "MultipleLines": "多线路 MultipleLines",
    "OnlineSecurity": "网络安全 OnlineSecurity",
    "OnlineBackup": "在线备份 OnlineBackup",
    "DeviceProtection": "设备保护 DeviceProtection",
    "TechSupport": "技术支持 TechSupport",
    "StreamingTV": "流媒体电视 StreamingTV",
    "StreamingMovies": "流媒体电影 StreamingMovies",
}


def telco_baskets(df: pd.DataFrame) -> list[list[str]]:
    """Each customer's services as a basket (internet type included as an item)."""
    missing = [c for c in (*TELCO_SERVICES, "InternetService") if c not in df.columns]
    if missing:
        raise InvalidRequest(f"telco table lacks service column(s) {missing}", param=missing[0])
    out = []
    for row in df[[*TELCO_SERVICES, "InternetService"]].astype(str).itertuples(index=False):
        basket = [TELCO_SERVICES[c] for c, v in zip(TELCO_SERVICES, row[:-1]) if v.strip().lower() == "yes"]
        internet = row[-1].strip()
        if internet and internet.lower() != "no":
            basket.append(f"宽带 Internet:{internet}")
        out.append(basket)
    return out


def to_baskets(data: Any) -> list[list[str]]:
    """Accept lists of items, a long (transaction_id, item) table, or a telco table."""
    if isinstance(data, pd.DataFrame):
        if {"transaction_id", "item"} <= set(data.columns):
            g = data.dropna(subset=["item"]).groupby("transaction_id", sort=True)["item"]
            return [list(dict.fromkeys(map(str, v))) for _, v in g]
        if "InternetService" in data.columns:
            return telco_baskets(data)
        raise InvalidRequest("basket table needs columns 'transaction_id' and 'item' "
                             "(or the telco service columns)", param="item")
    if isinstance(data, (list, tuple)):
        baskets = []
        for b in data:
            if isinstance(b, str) or not hasattr(b, "__iter__"):
                raise InvalidRequest("baskets must be lists of item names")
            baskets.append(list(dict.fromkeys(str(x) for x in b if str(x).strip())))
        return baskets
    raise InvalidRequest("association input must be a list of baskets or a (transaction_id, item) table")


def split_and_hide(baskets: list[list[str]], test_size: float = 0.25, seed: int = 0):
    """Random basket split; each test basket with >= 2 items hides one item."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(baskets))
    n_test = int(round(len(baskets) * test_size))
    train = [baskets[i] for i in idx[n_test:]]
    queries = []
    for i in idx[:n_test]:
        b = baskets[i]
        if len(b) >= 2:
            j = int(rng.integers(len(b)))
            queries.append((b[:j] + b[j + 1:], b[j]))
    return train, queries


def hit_rate(recommend, queries, k: int) -> dict[str, float]:
    hits = 0
    rr = 0.0
    for visible, hidden in queries:
        recs = recommend(visible, k)
        if hidden in recs:
            hits += 1
            rr += 1.0 / (recs.index(hidden) + 1)
    n = max(len(queries), 1)
    return {f"hit_rate@{k}": hits / n, f"mrr@{k}": rr / n}


class _BasketRecommender(MiningModel):
    k: int
    test_size: float
    seed: int

    def from_frame(self, df: pd.DataFrame) -> list[list[str]]:
        return to_baskets(df)

    def popular(self, visible: Sequence[str], k: int) -> list[str]:
        have = set(visible)
        return [i for i in self.popularity_ if i not in have][:k]

    def evaluate(self, data: Any) -> Evaluation:
        baskets = to_baskets(data)
        require_rows(len(baskets), 50, self.info.key)
        train, queries = split_and_hide(baskets, self.test_size, self.seed)
        if len(queries) < 10:
            raise InvalidRequest("too few hold-out baskets with >= 2 items to evaluate (need 10)")
        t0 = time.perf_counter()
        self.fit(train)
        fit_s = time.perf_counter() - t0
        k = int(self.k)
        metrics = hit_rate(self.recommend, queries, k)
        baseline = hit_rate(self.popular, queries, k)
        curve = {kk: (hit_rate(self.recommend, queries, kk)[f"hit_rate@{kk}"],
                      hit_rate(self.popular, queries, kk)[f"hit_rate@{kk}"]) for kk in (1, 2, 3, 5, 10)}
        expl = self._explain()
        expl.update({"split": {"train_baskets": len(train), "holdout_queries": len(queries),
                               "protocol": "random 75/25 basket split (seeded); one item hidden per hold-out "
                                           "basket with >= 2 items"},
                     "fit_seconds": round(fit_s, 3),
                     "hit_rate_by_k": {str(kk): {"model": round(a, 4), "popular": round(b, 4)}
                                       for kk, (a, b) in curve.items()}})
        fig, ax = charts.figure(6.0, 3.8)
        ks = list(curve)
        ax.plot(ks, [curve[x][0] for x in ks], "o-", label="模型 model")
        ax.plot(ks, [curve[x][1] for x in ks], "s--", label="基线 most popular")
        ax.set_xlabel("k")
        ax.set_ylabel("hit rate@k")
        ax.set_title(f"{self.info.name_zh}: 命中率 hit rate@k")
        ax.legend()
        out = {"hit_rate": charts.to_png(fig)}
        out.update(self._charts())
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="most popular items",
                          explanation=expl, charts=out)

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Top-k recommendations for each basket in ``df`` (long table or telco rows)."""
        baskets = to_baskets(df)
        if isinstance(df, pd.DataFrame) and {"transaction_id", "item"} <= set(df.columns):
            ids = sorted(df["transaction_id"].dropna().unique().tolist())
        elif isinstance(df, pd.DataFrame) and "customerID" in df.columns:
            ids = df["customerID"].tolist()
        else:
            ids = list(range(1, len(baskets) + 1))
        rows = []
        for i, b in zip(ids, baskets):
            for rank, item in enumerate(self.recommend(b, int(self.k)), 1):
                rows.append({"id": i, "rank": rank, "recommended_item": item})
        return pd.DataFrame(rows, columns=["id", "rank", "recommended_item"])

    def _explain(self) -> dict[str, Any]:
        return {}

    def _charts(self) -> dict[str, bytes]:
        return {}


@register
class AprioriCrossSell(_BasketRecommender):
    """Apriori rules; a basket's candidates are scored by the best rule confidence (lift tie-break)."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="cross_sell_apriori", name_zh="客户业务关联（Apriori 关联规则）",
        name_en="Service cross-selling (Apriori association rules)", algorithm="Apriori association rules",
        theme="association",
        application_zh="客户业务关联：发现业务之间的关联（如订了流媒体电视的客户常订流媒体电影），向客户交叉推荐",
        application_en="find which services go together and recommend the next service to each customer",
        inputs="baskets: telco service columns, or a (transaction_id, item) table, or lists of items",
        metrics=("hit_rate@3", "mrr@3"), dataset="telco")

    def __init__(self, min_support: float = 0.01, min_confidence: float = 0.1, max_len: int = 4, k: int = 3,
                 test_size: float = 0.25, seed: int = 0):
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.max_len = max_len
        self.k = k
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    def fit(self, X: Any, y: Any = None) -> "AprioriCrossSell":
        from mlxtend.frequent_patterns import apriori, association_rules
        from mlxtend.preprocessing import TransactionEncoder

        baskets = [b for b in to_baskets(X) if b]
        require_rows(len(baskets), 20, self.info.key)
        if not 0 < float(self.min_support) < 1:
            raise InvalidRequest("min_support must be in (0, 1)", param="min_support")
        counts = Counter(i for b in baskets for i in b)
        self.popularity_ = [i for i, _ in counts.most_common()]
        enc = TransactionEncoder()
        onehot = pd.DataFrame(enc.fit(baskets).transform(baskets), columns=enc.columns_)
        if onehot.shape[1] > 2000:
            raise InvalidRequest(f"{onehot.shape[1]} distinct items; Apriori here supports at most 2000")
        freq = apriori(onehot, min_support=float(self.min_support), use_colnames=True, max_len=int(self.max_len))
        if len(freq) == 0 or freq["itemsets"].map(len).max() < 2:
            self.rules_ = pd.DataFrame(columns=["antecedents", "consequents", "support", "confidence", "lift"])
        else:
            rules = association_rules(freq, metric="confidence", min_threshold=float(self.min_confidence))
            rules = rules[rules["consequents"].map(len) == 1]
            self.rules_ = rules[["antecedents", "consequents", "support", "confidence", "lift"]] \
                .sort_values(["confidence", "lift"], ascending=False).reset_index(drop=True)
        self.n_itemsets_ = int(len(freq))
        self._index_rules()
        return self

    def _index_rules(self) -> None:
        # consequent -> list of (antecedent set, confidence, lift), best first
        self.by_consequent_: dict[str, list[tuple[frozenset, float, float]]] = {}
        for a, c, conf, lift in zip(self.rules_["antecedents"], self.rules_["consequents"],
                                    self.rules_["confidence"], self.rules_["lift"]):
            self.by_consequent_.setdefault(next(iter(c)), []).append((frozenset(a), float(conf), float(lift)))

    def recommend(self, visible: Sequence[str], k: int) -> list[str]:
        have = set(visible)
        scored = []
        for item, rules in self.by_consequent_.items():
            if item in have:
                continue
            best = next(((conf, lift) for a, conf, lift in rules if a <= have), None)
            if best is not None:
                scored.append((best[0], best[1], item))
        scored.sort(reverse=True)
        recs = [item for _, _, item in scored[:k]]
        # rules do not cover every basket: fill with popular items so every query gets k
        return recs + [i for i in self.popular(visible, k + len(recs)) if i not in recs][: k - len(recs)]

    def _explain(self) -> dict[str, Any]:
        top = self.rules_.sort_values("lift", ascending=False).head(15)
        return {"n_frequent_itemsets": self.n_itemsets_, "n_rules": int(len(self.rules_)),
                "top_rules_by_lift": [{"if": sorted(a), "then": sorted(c), "support": round(float(s), 4),
                                       "confidence": round(float(cf), 4), "lift": round(float(lf), 3)}
                                      for a, c, s, cf, lf in top.itertuples(index=False)],
                "notes": ["Rules need min_support and min_confidence; baskets no rule covers fall back to "
                          "the most popular items."]}

    def _charts(self) -> dict[str, bytes]:
        if self.rules_.empty:
            return {}
        top = self.rules_.sort_values("lift", ascending=False).head(12)
        names = [f"{'+'.join(sorted(a))} → {next(iter(c))}" for a, c in zip(top["antecedents"], top["consequents"])]
        names = [n if len(n) < 60 else n[:57] + "…" for n in names]
        return {"top_rules_lift": charts.bar_chart(names, top["lift"].tolist(), "关联规则 提升度 lift (top 12)",
                                                   xlabel="lift")}


@register
class ItemCFRecommender(_BasketRecommender):
    """Item-item cosine collaborative filtering on baskets (binary user x item matrix)."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="basket_item_cf", name_zh="客户业务关联（协同过滤）",
        name_en="Cross-selling by item-item collaborative filtering", algorithm="item-item collaborative filtering",
        theme="association",
        application_zh="客户业务关联：根据“买了这个的客户也买了”为每个购物篮/客户推荐商品或业务",
        application_en="customers who took this also took that: per-basket recommendations",
        inputs="baskets: a (transaction_id, item) table, lists of items, or telco service columns",
        metrics=("hit_rate@3", "mrr@3"), dataset="groceries")

    def __init__(self, k: int = 3, shrinkage: float = 10.0, test_size: float = 0.25, seed: int = 0):
        self.k = k
        self.shrinkage = shrinkage
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> list[list[str]]:
        return datasets.load_groceries()

    def fit(self, X: Any, y: Any = None) -> "ItemCFRecommender":
        from scipy import sparse

        baskets = [b for b in to_baskets(X) if b]
        require_rows(len(baskets), 20, self.info.key)
        counts = Counter(i for b in baskets for i in b)
        self.popularity_ = [i for i, _ in counts.most_common()]
        self.items_ = sorted(counts)
        pos = {it: j for j, it in enumerate(self.items_)}
        rows = [r for r, b in enumerate(baskets) for _ in b]
        cols = [pos[i] for b in baskets for i in b]
        m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(baskets), len(self.items_)))
        co = (m.T @ m).toarray()  # item x item co-occurrence
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + 1e-12)
        # shrink similarities resting on few co-occurrences (noisy for rare items)
        sim *= co / (co + float(self.shrinkage))
        np.fill_diagonal(sim, 0.0)
        self.similarity_ = sim
        self.pos_ = pos
        return self

    def recommend(self, visible: Sequence[str], k: int) -> list[str]:
        idx = [self.pos_[i] for i in visible if i in self.pos_]
        if not idx:
            return self.popular(visible, k)
        score = self.similarity_[idx].sum(axis=0)
        score[idx] = -np.inf
        order = np.argsort(-score, kind="stable")
        have = set(visible)
        recs = [self.items_[j] for j in order[:k + len(idx)] if self.items_[j] not in have and score[j] > 0][:k]
        return recs + [i for i in self.popular(visible, k + len(recs)) if i not in recs][: k - len(recs)]

    def similar_items(self, item: str, n: int = 5) -> list[tuple[str, float]]:
        j = self.pos_.get(item)
        if j is None:
            raise InvalidRequest(f"unknown item {item!r}", param="item")
        order = np.argsort(-self.similarity_[j])[:n]
        return [(self.items_[o], round(float(self.similarity_[j, o]), 4)) for o in order]

    def _explain(self) -> dict[str, Any]:
        return {"n_items": len(self.items_),
                "neighbours_of_top_items": {it: self.similar_items(it, 5) for it in self.popularity_[:5]},
                "notes": [f"Cosine similarity shrunk by co/(co+{self.shrinkage}) so pairs seen together a few "
                          "times do not dominate."]}
