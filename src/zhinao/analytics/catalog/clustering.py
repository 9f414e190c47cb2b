"""Clustering: 养卡预警 (SIM-farming warning) with KMeans; 客户细分 with KModes and EM (:mod:`.segments`).

:class:`SimFarmKMeans` (KMeans): farmed SIM cards (养卡 -- batches of cards activated and
kept barely alive to collect commissions or for later fraud) look alike: new, cheapest
plan, one service, no change in spend. KMeans groups subscribers by usage profile and
flags the cluster whose profile is most farm-like *without looking at labels*.

Two ways to meet a table, because no public data labels SIM farms:

- the demo (``usage_profile="auto"`` on a table with the IBM Telco columns): a Telco usage
  profile is derived (tenure, spend drift, services …), a SYNTHETIC farm (fixed seed,
  generated below) is injected into the real Telco base, and the flagged cluster is scored
  by precision/recall on the injected cards against the rule "tenure <= 3 months";
- any other table: KMeans on the bound ``features`` (default: every usable numeric or yes/no
  column), judged without labels by the silhouette against KMeans on the same columns
  shuffled independently (same marginals, no joint structure: a table with nothing to
  cluster scores like its shuffle). The flagged cluster is the tightest one holding
  0.5-25 % of the rows (many near-identical cards); a ``label`` column of known cases, when
  bound, measures it (precision/recall against flagging the same share at random).

KModes and EM segments live in :mod:`.segments` and are re-exported here.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zhinao.analytics import datasets
from zhinao.analytics.catalog import charts, plots
from zhinao.analytics.catalog.base import Evaluation, MiningModel, ModelInfo, register
from zhinao.analytics.catalog.clusterkit import (LabelView, check_fraction, check_int, check_not_empty,
                                                 drop_redundant, numeric_frame, pca_scatter, split, with_columns)
from zhinao.analytics.catalog.protocol import require_columns, require_rows, to_numeric
from zhinao.analytics.catalog.roles import Preset, Role, column_kind
from zhinao.errors import InvalidRequest

_SERVICE_COLS = ["PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup",
                 "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies"]
#: the IBM Telco columns the demo's usage profile is derived from
TELCO_COLUMNS = ["tenure", "MonthlyCharges", "TotalCharges", "Contract", "PaperlessBilling", "PaymentMethod",
                 "Partner", "Dependents", *_SERVICE_COLS]
USAGE_FEATURES = ["tenure", "MonthlyCharges", "avg_monthly_billed", "spend_drift", "n_services",
                  "month_to_month", "paperless", "auto_pay", "has_family"]
SYNTHETIC_NOTE = ("SYNTHETIC: the SIM-farm cards (is_sim_farm=1, customerID 'SYNFARM-…') are generated in code "
                  "with a fixed seed and injected into the real IBM Telco customers; no public data labels SIM farms.")


def usage_features(df: pd.DataFrame) -> pd.DataFrame:
    """Per-subscriber usage profile derived from Telco columns."""
    require_columns(df, TELCO_COLUMNS, "telco table")
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


PROFILES = ("auto", "telco", "columns")


def _prf(y: np.ndarray, flag: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(flag & (y == 1)))
    p = tp / max(float(flag.sum()), 1.0)
    r = tp / max(float((y == 1).sum()), 1.0)
    return {"f1": 0.0 if p + r == 0 else 2 * p * r / (p + r), "precision": p, "recall": r,
            "flagged_share": float(flag.mean())}


def _random_flags(y: np.ndarray, share: float) -> dict[str, float]:
    """Expected precision/recall/F1 of flagging ``share`` of the rows at random (exact, no draw)."""
    p, r = float(np.mean(y == 1)), float(share)
    return {"f1": 0.0 if p + r == 0 else 2 * p * r / (p + r), "precision": p, "recall": r, "flagged_share": r}


def silhouette(Z: np.ndarray, lab: np.ndarray, seed: int, n: int = 2000) -> float:
    """Euclidean silhouette on up to ``n`` rows (seeded sample); 0 when fewer than two clusters show."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(Z), min(n, len(Z)), replace=False)
    k = len(np.unique(lab[idx]))
    if k < 2 or k >= len(idx):
        return 0.0
    return float(silhouette_score(Z[idx], lab[idx]))


def shuffled(Z: np.ndarray, seed: int) -> np.ndarray:
    """Each column permuted on its own: the same marginals, no joint structure (the null table)."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.permutation(Z[:, j]) for j in range(Z.shape[1])])


_ROLES = (
    Role("features", kinds=("numeric", "boolean"), many=True, infer="rest",
         help_en="numeric or yes/no columns to cluster on (default: every usable one; on the IBM Telco table a "
                 "usage profile is derived from its columns)",
         help_zh="用于聚类的数值或是/否列（默认：全部可用列；IBM Telco 表上由其列派生使用特征）"),
    Role("id", kinds=("id", "categorical", "numeric", "text"), required=False, demo="customerID",
         help_en="subscriber identifier, kept in the scored table", help_zh="用户标识，评分表中保留"),
    Role("label", kinds=("boolean", "numeric", "categorical"), required=False, demo="is_sim_farm",
         help_en="optional known cases (e.g. confirmed farmed cards): only to measure the flagged cluster",
         help_zh="可选：已知案例（如已确认的养卡号），只用于衡量预警簇，不参与聚类"),
)


@register
class SimFarmKMeans(MiningModel):
    """KMeans on standardised features; the most farm-like (tightest, newest, cheapest) cluster is flagged."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="sim_farm_kmeans", name_zh="养卡预警（KMeans 聚类）", name_en="SIM-farming warning (KMeans clusters)",
        algorithm="KMeans", theme="clustering",
        application_zh="养卡预警：按使用特征聚类，找出“新入网、最低套餐、单一业务、消费一成不变”的异常号卡群",
        application_en="flag the cluster of new, cheapest, single-service cards with unchanging spend (SIM farms)",
        inputs="any table with numeric usage columns (features); optional id; optional label of known cases "
               "only to measure the flagged cluster (the demo: IBM Telco plus SYNTHETIC farmed cards)",
        metrics=("silhouette", "flagged_share"), dataset="telco", synthetic=True, task="clustering",
        roles=_ROLES,
        presets=(
            Preset("sim_farm", "养卡预警", "SIM-farming warning", {"n_clusters": 20},
                   note_en="Flags the most farm-like cluster without labels. The demo's farmed cards are "
                           "SYNTHETIC (no public data labels SIM farms); on your table the tightest cluster of "
                           "0.5-25 % of rows is flagged, and a bound label of known cases measures it.",
                   note_zh="不看标签找出最像养卡的簇。演示数据中的养卡号为合成数据（没有公开的养卡标注数据）；在您的表上，"
                           "预警簇是占 0.5-25% 行、最紧密的簇，绑定已知案例列（label）即可衡量其准确率。"),
            Preset("unusual_cards", "异常号卡聚类", "Unusual-card clusters",
                   {"n_clusters": 10, "usage_profile": "columns"},
                   note_en="Plain KMeans on your numeric columns; the flagged cluster is the tightest group of "
                           "near-identical rows, a lead for review, not a verdict.",
                   note_zh="在您的数值列上做 KMeans；预警簇是最紧密的一群近乎相同的行，是待核查线索而非结论。"),
            Preset("kmeans_segments", "客户细分（KMeans）", "Customer segmentation (KMeans)",
                   {"n_clusters": 6, "usage_profile": "columns"},
                   note_en="Segments by numeric usage; read the cluster profiles, the flag is incidental.",
                   note_zh="按数值使用特征分群；请看各簇画像，预警标记仅供参考。"),
        ))

    def __init__(self, n_clusters: int = 20, features: Any = None, id: str | None = None, label: str | None = None,
                 positive: Any = None, usage_profile: str = "auto", test_size: float = 0.3, seed: int = 0,
                 farm_share: float = 0.04):
        self.n_clusters = n_clusters
        self.features = features
        self.id = id
        self.label = label
        self.positive = positive
        self.usage_profile = usage_profile
        self.test_size = test_size
        self.seed = seed
        self.farm_share = farm_share
        # cheap checks, values stored unchanged (sklearn's clone keeps working): a bad option is a
        # 400 when the run starts, not a failed job
        check_int(n_clusters, "n_clusters", 2)
        check_fraction(test_size, "test_size")
        if usage_profile not in PROFILES:
            raise InvalidRequest(f"usage_profile must be one of {', '.join(PROFILES)}, got {usage_profile!r}",
                                 param="usage_profile")

    def load_demo(self) -> pd.DataFrame:
        return inject_sim_farm(datasets.load_telco(), share=self.farm_share)

    # -- binding: the Telco usage profile (demo) or the user's columns -------------------------

    def bind(self, df: pd.DataFrame):
        """The roles, plus this family's rule: the Telco usage profile on the demo's columns, else the
        user's columns without near-duplicates -- every engine (local, Spark) sees this binding."""
        if not isinstance(df, pd.DataFrame):
            raise InvalidRequest(f"{self.info.key} takes a table, got {type(df).__name__}")
        if self.usage_profile not in PROFILES:
            raise InvalidRequest(f"usage_profile must be one of {', '.join(PROFILES)}, got {self.usage_profile!r}",
                                 param="usage_profile")
        b = super().bind(df)
        given = self.features not in (None, [], ())
        telco_ok = all(c in df.columns for c in TELCO_COLUMNS)
        if self.usage_profile == "telco":
            require_columns(df, TELCO_COLUMNS, "usage_profile='telco' (the IBM Telco usage profile)")
        mode = "telco" if self.usage_profile == "telco" or (self.usage_profile == "auto" and telco_ok and not given) \
            else "columns"
        if mode == "telco":
            b.columns["features"] = list(TELCO_COLUMNS)
            b.dropped = {}
            b.kinds = {c: column_kind(df[c], c) for c in b.used()}
        else:
            drop_redundant(b, df, given)
        self.mode_ = mode
        return b

    def _design(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.mode_ == "telco":
            return usage_features(df)
        return numeric_frame(df, self.binding_["features"])

    def _z(self, df: pd.DataFrame) -> np.ndarray:
        F = self._design(df)
        return self.scaler_.transform(F.fillna(self.medians_).to_numpy(dtype=float))

    def fit(self, X: Any, y: Any = None) -> "SimFarmKMeans":
        self.bind(X)
        return self._fit_bound(X)

    def _fit_bound(self, X: pd.DataFrame) -> "SimFarmKMeans":
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler

        k = int(self.n_clusters)
        if k < 2:
            raise InvalidRequest(f"n_clusters must be at least 2, got {self.n_clusters}", param="n_clusters")
        F = self._design(X)
        check_not_empty(F, self.info.key)
        require_rows(len(F), max(50, 5 * k), self.info.key)
        self.medians_ = F.median()
        F = F.fillna(self.medians_)
        self.feature_names_ = list(F.columns)
        self.scaler_ = StandardScaler().fit(F.to_numpy(dtype=float))
        Z = self.scaler_.transform(F.to_numpy(dtype=float))
        self.kmeans_ = KMeans(n_clusters=k, n_init=4, random_state=int(self.seed)).fit(Z)
        lab = self.kmeans_.labels_
        prof = F.groupby(lab).mean()
        tight = pd.Series([float(np.mean(np.linalg.norm(Z[lab == c] - self.kmeans_.cluster_centers_[c], axis=1)))
                           for c in prof.index], index=prof.index)
        size = pd.Series(np.bincount(lab, minlength=k), index=range(k)).reindex(prof.index)
        z = lambda s: (s - s.mean()) / (s.std(ddof=0) + 1e-9)  # noqa: E731
        if self.mode_ == "telco":
            # Farm-likeness of each cluster, label-free: uniform (tight), new, cheap, few services,
            # no spend drift. Each term is a z-score over clusters so none dominates by units.
            score = -z(tight) - z(prof["tenure"]) - z(prof["MonthlyCharges"]) - z(prof["n_services"]) \
                - z(prof["spend_drift"].abs()) - z(prof["has_family"])
            score[size < 0.005 * len(F)] = -np.inf  # a handful of cards is noise, not a farm
        else:
            # Any table: a farm is many near-identical rows -- the tightest cluster that is neither
            # noise (< 0.5 %) nor the bulk of the base (> 25 %).
            score = -z(tight)
            score[(size < 0.005 * len(F)) | (size > 0.25 * len(F))] = -np.inf
        if not np.isfinite(score).any():
            score = -z(tight)
        self.cluster_profile_ = prof.assign(size=size, tightness=tight, farm_score=score)
        self.flagged_cluster_ = int(score.idxmax())
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.kmeans_.predict(self._z(X)) == self.flagged_cluster_).astype(int)

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Every input column plus cluster, flag and distance to the flagged centre (flagged, closest first)."""
        Z = self._z(df)
        cl = self.kmeans_.predict(Z)
        dist = np.linalg.norm(Z - self.kmeans_.cluster_centers_[self.flagged_cluster_], axis=1)
        out = with_columns(df, cluster=cl, flagged=(cl == self.flagged_cluster_).astype(int),
                           distance_to_flagged_centre=dist)
        return out.sort_values(["flagged", "distance_to_flagged_centre"], ascending=[False, True],
                               kind="stable").reset_index(drop=True)

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        from sklearn.cluster import KMeans

        b = self.bind(data)
        require_rows(len(data), max(50, 5 * int(self.n_clusters)), self.info.key)
        lv = LabelView(data, b.get("label"), self.positive)
        seed = int(self.seed)
        tr, te = split(len(data), float(self.test_size), seed, lv.codes if lv.binary else None)
        t0 = time.perf_counter()
        self._fit_bound(data.iloc[tr])
        fit_s = time.perf_counter() - t0
        test = data.iloc[te]
        Ztr, Zte = self._z(data.iloc[tr]), self._z(test)
        cl = self.kmeans_.predict(Zte)
        flag = cl == self.flagged_cluster_
        null = KMeans(n_clusters=int(self.n_clusters), n_init=4, random_state=seed).fit(shuffled(Ztr, seed))
        Zte_null = shuffled(Zte, seed + 1)
        prof = self.cluster_profile_
        tight_ratio = float(prof["tightness"].loc[self.flagged_cluster_] / max(prof["tightness"].median(), 1e-9))
        metrics = {"silhouette": silhouette(Zte, cl, seed), "flagged_share": float(flag.mean()),
                   "flagged_tightness_ratio": tight_ratio}
        baseline = {"silhouette": silhouette(Zte_null, null.predict(Zte_null), seed)}
        base_names = ["silhouette: KMeans on the same columns shuffled independently (no joint structure)"]
        feats = list(self.feature_names_)
        synthetic = self.mode_ == "telco" and "is_sim_farm" in data.columns and b.get("label") == "is_sim_farm"
        if lv.binary:
            y = lv.y01.astype(int)
            metrics.update(_prf(y[te], flag))
            if self.mode_ == "telco":
                # the single-threshold rule fraud teams start with -- "new card" (tenure <= 3)
                baseline.update(_prf(y[te], to_numeric(test["tenure"], "tenure").to_numpy() <= 3))
                base_names.append("f1/precision/recall: rule tenure <= 3 months")
            else:
                baseline.update(_random_flags(y[te], float(flag.mean())))
                base_names.append("f1/precision/recall: the same share of rows flagged at random (expected)")
        else:
            baseline["flagged_share"] = metrics["flagged_share"]
        rounded = prof.round(3)
        notes = []
        if synthetic:
            notes.append(SYNTHETIC_NOTE)
        if self.mode_ == "telco":
            notes.append("Usage profile derived from the IBM Telco columns (tenure, charges, contract, services, "
                         "payment); the flagged cluster is chosen without labels (most uniform, newest, cheapest, "
                         "fewest services, no spend drift, no family).")
        else:
            notes.append(f"KMeans (k={int(self.n_clusters)}) on {len(feats)} standardised column(s) of your table: "
                         f"{', '.join(feats[:12])}{' …' if len(feats) > 12 else ''}; missing values filled with the "
                         "training median. The flagged cluster is the tightest one holding 0.5-25 % of the rows "
                         "(many near-identical rows, as farmed cards are), chosen without labels.")
        if lv.column:
            notes.append(f"The {lv.describe()} is used only to score the flagged cluster, never to build it.")
        else:
            notes.append("No label bound: the run is judged without labels (silhouette against the shuffled table); "
                         "bind label=COLUMN of known cases to measure precision and recall of the flag.")
        notes.append("Baseline: " + "; ".join(base_names) + ".")
        expl = {"mode": self.mode_, "features": feats, "flagged_cluster": self.flagged_cluster_,
                "cluster_profiles": {str(k): {c: (float(v) if np.isfinite(v) else None) for c, v in row.items()}
                                     for k, row in rounded.iterrows()},
                "fit_seconds": round(fit_s, 3),
                "split": {"train": int(len(tr)), "holdout": int(len(te)),
                          "protocol": f"{'stratified on the label' if lv.binary else 'random'} hold-out of "
                                      f"{float(self.test_size):.0%} (seeded)"},
                "synthetic": bool(synthetic), "notes": notes}
        names = {self.flagged_cluster_: f"预警簇 flagged cluster {self.flagged_cluster_}"}
        plots_ = {"clusters": pca_scatter(Zte, cl, "聚类（主成分投影）Clusters (PCA projection, hold-out)", names, seed),
                  "cluster_profiles": plots.table(
                      ["cluster", "size", "tightness", *feats[:8]],
                      [[int(k), int(r["size"]), r["tightness"], *[r[c] for c in feats[:8]]]
                       for k, r in rounded.sort_values("farm_score", ascending=False).iterrows()],
                      "各簇画像（按可疑程度排序）Cluster profiles, most suspicious first"),
                  "vs_baseline": plots.compare({k: v for k, v in metrics.items()
                                                if k in baseline and k != "flagged_share"},
                                               baseline, "模型与基线 Model vs baseline", "; ".join(base_names))}
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="; ".join(base_names),
                          explanation=expl, charts={"clusters": self._draw(test, Zte, cl, lv, te)}, plots=plots_)

    def _draw(self, test: pd.DataFrame, Zte: np.ndarray, cl: np.ndarray, lv: LabelView, te: np.ndarray) -> bytes:
        fig, ax = charts.figure(6.4, 4.6)
        flag = cl == self.flagged_cluster_
        if self.mode_ == "telco":
            F = usage_features(test)
            x, y = F["tenure"].to_numpy(), F["MonthlyCharges"].to_numpy()
            ax.set_xlabel("在网月数 tenure (months)")
            ax.set_ylabel("月费 MonthlyCharges")
        else:
            from sklearn.decomposition import PCA

            P = PCA(2, random_state=0).fit_transform(Zte) if Zte.shape[1] >= 2 else np.column_stack(
                [Zte[:, 0], np.zeros(len(Zte))])
            x, y = P[:, 0], P[:, 1]
            ax.set_xlabel("主成分 1 PC1")
            ax.set_ylabel("主成分 2 PC2")
        ax.scatter(x[~flag], y[~flag], s=4, c="#95a5a6", alpha=0.5, label="其他 other")
        ax.scatter(x[flag], y[flag], s=8, c="#e74c3c", label="预警簇 flagged cluster")
        if lv.binary:
            yy = lv.y01[te] == 1
            ax.scatter(x[yy], y[yy], s=22, facecolors="none", edgecolors="black", linewidths=0.6,
                       label=f"已知案例 known cases ({lv.column})")
        ax.set_title("养卡预警 KMeans" + (" (合成注入数据 SYNTHETIC injection)" if self.mode_ == "telco" else ""))
        ax.legend(fontsize=7)
        return charts.to_png(fig)


# KModes and EM segments (registered on import; re-exported for old imports)
from zhinao.analytics.catalog.segments import (GMM_FEATURES, KMODES_COLUMNS, GaussianMixtureSegments,  # noqa: E402
                                               KModesSegments)

__all__ = ["GMM_FEATURES", "KMODES_COLUMNS", "SYNTHETIC_NOTE", "TELCO_COLUMNS", "USAGE_FEATURES",
           "GaussianMixtureSegments", "KModesSegments", "SimFarmKMeans", "inject_sim_farm", "silhouette",
           "shuffled", "usage_features"]
