"""``engine="spark"``: a catalogue run's role binding, fitted by MLlib, with the same run record.

The Spark engine never looks inside a catalogue model. It binds the model's declared roles
to the table (``model.bind(table)``, exactly what the embedded ``evaluate`` does, so both
engines use the same columns and the run record shows the same ``binding``), flattens the
bound columns into one Parquet table and calls :func:`zhinao.analytics.spark.fit_spark`.

Which MLlib algorithm runs is a *translation*, looked up per catalogue entry by its task and
algorithm (``ModelInfo.task`` + ``ModelInfo.algorithm``: a classification by "logistic
regression" is MLlib's ``LogisticRegression`` …, :data:`RULES`). A model class may override it
with a ``spark_algorithm`` ClassVar (an MLlib name of :data:`spark.ALGORITHMS`, or None to
opt out). What the binding holds decides the table's shape:

- target (or label) + features  -> supervised (LogisticRegression, DecisionTree, MLP, LinearSVC,
  GBT, NaiveBayes; LinearRegression for a numeric target); a two-class target is 0/1 with the
  positive class found by :func:`roles.positive_class` (是/否, True/False …) as the embedded run;
- value + features, no target   -> "top share of value" classes (customer value);
- target + text                 -> bag of jieba words, multinomial naive Bayes;
- features                      -> KMeans / GaussianMixture;
- session (or group) + item     -> FP-Growth baskets / PrefixSpan sessions (time orders them);
- time + value                  -> LinearRegression on the forecaster's own ``regression_design(data)``
  when it offers that public hook (same calendar, holidays, lags and hold-out), else on
  day-of-week/hour dummies and seasonal lags.

What differs from the embedded estimator is said in each run's ``explanation["notes"]``
(MLlib's linear SVM instead of an RBF kernel, a fixed k instead of a BIC search, Spark's random
split instead of a stratified one …). The fitted MLlib model is saved as a folder (zipped for
download) that the embedded scorer cannot load: Spark runs do not score rows (``scores_rows``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel
from zhinao.analytics.engines import Engine
from zhinao.analytics.spark import ALGORITHMS, CLASSIFIERS, CLUSTERERS, export_parquet, fit_spark
from zhinao.errors import EngineUnavailable, InvalidRequest

#: ModelInfo.theme of entries written before ModelInfo.task -> the task
THEME_TASKS = {"forecasting": "forecast", "text": "classification"}


@dataclass(frozen=True)
class Translation:
    """How one kind of catalogue model runs on MLlib."""

    algorithm: str  #: an MLlib name of :data:`spark.ALGORITHMS`
    note_en: str  #: what differs from the embedded estimator (shown in the run's notes)
    note_zh: str = ""


#: (tasks, pattern on ModelInfo.algorithm, translation): the first match wins
RULES: tuple[tuple[frozenset[str], str, Translation], ...] = (
    (frozenset({"classification"}), r"logistic",
     Translation("logistic_regression", "MLlib LogisticRegression (no regularisation); Spark's seeded random "
                 "split, not the embedded stratified one.", "MLlib 逻辑回归（无正则化）；Spark 随机划分留出集")),
    (frozenset({"classification"}), r"decision tree|\bcart\b",
     Translation("decision_tree", "MLlib DecisionTreeClassifier (same depth and leaf size); categories one-hot.",
                 "MLlib 决策树（深度与叶子大小相同）")),
    (frozenset({"classification"}), r"neural|perceptron|\bmlp\b",
     Translation("mlp", "MLlib MultilayerPerceptronClassifier (sigmoid hidden layers, L-BFGS), not scikit-learn's "
                 "ReLU/Adam network.", "MLlib 多层感知机（sigmoid，L-BFGS）")),
    (frozenset({"classification"}), r"\bsvm\b|support vector",
     Translation("linear_svm", "MLlib has only a linear SVM (LinearSVC, hinge loss); the embedded model may use a "
                 "kernel. Its score is the margin, not a probability.", "MLlib 只有线性 SVM（LinearSVC）")),
    (frozenset({"classification"}), r"gradient boost|\bgbm\b|\bgbdt\b|\bgbt\b",
     Translation("gbt", "MLlib GBTClassifier (binary only).", "MLlib 梯度提升树（仅二分类）")),
    (frozenset({"classification"}), r"naive bayes",
     Translation("naive_bayes", "MLlib NaiveBayes: multinomial over word counts for text, Gaussian over "
                 "standardised features and one-hot categories for tables.", "MLlib 朴素贝叶斯")),
    (frozenset({"regression", "forecast"}), r"linear regression",
     Translation("linear_regression", "MLlib LinearRegression.", "MLlib 线性回归")),
    (frozenset({"clustering"}), r"k-?means",
     Translation("kmeans", "MLlib KMeans on standardised features, judged by hold-out distortion (mean squared "
                 "distance to the nearest centre) against one centre (k=1).", "MLlib KMeans，以留出集失真度评估")),
    (frozenset({"clustering"}), r"gaussian mixture|\bem\b",
     Translation("gmm", "MLlib GaussianMixture with a fixed k (MLlib has no BIC search); baseline: one Gaussian.",
                 "MLlib 高斯混合（固定 k，无 BIC 搜索）")),
    (frozenset({"association"}), r"apriori|fp-?growth|association rule",
     Translation("fpgrowth", "MLlib FP-Growth mines the same frequent itemsets as Apriori; single-item rules "
                 "recommend the hidden item of each hold-out basket.", "MLlib FP-Growth（与 Apriori 相同的频繁项集）")),
    (frozenset({"sequence"}), r"prefixspan|sequential pattern",
     Translation("prefixspan", "MLlib PrefixSpan patterns as next-item rules (longest context first).",
                 "MLlib PrefixSpan 序列模式作为下一项规则")),
)

_MISSING = object()


def model_task(cls: type[MiningModel]) -> str:
    info = cls.info
    return info.task or THEME_TASKS.get(info.theme, info.theme)


def translation_for(cls: type[MiningModel]) -> Translation | None:
    """The MLlib translation of catalogue class ``cls``; None when MLlib has no such model."""
    own = getattr(cls, "spark_algorithm", _MISSING)
    if own is None:
        return None
    task, algo = model_task(cls), cls.info.algorithm.lower()
    for tasks, pattern, tr in RULES:
        if own is not _MISSING:
            if tr.algorithm == own:
                return tr
        elif task in tasks and re.search(pattern, algo):
            return tr
    if own is not _MISSING and own in ALGORITHMS:
        return Translation(str(own), f"MLlib {own}.")
    return None


# -- the table MLlib reads ------------------------------------------------------------------

@dataclass
class SparkInput:
    """The bound columns flattened for MLlib (safe column names), plus how to fit them."""

    frame: pd.DataFrame
    kwargs: dict[str, Any]  #: fit_spark keyword arguments (target, features, split …)
    names: dict[str, str]  #: safe name -> the user's column (explanations speak the user's names)
    notes: list[str]
    positive: Any = None  #: the positive class of a two-class target (label 1)


def _p(model: MiningModel, names: tuple[str, ...], default: Any) -> Any:
    """A constructor parameter under any of the names families use for it."""
    for n in names:
        v = getattr(model, n, None)
        if v is not None:
            return v
    return default


def _table(model: MiningModel, data: Any, table: Any) -> pd.DataFrame:
    """The table the roles bind to: the workspace table, the demo frame, or demo sessions/baskets
    laid out long under the roles' demo column names."""
    if isinstance(table, pd.DataFrame):
        return table
    if isinstance(data, pd.DataFrame):
        return data
    seqs = getattr(data, "sequences", data)
    if isinstance(seqs, (list, tuple)) and seqs and all(isinstance(s, (list, tuple)) for s in seqs[:50]):
        roles = {r.name: r for r in model.info.roles}
        col = {}
        for role, default in (("session", "session_id"), ("item", "item"), ("time", "position")):
            r = roles.get(role) or (roles.get("group") if role == "session" else None)
            col[role] = r.demo if r is not None and isinstance(r.demo, str) else default
        names = getattr(data, "categories", None) or {}
        return pd.DataFrame([(i, j, names.get(x, x) if names else x) for i, s in enumerate(seqs)
                             for j, x in enumerate(s)], columns=[col["session"], col["time"], col["item"]])
    raise InvalidRequest(f"engine 'spark' runs {model.info.key!r} on a table; this input is a "
                         f"{type(data).__name__}: run it on a workspace dataset", param="engine")


def _safe(cols: list[str]) -> dict[str, str]:
    return {f"c{i}": c for i, c in enumerate(cols)}


def _features(df: pd.DataFrame, cols: list[str], kinds: dict[str, str], notes: list[str]) -> tuple[pd.DataFrame, dict]:
    """Bound feature columns as MLlib takes them: numbers as floats (median for gaps), the rest as
    strings (one-hot in the pipeline)."""
    use = [c for c in cols if kinds.get(c, "numeric") in ("numeric", "boolean", "categorical", "id")]
    skipped = [c for c in cols if c not in use]
    if skipped:
        notes.append(f"Spark leaves out {', '.join(skipped)} ({', '.join(kinds[c] for c in skipped)} features).")
    names = _safe(use)
    out = {}
    for safe, c in names.items():
        if kinds.get(c) == "numeric":
            v = pd.to_numeric(df[c], errors="coerce").astype(float)
            out[safe] = v.fillna(v.median() if v.notna().any() else 0.0).to_numpy()
        else:
            out[safe] = df[c].map(lambda x: "∅" if pd.isna(x) else str(x)).to_numpy()
    return pd.DataFrame(out, index=df.index), names


def spark_input(model: MiningModel, tr: Translation, data: Any, table: Any = None) -> SparkInput:
    """Bind ``model``'s roles to the table and flatten the bound columns for ``tr.algorithm``."""
    from zhinao.analytics.catalog.roles import binary_target

    key = model.info.key
    if not model.info.roles:
        raise InvalidRequest(f"model {key!r} declares no column roles, and engine 'spark' runs a model from its "
                             "role binding; run it with engine 'local'", param="engine")
    df = _table(model, data, table)
    b = model.bind(df)  # the same binding as the embedded run (the runner records model.binding_)
    cols = b.columns
    notes = [f"{tr.note_en} / {tr.note_zh}" if tr.note_zh else tr.note_en]
    algo = tr.algorithm
    seed = int(_p(model, ("random_state", "seed"), 0))
    test_size = float(_p(model, ("test_size",), 0.25))
    kw: dict[str, Any] = {"seed": seed, "test_size": test_size}
    target = cols.get("target") or cols.get("label")
    feats = [c for c in (cols.get("features") or []) if c != target]

    if algo in CLASSIFIERS or (algo == "linear_regression" and target and feats):
        text = cols.get("text")
        if not target and cols.get("value") and algo in CLASSIFIERS:
            # customer value: is the bound value in the top share? (the quantile over all rows)
            q = float(_p(model, ("quantile",), 0.75))
            v = pd.to_numeric(df[cols["value"]], errors="coerce")
            keep = v.notna()
            d = df.loc[keep]
            y = (v[keep] >= v[keep].quantile(q)).astype(int).astype(str)
            notes.append(f"label: {cols['value']} in the top {1 - q:.0%} of rows (quantile over all rows).")
            positive = "top"
        elif not target:
            raise InvalidRequest(f"{key}: engine 'spark' needs a bound target for {algo}", param="target")
        else:
            d = df[df[target].notna()]
            if algo == "linear_regression":
                y, positive = pd.to_numeric(d[target], errors="coerce"), None
                d, y = d[y.notna()], y[y.notna()]
            elif d[target].nunique() == 2:
                y01, positive = binary_target(d[target], target, getattr(model, "positive", None))
                y = y01.astype(int).astype(str)  # "1" = the positive class: StringIndexer gives it index 1
            else:
                y, positive = d[target].map(str), None
        names: dict[str, str] = {}
        if text and not feats:
            import jieba

            X = pd.DataFrame({"tokens": [" ".join(t for t in jieba.lcut(str(x)) if t.strip()) if pd.notna(x) else ""
                                         for x in d[text]]}, index=d.index)
            names = {"tokens": text}
            kw.update(text_column="tokens")
            notes.append(f"words of {text} by jieba, counted by MLlib's CountVectorizer.")
            params = {"smoothing": float(_p(model, ("alpha", "smoothing"), 1.0)), "min_df": 1}
        else:
            if not feats:
                raise InvalidRequest(f"{key}: no feature columns are bound", param="features")
            X, names = _features(d, feats, b.kinds, notes)
            params = _supervised_params(model, algo)
        frame = X.assign(y__=y.to_numpy())
        split_col = next((c for c in df.columns if str(c).lower() == "split"), None)
        if split_col and "test" in set(d[split_col].astype(str).str.lower()):
            frame["split__"] = d[split_col].astype(str).to_numpy()
            kw["split_column"] = "split__"
        kw.update(target="y__", features=[c for c in names if c != "tokens"] or None, params=params)
        return SparkInput(frame.reset_index(drop=True), kw, names, notes, positive)

    if algo in CLUSTERERS:
        if not feats:
            raise InvalidRequest(f"{key}: no feature columns are bound", param="features")
        X, names = _features(df, feats, b.kinds, notes)
        k = int(_p(model, ("n_clusters", "k", "n_components"), 8 if algo == "kmeans" else 4))
        kw.update(features=list(names), params={"k": k, "max_iter": int(_p(model, ("max_iter",), 20))})
        return SparkInput(X.reset_index(drop=True), kw, names, notes)

    if algo in ("fpgrowth", "prefixspan"):
        return _pattern_input(model, algo, df, b, kw, notes)

    if algo == "linear_regression" and cols.get("time") and cols.get("value"):
        group = cols.get("group")
        if group and getattr(model, "per_group", False):
            raise InvalidRequest(f"{key}: engine 'spark' forecasts one series (the total, or one group with "
                                 "group_value=…); per_group runs on engine 'local'", param="per_group")
        if callable(getattr(model, "regression_design", None)):
            return _design_input(model, df, cols["time"], kw, notes)
        gv = getattr(model, "group_value", None)
        if gv is not None:
            if not group:
                raise InvalidRequest("group_value needs a group column: bind it with -p group=COLUMN", param="group")
            keep = df[group].map(str) == str(gv)
            if not keep.any():
                raise InvalidRequest(f"{key}: no row of {group!r} is {gv!r}", param="group_value")
            df = df[keep]
            notes.append(f"the series of {group} = {gv}.")
        elif group:
            notes.append(f"the total over {group}.")
        return _forecast_input(model, df, cols["time"], cols["value"], kw, notes)
    raise InvalidRequest(f"{key}: the binding ({', '.join(f'{r}={c}' for r, c in cols.items())}) does not give "
                         f"{algo} what it reads", param="engine")


def _pattern_input(model: MiningModel, algo: str, df: pd.DataFrame, b: Any, kw: dict[str, Any],
                   notes: list[str]) -> SparkInput:
    """Long ``(session, item[, order])`` rows from a long binding (session + item, ``value`` <= 0
    rows left out), or from a wide one (``features``: one column per product; each row a basket)."""
    cols = b.columns
    session = cols.get("session") or cols.get("group")
    item = cols.get("item")
    order = cols.get("time") or cols.get("order")
    names: dict[str, str]
    if session and item:
        d = df
        if cols.get("value"):
            v = pd.to_numeric(d[cols["value"]], errors="coerce")
            d = d[v > 0]
            notes.append(f"rows with {cols['value']} <= 0 are not in the basket.")
        frame = pd.DataFrame({"s__": d[session].map(str).to_numpy(),
                              "i__": d[item].map(lambda x: None if pd.isna(x) else str(x)).to_numpy()})
        names = {"s__": session, "i__": item}
        if order:
            o = d[order]
            if not pd.api.types.is_numeric_dtype(o):
                from zhinao.analytics.catalog.protocol import to_datetime

                o = to_datetime(o, order).astype("int64")
            frame["o__"] = o.to_numpy()
            names["o__"] = order
    elif algo == "fpgrowth" and cols.get("features"):
        from zhinao.analytics.catalog.association import wide_baskets  # the same items as the embedded run

        baskets = wide_baskets(df, cols["features"], b.kinds)
        ids = df[cols["id"]].map(str).tolist() if cols.get("id") else [str(i) for i in range(len(df))]
        frame = pd.DataFrame([(i, it) for i, bk in zip(ids, baskets) for it in bk], columns=["s__", "i__"])
        names = {"s__": cols.get("id") or "row", "i__": "item"}
        notes.append(f"each row's items: the columns {', '.join(cols['features'][:8])}"
                     f"{' …' if len(cols['features']) > 8 else ''} it has.")
        order = None
    else:
        raise InvalidRequest(f"{model.info.key}: engine 'spark' runs {algo} on a (session, item) table"
                             + (" or a wide table (features)" if algo == "fpgrowth" else "")
                             + "; bind -p session=COLUMN -p item=COLUMN", param="session" if not session else "item")
    params = {"min_support": float(_p(model, ("min_support",), 0.01 if algo == "fpgrowth" else 0.001)),
              "k": int(_p(model, ("k", "top_k"), 3))}
    if algo == "fpgrowth":
        params["min_confidence"] = float(_p(model, ("min_confidence",), 0.1))
    else:
        params.update(max_len=int(_p(model, ("max_len",), 4)), truncate=int(_p(model, ("truncate",), 20)))
    kw.update(session_column="s__", item_column="i__", order_column="o__" if order else None, params=params)
    return SparkInput(frame, kw, names, notes)


def _supervised_params(model: MiningModel, algo: str) -> dict[str, Any]:
    if algo == "decision_tree":
        return {"max_depth": int(_p(model, ("max_depth",), 5)),
                "min_samples_leaf": int(_p(model, ("min_samples_leaf",), 20))}
    if algo == "mlp":
        hidden = _p(model, ("hidden", "hidden_layer_sizes"), (32,))
        return {"hidden": [int(h) for h in (hidden if isinstance(hidden, (list, tuple)) else [hidden])],
                "max_iter": int(_p(model, ("max_iter",), 100))}
    if algo == "gbt":
        return {"max_iter": int(_p(model, ("n_estimators",), 50)), "max_depth": int(_p(model, ("max_depth",), 3)),
                "step_size": float(_p(model, ("learning_rate",), 0.1))}
    if algo == "naive_bayes":
        return {"model_type": "gaussian", "smoothing": float(_p(model, ("alpha", "smoothing"), 1.0))}
    return {"max_iter": int(_p(model, ("max_iter",), 50))}


def _design_input(model: MiningModel, df: pd.DataFrame, time_col: str, kw: dict[str, Any],
                  notes: list[str]) -> SparkInput:
    """The model's own regression design (a public hook: ``regression_design(data)`` gives the
    features, target, seasonal-naive baseline and hold-out the embedded fit uses), so MLlib fits
    the same regression on the same binding: calendar, holidays, lags."""
    d = model.regression_design(df)
    frame = d["frame"]
    names = _safe(list(d["features"]))
    out = pd.DataFrame({safe: pd.to_numeric(frame[c], errors="coerce").astype(float).to_numpy()
                        for safe, c in names.items()})
    out["y__"] = frame["y"].to_numpy(dtype=float)
    out["t__"] = frame["t"].to_numpy()
    out["naive__"] = frame["baseline"].to_numpy(dtype=float)
    out = out[out["naive__"].notna()].reset_index(drop=True)
    n_test = int(d["holdout_rows"])
    if not 0 < n_test < len(out) // 2 + 1:
        raise InvalidRequest(f"{model.info.key}: {len(out)} usable time points for a {n_test}-point hold-out",
                             param="holdout")
    kw.update(target="y__", features=list(names), params={"reg": 1e-3, "solver": "normal"}, time_column="t__",
              test_size=(n_test - 0.5) / len(out), log_target=bool(d.get("log_target")), baseline_column="naive__")
    notes.extend(list(d.get("notes") or []))
    notes.append("MLlib fits the embedded model's design (same features and hold-out); the hold-out uses observed "
                 "lags (one step ahead); baseline: seasonal naive.")
    return SparkInput(out, kw, names | {"y__": "y", "t__": time_col, "naive__": "seasonal naive"}, notes)


def _forecast_input(model: MiningModel, df: pd.DataFrame, time_col: str, value_col: str, kw: dict[str, Any],
                    notes: list[str]) -> SparkInput:
    """A series as a regression table: calendar dummies and seasonal lags, a time-based hold-out."""
    from zhinao.analytics.catalog.protocol import to_datetime, to_numeric

    t = to_datetime(df[time_col], time_col)
    v = to_numeric(df[value_col], value_col)
    s = pd.Series(v.to_numpy(), index=t.to_numpy()).dropna().groupby(level=0).sum().sort_index()
    if len(s) < 50:
        raise InvalidRequest(f"{model.info.key}: {len(s)} time points in {time_col!r}; a forecast needs at least 50",
                             param="time")
    step = pd.Series(s.index).diff().median()
    hourly = step <= pd.Timedelta(hours=1)
    day = int(round(pd.Timedelta(days=1) / step)) if hourly else 1
    week = 7 * day
    idx = pd.DatetimeIndex(s.index)
    X = pd.DataFrame({f"dow_{d}": (idx.dayofweek == d).astype(float) for d in range(1, 7)}, index=idx)
    if hourly:
        for h in range(1, 24):
            X[f"hour_{h}"] = (idx.hour == h).astype(float)
    positive = bool((s >= 0).all())
    y = np.log1p(s) if positive else s
    X["lag_day"] = y.shift(day).to_numpy()
    X["lag_week"] = y.shift(week).to_numpy()
    frame = X.assign(y__=y.to_numpy(), t__=np.arange(len(X)), naive_week=X["lag_week"].to_numpy()).iloc[week:]
    n_test = int(_p(model, ("holdout_days",), 7)) * day
    if n_test >= len(frame) // 2:
        n_test = max(1, len(frame) // 4)
    kw.update(target="y__", features=[c for c in X.columns], params={"reg": 1e-3, "solver": "normal"},
              time_column="t__", test_size=(n_test - 0.5) / len(frame), log_target=positive, baseline_column="naive_week")
    notes.append(f"Linear regression of {value_col} ({'log1p scale, ' if positive else ''}summed per {time_col}) on "
                 f"day-of-week{' and hour' if hourly else ''} dummies and same-period lags; no holiday flags. The "
                 "hold-out uses observed lags (one step ahead); baseline: seasonal naive (same time last week).")
    names = {c: c for c in X.columns} | {"y__": value_col, "t__": time_col}
    return SparkInput(frame.reset_index(drop=True), kw, names, notes)


# -- the engine -------------------------------------------------------------------------------

def _rename(v: Any, names: dict[str, str]) -> Any:
    """Safe column names (``c3``, ``c3__oh``) in an explanation back to the user's columns."""
    if isinstance(v, str):
        base, _, rest = v.partition("__")
        if base in names:
            return names[base] + (f" ({rest})" if rest else "")
        if v in names:
            return names[v]
        for safe, user in names.items():  # a quoted name inside a sentence (the split's method)
            v = v.replace(repr(safe), repr(user))
        return v
    if isinstance(v, list):
        return [_rename(x, names) for x in v]
    if isinstance(v, dict):
        return {_rename(k, names) if isinstance(k, str) else k: _rename(x, names) for k, x in v.items()}
    return v


def evaluate_on_spark(model: MiningModel, data: Any, out_dir: Path, *, table: Any = None,
                      translation: Translation | None = None) -> Evaluation:
    """Fit and evaluate ``model``'s MLlib counterpart; save the MLlib model under ``out_dir/mllib``."""
    tr = translation or translation_for(type(model))
    if tr is None:
        raise InvalidRequest(f"model {model.info.key!r} has no Spark implementation", param="engine")
    spec = spark_input(model, tr, data, table)
    out_dir = Path(out_dir)
    work = out_dir / "spark_input.parquet"
    export_parquet(spec.frame, work)
    try:
        res = fit_spark(tr.algorithm, work, save_to=out_dir / "mllib", **spec.kwargs)
    except (InvalidRequest, EngineUnavailable):
        raise
    except Exception as e:  # Py4J / Spark analysis errors: one line, not a JVM stack trace
        if type(e).__module__.split(".")[0] not in ("pyspark", "py4j"):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise InvalidRequest(f"Spark could not fit {model.info.key!r} on this data: {first}") from e
    finally:
        work.unlink(missing_ok=True)
    expl = {k: _rename(v, spec.names) for k, v in res.explanation.items() if k != "engine"}
    expl["engine"] = res.explanation.get("engine")
    expl["notes"] = spec.notes + list(expl.get("notes", []))
    expl["mllib_algorithm"] = res.algorithm
    expl["spark_seconds"] = round(res.seconds, 3)
    if spec.positive is not None:
        expl["positive_class"] = spec.positive
        expl["labels"] = ["other", str(spec.positive)]
    title = f"{model.info.name_zh} (Spark)"
    cs: dict[str, bytes] = {"vs_baseline": charts.metric_comparison_chart(res.metrics, res.baseline, title,
                                                                         res.baseline_name)}
    ps: dict[str, dict[str, Any]] = {"vs_baseline": plots.compare(res.metrics, res.baseline, title, res.baseline_name)}
    h = res.holdout
    if "labels" in h:
        labels = expl.get("labels") or h["labels"]
        cs["confusion"] = charts.confusion_chart([labels[i] for i in h["y"]], [labels[i] for i in h["pred"]], labels)
        score = h.get("proba") if h.get("proba") is not None else h.get("score")
        if score is not None:
            from zhinao.analytics.catalog.roles import lift_table, threshold_table

            cs["roc"] = charts.roc_chart(h["y"], score, f"ROC — {title}")
            ps["roc"] = plots.roc(h["y"], score, f"ROC — {title}", baseline_scores=np.zeros(len(score)),
                                  baseline_name=res.baseline_name)
            expl["lift"] = lift_table(h["y"], score)
            ps["lift"] = plots.lift(expl["lift"])
            if h.get("proba") is not None:
                expl["thresholds"] = threshold_table(h["y"], h["proba"])
                ps["thresholds"] = plots.table(["threshold", "flagged_share", "precision", "recall", "f1"],
                                               [[r[c] for c in ("threshold", "flagged_share", "precision", "recall",
                                                                "f1")] for r in expl["thresholds"]],
                                               "阈值表 Threshold table")
    elif "pred" in h and "y" in h:  # regression / forecast
        x = list(range(len(h["y"])))
        ps["forecast"] = plots.forecast(x, h["y"], h["pred"], title=f"留出集 Hold-out — {title}",
                                        baseline=h.get("baseline"), baseline_name=res.baseline_name)
    if "cluster_sizes" in expl:
        ps["clusters"] = plots.bar([f"#{i}" for i in range(len(expl["cluster_sizes"]))], expl["cluster_sizes"],
                                   "簇大小 Cluster sizes", series_name="rows", horizontal=False)
    if expl.get("top_rules_by_lift"):
        ps["rules"] = plots.table(["if", "then", "confidence", "lift"],
                                  [[", ".join(r["if"]), ", ".join(r["then"]), r["confidence"], r["lift"]]
                                   for r in expl["top_rules_by_lift"]], "关联规则 Rules by lift")
    if expl.get("top_patterns"):
        ps["patterns"] = plots.table(["pattern", "support"], [[" → ".join(map(str, r["pattern"])), r["support"]]
                                                              for r in expl["top_patterns"]], "序列模式 Patterns")
    return Evaluation(metrics=res.metrics, baseline=res.baseline, baseline_name=res.baseline_name,
                      explanation=expl, charts=cs, plots=ps)


def archive_model(out_dir: Path) -> Path | None:
    """Zip the saved MLlib folder for download (``model.zip``); None when nothing was saved."""
    src = Path(out_dir) / "mllib"
    if not src.exists():
        return None
    return Path(shutil.make_archive(str(Path(out_dir) / "model"), "zip", root_dir=src))


class SparkEngine(Engine):
    """MLlib in ``local[*]`` (one SparkSession per process): the models MLlib has, on Parquet."""

    name = "spark"
    scores_rows = False
    description_en = "Apache Spark MLlib (local[*]) on Parquet, for the models MLlib has"
    description_zh = "Apache Spark MLlib（local[*]，Parquet），适用于 MLlib 具备的模型"

    def available(self) -> None:
        try:
            import pyspark  # noqa: F401
        except ImportError as e:
            raise EngineUnavailable("engine 'spark' needs pyspark: pip install 'zhinao[spark]' (and Java 17)") from e
        home = os.environ.get("JAVA_HOME")
        if not shutil.which("java") and not (home and Path(home, "bin", "java").exists()):
            raise EngineUnavailable("engine 'spark' needs Java (17): install a JDK and put java on PATH or set "
                                    "JAVA_HOME")

    def why_not(self, model_cls: type[MiningModel]) -> str | None:
        key = model_cls.info.key
        if translation_for(model_cls) is None:
            from zhinao.analytics.catalog import catalogue

            have = sorted(k for k, c in catalogue().items() if translation_for(c) is not None and c.info.roles)
            return (f"model {key!r} has no Spark implementation (MLlib has no {model_cls.info.algorithm}); "
                    f"engine 'spark' runs: {', '.join(have) or 'none yet'}")
        if not model_cls.info.roles:
            return (f"model {key!r} declares no column roles yet, and engine 'spark' runs a model from its role "
                    "binding; run it with engine 'local'")
        return None

    def evaluate(self, model: MiningModel, data: Any, out_dir: Path, *, table: Any = None) -> Evaluation:
        return evaluate_on_spark(model, data, out_dir, table=table)

    def save(self, model: MiningModel, out_dir: Path) -> Path | None:
        return archive_model(out_dir)


__all__ = ["RULES", "SparkEngine", "SparkInput", "Translation", "archive_model", "evaluate_on_spark",
           "model_task", "spark_input", "translation_for"]
