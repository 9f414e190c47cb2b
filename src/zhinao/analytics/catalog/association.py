"""Association and collaborative filtering: 客户业务关联 / 购物篮交叉销售 (cross-selling).

- :class:`AprioriCrossSell`: Apriori frequent itemsets and association rules (mlxtend);
  recommends the consequents of the most confident rules whose antecedent a basket holds.
- :class:`ItemCFRecommender`: item-item collaborative filtering (cosine similarity of item
  co-occurrence columns).

Both take baskets from any table, in one of two shapes (or, third, one row per basket with
its items listed in one column: role ``items``), bound by column roles
(:mod:`.roles`), because an operator's data comes both ways:

- **long** — one row per item of a basket: ``session`` (basket / order / customer id, any
  name) + ``item``; optional ``time`` (the hold-out is then the latest baskets, as a
  deployed model meets them) and ``value`` (quantity or amount: rows with value <= 0, such as
  returns, are not in the basket). The groceries demo is this shape.
- **wide** — one row per customer, one column per service (``features``): Yes/No, 是/否,
  1/0, True/False flags, or a category (the internet type) whose non-"no" values become
  items. The IBM Telco demo is this shape.

Both are judged the same way: each hold-out basket with >= 2 items hides one item (seeded)
and the model must put it in its top ``k`` recommendations among items the basket lacks
(hit-rate@k). Baseline: recommend the most popular items the basket lacks.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_rows, to_datetime, to_numeric
from zhinao.analytics.catalog.roles import (_TARGET_NAME, NEGATIVE, POSITIVE, Binding, Preset, Role, _columns_text,
                                            _norm, bind, column_kind, plain, role_params)
from zhinao.errors import InvalidRequest

#: IBM Telco service columns -> item label when the customer has the service (demo only:
#: any other table's items are named after its own columns)
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
_DEMO_LABELS = {**TELCO_SERVICES, "InternetService": "宽带 Internet"}
TELCO_COLUMNS = (*TELCO_SERVICES, "InternetService")

ROLES = (
    Role("session", kinds=("id", "categorical", "numeric", "text"), required=False, demo="transaction_id",
         help_en="long table: the basket / transaction / order / customer id; rows with the same value form "
                 "one basket",
         help_zh="长表：购物篮/交易/订单/客户编号，同一值的行组成一个购物篮"),
    Role("item", kinds=("categorical", "text", "id", "numeric", "boolean"), required=False, demo="item",
         help_en="long table: the product or service of the row", help_zh="长表：该行的商品或业务"),
    Role("time", kinds=("datetime", "numeric"), required=False,
         help_en="optional: when the basket happened; the hold-out is then the latest baskets",
         help_zh="可选：购物篮发生的时间；留出集取最新的购物篮"),
    Role("value", kinds=("numeric",), required=False,
         help_en="optional: quantity or amount per row; rows with value <= 0 (returns) are not in the basket",
         help_zh="可选：每行的数量或金额；数值 <= 0 的行（退货）不计入购物篮"),
    Role("features", kinds=("boolean", "categorical", "numeric"), many=True, required=False, demo=TELCO_COLUMNS,
         help_en="wide table: one column per service or product (Yes/No, 是/否, 1/0, True/False, a count, or a "
                 "category such as the internet type); each one a customer has becomes an item",
         help_zh="宽表：每个业务/商品一列（是/否、Yes/No、1/0、True/False、数量，或如宽带类型的类别），"
                 "客户拥有的每项即一个物品"),
    Role("id", kinds=("id",), required=False, demo="customerID", infer="kind",
         help_en="wide table: the customer id shown with each recommendation (row number otherwise)",
         help_zh="宽表：推荐结果中显示的客户编号（否则为行号）"),
)
ROLES = ROLES + (
    Role("items", kinds=("text", "categorical"), required=False,
         help_en="instead of item: one row per basket, its items in one column separated by commas, ';', '|' "
                 "or '、' (session then names the basket, optional)",
         help_zh="代替 item：每行一个购物篮，其物品写在一列中（以逗号、分号、| 或 、 分隔；session 可选，为篮子编号）"),
)
_LIST_SEP = re.compile(r"\s*[,;|，；、]\s*")
_LONG = ("session", "item", "time", "value")
_WIDE = ("features", "id")


def _item_str(v: Any) -> str:
    v = plain(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _none_like(v: str) -> bool:
    """A service value that means "does not have it" (``No internet service``, ``无``, ``未开通``)."""
    return v in NEGATIVE or v.startswith(("no ", "no_", "none", "without", "无", "没有", "未", "不"))


def flag_like(s: pd.Series) -> bool:
    """Whether a column reads as a service flag: some "yes" value, everything else a kind of "no"."""
    vals = {_norm(v) for v in pd.unique(s.dropna())[:20]}
    vals.discard("")
    if len(vals) < 2 or len(vals) > 4:
        return False
    return bool(vals & POSITIVE) and all(v in POSITIVE or _none_like(v) for v in vals)


def wide_baskets(df: pd.DataFrame, columns: Sequence[str], kinds: dict[str, str] | None = None) -> list[list[str]]:
    """Each row's items: a flag that says yes -> the column; a number > 0 -> the column; any other
    category value that is not a kind of "no" -> ``column:value``."""
    kinds = kinds or {}
    per_col = []
    for c in columns:
        label = _DEMO_LABELS.get(c, str(c))
        col = df[c]
        k = kinds.get(c) or column_kind(col, c)
        if k == "numeric":
            has = to_numeric(col, c).fillna(0) > 0
            per_col.append(np.where(has.to_numpy(), label, None))
            continue
        out = []
        for v in col.tolist():
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                out.append(None)
                continue
            n = _norm(v)
            if n in POSITIVE:
                out.append(label)
            elif not n or _none_like(n):
                out.append(None)
            else:
                out.append(f"{label}:{_item_str(v)}")
        per_col.append(out)
    if not per_col:
        return [[] for _ in range(len(df))]
    return [[x for x in row if x is not None] for row in zip(*per_col)]


def telco_baskets(df: pd.DataFrame) -> list[list[str]]:
    """The IBM Telco demo's services as baskets (internet type included as an item)."""
    missing = [c for c in TELCO_COLUMNS if c not in df.columns]
    if missing:
        raise InvalidRequest(f"telco table lacks service column(s) {missing}", param=missing[0])
    return wide_baskets(df, TELCO_COLUMNS)


def to_baskets(data: Any) -> list[list[str]]:
    """Lists of items as baskets (tables go through a model's role binding: :meth:`_BasketRecommender.baskets`)."""
    if isinstance(data, pd.DataFrame):
        return AprioriCrossSell().baskets(data)[0]
    if isinstance(data, (list, tuple)):
        baskets = []
        for b in data:
            if isinstance(b, str) or not hasattr(b, "__iter__"):
                raise InvalidRequest("baskets must be lists of item names")
            baskets.append(list(dict.fromkeys(str(x) for x in b if str(x).strip())))
        return baskets
    raise InvalidRequest("association input must be a table (bind session + item, or features) or lists of items")


def split_and_hide(baskets: list[list[str]], test_size: float = 0.25, seed: int = 0,
                   order: Sequence[Any] | None = None):
    """Basket split — random (seeded), or by ``order`` (the latest baskets are the hold-out) —
    and each hold-out basket with >= 2 items hides one item (seeded)."""
    rng = np.random.default_rng(seed)
    n_test = int(round(len(baskets) * test_size))
    if order is not None:
        idx = np.argsort(np.asarray(order), kind="stable")[::-1]  # latest first
    else:
        idx = rng.permutation(len(baskets))
    train = [baskets[i] for i in sorted(idx[n_test:])]
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

    # -- binding: long (session + item) or wide (features) ---------------------------------

    def bind(self, df: pd.DataFrame) -> Binding:
        """Bind the long or the wide shape (see the module docstring) and keep it in ``binding_``."""
        df = df.rename(columns=str)
        key = self.info.key
        given = role_params(self)
        roles = {r.name: r for r in self.info.roles}
        long_given = any(given.get(r) not in (None, "") for r in ("session", "item"))
        wide_given = given.get("features") not in (None, "", [], ())
        if long_given and wide_given:
            raise InvalidRequest(f"{key}: bind either session + item (a long table, one row per item of a basket) "
                                 "or features (a wide table, one column per service), not both", param="features")
        inferred_features = None
        if given.get("items") not in (None, ""):
            if wide_given or given.get("item") not in (None, "") or given.get("time") or given.get("value"):
                raise InvalidRequest(f"{key}: with items (one row per basket) leave item, time, value and features "
                                     "unbound", param="items")
            use = [dataclasses.replace(roles["items"], required=True), roles["session"]]
            self.binding_ = bind(use, df, {"items": given["items"], "session": given.get("session")}, model_key=key)
            return self.binding_
        if long_given or (not wide_given and {"transaction_id", "item"} <= set(df.columns)):
            shape = "long"
        elif wide_given or sum(c in df.columns for c in TELCO_COLUMNS) >= len(TELCO_COLUMNS) // 2:
            shape = "wide"
        else:
            flags = [c for c in df.columns if not _TARGET_NAME.match(c.strip()) and column_kind(df[c], c) != "id"
                     and flag_like(df[c])]
            if len(flags) < 2:
                raise InvalidRequest(
                    f"{key}: say how the table holds baskets: -p session=COLUMN -p item=COLUMN for a long table "
                    "(one row per item of a basket), or -p features='[\"col1\", \"col2\"]' for a wide table (one "
                    f"Yes/No or 0/1 column per service or product); columns: {_columns_text(df)}", param="session")
            shape, inferred_features = "wide", flags
        if shape == "long":
            use = [dataclasses.replace(roles[n], required=True) if n in ("session", "item") else roles[n]
                   for n in _LONG]
        else:
            use = [dataclasses.replace(roles["features"], required=True), roles["id"]]
        vals = {r.name: given.get(r.name) for r in use}
        if inferred_features:
            vals["features"] = inferred_features
        b = bind(use, df, vals, model_key=key)
        if inferred_features:
            b.inferred.append("features")
        if shape == "long" and b["session"] == b["item"]:
            raise InvalidRequest(f"{key}: session and item are both bound to {b['session']!r}; bind them to two "
                                 "columns", param="item")
        self.binding_ = b
        return b

    def baskets(self, df: pd.DataFrame, binding: Binding | None = None) -> tuple[list[list[str]], list[Any], Any, dict]:
        """``(baskets, ids, order, about)`` of a table: order = basket times (or None);
        ``about`` says what was read, for the notes."""
        df = df.rename(columns=str)
        b = binding or self.bind(df)
        cols = b.columns
        if "items" in cols:
            q, s = cols["items"], cols.get("session")
            for c in (q, s):
                if c is not None and c not in df.columns:
                    raise InvalidRequest(f"{self.info.key}: the table lacks column {c!r}, which the model was "
                                         f"fitted with; columns: {_columns_text(df)}", param=c)
            baskets = [list(dict.fromkeys(x for x in _LIST_SEP.split(str(v).strip()) if x))
                       if v is not None and (isinstance(v, str) or not pd.isna(v)) else [] for v in df[q].tolist()]
            ids = df[s].map(plain).tolist() if s else list(range(1, len(df) + 1))
            return baskets, ids, None, {"shape": "list", "rows": len(df), "items": q, "session": s}
        if "session" in cols:
            s, i, t, v = cols["session"], cols["item"], cols.get("time"), cols.get("value")
            for c in (s, i, t, v):
                if c is not None and c not in df.columns:
                    raise InvalidRequest(f"{self.info.key}: the table lacks column {c!r}, which the model was "
                                         f"fitted with; columns: {_columns_text(df)}", param=c)
            n_rows = len(df)
            ok = df[i].notna() & df[i].astype(str).str.strip().ne("")
            if v is not None:
                ok &= to_numeric(df[v], v).fillna(0) > 0
            d = df[ok & df[s].notna()]
            if len(d) == 0 and n_rows:
                raise InvalidRequest(f"{self.info.key}: no row has an item in {i!r}"
                                     + (f" with {v!r} > 0" if v else "") + "; bind item to the product column",
                                     param="item")
            items = d[i].map(_item_str)
            codes, uniq = pd.factorize(d[s], sort=False)
            baskets: list[list[str]] = [[] for _ in range(len(uniq))]
            for c, it in zip(codes, items.tolist()):
                baskets[c].append(it)
            baskets = [list(dict.fromkeys(x)) for x in baskets]
            order = None
            if t is not None:
                tt = d[t]
                tt = to_numeric(tt, t) if b.kinds.get(t) == "numeric" else to_datetime(tt, t).astype("int64")
                order = pd.Series(tt.to_numpy()).groupby(codes).min().reindex(range(len(uniq))).to_numpy()
            about = {"shape": "long", "rows": n_rows, "rows_used": int(len(d)), "session": s, "item": i,
                     "time": t, "value": v}
            return baskets, [plain(x) for x in uniq], order, about
        feats = cols["features"]
        missing = [c for c in feats if c not in df.columns]
        if missing:
            raise InvalidRequest(f"{self.info.key}: the table lacks service column(s) {', '.join(map(repr, missing))}, "
                                 f"which the model was fitted with; columns: {_columns_text(df)}", param=missing[0])
        baskets = wide_baskets(df, feats, b.kinds)
        idc = cols.get("id")
        ids = df[idc].map(plain).tolist() if idc and idc in df.columns else list(range(1, len(df) + 1))
        return baskets, ids, None, {"shape": "wide", "rows": len(df), "features": list(feats), "id": idc}

    def _basket_input(self, X: Any) -> list[list[str]]:
        if isinstance(X, pd.DataFrame):
            return self.baskets(X)[0]
        return to_baskets(X)

    # -- evaluation --------------------------------------------------------------------------

    def from_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        return df

    def popular(self, visible: Sequence[str], k: int) -> list[str]:
        have = set(visible)
        return [i for i in self.popularity_ if i not in have][:k]

    def evaluate(self, data: Any) -> Evaluation:
        if isinstance(data, pd.DataFrame):
            if len(data) == 0:
                raise InvalidRequest(f"model {self.info.key!r} needs at least 50 baskets, the table is empty",
                                     code="too_few_rows")
            baskets, _, order, about = self.baskets(data)
            self._check_several(baskets, about)
        else:
            baskets, order = to_baskets(data), None
            about = {"shape": "lists"}
            self.binding_ = Binding()
        require_rows(len(baskets), 50, self.info.key)
        train, queries = split_and_hide(baskets, self.test_size, self.seed, order)
        if len(queries) < 10:
            raise InvalidRequest(f"{self.info.key}: only {len(queries)} hold-out baskets hold >= 2 items (need 10) — "
                                 "too few baskets with several items to evaluate", code="too_few_rows")
        t0 = time.perf_counter()
        self.fit(train)
        fit_s = time.perf_counter() - t0
        k = int(self.k)
        self._memo: dict | None = {}
        try:
            return self._evaluated(baskets, train, queries, order, about, fit_s, k)
        finally:
            self._memo = None

    def _evaluated(self, baskets, train, queries, order, about, fit_s: float, k: int) -> Evaluation:
        metrics = hit_rate(self.recommend, queries, k)
        baseline = hit_rate(self.popular, queries, k)
        if k != 3:  # the catalogue's primary metric is always there
            metrics.update(hit_rate(self.recommend, queries, 3))
            baseline.update(hit_rate(self.popular, queries, 3))
        curve = {kk: (hit_rate(self.recommend, queries, kk)[f"hit_rate@{kk}"],
                      hit_rate(self.popular, queries, kk)[f"hit_rate@{kk}"]) for kk in (1, 2, 3, 5, 10)}
        pct = int(round(100 * float(self.test_size)))
        how = (f"the latest {pct}% of baskets by {about['time']!r} are the hold-out" if order is not None else
               f"random {100 - pct}/{pct} basket split (seeded)")
        expl = self._explain()
        expl["notes"] = [self._describe(about, baskets)] + expl.get("notes", [])
        expl.update({"split": {"train_baskets": len(train), "holdout_queries": len(queries),
                               "protocol": f"{how}; each hold-out basket with >= 2 items hides one of them, the "
                                           f"model ranks what the basket lacks"},
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
        pl = {"hit_rate": {"type": "line", "title": "命中率 Hit rate@k (hold-out)", "x_label": "k",
                           "y_label": "hit rate", "series": [
                               {"name": "模型 model", "points": [[kk, round(a, 6)] for kk, (a, _) in curve.items()]},
                               {"name": "基线 most popular", "dashed": True,
                                "points": [[kk, round(b, 6)] for kk, (_, b) in curve.items()]}]},
              "vs_baseline": plots.compare(metrics, baseline, "模型与基线 Model vs baseline", "most popular items")}
        pl.update(self._plots())
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="most popular items",
                          explanation=expl, charts=out, plots=pl)

    def _check_several(self, baskets: list[list[str]], about: dict) -> None:
        """Nothing to associate when no basket holds two items: say which binding to change."""
        if not baskets or max(map(len, baskets)) >= 2:
            return
        if about["shape"] == "list":
            raise InvalidRequest(f"{self.info.key}: every row of {about['items']!r} (role items) holds one item: "
                                 "nothing to associate; bind items to the column listing a basket's items "
                                 "(separated by commas)", param="items")
        if about["shape"] == "long":
            raise InvalidRequest(
                f"{self.info.key}: every basket of column {about['session']!r} (role session) holds a single item "
                f"of {about['item']!r}: nothing to associate. Bind session to the column that groups several items "
                "into one basket (an order, transaction or customer id), or give a wide table with "
                "-p features='[...]'", param="session")
        raise InvalidRequest(f"{self.info.key}: no row has two of the service columns "
                             f"{', '.join(map(repr, about['features'][:8]))}: nothing to associate; bind features to "
                             "the Yes/No (or 0/1) service columns", param="features")

    def _describe(self, about: dict, baskets: list[list[str]]) -> str:
        n_items = len({i for b in baskets for i in b})
        multi = sum(len(b) >= 2 for b in baskets)
        if about["shape"] == "long":
            extra = f"; rows with {about['value']!r} <= 0 left out" if about.get("value") else ""
            return (f"Baskets: {len(baskets):,} values of {about['session']!r} ({multi:,} with >= 2 items), "
                    f"{n_items:,} distinct items of {about['item']!r}, from {about['rows_used']:,} of "
                    f"{about['rows']:,} rows{extra}.")
        if about["shape"] == "list":
            return (f"Baskets: {len(baskets):,} rows of {about['items']!r}, items separated by commas; {multi:,} "
                    f"with >= 2 items, {n_items:,} distinct items.")
        if about["shape"] == "wide":
            return (f"Baskets: {len(baskets):,} rows, one per customer; items are the {len(about['features'])} "
                    f"service columns {', '.join(about['features'][:12])}"
                    f"{' …' if len(about['features']) > 12 else ''} (a yes/1/true flag or a number > 0 = has it; "
                    f"other category values become column:value); {multi:,} rows hold >= 2 items.")
        return f"Baskets: {len(baskets):,} lists of items ({multi:,} with >= 2 items, {n_items:,} distinct items)."

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Top-k recommendations for each basket in ``df`` (the shape the model was fitted on),
        each with its score and the reason (rule or neighbours, or popularity)."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest("recommendations are scored for a table of baskets")
        fitted = getattr(self, "binding_", None)
        baskets, ids, _, about = self.baskets(df, fitted if fitted is not None and fitted.columns else None)
        id_col = about.get("session") or about.get("id") or "row"
        if id_col == "basket":
            id_col = "basket_id"
        rows = []
        for i, b in zip(ids, baskets):
            for rank, (item, score, why) in enumerate(self.recommend_scored(b, int(self.k)), 1):
                rows.append({id_col: i, "basket": " + ".join(b), "rank": rank, "recommended_item": item,
                             "score": round(float(score), 6), "reason": why})
        return pd.DataFrame(rows, columns=[id_col, "basket", "rank", "recommended_item", "score", "reason"])

    def recommend(self, visible: Sequence[str], k: int) -> list[str]:
        return [i for i, _, _ in self.recommend_scored(visible, k)]

    def _fill(self, visible: Sequence[str], recs: list[tuple[str, float, str]], k: int) -> list[tuple[str, float, str]]:
        # rules / neighbours do not cover every basket: fill with popular items so every query gets k
        have = {r[0] for r in recs}
        extra = [(i, self.popularity_count_.get(i, 0) / self.n_baskets_, "popular 热门")
                 for i in self.popular(visible, k + len(recs)) if i not in have][: k - len(recs)]
        return recs[:k] + extra

    def _explain(self) -> dict[str, Any]:
        return {}

    def _charts(self) -> dict[str, bytes]:
        return {}

    def _plots(self) -> dict[str, Any]:
        return {}

    def _count(self, baskets: list[list[str]]) -> None:
        counts = Counter(i for b in baskets for i in b)
        self.popularity_ = [i for i, _ in counts.most_common()]
        self.popularity_count_ = dict(counts)
        self.n_baskets_ = max(len(baskets), 1)


_SESSION_PRESET = {"session": "transaction_id", "item": "item"}


@register
class AprioriCrossSell(_BasketRecommender):
    """Apriori rules; a basket's candidates are scored by the best rule confidence (lift tie-break)."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="cross_sell_apriori", name_zh="客户业务关联（Apriori 关联规则）",
        name_en="Service cross-selling (Apriori association rules)", algorithm="Apriori association rules",
        theme="association",
        application_zh="客户业务关联：发现业务之间的关联（如订了流媒体电视的客户常订流媒体电影），向客户交叉推荐",
        application_en="find which services go together and recommend the next service to each customer",
        inputs="baskets: a long table (session + item columns, any names) or a wide table of service columns "
               "(features), or lists of items",
        metrics=("hit_rate@3", "mrr@3"), dataset="telco", task="association", roles=ROLES,
        presets=(
            Preset("service_association", "客户业务关联", "Service association (cross-selling services)", {},
                   dataset="telco", note_en="customers' service columns (Yes/No) as baskets",
                   note_zh="以客户的各项业务（是/否）为购物篮"),
            Preset("basket_cross_sell", "购物篮交叉销售", "Shopping-basket cross-selling",
                   {**_SESSION_PRESET, "min_support": 0.002, "min_confidence": 0.05, "max_len": 3},
                   dataset="groceries", note_en="one row per item of a receipt; rare items need a low support",
                   note_zh="每行是小票上的一件商品；商品多而分散，支持度需调低"),
        ))

    def __init__(self, session: str | None = None, item: str | None = None, time: str | None = None,
                 value: str | None = None, features: list[str] | None = None, id: str | None = None,
                 items: str | None = None, min_support: float = 0.01, min_confidence: float = 0.1, max_len: int = 4,
                 k: int = 3, test_size: float = 0.25, seed: int = 0):
        self.session = session
        self.item = item
        self.time = time
        self.value = value
        self.features = features
        self.id = id
        self.items = items
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

        if not 0 < float(self.min_support) < 1:
            raise InvalidRequest("min_support must be in (0, 1)", param="min_support")
        baskets = [b for b in self._basket_input(X) if b]
        require_rows(len(baskets), 20, self.info.key)
        self._count(baskets)
        enc = TransactionEncoder()
        onehot = pd.DataFrame(enc.fit(baskets).transform(baskets), columns=enc.columns_)
        if onehot.shape[1] > 2000:
            raise InvalidRequest(f"{onehot.shape[1]} distinct items; Apriori here supports at most 2000 — bind item "
                                 "to a coarser column (category instead of product code)", param="item")
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

    def _ranked(self, visible: Sequence[str]) -> list[tuple[str, float, str]]:
        """Every item a rule recommends for ``visible``, best first (memoised during evaluate:
        the hit-rate curve asks for several k of the same basket)."""
        memo = getattr(self, "_memo", None)
        key = tuple(visible)
        if memo is not None and key in memo:
            return memo[key]
        have = set(visible)
        scored = []
        for item, rules in self.by_consequent_.items():
            if item in have:
                continue
            best = next(((conf, lift, a) for a, conf, lift in rules if a <= have), None)
            if best is not None:
                scored.append((best[0], best[1], item, " + ".join(sorted(best[2]))))
        scored.sort(key=lambda r: (-r[0], -r[1], r[2]))
        out = [(item, conf, f"{a} → {item} (confidence {conf:.2f}, lift {lift:.2f})") for conf, lift, item, a in scored]
        if memo is not None:
            memo[key] = out
        return out

    def recommend_scored(self, visible: Sequence[str], k: int) -> list[tuple[str, float, str]]:
        return self._fill(visible, self._ranked(visible)[:k], k)

    def _explain(self) -> dict[str, Any]:
        top = self.rules_.sort_values("lift", ascending=False).head(15)
        return {"n_frequent_itemsets": self.n_itemsets_, "n_rules": int(len(self.rules_)),
                "top_rules_by_lift": [{"if": sorted(a), "then": sorted(c), "support": round(float(s), 4),
                                       "confidence": round(float(cf), 4), "lift": round(float(lf), 3)}
                                      for a, c, s, cf, lf in top.itertuples(index=False)],
                "notes": [f"Rules need support >= {self.min_support} and confidence >= {self.min_confidence}; "
                          "baskets no rule covers fall back to the most popular items."]}

    def _charts(self) -> dict[str, bytes]:
        if self.rules_.empty:
            return {}
        top = self.rules_.sort_values("lift", ascending=False).head(12)
        names = [f"{'+'.join(sorted(a))} → {next(iter(c))}" for a, c in zip(top["antecedents"], top["consequents"])]
        names = [n if len(n) < 60 else n[:57] + "…" for n in names]
        return {"top_rules_lift": charts.bar_chart(names, top["lift"].tolist(), "关联规则 提升度 lift (top 12)",
                                                   xlabel="lift")}

    def _plots(self) -> dict[str, Any]:
        r = self.rules_.sort_values("lift", ascending=False)
        rows = [[" + ".join(sorted(a)), " + ".join(sorted(c)), s, cf, lf]
                for a, c, s, cf, lf in r.head(plots.MAX_ROWS).itertuples(index=False)]
        out = {"rules": plots.table(["如果 if", "则 then", "支持度 support", "置信度 confidence", "提升度 lift"], rows,
                                    f"关联规则 Association rules ({len(r):,}, by lift)")}
        out["rules_scatter"] = plots.scatter(
            {"规则 rules (lift > 1)": r[r["lift"] > 1][["support", "confidence"]].to_numpy().tolist(),
             "规则 rules (lift <= 1)": r[r["lift"] <= 1][["support", "confidence"]].to_numpy().tolist()},
            "规则的支持度与置信度 Support vs confidence", "支持度 support", "置信度 confidence")
        return out


@register
class ItemCFRecommender(_BasketRecommender):
    """Item-item cosine collaborative filtering on baskets (binary basket x item matrix)."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="basket_item_cf", name_zh="客户业务关联（协同过滤）",
        name_en="Cross-selling by item-item collaborative filtering", algorithm="item-item collaborative filtering",
        theme="association",
        application_zh="客户业务关联：根据“买了这个的客户也买了”为每个购物篮/客户推荐商品或业务",
        application_en="customers who took this also took that: per-basket recommendations",
        inputs="baskets: a long table (session + item columns, any names) or a wide table of service columns "
               "(features), or lists of items",
        metrics=("hit_rate@3", "mrr@3"), dataset="groceries", task="association", roles=ROLES,
        presets=(
            Preset("basket_cross_sell", "购物篮交叉销售", "Shopping-basket cross-selling", dict(_SESSION_PRESET),
                   dataset="groceries", note_en="one row per item of a receipt", note_zh="每行是小票上的一件商品"),
            Preset("service_association", "客户业务关联", "Service association (recommend the next service)",
                   {"features": list(TELCO_COLUMNS)}, dataset="telco",
                   note_en="customers' service columns (Yes/No) as baskets", note_zh="以客户的各项业务（是/否）为购物篮"),
        ))

    def __init__(self, session: str | None = None, item: str | None = None, time: str | None = None,
                 value: str | None = None, features: list[str] | None = None, id: str | None = None,
                 items: str | None = None, k: int = 3, shrinkage: float = 10.0, test_size: float = 0.25,
                 seed: int = 0):
        self.session = session
        self.item = item
        self.time = time
        self.value = value
        self.features = features
        self.id = id
        self.items = items
        self.k = k
        self.shrinkage = shrinkage
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> pd.DataFrame:
        return datasets.groceries_frame()

    def fit(self, X: Any, y: Any = None) -> "ItemCFRecommender":
        from scipy import sparse

        baskets = [b for b in self._basket_input(X) if b]
        require_rows(len(baskets), 20, self.info.key)
        self._count(baskets)
        self.items_ = sorted(self.popularity_count_)
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

    def recommend_scored(self, visible: Sequence[str], k: int) -> list[tuple[str, float, str]]:
        idx = [self.pos_[i] for i in visible if i in self.pos_]
        if not idx:
            return self._fill(visible, [], k)
        score = self.similarity_[idx].sum(axis=0)
        score[idx] = -np.inf
        order = np.argsort(-score, kind="stable")
        have = set(visible)
        recs = []
        for j in order[:k + len(idx)]:
            it = self.items_[j]
            if it in have or not score[j] > 0:
                continue
            near = max(idx, key=lambda a: self.similarity_[a, j])
            recs.append((it, float(score[j]), f"similar to {self.items_[near]} (cosine "
                                              f"{self.similarity_[near, j]:.2f})"))
            if len(recs) == k:
                break
        return self._fill(visible, recs, k)

    def similar_items(self, item: str, n: int = 5) -> list[tuple[str, float]]:
        j = self.pos_.get(item)
        if j is None:
            raise InvalidRequest(f"unknown item {item!r}", param="item")
        order = np.argsort(-self.similarity_[j])[:n]
        return [(self.items_[o], round(float(self.similarity_[j, o]), 4)) for o in order]

    def _explain(self) -> dict[str, Any]:
        return {"n_items": len(self.items_),
                "neighbours_of_top_items": [{"of": it, "neighbours": self.similar_items(it, 5)}
                                            for it in self.popularity_[:5]],
                "notes": [f"Cosine similarity shrunk by co/(co+{self.shrinkage}) so pairs seen together a few "
                          "times do not dominate."]}

    def _plots(self) -> dict[str, Any]:
        rows = [[it, nb, s] for it in self.popularity_[:10] for nb, s in self.similar_items(it, 3)]
        return {"neighbours": plots.table(["物品 item", "相似物品 neighbour", "余弦 cosine"], rows,
                                          "最相似的物品 Nearest items of the 10 most popular")}
