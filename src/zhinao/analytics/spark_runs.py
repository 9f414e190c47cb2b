"""``engine="spark"`` for catalogue runs: the same model key, data and run record, fitted by MLlib.

The runner calls :func:`evaluate_on_spark` instead of ``model.evaluate``. It turns the
catalogue model's input (demo data or a workspace table, exactly what ``evaluate`` would
get) into the flat table MLlib reads, using the catalogue model's *own* feature code
(``_features``, ``usage_features``, ``design_matrix``, ``to_baskets`` ...), writes it to
Parquet, and calls :func:`zhinao.analytics.spark.fit_spark`. The result comes back as an
:class:`~zhinao.analytics.catalog.base.Evaluation` (metrics, baseline, explanation, charts),
so the run record, API, CLI and console need no Spark-specific code.

What differs from the embedded engine (said in each run's ``explanation["notes"]``):
MLlib's estimators are not scikit-learn's (linear SVM instead of RBF SVM, one GMM with a
fixed k instead of k by BIC, KMeans judged by hold-out distortion rather than the farm
flag), and the fitted MLlib model is saved as a folder (zipped for download), which the
embedded scorer cannot load: Spark runs do not score rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel
from zhinao.analytics.spark import CATALOGUE_KEYS, export_parquet, fit_spark, spark_algorithm
from zhinao.errors import EngineUnavailable, InvalidRequest

ENGINES = ("local", "spark")


@dataclass
class SparkInput:
    """A catalogue model's input flattened for MLlib, plus how to split and fit it."""

    frame: pd.DataFrame
    target: str | None = None
    features: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  #: fit_spark keyword options
    notes: list[str] = field(default_factory=list)


def check_engine(engine: str, key: str) -> str:
    """Validate ``engine`` for catalogue ``key`` before a run is queued."""
    if engine not in ENGINES:
        raise InvalidRequest(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}", param="engine")
    if engine == "spark":
        if key not in CATALOGUE_KEYS:
            raise InvalidRequest(f"model {key!r} has no Spark implementation; engine 'spark' runs: "
                                 f"{', '.join(sorted(CATALOGUE_KEYS))}", param="engine")
        spark_algorithm(key)
        try:
            import pyspark  # noqa: F401
        except ImportError as e:
            raise EngineUnavailable("engine 'spark' needs pyspark: pip install 'zhinao[spark]' (and Java 17)") from e
    return engine


def spark_input(model: MiningModel, data: Any) -> SparkInput:
    """Flatten ``data`` (what ``model.evaluate`` takes) into one table for MLlib."""
    key = model.info.key
    if key in ("churn_logistic", "churn_mlp", "plan_tree"):
        X, y = model._xy(data)
        frame = X.assign(**{model.target: y.astype(str).to_numpy()})
        params = {}
        if key == "churn_mlp":
            params.update(hidden=list(model.hidden), max_iter=60)
        if key == "plan_tree":
            params.update(max_depth=int(model.max_depth), min_samples_leaf=int(model.min_samples_leaf))
        return SparkInput(frame, model.target, list(X.columns), params,
                          {"seed": int(model.random_state)}, [model.framing])
    if key == "value_svm":
        from zhinao.analytics.catalog.protocol import require_columns

        require_columns(data, [model.value_column], "table")
        model.threshold_ = None
        X, y = model._xy(data)  # label: value >= the quantile over all labelled rows
        frame = X.assign(value_class=(y == "high").astype(int).to_numpy())  # 1 = high value (the positive class)
        return SparkInput(frame, "value_class", list(X.columns), {}, {"seed": int(model.random_state)},
                          [model.framing, "MLlib has only a linear SVM (LinearSVC, hinge loss); the embedded "
                           "model uses an RBF kernel. The value threshold is the quantile over all rows."])
    if key == "text_naive_bayes":
        from zhinao.analytics.catalog.text import jieba_tokens

        require = [model.text_column, model.target]
        from zhinao.analytics.catalog.protocol import require_columns

        require_columns(data, require, "table")
        d = data[data[model.text_column].notna() & data[model.target].notna()]
        frame = pd.DataFrame({"tokens": [" ".join(t for t in jieba_tokens(x) if t.strip())
                                         for x in d[model.text_column].astype(str)],
                              model.target: d[model.target].astype(str).to_numpy()})
        opts: dict[str, Any] = {"text_column": "tokens", "seed": 42}
        if "split" in d.columns and {"dev", "test"} <= set(d["split"].astype(str)):
            frame["split"] = d["split"].astype(str).to_numpy()
            opts["split_column"] = "split"
        return SparkInput(frame, model.target, None, {"smoothing": float(model.alpha), "min_df": 1}, opts,
                          ["Words by jieba (the embedded model's tokenizer), counted by MLlib's CountVectorizer; "
                           "multinomial naive Bayes."])
    if key == "traffic_linear":
        from zhinao.analytics.catalog.forecasting import _period_for, design_matrix

        s = model._series(data)
        period = _period_for(s, None)
        day = period if period > 1 else 1
        X = design_matrix(s, s.index, period).iloc[7 * day:]
        frame = X.assign(y_log=np.log1p(s.to_numpy())[7 * day:], t=np.arange(len(X)),
                         naive_week=X["lag_week"].to_numpy())
        n_test = int(model.holdout_days) * day
        if n_test >= len(frame) // 2:
            raise InvalidRequest(f"series of {len(s)} periods is too short for a {model.holdout_days}-day hold-out",
                                 param="holdout_days")
        # calendar dummies are collinear with the intercept: a little ridge, solved exactly
        return SparkInput(frame.reset_index(drop=True), "y_log", list(X.columns), {"reg": 1e-3, "solver": "normal"},
                          {"time_column": "t", "test_size": n_test / len(frame), "log_target": True,
                           "baseline_column": "naive_week"},
                          ["Linear regression on the embedded model's calendar features and same-hour lags "
                           "(log1p scale). The hold-out uses observed lags (one-step-ahead), whereas the embedded "
                           "model forecasts day-ahead; baseline: seasonal naive (same hour last week)."])
    if key == "sim_farm_kmeans":
        from zhinao.analytics.catalog.clustering import SYNTHETIC_NOTE, USAGE_FEATURES, usage_features

        F = usage_features(data)
        return SparkInput(F.reset_index(drop=True), None, list(USAGE_FEATURES), {"k": int(model.n_clusters)},
                          {"seed": int(model.seed), "test_size": float(model.test_size)},
                          [SYNTHETIC_NOTE, "Spark path: KMeans on the same usage features, judged by hold-out "
                           "distortion (mean squared distance to the nearest centre) against one centre (k=1)."])
    if key == "segments_em":
        from zhinao.analytics.catalog.protocol import require_columns, to_numeric

        require_columns(data, list(model.columns), "EM segmentation input")
        frame = pd.DataFrame({c: np.log1p(np.clip(to_numeric(data[c], c).fillna(0.0).to_numpy(), 0, None))
                              for c in model.columns})
        return SparkInput(frame, None, list(model.columns), {"k": 4}, {"seed": int(model.seed),
                                                                        "test_size": float(model.test_size)},
                          ["MLlib GaussianMixture with k=4 (MLlib has no BIC search); log1p, standardised features; "
                           "baseline: one Gaussian."])
    if key == "cross_sell_apriori":
        from zhinao.analytics.catalog.association import to_baskets

        baskets = to_baskets(data)
        frame = pd.DataFrame([(i, str(it)) for i, b in enumerate(baskets) for it in b],
                             columns=["transaction_id", "item"])
        return SparkInput(frame, None, None, {"min_support": float(model.min_support),
                                              "min_confidence": float(model.min_confidence), "k": int(model.k)},
                          {"seed": int(model.seed), "test_size": float(model.test_size)},
                          ["MLlib FP-Growth mines the same frequent itemsets as Apriori; the rules feed the "
                           "embedded recommender, evaluated on the same hidden-item split."])
    if key == "next_content_prefixspan":
        from zhinao.analytics.catalog.sequence import to_sequences

        seqs = to_sequences(data)
        frame = pd.DataFrame([(i, j, str(x)) for i, s in enumerate(seqs) for j, x in enumerate(s)],
                             columns=["session_id", "position", "item"])
        return SparkInput(frame, None, None, {"min_support": float(model.min_support), "max_len": int(model.max_len),
                                              "k": int(model.k), "truncate": int(model.truncate)},
                          {"seed": int(model.seed), "test_size": float(model.test_size)},
                          ["MLlib PrefixSpan patterns as next-item rules (longest context first), "
                           "judged against the most popular items."])
    raise InvalidRequest(f"model {key!r} has no Spark implementation", param="engine")


def evaluate_on_spark(model: MiningModel, data: Any, out_dir: Path) -> Evaluation:
    """Fit and evaluate ``model``'s MLlib counterpart; save the MLlib model under ``out_dir/mllib``."""
    spec = spark_input(model, data)
    work = out_dir / "spark_input.parquet"
    export_parquet(spec.frame, work)
    opts = dict(spec.options)
    test_size = float(opts.pop("test_size", 0.25))
    seed = int(opts.pop("seed", 0))
    try:
        res = fit_spark(model.info.key, work, spec.target, spec.features, params=spec.params, test_size=test_size,
                        seed=seed, save_to=out_dir / "mllib", **opts)
    except (InvalidRequest, EngineUnavailable):
        raise
    except Exception as e:  # Py4J / Spark analysis errors: one line, not a JVM stack trace
        if type(e).__module__.split(".")[0] not in ("pyspark", "py4j"):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise InvalidRequest(f"Spark could not fit {model.info.key!r} on this data: {first}") from e
    finally:
        work.unlink(missing_ok=True)
    expl = dict(res.explanation)
    expl["notes"] = spec.notes + list(expl.get("notes", []))
    expl["mllib_algorithm"] = res.algorithm
    expl["spark_seconds"] = round(res.seconds, 3)
    cs: dict[str, bytes] = {"vs_baseline": charts.metric_comparison_chart(res.metrics, res.baseline,
                                                                         f"{model.info.name_zh} (Spark)",
                                                                         res.baseline_name)}
    h = res.holdout
    if "labels" in h:
        labels = h["labels"]
        cs["confusion"] = charts.confusion_chart([labels[i] for i in h["y"]], [labels[i] for i in h["pred"]], labels)
        if h.get("score") is not None:
            cs["roc"] = charts.roc_chart(h["y"], h["score"], f"ROC — {model.info.name_zh} (Spark)")
    return Evaluation(metrics=res.metrics, baseline=res.baseline, baseline_name=res.baseline_name,
                      explanation=expl, charts=cs)


def archive_model(out_dir: Path) -> Path | None:
    """Zip the saved MLlib folder for download (``model.zip``); None when nothing was saved."""
    src = out_dir / "mllib"
    if not src.exists():
        return None
    return Path(shutil.make_archive(str(out_dir / "model"), "zip", root_dir=src))
