"""Apache Spark engine, the MLlib side: fit an MLlib algorithm on a Parquet table, judge it on
a hold-out against the naive baseline the embedded models use (DuckDB + scikit-learn remain the
embedded default; this is for data that outgrows one process).

:func:`fit_spark` takes an MLlib algorithm name (:data:`ALGORITHMS`: ``logistic_regression``,
``kmeans``, ``fpgrowth`` ...) and column names of the Parquet table; it knows nothing of the
catalogue. Which catalogue entry maps to which algorithm, and how a run's role binding becomes
this table, is the engine's translation (:mod:`zhinao.analytics.spark_runs`).

Table shapes: supervised models and clustering read one row per entity (feature columns,
strings one-hot encoded); ``fpgrowth`` reads ``(transaction, item)`` rows; ``prefixspan``
reads ``(session, position, item)`` rows (the column names are parameters). The pattern
models' next-item / hidden-item evaluation lives here too (same protocol as the embedded
recommenders: hit rate and MRR at k against the most popular items). One ``SparkSession``
(``local[*]`` by default, UI off, small driver memory) is created lazily and reused; pyspark
is an optional extra.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zhinao.errors import EngineUnavailable, InvalidRequest, NotFound

CLASSIFIERS = {"logistic_regression", "decision_tree", "naive_bayes", "mlp", "linear_svm", "gbt"}
REGRESSORS = {"linear_regression"}
CLUSTERERS = {"kmeans", "gmm"}
PATTERNS = {"fpgrowth", "prefixspan"}
ALGORITHMS = CLASSIFIERS | REGRESSORS | CLUSTERERS | PATTERNS
#: binary-only MLlib classifiers
BINARY_ONLY = {"linear_svm", "gbt"}

LABEL = "label__idx"  #: the indexed target (a user's column may well be called "label")

_LOCK = threading.Lock()
_SESSION = None
_ATEXIT: list[bool] = []


@dataclass
class SparkResult:
    algorithm: str
    metrics: dict[str, float]
    baseline: dict[str, float]
    baseline_name: str
    explanation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: hold-out arrays for charts (not persisted): y, pred, score (binary), labels
    holdout: dict[str, Any] = field(default_factory=dict)


def spark_algorithm(name: str) -> str:
    """``name`` if MLlib has that algorithm here; a 400 naming the choices otherwise."""
    if name not in ALGORITHMS:
        raise InvalidRequest(f"no Spark implementation for {name!r}; MLlib algorithms: "
                             f"{', '.join(sorted(ALGORITHMS))}", param="engine")
    return name


def get_spark(master: str = "local[*]", driver_memory: str = "1g", shuffle_partitions: int = 4,
              java_options: str | None = None):
    """The process-wide SparkSession (created on first use, then reused).

    ``java_options`` go to the driver JVM (local mode runs everything there), e.g. the
    tests' ``-XX:TieredStopAtLevel=1``: on two cores the C2 JIT costs more than it saves in
    short jobs. Only the call that creates the session applies them.
    """
    global _SESSION
    with _LOCK:
        if _SESSION is not None and _alive(_SESSION):
            return _SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:
            raise EngineUnavailable("engine 'spark' needs pyspark: pip install 'zhinao[spark]' "
                                    "(and Java 17)") from e
        if _SESSION is not None:  # the JVM died (or was stopped): forget it, start a new one
            _forget(_SESSION)
            _SESSION = None
        builder = SparkSession.builder
        if java_options:
            builder = builder.config("spark.driver.extraJavaOptions", java_options)
        _SESSION = (builder.master(master).appName("zhinao-analytics")
                    .config("spark.driver.memory", driver_memory)
                    .config("spark.ui.enabled", "false")
                    .config("spark.ui.showConsoleProgress", "false")
                    .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
                    .config("spark.sql.execution.arrow.pyspark.enabled", "false")
                    .config("spark.driver.host", "127.0.0.1")
                    .config("spark.driver.bindAddress", "127.0.0.1")
                    .getOrCreate())
        _SESSION.sparkContext.setLogLevel("ERROR")
        # iterative learners (GBT) truncate their RDD lineage at checkpoints; without a folder the
        # lineage of a 100-tree model overflows the JVM's stack and takes the whole JVM down
        import tempfile

        _SESSION.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="zhinao-spark-checkpoints-"))
        if not _ATEXIT:  # stop the JVM before interpreter shutdown closes py4j's log streams
            import atexit

            atexit.register(stop_spark)
            _ATEXIT.append(True)
        return _SESSION


def _alive(session) -> bool:
    try:
        return session.sparkContext._jsc is not None and not session.sparkContext._jsc.sc().isStopped()
    except Exception:  # py4j cannot reach the JVM  # noqa: BLE001
        return False


def _forget(session) -> None:
    """Drop pyspark's handles on a dead JVM so the next builder launches a fresh one."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    try:
        session.stop()
    except Exception:  # noqa: BLE001 - already gone
        pass
    SparkContext._active_spark_context = None
    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None


def stop_spark() -> None:
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            try:
                _SESSION.stop()
            except Exception:  # noqa: BLE001 - the JVM is already gone
                _forget(_SESSION)
            _SESSION = None


@dataclass
class SplitSpec:
    """How the hold-out is chosen (default: a seeded random ``test_size`` share).

    ``time_column``: the last ``test_size`` share of rows by that column (forecasts);
    ``split_column``: rows whose value is ``"test"`` (a dataset's own split), the rest train.
    """

    test_size: float = 0.25
    seed: int = 0
    time_column: str | None = None
    split_column: str | None = None


def fit_spark(algorithm: str, parquet_path: str | Path, target: str | None = None,
              features: list[str] | None = None, *, params: dict[str, Any] | None = None, test_size: float = 0.25,
              seed: int = 0, text_column: str | None = None, time_column: str | None = None,
              split_column: str | None = None, log_target: bool = False, baseline_column: str | None = None,
              session_column: str | None = None, item_column: str = "item", order_column: str | None = None,
              save_to: str | Path | None = None, spark=None) -> SparkResult:
    """Fit MLlib ``algorithm`` on a Parquet table; metrics on a hold-out, and the baseline's.

    Args:
        algorithm: an MLlib name of :data:`ALGORITHMS`.
        parquet_path: a Parquet file or folder.
        target: label column (supervised models; ignored otherwise).
        features: feature columns (default: every column but the target and id-like ones).
        params: algorithm parameters (``k``, ``max_depth``, ``min_support`` ...).
        text_column: a column of space-separated tokens, counted into the feature vector
            (bag of words) -- naive Bayes over text.
        time_column / split_column: hold-out by time or by the dataset's own split (:class:`SplitSpec`).
        log_target: regression target is log1p(value); metrics are reported on the value scale.
        baseline_column: regression: a column holding the naive forecast (e.g. last week's
            same hour) used as the baseline instead of the training mean.
        session_column / item_column / order_column: the pattern models' columns (a basket or
            session id, the item, the position in the session); the session column defaults to
            ``transaction_id`` (fpgrowth) or ``session_id`` (prefixspan).
        save_to: folder to save the fitted MLlib model (or the mined patterns) into.

    Raises:
        InvalidRequest: unknown algorithm, missing target/feature columns, too few rows.
        EngineUnavailable: pyspark is not installed.
    """
    algo = spark_algorithm(algorithm)
    path = Path(parquet_path)
    if not path.exists():
        raise NotFound(f"no Parquet data at {path}")
    spark = spark or get_spark()
    df = spark.read.parquet(str(path))
    params = dict(params or {})
    split = SplitSpec(test_size, seed, time_column, split_column)
    for c in (time_column, split_column, text_column, baseline_column, order_column):
        if c and c not in df.columns:
            raise InvalidRequest(f"Parquet table lacks column {c!r}", param=c)
    t0 = time.perf_counter()
    if algo in CLASSIFIERS or algo in REGRESSORS:
        res = _supervised(algo, df, target, features, params, split, text_column=text_column,
                          log_target=log_target, baseline_column=baseline_column, save_to=save_to)
    elif algo in CLUSTERERS:
        res = _clustering(algo, df, features, params, test_size, seed, save_to=save_to)
    elif algo == "fpgrowth":
        res = _fpgrowth(df, params, test_size, seed, session_column or "transaction_id", item_column,
                        order_column, save_to=save_to)
    else:
        res = _prefixspan(df, params, test_size, seed, session_column or "session_id", item_column,
                          order_column, save_to=save_to)
    res.seconds = time.perf_counter() - t0
    res.explanation.setdefault("engine", f"Spark {spark.version} ({spark.sparkContext.master})")
    return res


def _save(model, save_to: str | Path | None) -> None:
    if save_to is not None:
        model.write().overwrite().save(str(save_to))


def _split(df, split: SplitSpec):
    """Train and hold-out frames per :class:`SplitSpec`."""
    from pyspark.sql import functions as F

    if split.split_column:
        is_test = F.lower(F.col(split.split_column).cast("string")) == "test"
        return df.where(~is_test), df.where(is_test)
    if split.time_column:
        n = df.count()
        n_test = max(1, int(math.ceil(n * split.test_size)))
        cut = df.select(split.time_column).orderBy(F.desc(split.time_column)).limit(n_test) \
            .agg(F.min(split.time_column)).first()[0]
        return df.where(F.col(split.time_column) < cut), df.where(F.col(split.time_column) >= cut)
    return tuple(df.randomSplit([1 - split.test_size, split.test_size], seed=split.seed))


# -- supervised -------------------------------------------------------------------------

def _feature_columns(df, target: str | None, features: list[str] | None) -> tuple[list[str], list[str]]:
    from pyspark.sql.types import NumericType

    types = {f.name: f.dataType for f in df.schema.fields}
    if features:
        missing = [c for c in features if c not in types]
        if missing:
            raise InvalidRequest(f"Parquet table lacks feature column(s) {', '.join(map(repr, missing))}",
                                 param=missing[0])
        cols = list(features)
    else:
        cols = [c for c in types if c != target and not c.lower().endswith("id")]
    if not cols:
        raise InvalidRequest("no feature columns: name them with features=[...]", param="features")
    numeric = [c for c in cols if isinstance(types[c], NumericType)]
    categorical = [c for c in cols if c not in numeric]
    return numeric, categorical


def _assembler_stages(numeric: list[str], categorical: list[str], scale: str | None,
                      text_column: str | None = None, min_df: float = 2.0):
    from pyspark.ml.feature import (CountVectorizer, MinMaxScaler, OneHotEncoder, StandardScaler,
                                    StringIndexer, Tokenizer, VectorAssembler)

    stages = []
    cat_vecs = []
    if text_column:  # bag of words over pre-tokenised (space-separated) text
        stages.append(Tokenizer(inputCol=text_column, outputCol=f"{text_column}__tok"))
        stages.append(CountVectorizer(inputCol=f"{text_column}__tok", outputCol=f"{text_column}__bow", minDF=min_df))
        cat_vecs.append(f"{text_column}__bow")
    if categorical:  # one multi-column indexer/encoder: one pass over the data, not one per column
        stages.append(StringIndexer(inputCols=categorical, outputCols=[f"{c}__idx" for c in categorical],
                                    handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=[f"{c}__idx" for c in categorical],
                                    outputCols=[f"{c}__oh" for c in categorical], handleInvalid="keep"))
        cat_vecs.extend(f"{c}__oh" for c in categorical)
    if numeric:
        stages.append(VectorAssembler(inputCols=numeric, outputCol="num__raw", handleInvalid="keep"))
        if scale == "standard":
            stages.append(StandardScaler(inputCol="num__raw", outputCol="num__vec", withMean=True, withStd=True))
        elif scale == "minmax":  # naive Bayes needs non-negative features
            stages.append(MinMaxScaler(inputCol="num__raw", outputCol="num__vec"))
        num_col = "num__vec" if scale else "num__raw"
        cat_vecs.insert(0, num_col)
    stages.append(VectorAssembler(inputCols=cat_vecs, outputCol="features", handleInvalid="keep"))
    return stages


def _supervised(algo, df, target, features, params, split: SplitSpec, *, text_column=None, log_target=False,
                baseline_column=None, save_to=None) -> SparkResult:
    from pyspark.ml import Pipeline
    from pyspark.ml import classification as C
    from pyspark.ml import regression as R
    from pyspark.ml.feature import StringIndexer
    from pyspark.sql import functions as F

    from pyspark.sql.types import NumericType

    if not target:
        raise InvalidRequest(f"{algo} needs a target column", param="target")
    if target not in df.columns:
        raise InvalidRequest(f"Parquet table lacks target column {target!r}; columns: "
                             f"{', '.join(df.columns[:30])}", param=target)
    df = df.where(F.col(target).isNotNull())
    if text_column:
        numeric, categorical = [], []
        if features:
            numeric, categorical = _feature_columns(df, target, features)
    else:
        skip = {c for c in (split.time_column, split.split_column, baseline_column) if c}
        feats = features or [c for c in df.columns if c != target and c not in skip and not c.lower().endswith("id")]
        numeric, categorical = _feature_columns(df, target, feats)
    if numeric:
        df = df.fillna(0.0, subset=numeric)
    if categorical:
        df = df.fillna("∅", subset=categorical)
    if text_column:
        df = df.fillna("", subset=[text_column])
    train, test = _split(df, split)
    train, test = train.cache(), test.cache()
    n_train, n_test = train.count(), test.count()
    if n_train < 20 or n_test < 5:
        raise InvalidRequest(f"{algo} needs at least 20 training and 5 hold-out rows, got {n_train} and {n_test}",
                             code="too_few_rows")
    nb_multinomial = algo == "naive_bayes" and params.get("model_type", "multinomial") != "gaussian"
    scale = "minmax" if nb_multinomial else None if algo in ("decision_tree", "gbt") else "standard"
    stages = _assembler_stages(numeric, categorical, scale, text_column, float(params.get("min_df", 2)))
    if algo == "linear_regression":
        if not isinstance(df.schema[target].dataType, NumericType):
            raise InvalidRequest(f"target {target!r} must be numeric for regression "
                                 f"(it is {df.schema[target].dataType.simpleString()})", param=target)
        model = R.LinearRegression(featuresCol="features", labelCol=target, regParam=float(params.get("reg", 0.0)),
                                   elasticNetParam=0.0, solver=str(params.get("solver", "auto")))
        fitted = Pipeline(stages=stages + [model]).fit(train)
        _save(fitted, save_to)
        extra = [baseline_column] if baseline_column else []
        pred = fitted.transform(test).select(target, "prediction", *extra).collect()
        y = np.array([r[0] for r in pred], float)
        p = np.array([r[1] for r in pred], float)
        if baseline_column:
            b, bname = np.array([r[2] for r in pred], float), f"naive: {baseline_column}"
        else:
            b, bname = np.full_like(y, float(train.agg(F.mean(target)).first()[0])), "training mean"
        if log_target:  # fitted on log1p(value): judge on the value scale
            y, p, b = np.expm1(y), np.maximum(np.expm1(p), 0), np.expm1(b)
        lr = fitted.stages[-1]
        names = numeric + categorical if not categorical else None
        expl = {"intercept": float(lr.intercept), "n_coefficients": len(lr.coefficients),
                "train_r2": float(lr.summary.r2), "train_rows": n_train, "holdout_rows": n_test,
                "split": _split_note(split)}
        if names and len(names) == len(lr.coefficients):
            expl["coefficients"] = dict(sorted(((n, round(float(c), 5)) for n, c in zip(names, lr.coefficients)),
                                               key=lambda kv: -abs(kv[1]))[:15])
        return SparkResult(algo, _reg_metrics(y, p), _reg_metrics(y, b), bname, expl,
                           holdout={"y": y, "pred": p, "baseline": b})

    labeler = StringIndexer(inputCol=target, outputCol=LABEL, stringOrderType="alphabetAsc")
    label_model = labeler.fit(train)
    labels = list(label_model.labels)
    if len(labels) < 2:
        raise InvalidRequest(f"target {target!r} is constant in the training part", param="target")
    if algo in BINARY_ONLY and len(labels) > 2:
        raise InvalidRequest(f"{algo} in Spark is binary only; the target has "
                             f"{len(labels)} classes", param="target")
    n_features_guess = None
    if algo == "logistic_regression":
        est = C.LogisticRegression(labelCol=LABEL, maxIter=int(params.get("max_iter", 50)), regParam=float(params.get("reg", 0.0)))
    elif algo == "decision_tree":
        est = C.DecisionTreeClassifier(labelCol=LABEL, maxDepth=int(params.get("max_depth", 5)),
                                       minInstancesPerNode=int(params.get("min_samples_leaf", 20)), seed=split.seed)
    elif algo == "naive_bayes":
        est = C.NaiveBayes(labelCol=LABEL, modelType=str(params.get("model_type", "multinomial")),
                           smoothing=float(params.get("smoothing", 1.0)))
    elif algo == "gbt":
        est = C.GBTClassifier(labelCol=LABEL, maxIter=int(params.get("max_iter", 50)),
                              maxDepth=int(params.get("max_depth", 3)), stepSize=float(params.get("step_size", 0.1)),
                              seed=split.seed)
    elif algo == "linear_svm":
        est = C.LinearSVC(labelCol=LABEL, maxIter=int(params.get("max_iter", 50)), regParam=float(params.get("reg", 0.01)))
    else:  # mlp: layer sizes need the feature width, known after the feature pipeline
        prep = Pipeline(stages=stages).fit(train)
        n_features_guess = prep.transform(train.limit(1)).first()["features"].size
        hidden = [int(h) for h in params.get("hidden", [32])]
        est = C.MultilayerPerceptronClassifier(labelCol=LABEL, layers=[n_features_guess, *hidden, len(labels)],
                                               maxIter=int(params.get("max_iter", 100)), seed=split.seed)
    fitted = Pipeline(stages=stages + [label_model, est]).fit(train)
    _save(fitted, save_to)
    out = fitted.transform(test)
    cols = [LABEL, "prediction"] + [c for c in ("rawPrediction", "probability") if c in out.columns]
    # collect() rather than toPandas(): pyspark's Arrow path lags pandas 3
    pred = out.select(*cols).collect()
    y = np.array([r[LABEL] for r in pred], int)
    p = np.array([r["prediction"] for r in pred], int)
    score = None
    if len(labels) == 2 and "rawPrediction" in cols:
        # margin of class 1 over class 0 ranks rows for AUC (probabilities where MLlib has them)
        raw = np.stack([r["rawPrediction"].toArray() for r in pred])
        score = raw[:, 1] - raw[:, 0] if raw.shape[1] == 2 else raw[:, -1]
    proba = None
    if len(labels) == 2 and "probability" in cols:  # P(class 1): the positive class when the target is 0/1
        proba = np.array([float(r["probability"][1]) for r in pred])
    counts = label_model.transform(train).groupBy(LABEL).count().orderBy(F.desc("count")).first()
    majority = int(counts[LABEL])
    metrics = _clf_metrics(y, p, score, len(labels))
    baseline = _clf_metrics(y, np.full_like(y, majority), np.zeros(len(y)) if score is not None else None, len(labels))
    expl = {"labels": labels, "n_features": n_features_guess or len(numeric) + len(categorical),
            "numeric": numeric, "categorical": categorical, "train_rows": n_train, "holdout_rows": n_test,
            "split": _split_note(split)}
    if text_column:
        expl["vocabulary_size"] = len(fitted.stages[1].vocabulary)
    if algo == "decision_tree":
        expl["tree_depth"] = int(fitted.stages[-1].depth)
        expl["tree_nodes"] = int(fitted.stages[-1].numNodes)
    train.unpersist(), test.unpersist()
    return SparkResult(algo, metrics, baseline, "majority class", expl,
                       holdout={"y": y, "pred": p, "score": score, "proba": proba, "labels": labels})


def _split_note(split: SplitSpec) -> dict[str, Any]:
    if split.split_column:
        return {"method": f"dataset's own split (column {split.split_column!r} == 'test')"}
    if split.time_column:
        return {"method": f"time-based: last {split.test_size:.0%} by {split.time_column!r}"}
    return {"method": "seeded random split", "test_size": split.test_size, "seed": split.seed}


def _clf_metrics(y, p, score, n_classes) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    out = {"accuracy": float(accuracy_score(y, p)),
           "macro_f1": float(f1_score(y, p, average="macro", zero_division=0))}
    if n_classes == 2:
        out["f1"] = float(f1_score(y, p, zero_division=0))
        out["precision"] = float(precision_score(y, p, zero_division=0))
        out["recall"] = float(recall_score(y, p, zero_division=0))
        out["auc"] = float(roc_auc_score(y, score)) if score is not None and len(set(y)) == 2 else 0.5
    return out


def _reg_metrics(y, p) -> dict[str, float]:
    """Errors on the value scale; MAPE over non-zero actuals and symmetric MAPE in % (as the
    embedded forecasts report them)."""
    err = p - y
    ss = float(np.sum((y - y.mean()) ** 2)) or 1.0
    nz = np.abs(y) > 1e-9
    denom = np.abs(y) + np.abs(p)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "r2": float(1 - np.sum(err ** 2) / ss),
            "mape": float(100 * np.mean(np.abs(err[nz]) / np.abs(y[nz]))) if nz.any() else float("nan"),
            "smape": float(100 * np.mean(np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)))}


# -- clustering -------------------------------------------------------------------------

def _clustering(algo, df, features, params, test_size, seed, save_to=None) -> SparkResult:
    from pyspark.ml import Pipeline
    from pyspark.ml.clustering import GaussianMixture, KMeans

    numeric, categorical = _feature_columns(df, None, features)
    if numeric:
        df = df.fillna(0.0, subset=numeric)
    if categorical:
        df = df.fillna("∅", subset=categorical)
    train, test = df.randomSplit([1 - test_size, test_size], seed=seed)
    train = train.cache()
    stages = _assembler_stages(numeric, categorical, "standard")
    prep = Pipeline(stages=stages).fit(train)
    tr, te = prep.transform(train).select("features").cache(), prep.transform(test).select("features")
    k = int(params.get("k", 8 if algo == "kmeans" else 4))
    if algo == "kmeans":
        km = KMeans(k=k, seed=seed, maxIter=int(params.get("max_iter", 20))).fit(tr)
        _save(km, save_to)
        from pyspark.ml.stat import Summarizer
        from pyspark.sql import functions as F

        pred = km.transform(te)
        n_te = max(te.count(), 1)
        # mean squared distance to the nearest centre on the hold-out, model vs k=1 (MLlib
        # refuses k=1, so the single centre is the training mean)
        mean = tr.select(Summarizer.mean(F.col("features")).alias("m")).first()["m"].toArray()
        sil, null_sil = _silhouettes(pred, n_te, k, seed)
        metrics = {"silhouette": sil, "holdout_mse": _holdout_mse(pred, km.clusterCenters()) / n_te}
        baseline = {"silhouette": null_sil,
                    "holdout_mse": _holdout_mse(te.withColumn("prediction", F.lit(0)), [mean]) / n_te}
        expl = {"k": k, "cluster_sizes": [int(s) for s in km.summary.clusterSizes],
                "baselines": {"silhouette": "KMeans on the same columns shuffled independently (no joint structure)",
                              "holdout_mse": "one centre (k=1): the training mean"}}
        name = "shuffled columns (silhouette) / one centre (distortion)"
    else:
        from pyspark.mllib.linalg.distributed import RowMatrix

        gm = GaussianMixture(k=k, seed=seed, maxIter=int(params.get("max_iter", 30))).fit(tr)
        _save(gm, save_to)
        comps = [(float(w), np.asarray(g.mean.toArray()), g.cov.toArray())
                 for w, g in zip(gm.weights, gm.gaussiansDF.collect())]
        # MLlib refuses k=1: the single Gaussian is the training mean and covariance
        rows = tr.rdd.map(lambda r: r["features"].toArray().tolist())
        mean = np.asarray(rows.reduce(lambda a, b: [x + y for x, y in zip(a, b)])) / max(tr.count(), 1)
        cov = RowMatrix(rows.map(lambda x: x)).computeCovariance().toArray()
        metrics = {"holdout_loglik": _mixture_loglik(te, comps)}
        baseline = {"holdout_loglik": _mixture_loglik(te, [(1.0, mean, cov)])}
        expl = {"k": k, "weights": [round(float(w), 4) for w in gm.weights],
                "train_loglik_per_row": float(gm.summary.logLikelihood) / max(tr.count(), 1)}
        name = "single Gaussian (k=1)"
    expl["split"] = {"method": "seeded random split; the hold-out is scored against the centres/mixture "
                               "fitted on the rest", "test_size": test_size, "seed": seed}
    expl["numeric"], expl["categorical"] = numeric, categorical
    train.unpersist()
    return SparkResult(algo, metrics, baseline, name, expl)


def _silhouettes(pred, n_rows: int, k: int, seed: int, n: int = 2000) -> tuple[float, float]:
    """Euclidean silhouette of the clustering on a seeded sample of ``n`` hold-out rows (as the
    embedded clusterers report it), and of KMeans on that sample with every column shuffled
    independently: what the same k finds when the columns carry no joint structure."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import silhouette_score

    part = pred if n_rows <= n else pred.sample(fraction=min(1.0, 1.2 * n / n_rows), seed=seed)
    rows = part.select("features", "prediction").limit(n).collect()
    if len(rows) < 3:
        return 0.0, 0.0
    X = np.stack([r["features"].toArray() for r in rows])
    lab = np.array([r["prediction"] for r in rows])
    sil = float(silhouette_score(X, lab)) if 1 < len(set(lab)) < len(lab) else 0.0
    rng = np.random.default_rng(seed)
    Xn = np.column_stack([rng.permutation(X[:, j]) for j in range(X.shape[1])])
    null = SkKMeans(n_clusters=max(2, min(k, len(Xn) - 1)), n_init=3, random_state=seed).fit(Xn)
    null_sil = float(silhouette_score(Xn, null.labels_)) if 1 < len(set(null.labels_)) < len(Xn) else 0.0
    return sil, null_sil


def _mixture_loglik(df, comps) -> float:
    """Mean log-likelihood per row of ``df.features`` under a Gaussian mixture (on the executors)."""
    dims = comps[0][1].shape[0]
    prepared = []
    for w, mu, cov in comps:
        cov = cov + 1e-6 * np.eye(dims)  # MLlib covariances can be singular on one-hot columns
        sign, logdet = np.linalg.slogdet(cov)
        prepared.append((math.log(max(w, 1e-300)), mu, np.linalg.inv(cov), logdet))
    const = dims * math.log(2 * math.pi)

    def ll(v):
        x = v.toArray()
        terms = [lw - 0.5 * (const + ld + float((x - mu) @ inv @ (x - mu))) for lw, mu, inv, ld in prepared]
        m = max(terms)
        return m + math.log(sum(math.exp(t - m) for t in terms))

    vals = df.select("features").rdd.map(lambda r: ll(r["features"]))
    n = vals.count()
    return float(vals.sum()) / n if n else 0.0


def _holdout_mse(pred, centers) -> float:
    cs = [np.asarray(c) for c in centers]
    rows = pred.select("features", "prediction").rdd.map(
        lambda r: float(np.sum((r["features"].toArray() - cs[r["prediction"]]) ** 2)))
    return float(rows.sum()) if not rows.isEmpty() else 0.0


# -- patterns: mined by MLlib, judged like the embedded recommenders ---------------------------

def _hit_rate(recommend, queries, k: int, hit_name: str) -> dict[str, float]:
    """Share of queries whose hidden item is in the top ``k`` recommendations, and the MRR."""
    hits, rr = 0, 0.0
    for visible, hidden in queries:
        recs = recommend(visible, k)
        if hidden in recs:
            hits += 1
            rr += 1.0 / (recs.index(hidden) + 1)
    n = max(len(queries), 1)
    return {f"{hit_name}@{k}": hits / n, f"mrr@{k}": rr / n}


def _need(df, cols: list[str], shape: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidRequest(f"{shape}: the Parquet table lacks column(s) {', '.join(map(repr, missing))}; "
                             f"columns: {', '.join(df.columns[:30])}", param=missing[0])


def _fpgrowth(df, params, test_size, seed, session, item, order=None, save_to=None) -> SparkResult:
    """FP-Growth on baskets; each hold-out basket with >= 2 items hides one item to recommend back.
    The hold-out is a seeded random share of baskets, or the latest baskets by ``order``."""
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import functions as F

    _need(df, [session, item] + ([order] if order else []), "fpgrowth reads a (transaction, item) table")
    aggs = [F.array_sort(F.array_distinct(F.collect_list(F.col(item).cast("string")))).alias("items")]
    if order:
        aggs.append(F.max(order).alias("when"))
    grouped = df.where(F.col(item).isNotNull()).groupBy(session).agg(*aggs)
    collected = grouped.orderBy(session).collect()
    baskets = [list(r["items"]) for r in collected]
    rng = np.random.default_rng(seed)
    if order:  # latest first
        idx = np.argsort(np.array([r["when"] for r in collected]), kind="stable")[::-1]
    else:
        idx = rng.permutation(len(baskets))
    n_test = int(round(len(baskets) * test_size))
    train = [baskets[i] for i in idx[n_test:]]
    queries = []
    for i in idx[:n_test]:
        b = baskets[i]
        if len(b) >= 2:
            j = int(rng.integers(len(b)))
            queries.append((b[:j] + b[j + 1:], b[j]))
    if len(train) < 20 or not queries:
        raise InvalidRequest(f"fpgrowth needs at least 20 training baskets and some hold-out baskets with two or "
                             f"more items; {len(baskets)} baskets, {len(queries)} usable for the hold-out "
                             f"(does {session!r} group several {item!r} rows?)", param=session)
    min_support = float(params.get("min_support", 0.01))
    min_conf = float(params.get("min_confidence", 0.1))
    k = int(params.get("k", 3))
    spark = df.sparkSession
    tr = spark.createDataFrame([(b,) for b in train], ["items"])
    fp = FPGrowth(itemsCol="items", minSupport=min_support, minConfidence=min_conf).fit(tr)
    _save(fp, save_to)
    rules = [(frozenset(r["antecedent"]), r["consequent"][0], float(r["confidence"]), float(r["lift"] or 0.0))
             for r in fp.associationRules.where(F.size("consequent") == 1).collect()]
    by_item: dict[str, list] = defaultdict(list)  # rules indexed by one antecedent item
    for rule in rules:
        by_item[min(rule[0])].append(rule)
    popularity = [i for i, _ in Counter(i for b in train for i in b).most_common()]

    def popular(visible, k):
        have = set(visible)
        return [i for i in popularity if i not in have][:k]

    def recommend(visible, k):
        have = set(visible)
        best: dict[str, tuple[float, float]] = {}
        for first in have:
            for ante, cons, conf, lift in by_item.get(first, ()):
                if cons not in have and ante <= have and (conf, lift) > best.get(cons, (-1.0, -1.0)):
                    best[cons] = (conf, lift)
        ranked = [c for c, _ in sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))][:k]
        return ranked + [i for i in popular(visible, k + len(ranked)) if i not in ranked][: k - len(ranked)]

    metrics = _hit_rate(recommend, queries, k, "hit_rate")
    baseline = _hit_rate(popular, queries, k, "hit_rate")
    top = sorted(rules, key=lambda r: (-r[3], -r[2]))[:10]
    expl = {"n_rules": len(rules), "n_frequent_itemsets": int(fp.freqItemsets.count()),
            "train_baskets": len(train), "holdout_baskets": len(queries),
            "split": {"method": (f"the latest baskets by {order!r}" if order else "seeded random split of baskets")
                      + "; each hold-out basket hides one item", "test_size": test_size, "seed": seed},
            "top_rules_by_lift": [{"if": sorted(a), "then": [c], "confidence": round(cf, 4), "lift": round(lf, 3)}
                                  for a, c, cf, lf in top]}
    return SparkResult("fpgrowth", metrics, baseline, "most popular items", expl)


def _prefixspan(df, params, test_size, seed, session, item, order=None, save_to=None) -> SparkResult:
    """PrefixSpan patterns as next-item rules (longest matching context first); the hold-out
    sessions' last item is predicted from the items before it."""
    from pyspark.ml.fpm import PrefixSpan
    from pyspark.sql import functions as F

    _need(df, [session, item] + ([order] if order else []), "prefixspan reads a (session, position, item) table")
    d = df.where(F.col(item).isNotNull())
    if order is None:  # the table's own row order
        d = d.withColumn("_pos__", F.monotonically_increasing_id())
        order = "_pos__"
    seqs_df = d.groupBy(session).agg(F.sort_array(F.collect_list(F.struct(F.col(order),
                                                                           F.col(item).cast("string")))).alias("s"))
    seqs = [[x[1] for x in r["s"]] for r in seqs_df.orderBy(session).collect()]
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(seqs))
    n_te = int(len(seqs) * test_size)
    truncate = int(params.get("truncate", 20))
    train = [seqs[i][:truncate] for i in idx[n_te:]]
    test = [seqs[i][: truncate + 1] for i in idx[:n_te] if len(seqs[i]) >= 2]
    if len(train) < 20 or not test:
        raise InvalidRequest(f"prefixspan needs at least 20 training sessions and some hold-out sessions of two or "
                             f"more items; {len(seqs)} sessions, {len(test)} usable for the hold-out (does "
                             f"{session!r} group several {item!r} rows?)", param=session)
    spark = df.sparkSession
    tr = spark.createDataFrame([([[x] for x in s],) for s in train], ["sequence"])
    min_support = float(params.get("min_support", 0.001))
    max_len = int(params.get("max_len", 4))
    k = int(params.get("k", 3))
    pats = PrefixSpan(minSupport=min_support, maxPatternLength=max_len, sequenceCol="sequence") \
        .findFrequentSequentialPatterns(tr).collect()
    support = {tuple(x[0] for x in r["sequence"]): int(r["freq"]) for r in pats
               if all(len(x) == 1 for x in r["sequence"])}
    rules: dict[tuple, list] = defaultdict(list)
    for p, c in support.items():
        if len(p) >= 2 and p[:-1] in support:
            rules[p[:-1]].append((c / support[p[:-1]], c, p[-1]))
    rules = {a: sorted(v, key=lambda r: (-r[0], -r[1], str(r[2]))) for a, v in rules.items()}
    popularity = [i for i, _ in Counter(i for s in train for i in s).most_common()]

    def recommend(prefix, k):
        out: list = []
        for n in range(min(len(prefix), max_len - 1), 0, -1):  # longest context first
            for _, _, nxt in rules.get(tuple(prefix[-n:]), ()):
                if nxt not in out:
                    out.append(nxt)
            if len(out) >= k:
                break
        return (out + [i for i in popularity if i not in out])[:k]

    queries = [(s[:-1], s[-1]) for s in test]
    metrics = _hit_rate(recommend, queries, k, "hit")
    baseline = _hit_rate(lambda p, k: popularity[:k], queries, k, "hit")
    top = sorted(((c, p) for p, c in support.items() if len(p) >= 2), reverse=True)[:10]
    expl = {"n_patterns": len(support), "top_patterns": [{"pattern": list(p), "support": c} for c, p in top],
            "train_sessions": len(train), "holdout_sessions": len(test),
            "split": {"method": "seeded random split of sessions; the last item of each hold-out session is "
                                "predicted from the items before it", "test_size": test_size, "seed": seed}}
    if save_to is not None:  # PrefixSpan has no model object in MLlib: the patterns are the model
        import json

        Path(save_to).mkdir(parents=True, exist_ok=True)
        (Path(save_to) / "patterns.json").write_text(json.dumps(
            [{"pattern": list(p), "support": c} for p, c in support.items()], ensure_ascii=False))
    return SparkResult("prefixspan", metrics, baseline, "most popular items", expl)


def export_parquet(df, path: str | Path) -> Path:
    """Write a pandas frame to Parquet (tests, benchmarks, the runner's hand-off).

    Timestamps are written in microseconds: Spark cannot read Parquet's nanosecond type.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    return path


__all__ = ["ALGORITHMS", "SparkResult", "SplitSpec", "export_parquet", "fit_spark", "get_spark",
           "spark_algorithm", "stop_spark"]
