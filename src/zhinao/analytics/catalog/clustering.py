"""Clustering: 养卡预警 (SIM-farming warning), 客户细分 (segmentation) with KModes and EM.

- :class:`SimFarmKMeans` (KMeans): farmed SIM cards (养卡 -- batches of cards activated and
  kept barely alive to collect commissions or for later fraud) look alike: new, cheapest
  plan, one service, no change in spend. KMeans groups subscribers by usage profile and
  flags the cluster whose profile is most farm-like *without looking at labels*. No public
  data labels SIM farms, so the demo injects a SYNTHETIC farm (fixed seed, generated
  below) into the real IBM Telco base, and measures precision/recall on the injected cards.
- :class:`KModesSegments` (KModes): customer segments over Telco's categorical attributes
  (contract, services, payment ...), with profiles; judged by how well segments separate
  churn on the hold-out and by a matching-dissimilarity silhouette.
- :class:`GaussianMixtureSegments` (EM): Gaussian mixture on numeric spend/tenure, the
  number of components chosen by BIC; judged by hold-out log-likelihood versus k=1.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.protocol import require_columns, require_rows, to_numeric
from zhinao.errors import InvalidRequest

_SERVICE_COLS = ["PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup",
                 "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]
USAGE_FEATURES = ["tenure", "MonthlyCharges", "avg_monthly_billed", "spend_drift", "n_services",
                  "month_to_month", "paperless", "auto_pay", "has_family"]
SYNTHETIC_NOTE = ("SYNTHETIC: the SIM-farm cards (is_sim_farm=1, customerID 'SYNFARM-…') are generated in code "
                  "with a fixed seed and injected into the real IBM Telco customers; no public data labels SIM farms.")


def usage_features(df: pd.DataFrame) -> pd.DataFrame:
    """Per-subscriber usage profile derived from Telco columns."""
    require_columns(df, ["tenure", "MonthlyCharges", "TotalCharges", "Contract", "PaperlessBilling",
                         "PaymentMethod", "Partner", "Dependents", *_SERVICE_COLS], "telco table")
    tenure = to_numeric(df["tenure"], "tenure")
    monthly = to_numeric(df["MonthlyCharges"], "MonthlyCharges")
    total = to_numeric(df["TotalCharges"].replace(" ", "0"), "TotalCharges").fillna(0.0)
    avg = (total / tenure.clip(lower=1)).where(tenure > 0, monthly)
    yes = lambda c: df[c].astype(str).str.strip().str.lower().eq("yes")  # noqa: E731
    n_services = sum(yes(c).astype(int) for c in _SERVICE_COLS if c != "InternetService") \
        + df["InternetService"].astype(str).str.lower().ne("no").astype(int)
    return pd.DataFrame({
        "tenure": tenure,
        "MonthlyCharges": monthly,
        "avg_monthly_billed": avg,
        "spend_drift": (monthly - avg) / monthly.clip(lower=1),  # plan changes move this off 0
        "n_services": n_services.astype(float),
        "month_to_month": df["Contract"].astype(str).str.lower().str.startswith("month").astype(float),
        "paperless": yes("PaperlessBilling").astype(float),
        "auto_pay": df["PaymentMethod"].astype(str).str.contains("automatic").astype(float),
        "has_family": (yes("Partner") | yes("Dependents")).astype(float),
    }, index=df.index)


def inject_sim_farm(telco: pd.DataFrame, share: float = 0.04, seed: int = 7) -> pd.DataFrame:
    """Real Telco customers plus SYNTHETIC farmed SIMs (``is_sim_farm`` = 1), fixed seed.

    The farm comes in batches (cards activated the same weeks), on the cheapest phone-only
    plan, month-to-month, billed electronically, paying by electronic check, with spend
    that never changes -- the profile operators' fraud teams describe for 养卡.
    """
    rng = np.random.default_rng(seed)
    n = int(round(len(telco) * share))
    batch_tenure = rng.integers(1, 4, size=max(1, n // 40 + 1))
    tenure = rng.choice(batch_tenure, n) + rng.integers(0, 2, n)
    monthly = np.round(rng.normal(19.9, 0.35, n).clip(18.25, 21.0), 2)
    farm = pd.DataFrame({
        "customerID": [f"SYNFARM-{i:05d}" for i in range(n)],
        "gender": rng.choice(["Male", "Female"], n), "SeniorCitizen": 0,
        "Partner": "No", "Dependents": "No", "tenure": tenure,
        "PhoneService": "Yes", "MultipleLines": rng.choice(["No", "Yes"], n, p=[0.9, 0.1]),
        "InternetService": "No", **{c: "No internet service" for c in
                                    ["OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport",
                                     "StreamingTV", "StreamingMovies"]},
        "Contract": "Month-to-month", "PaperlessBilling": "Yes",
        "PaymentMethod": rng.choice(["Electronic check", "Mailed check"], n, p=[0.85, 0.15]),
        "MonthlyCharges": monthly, "TotalCharges": np.round(monthly * tenure, 2), "Churn": "No",
    })
    real = telco.copy()
    real["is_sim_farm"] = 0
    farm["is_sim_farm"] = 1
    return pd.concat([real, farm], ignore_index=True)


def _prf(y: np.ndarray, flag: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(flag & (y == 1)))
    p = tp / max(float(flag.sum()), 1.0)
    r = tp / max(float((y == 1).sum()), 1.0)
    return {"f1": 0.0 if p + r == 0 else 2 * p * r / (p + r), "precision": p, "recall": r,
            "flagged_share": float(flag.mean())}


def _stratified_split(y: np.ndarray, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    return train_test_split(idx, test_size=test_size, random_state=seed, stratify=y)


@register
class SimFarmKMeans(MiningModel):
    """KMeans on standardized usage features; the most uniform, newest, cheapest cluster is flagged."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="sim_farm_kmeans", name_zh="养卡预警（KMeans 聚类）", name_en="SIM-farming warning (KMeans clusters)",
        algorithm="KMeans", theme="clustering",
        application_zh="养卡预警：按使用特征聚类，找出“新入网、最低套餐、单一业务、消费一成不变”的异常号卡群",
        application_en="flag the cluster of new, cheapest, single-service cards with unchanging spend (SIM farms)",
        inputs="telco customer table (tenure, charges, contract, services, payment); label `is_sim_farm` "
               "only for evaluation",
        metrics=("f1", "precision", "recall"), dataset="telco", synthetic=True)

    def __init__(self, n_clusters: int = 20, test_size: float = 0.3, seed: int = 0, farm_share: float = 0.04):
        self.n_clusters = n_clusters
        self.test_size = test_size
        self.seed = seed
        self.farm_share = farm_share

    def load_demo(self) -> pd.DataFrame:
        return inject_sim_farm(datasets.load_telco(), share=self.farm_share)

    def fit(self, X: Any, y: Any = None) -> "SimFarmKMeans":
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler

        F = usage_features(X)
        require_rows(len(F), max(50, 5 * int(self.n_clusters)), self.info.key)
        self.scaler_ = StandardScaler().fit(F.to_numpy())
        Z = self.scaler_.transform(F.to_numpy())
        self.kmeans_ = KMeans(n_clusters=int(self.n_clusters), n_init=4, random_state=int(self.seed)).fit(Z)
        lab = self.kmeans_.labels_
        # Farm-likeness of each cluster, label-free: uniform (tight), new, cheap, few services,
        # no spend drift. Each term is a z-score over clusters so none dominates by units.
        prof = F.groupby(lab).mean()
        tight = pd.Series([float(np.mean(np.linalg.norm(Z[lab == c] - self.kmeans_.cluster_centers_[c], axis=1)))
                           for c in prof.index], index=prof.index)
        size = pd.Series(np.bincount(lab, minlength=int(self.n_clusters)), index=range(int(self.n_clusters)))
        z = lambda s: (s - s.mean()) / (s.std(ddof=0) + 1e-9)  # noqa: E731
        score = -z(tight) - z(prof["tenure"]) - z(prof["MonthlyCharges"]) - z(prof["n_services"]) \
            - z(prof["spend_drift"].abs()) - z(prof["has_family"])
        score[size.reindex(prof.index) < 0.005 * len(F)] = -np.inf  # a handful of cards is noise, not a farm
        self.cluster_profile_ = prof.assign(size=size.reindex(prof.index), tightness=tight, farm_score=score)
        self.flagged_cluster_ = int(score.idxmax())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        Z = self.scaler_.transform(usage_features(X).to_numpy())
        return (self.kmeans_.predict(Z) == self.flagged_cluster_).astype(int)

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Flag rows in the suspicious cluster; distance to its centre ranks them (closest first)."""
        Z = self.scaler_.transform(usage_features(df).to_numpy())
        cl = self.kmeans_.predict(Z)
        dist = np.linalg.norm(Z - self.kmeans_.cluster_centers_[self.flagged_cluster_], axis=1)
        out = pd.DataFrame({"customerID": df["customerID"].to_numpy() if "customerID" in df.columns else np.arange(len(df)),
                            "cluster": cl, "sim_farm_flag": (cl == self.flagged_cluster_).astype(int),
                            "distance_to_farm_centre": dist})
        return out.sort_values(["sim_farm_flag", "distance_to_farm_centre"], ascending=[False, True]).reset_index(drop=True)

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        require_columns(data, ["is_sim_farm"], "SIM-farm evaluation table")
        y = to_numeric(data["is_sim_farm"], "is_sim_farm").fillna(0).astype(int).to_numpy()
        if y.sum() < 5:
            raise InvalidRequest("evaluation needs at least 5 rows labelled is_sim_farm=1", param="is_sim_farm")
        tr, te = _stratified_split(y, float(self.test_size), int(self.seed))
        t0 = time.perf_counter()
        self.fit(data.iloc[tr])
        fit_s = time.perf_counter() - t0
        test = data.iloc[te]
        metrics = _prf(y[te], self.predict(test).astype(bool))
        # Baseline: the single-threshold rule fraud teams start with -- "new card" (tenure <= 3).
        tenure = to_numeric(test["tenure"], "tenure").to_numpy()
        baseline = _prf(y[te], tenure <= 3)
        prof = self.cluster_profile_.round(3)
        expl = {"flagged_cluster": self.flagged_cluster_,
                "cluster_profiles": {str(k): {c: (float(v) if np.isfinite(v) else None) for c, v in row.items()}
                                     for k, row in prof.iterrows()},
                "features": USAGE_FEATURES, "fit_seconds": round(fit_s, 3),
                "split": {"train": int(len(tr)), "holdout": int(len(te)), "protocol": "stratified 70/30 (seeded)"},
                "synthetic": True,
                "notes": [SYNTHETIC_NOTE,
                          "The flagged cluster is chosen without labels (most uniform, newest, cheapest, fewest "
                          "services, no spend drift, no family); labels are used only to score it.",
                          "Baseline: the single-threshold rule tenure <= 3 months."]}
        F = usage_features(test)
        fig, ax = charts.figure(6.4, 4.6)
        cl = self.predict(test).astype(bool)
        ax.scatter(F["tenure"][~cl], F["MonthlyCharges"][~cl], s=4, c="#95a5a6", alpha=0.5, label="其他 other")
        ax.scatter(F["tenure"][cl], F["MonthlyCharges"][cl], s=8, c="#e74c3c", label="预警簇 flagged cluster")
        yy = y[te] == 1
        ax.scatter(F["tenure"][yy], F["MonthlyCharges"][yy], s=22, facecolors="none", edgecolors="black",
                   linewidths=0.6, label="注入养卡 injected farm (SYNTHETIC)")
        ax.set_xlabel("在网月数 tenure (months)")
        ax.set_ylabel("月费 MonthlyCharges")
        ax.set_title("养卡预警 (合成注入数据 SYNTHETIC injection)")
        ax.legend(fontsize=7)
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="rule: tenure <= 3 months",
                          explanation=expl, charts={"clusters": charts.to_png(fig)})


KMODES_COLUMNS = ["gender", "SeniorCitizen", "Partner", "Dependents", "PhoneService", "MultipleLines",
                  "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport",
                  "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod"]


def _churn_stats(seg: np.ndarray, churn: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mutual_info_score

    rates = pd.Series(churn).groupby(seg).mean()
    return {"churn_mutual_info_bits": float(mutual_info_score(churn, seg) / np.log(2)),
            "churn_rate_range": float(rates.max() - rates.min()) if len(rates) > 1 else 0.0}


def _matching_silhouette(codes: np.ndarray, seg: np.ndarray, n: int = 1500, seed: int = 0) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(seg)) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(codes), min(n, len(codes)), replace=False)
    if len(np.unique(seg[idx])) < 2:
        return 0.0
    return float(silhouette_score(codes[idx], seg[idx], metric="hamming"))


@register
class KModesSegments(MiningModel):
    """KModes on categorical attributes (matching dissimilarity), Cao initialisation."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="segments_kmodes", name_zh="客户细分（KModes）", name_en="Customer segmentation (KModes)",
        algorithm="KModes", theme="clustering",
        application_zh="客户细分：按合约、业务、付费方式等类别属性把客户分群，给出每群画像与离网率",
        application_en="segment customers by contract, services and payment; profile and churn rate per segment",
        inputs="categorical customer attributes (telco columns); `Churn` only to judge the segments",
        metrics=("silhouette_matching", "churn_mutual_info_bits", "churn_rate_range"), dataset="telco")

    def __init__(self, n_clusters: int = 4, columns: tuple[str, ...] = tuple(KMODES_COLUMNS), target: str = "Churn",
                 test_size: float = 0.3, seed: int = 0):
        self.n_clusters = n_clusters
        self.columns = columns
        self.target = target
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    def _cats(self, df: pd.DataFrame) -> np.ndarray:
        require_columns(df, list(self.columns), "segmentation input")
        return df[list(self.columns)].astype(str).fillna("∅").to_numpy()

    def fit(self, X: Any, y: Any = None) -> "KModesSegments":
        from kmodes.kmodes import KModes

        C = self._cats(X)
        require_rows(len(C), 10 * int(self.n_clusters), self.info.key)
        self.km_ = KModes(n_clusters=int(self.n_clusters), init="Cao", n_init=1, random_state=int(self.seed)).fit(C)
        self.modes_ = pd.DataFrame(self.km_.cluster_centroids_, columns=list(self.columns))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.km_.predict(self._cats(X))

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        seg = self.predict(df)
        ids = df["customerID"].to_numpy() if "customerID" in df.columns else np.arange(len(df))
        return pd.DataFrame({"customerID": ids, "segment": seg})

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        require_columns(data, [self.target], "segmentation evaluation table")
        require_rows(len(data), 20, self.info.key)  # the stratified split needs rows in both parts
        churn = data[self.target].astype(str).str.strip().str.lower().isin(["yes", "1", "true"]).astype(int).to_numpy()
        tr, te = _stratified_split(churn, float(self.test_size), int(self.seed))
        t0 = time.perf_counter()
        self.fit(data.iloc[tr])
        fit_s = time.perf_counter() - t0
        test = data.iloc[te]
        seg = self.predict(test)
        codes = pd.DataFrame(self._cats(test)).apply(lambda c: pd.factorize(c)[0]).to_numpy()
        rng = np.random.default_rng(int(self.seed))
        rand = rng.permutation(seg)  # same segment sizes, no structure
        metrics = {"silhouette_matching": _matching_silhouette(codes, seg), **_churn_stats(seg, churn[te])}
        baseline = {"silhouette_matching": _matching_silhouette(codes, rand), **_churn_stats(rand, churn[te])}
        prof = []
        for k in range(int(self.n_clusters)):
            m = seg == k
            prof.append({"segment": k, "size": int(m.sum()), "churn_rate": round(float(churn[te][m].mean()), 3) if m.any() else None,
                         "mode": {c: str(v) for c, v in self.modes_.iloc[k].items()
                                  if c in ("Contract", "InternetService", "PaymentMethod", "StreamingTV",
                                           "TechSupport", "SeniorCitizen", "Partner")}})
        expl = {"segments": prof, "fit_seconds": round(fit_s, 3),
                "split": {"train": int(len(tr)), "holdout": int(len(te)), "protocol": "stratified 70/30 on churn"},
                "notes": ["Churn is not used to build segments; it only judges how actionable they are.",
                          "Silhouette uses the matching (Hamming) dissimilarity on 1,500 hold-out rows.",
                          "Baseline: the same segment sizes assigned at random."]}
        fig, ax = charts.figure(6.0, 3.6)
        ax.bar([f"细分 {p['segment']}\n(n={p['size']})" for p in prof], [p["churn_rate"] or 0 for p in prof],
               color="#2e86c1")
        ax.axhline(float(churn[te].mean()), color="grey", ls="--", label="整体 overall")
        ax.set_ylabel("离网率 churn rate")
        ax.set_title("KModes 客户细分: 各细分离网率 (hold-out)")
        ax.legend()
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="random segments, same sizes",
                          explanation=expl, charts={"segment_churn": charts.to_png(fig)})


GMM_FEATURES = ["tenure", "MonthlyCharges", "TotalCharges"]


@register
class GaussianMixtureSegments(MiningModel):
    """EM-fitted Gaussian mixture; k by BIC on the training part."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="segments_em", name_zh="客户细分（EM 高斯混合）", name_en="Customer segmentation (EM Gaussian mixture)",
        algorithm="EM (Gaussian mixture)", theme="clustering",
        application_zh="客户细分：用 EM 算法拟合高斯混合模型，按在网时长与消费自动分群，群数由 BIC 选定",
        application_en="soft segments of tenure and spend fitted by EM; number of segments chosen by BIC",
        inputs="numeric columns tenure, MonthlyCharges, TotalCharges (or `columns`)",
        metrics=("holdout_loglik", "bic"), dataset="telco")

    def __init__(self, columns: tuple[str, ...] = tuple(GMM_FEATURES), max_components: int = 8,
                 test_size: float = 0.3, seed: int = 0):
        self.columns = columns
        self.max_components = max_components
        self.test_size = test_size
        self.seed = seed

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    def _matrix(self, df: pd.DataFrame) -> np.ndarray:
        require_columns(df, list(self.columns), "EM segmentation input")
        M = np.column_stack([to_numeric(df[c], c).fillna(0.0).to_numpy() for c in self.columns])
        # spend and tenure are right-skewed; log makes the Gaussian components meaningful
        return np.log1p(np.clip(M, 0, None))

    def fit(self, X: Any, y: Any = None) -> "GaussianMixtureSegments":
        from sklearn.mixture import GaussianMixture
        from sklearn.preprocessing import StandardScaler

        M = self._matrix(X)
        require_rows(len(M), 50, self.info.key)
        self.scaler_ = StandardScaler().fit(M)
        Z = self.scaler_.transform(M)
        self.bic_path_ = {}
        best = None
        for k in range(1, int(self.max_components) + 1):
            gm = GaussianMixture(k, covariance_type="full", random_state=int(self.seed), n_init=1, reg_covar=1e-4).fit(Z)
            bic = float(gm.bic(Z))
            self.bic_path_[k] = bic
            if best is None or bic < best[0]:
                best = (bic, gm)
        self.gmm_ = best[1]
        self.n_components_ = int(self.gmm_.n_components)
        self.bic_ = best[0]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.gmm_.predict(self.scaler_.transform(self._matrix(X)))

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        Z = self.scaler_.transform(self._matrix(df))
        p = self.gmm_.predict_proba(Z)
        ids = df["customerID"].to_numpy() if "customerID" in df.columns else np.arange(len(df))
        return pd.DataFrame({"customerID": ids, "segment": p.argmax(1), "probability": p.max(1),
                             "loglik": self.gmm_.score_samples(Z)})

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(int(self.seed))
        idx = rng.permutation(len(data))
        n_te = int(round(len(data) * float(self.test_size)))
        te, tr = idx[:n_te], idx[n_te:]
        t0 = time.perf_counter()
        self.fit(data.iloc[tr])
        fit_s = time.perf_counter() - t0
        Ztr = self.scaler_.transform(self._matrix(data.iloc[tr]))
        Zte = self.scaler_.transform(self._matrix(data.iloc[te]))
        one = GaussianMixture(1, covariance_type="full", random_state=int(self.seed)).fit(Ztr)
        metrics = {"holdout_loglik": float(self.gmm_.score(Zte)), "bic": self.bic_,
                   "n_components": float(self.n_components_)}
        baseline = {"holdout_loglik": float(one.score(Zte)), "bic": float(one.bic(Ztr)), "n_components": 1.0}
        seg = self.gmm_.predict(Zte)
        raw = data.iloc[te]
        comps = []
        for k in range(self.n_components_):
            m = seg == k
            row = {"segment": k, "weight": round(float(self.gmm_.weights_[k]), 3), "holdout_size": int(m.sum())}
            for c in self.columns:
                row[f"median_{c}"] = round(float(to_numeric(raw[c], c).fillna(0)[m].median()), 2) if m.any() else None
            if "Churn" in raw.columns and m.any():
                row["churn_rate"] = round(float(raw["Churn"].astype(str).eq("Yes")[m].mean()), 3)
            comps.append(row)
        expl = {"bic_by_k": {str(k): round(v, 1) for k, v in self.bic_path_.items()}, "segments": comps,
                "fit_seconds": round(fit_s, 3),
                "split": {"train": int(len(tr)), "holdout": int(len(te)), "protocol": "random 70/30 (seeded)"},
                "notes": ["Features are log1p-transformed and standardized; the hold-out log-likelihood is the "
                          "mean per customer.", "Baseline: a single Gaussian (k=1)."]}
        fig, ax = charts.figure(6.0, 3.6)
        ax.plot(list(self.bic_path_), list(self.bic_path_.values()), "o-")
        ax.axvline(self.n_components_, color="#c0392b", ls="--", label=f"chosen k={self.n_components_}")
        ax.set_xlabel("components k")
        ax.set_ylabel("BIC")
        ax.set_title("EM 高斯混合: BIC 选择群数")
        ax.legend()
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="single Gaussian (k=1)",
                          explanation=expl, charts={"bic": charts.to_png(fig)})
