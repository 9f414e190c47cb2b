"""Analytics benchmark: catalogue overhead, DuckDB + scikit-learn versus Spark, model quality.

Three parts, each printing ratios against a named baseline:

  (a) overhead -- a catalogue model's ``fit(data)`` versus the same scikit-learn /
      statsmodels calls written by hand on the same data (same preprocessing, same
      estimator and parameters). Median of ``--repeats`` interleaved runs. Target <= 10%.
  (b) scale -- logistic regression and KMeans on synthetic rows (numpy, seed 0; 8 numeric
      features drawn from 8 Gaussian clusters, a logistic label) stored as Parquet:
      DuckDB reads the Parquet into numpy and scikit-learn fits, versus Spark ``local[*]``
      reading the same Parquet with MLlib. Same iteration budgets; quality on a separate
      100k-row sample from the same generator (AUC; KMeans inertia per row).
  (c) quality -- every catalogue model's ``evaluate(load_demo())`` (real data) against its
      naive baseline on its primary metric, and, for the models Spark has, the Spark
      engine's figures on the same data.

    .venv/bin/python bench/analytics.py [--repeats 5] [--sizes 1000000,10000000]
                                        [--parts overhead,scale,quality] [--spark-memory 8g]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform as pyplatform
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


# -- (a) catalogue overhead -------------------------------------------------------------------

def _telco_direct_xy(df: pd.DataFrame, cols: list[str], target: str):
    X = df[cols].copy()
    for c in ("tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"):
        if c in X.columns:
            X[c] = pd.to_numeric(X[c].astype(str).str.strip().replace("", np.nan), errors="coerce")
    return X, df[target]


def _prep(X: pd.DataFrame, scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    cat = [c for c in X.columns if c not in num]
    steps = [("impute", SimpleImputer(strategy="median"))] + ([("scale", StandardScaler())] if scale else [])
    return ColumnTransformer([("num", Pipeline(steps), num),
                              ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                                ("onehot", OneHotEncoder(handle_unknown="ignore"))]), cat)])


def overhead_cases():
    """(name, catalogue fit, direct fit) triples on the models' demo data."""
    from sklearn.pipeline import Pipeline

    from zhinao.analytics import datasets
    from zhinao.analytics.catalog import catalogue
    from zhinao.analytics.catalog import classification as C
    from zhinao.analytics.catalog.clustering import GMM_FEATURES, USAGE_FEATURES, inject_sim_farm, usage_features
    from zhinao.analytics.catalog.forecasting import _period_for, as_series, design_matrix
    from zhinao.analytics.catalog.text import jieba_tokens

    cat = catalogue()
    telco = datasets.load_telco()
    cases = []

    def tabular(key, est, scale, cols, target):
        def direct():
            X, y = _telco_direct_xy(telco, cols, target)
            Pipeline([("prep", _prep(X, scale)), ("model", est())]).fit(X, y)
        return key, lambda: cat[key]().fit(telco), direct

    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier

    full = C.PROFILE + C.SERVICES + C.ACCOUNT + C.CHARGES
    cases.append(tabular("churn_logistic", lambda: LogisticRegression(C=1.0, max_iter=2000), True, full, "Churn"))
    cases.append(tabular("churn_mlp", lambda: MLPClassifier(hidden_layer_sizes=(32, 16), alpha=1e-3,
                                                            early_stopping=True, max_iter=300, random_state=42),
                         True, full, "Churn"))
    cases.append(tabular("plan_tree", lambda: DecisionTreeClassifier(max_depth=5, min_samples_leaf=20,
                                                                     class_weight="balanced", random_state=42),
                         False, list(C.PlanTree.feature_columns), "Contract"))

    news = datasets.load_thucnews()
    news = news[news["split"] == "dev"] if "split" in news.columns else news

    def nb_direct():
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.naive_bayes import MultinomialNB

        Pipeline([("vec", CountVectorizer(tokenizer=jieba_tokens, token_pattern=None, lowercase=False, min_df=1)),
                  ("clf", MultinomialNB(alpha=0.3))]).fit(list(news["text"].astype(str)), list(news["label"]))
    cases.append(("text_naive_bayes", lambda: cat["text_naive_bayes"]().fit(news), nb_direct))

    farm = inject_sim_farm(telco)

    def km_direct():
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler

        Z = StandardScaler().fit_transform(usage_features(farm)[USAGE_FEATURES].to_numpy())
        KMeans(n_clusters=20, n_init=4, random_state=0).fit(Z)
    cases.append(("sim_farm_kmeans", lambda: cat["sim_farm_kmeans"]().fit(farm), km_direct))

    def em_direct():
        from sklearn.mixture import GaussianMixture
        from sklearn.preprocessing import StandardScaler

        M = np.log1p(np.clip(np.column_stack([pd.to_numeric(telco[c].astype(str).str.strip().replace("", np.nan),
                                                             errors="coerce").fillna(0.0) for c in GMM_FEATURES]),
                             0, None))
        Z = StandardScaler().fit_transform(M)
        best = None
        for k in range(1, 9):
            gm = GaussianMixture(k, covariance_type="full", random_state=0, n_init=1, reg_covar=1e-4).fit(Z)
            b = gm.bic(Z)
            best = b if best is None or b < best else best
    cases.append(("segments_em", lambda: cat["segments_em"]().fit(telco), em_direct))

    milan = datasets.load_milan_total()

    def arima_direct():
        import warnings

        from sklearn.linear_model import Ridge
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        s = as_series(milan, "timestamp", "activity", None)
        period = _period_for(s, None)
        X = design_matrix(s, s.index, period).iloc[7 * period:]
        y = np.log1p(s.to_numpy())[7 * period:]
        reg = Ridge(alpha=1.0).fit(X.to_numpy(), y)
        r = y - reg.predict(X.to_numpy())
        for d in range(2):
            for p in range(3):
                for q in range(3):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        try:
                            SARIMAX(r, order=(p, d, q), trend="n").fit(disp=False, maxiter=100)
                        except (np.linalg.LinAlgError, ValueError):
                            pass
    cases.append(("traffic_arima", lambda: cat["traffic_arima"]().fit(milan), arima_direct))
    return cases


def bench_overhead(repeats: int) -> list[dict]:
    rows = []
    for name, catalogue_fit, direct_fit in overhead_cases():
        catalogue_fit(), direct_fit()  # warm caches (jieba, imports) for both
        tc, td = [], []
        for _ in range(repeats):  # interleaved so drift on a shared machine hits both
            t0 = time.perf_counter()
            direct_fit()
            td.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            catalogue_fit()
            tc.append(time.perf_counter() - t0)
        mc, md = statistics.median(tc), statistics.median(td)
        rows.append({"model": name, "direct_s": md, "catalogue_s": mc, "overhead": mc / md - 1})
        print(f"  {name:18s} direct {md:7.3f}s  catalogue {mc:7.3f}s  overhead {100 * (mc / md - 1):+6.1f}%",
              flush=True)
    return rows


# -- (b) DuckDB + scikit-learn versus Spark local ---------------------------------------------------

D, K = 8, 8


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows: 8 features from 8 Gaussian clusters (fixed centres), a logistic label."""
    centres = np.random.default_rng(12345).normal(0, 3, (K, D))
    w = np.random.default_rng(54321).normal(0, 1, D)
    rng = np.random.default_rng(seed)
    X = (centres[rng.integers(0, K, n)] + rng.normal(0, 1, (n, D))).astype(np.float64)
    p = 1 / (1 + np.exp(-(X @ w) / 3))
    y = (rng.random(n) < p).astype(np.int32)
    return X, y


def write_parquet(n: int, path: Path, seed: int = 0, chunk: int = 1_000_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for i, start in enumerate(range(0, n, chunk)):
        X, y = synthetic(min(chunk, n - start), seed + i)
        t = pa.table({**{f"x{j}": X[:, j] for j in range(D)}, "label": y})
        writer = writer or pq.ParquetWriter(str(path), t.schema)
        writer.write_table(t)
    writer.close()


def sk_fit(path: Path, algo: str):
    import duckdb
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    cols = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchnumpy()
    X = np.column_stack([cols[f"x{j}"] for j in range(D)])
    y = cols["label"]
    del cols
    t_read = time.perf_counter() - t0
    if algo == "logistic":
        m = LogisticRegression(max_iter=50, tol=1e-6).fit(X, y)
        predict = lambda Z: m.decision_function(Z)  # noqa: E731
    else:
        m = KMeans(n_clusters=K, n_init=1, max_iter=20, tol=0, random_state=0, algorithm="lloyd").fit(X)
        predict = lambda Z: m.cluster_centers_  # noqa: E731
    return time.perf_counter() - t0, t_read, predict


def spark_fit(spark, path: Path, algo: str):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import VectorAssembler

    t0 = time.perf_counter()
    df = VectorAssembler(inputCols=[f"x{j}" for j in range(D)], outputCol="features").transform(
        spark.read.parquet(str(path)))
    if algo == "logistic":
        m = LogisticRegression(maxIter=50, tol=1e-6, regParam=0.0, labelCol="label").fit(df)
        coef, b = m.coefficients.toArray(), m.intercept
        predict = lambda Z: Z @ coef + b  # noqa: E731
    else:
        m = KMeans(k=K, maxIter=20, tol=0.0, seed=0).fit(df)
        centres = np.array([c for c in m.clusterCenters()])
        predict = lambda Z: centres  # noqa: E731
    return time.perf_counter() - t0, predict


def quality(algo: str, predict, Xt: np.ndarray, yt: np.ndarray) -> float:
    if algo == "logistic":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(yt, predict(Xt)))
    C = predict(Xt)
    d = ((Xt[:, None, :] - C[None, :, :]) ** 2).sum(-1).min(1)
    return float(d.mean())


def bench_scale(sizes: list[int], spark_memory: str, workdir: Path) -> list[dict]:
    from zhinao.analytics.spark import get_spark, stop_spark

    Xt, yt = synthetic(100_000, 999)
    spark = get_spark(driver_memory=spark_memory, shuffle_partitions=4)
    warm = workdir / "warm.parquet"
    write_parquet(20_000, warm)
    for algo in ("logistic", "kmeans"):  # JIT and class loading out of the timed runs
        spark_fit(spark, warm, algo)
    rows = []
    for n in sizes:
        path = workdir / f"synthetic_{n}.parquet"
        t0 = time.perf_counter()
        write_parquet(n, path)
        mb = path.stat().st_size / 2**20
        print(f"  {n:>11,} rows: Parquet {mb:.0f} MiB written in {time.perf_counter() - t0:.1f}s", flush=True)
        for algo in ("logistic", "kmeans"):
            gc.collect()
            ts, t_read, pred_sk = sk_fit(path, algo)
            q_sk = quality(algo, pred_sk, Xt, yt)
            gc.collect()
            tp, pred_sp = spark_fit(spark, path, algo)
            q_sp = quality(algo, pred_sp, Xt, yt)
            row = {"rows": n, "algo": algo, "duckdb_sklearn_s": ts, "duckdb_read_s": t_read, "spark_s": tp,
                   "spark_over_sklearn": tp / ts, "quality_sklearn": q_sk, "quality_spark": q_sp,
                   "quality_metric": "AUC" if algo == "logistic" else "inertia/row"}
            rows.append(row)
            print(f"    {algo:8s} DuckDB+sklearn {ts:7.1f}s (read {t_read:.1f}s)  Spark {tp:7.1f}s  "
                  f"Spark/sklearn {tp / ts:5.2f}x  {row['quality_metric']} {q_sk:.4f} vs {q_sp:.4f}", flush=True)
        path.unlink()
    stop_spark()
    return rows


# -- (c) quality of every catalogue model -------------------------------------------------------------

def bench_quality(with_spark: bool, workdir: Path) -> list[dict]:
    from zhinao.analytics.catalog import catalogue
    from zhinao.analytics.catalog.protocol import beats_baseline, higher_is_better, primary_metric
    from zhinao.analytics.engines import get_engine

    rows = []
    for key, cls in sorted(catalogue().items(), key=lambda kv: (kv[1].info.theme, kv[0])):
        m = cls()
        t0 = time.perf_counter()
        ev = m.evaluate(m.load_demo())
        dt = time.perf_counter() - t0
        pm = primary_metric(cls.info)
        row = {"key": key, "algorithm": cls.info.algorithm, "dataset": cls.info.dataset, "metric": pm,
               "model": ev.metrics.get(pm), "baseline": ev.baseline.get(pm), "baseline_name": ev.baseline_name,
               "beats": beats_baseline(ev, pm), "seconds": dt, "higher_is_better": higher_is_better(pm)}
        if with_spark and get_engine("spark").supports(cls):
            from zhinao.analytics.spark_runs import evaluate_on_spark

            m2 = cls()
            out = workdir / f"spark_{key}"
            (out / "charts").mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            sev = evaluate_on_spark(m2, m2.load_demo(), out)
            sm = pm if pm in sev.metrics else next(iter(sev.metrics))
            row.update(spark_metric=sm, spark_model=sev.metrics[sm], spark_baseline=sev.baseline.get(sm),
                       spark_beats=beats_baseline(sev, sm), spark_seconds=time.perf_counter() - t0)
        rows.append(row)
        b = row["baseline"]
        print(f"  {key:24s} {pm:16s} model {row['model']:.4f}  baseline {b if b is None else round(b, 4)}  "
              f"beats={row['beats']}  {dt:5.1f}s"
              + (f"  | Spark {row['spark_metric']} {row['spark_model']:.4f} vs {row['spark_baseline']:.4f}"
                 if "spark_model" in row else ""), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--parts", default="overhead,scale,quality")
    ap.add_argument("--spark-memory", default="8g")
    ap.add_argument("--no-spark-quality", action="store_true")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    print(f"machine: {os.cpu_count()} cores, Python {pyplatform.python_version()}, {pyplatform.platform()}")
    with tempfile.TemporaryDirectory(prefix="zhinao-bench-") as tmp:
        work = Path(tmp)
        if "overhead" in parts:
            print("(a) catalogue fit versus the same library calls by hand (median of "
                  f"{args.repeats}; target overhead <= 10%)")
            rows = bench_overhead(args.repeats)
            worst = max(r["overhead"] for r in rows)
            print(f"  worst overhead {100 * worst:+.1f}%; geometric mean ratio "
                  f"{np.exp(np.mean([np.log(r['catalogue_s'] / r['direct_s']) for r in rows])):.3f}x")
        if "quality" in parts:
            print("(c) every catalogue model on its real demo data: primary metric vs naive baseline")
            rows = bench_quality(not args.no_spark_quality, work)
            applicable = [r for r in rows if r["beats"] is not None]
            print(f"  {sum(bool(r['beats']) for r in applicable)}/{len(applicable)} beat their baseline "
                  f"({len(rows) - len(applicable)} without a baseline)")
        if "scale" in parts:
            sizes = [int(float(s)) for s in args.sizes.split(",") if s]
            print(f"(b) DuckDB + scikit-learn versus Spark local[*] (driver {args.spark_memory}) on synthetic rows")
            bench_scale(sizes, args.spark_memory, work)


if __name__ == "__main__":
    main()
