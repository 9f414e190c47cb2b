"""客户细分 (customer segmentation) with KModes and EM, on any table.

- :class:`KModesSegments` (KModes): segments over categorical attributes (contract,
  services, payment … or whatever the user's categorical columns are), with a profile per
  segment (the attribute values that set it apart); judged by a matching-dissimilarity
  silhouette on the hold-out against random segments of the same sizes.
- :class:`GaussianMixtureSegments` (EM): a Gaussian mixture on numeric columns (spend,
  tenure, minutes …), the number of components chosen by BIC; judged by hold-out
  log-likelihood against a single Gaussian (k=1).

Both take an optional ``label`` column (churn, a known student flag …) that only
*describes* the segments — its rate per segment, written as people write it (True/False,
是/否, 1/0, Yes/No; :func:`roles.binary_target`) — and never builds them.
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
                                                 drop_few_levels, drop_redundant,
                                                 mode_profile, numeric_frame, pca_scatter, split, with_columns)
from zhinao.analytics.catalog.protocol import require_rows
from zhinao.analytics.catalog.roles import Preset, Role, show
from zhinao.errors import InvalidRequest

KMODES_COLUMNS = ["gender", "SeniorCitizen", "Partner", "Dependents", "PhoneService", "MultipleLines",
                  "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport",
                  "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod"]
GMM_FEATURES = ["tenure", "MonthlyCharges", "TotalCharges"]
_MISSING = "∅"


def _id_role() -> Role:
    return Role("id", kinds=("id", "categorical", "numeric", "text"), required=False, demo="customerID",
                help_en="customer identifier, kept in the scored table", help_zh="客户标识，评分表中保留")


def _label_role() -> Role:
    return Role("label", kinds=("boolean", "categorical", "numeric"), required=False, demo="Churn", infer="name",
                help_en="optional column that only describes the segments (e.g. churn: its rate per segment); "
                        "never used to build them",
                help_zh="可选：只用于描述各细分的列（如是否流失：各细分的比例），不参与分群")


def _matching_silhouette(codes: np.ndarray, seg: np.ndarray, n: int = 1500, seed: int = 0) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(seg)) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(codes), min(n, len(codes)), replace=False)
    if not 2 <= len(np.unique(seg[idx])) < len(idx):
        return 0.0
    return float(silhouette_score(codes[idx], seg[idx], metric="hamming"))


def _label_cell(lv: LabelView, rows: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    """What the label says about one segment: its positive rate (binary) or its commonest class."""
    if not lv.column or not m.any():
        return {}
    if lv.binary:
        return {"label_rate": round(float(lv.y01[rows][m].mean()), 3)}
    codes = lv.codes[rows][m]
    top = np.bincount(codes).argmax()
    return {"label_top_class_share": round(float(np.mean(codes == top)), 3)}


def _not_a_table(key: str, data: Any) -> None:
    if not isinstance(data, pd.DataFrame):
        raise InvalidRequest(f"{key} takes a table, got {type(data).__name__}")


@register
class KModesSegments(MiningModel):
    """KModes on categorical attributes (matching dissimilarity), Cao initialisation."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="segments_kmodes", name_zh="客户细分（KModes）", name_en="Customer segmentation (KModes)",
        algorithm="KModes", theme="clustering",
        application_zh="客户细分：按合约、业务、付费方式等类别属性把客户分群，给出每群画像与（可选）标签比例如离网率",
        application_en="segment customers by categorical attributes (contract, services, payment …); profile and "
                       "optional label rate (e.g. churn) per segment",
        inputs="any table with categorical or yes/no columns (features); optional id; optional label (e.g. churn) "
               "only to describe the segments",
        metrics=("silhouette_matching",), dataset="telco", task="clustering",
        roles=(Role("features", kinds=("categorical", "boolean"), many=True, infer="rest",
                    demo=tuple(KMODES_COLUMNS),
                    help_en="categorical or yes/no columns to segment on (default: every usable one)",
                    help_zh="用于分群的类别或是/否列（默认：全部可用列）"),
               _id_role(), _label_role()),
        presets=(
            Preset("segmentation", "客户细分", "Customer segmentation", {"n_clusters": 4},
                   note_en="Segments by categorical attributes; bind label= (e.g. churn) to see its rate per segment.",
                   note_zh="按类别属性分群；绑定 label（如是否流失）可看各细分的比例。"),
            Preset("students", "学生客户识别", "Student customer identification", {"n_clusters": 6},
                   note_en="Segmentation framed for finding student-like segments: bind label= a column of known "
                           "students to see which segments concentrate them. It ranks segments to target, it does "
                           "not classify individuals; the demo data has no student column.",
                   note_zh="以分群寻找学生类客户：绑定已知学生列（label）即可看哪些细分集中了学生。它给出可营销的细分，"
                           "并不判定个人是否学生；演示数据中没有学生标注列。"),
        ))

    def __init__(self, n_clusters: int = 4, features: Any = None, id: str | None = None, label: str | None = None,
                 positive: Any = None, test_size: float = 0.3, seed: int = 0):
        self.n_clusters = n_clusters
        self.features = features
        self.id = id
        self.label = label
        self.positive = positive
        self.test_size = test_size
        self.seed = seed
        check_int(n_clusters, "n_clusters", 2)  # at construction: a 400 when the run starts
        check_fraction(test_size, "test_size")

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    def _cats(self, df: pd.DataFrame) -> pd.DataFrame:
        cols = list(self.binding_["features"])
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise InvalidRequest(f"the table lacks feature column(s) {', '.join(map(repr, missing))} the segments "
                                 f"were built on; columns: {', '.join(map(str, df.columns[:30]))}", param="features")
        C = df[cols]
        return C.astype(object).where(C.notna(), _MISSING).astype(str)

    def fit(self, X: Any, y: Any = None) -> "KModesSegments":
        _not_a_table(self.info.key, X)
        self.bind(X)
        return self._fit_bound(X)

    def _fit_bound(self, X: pd.DataFrame) -> "KModesSegments":
        from kmodes.kmodes import KModes

        if int(self.n_clusters) < 2:
            raise InvalidRequest(f"n_clusters must be at least 2, got {self.n_clusters}", param="n_clusters")
        C = self._cats(X)
        require_rows(len(C), 10 * int(self.n_clusters), self.info.key)
        self.km_ = KModes(n_clusters=int(self.n_clusters), init="Cao", n_init=1,
                          random_state=int(self.seed)).fit(C.to_numpy())
        self.modes_ = pd.DataFrame(self.km_.cluster_centroids_, columns=list(C.columns))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.km_.predict(self._cats(X).to_numpy())

    supports_predict = True

    def predict_table(self, df: pd.DataFrame) -> pd.DataFrame:
        """Every input column plus the segment of each row."""
        return with_columns(df, segment=self.predict(df))

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        _not_a_table(self.info.key, data)
        b = self.bind(data)
        require_rows(len(data), max(20, 10 * int(self.n_clusters)), self.info.key)
        lv = LabelView(data, b.get("label"), self.positive)
        seed = int(self.seed)
        tr, te = split(len(data), float(self.test_size), seed, lv.codes if lv.binary else None)
        t0 = time.perf_counter()
        self._fit_bound(data.iloc[tr])
        fit_s = time.perf_counter() - t0
        test = data.iloc[te]
        C = self._cats(test).reset_index(drop=True)
        seg = self.predict(test)
        codes = C.apply(lambda c: pd.factorize(c)[0]).to_numpy()
        rand = np.random.default_rng(seed).permutation(seg)  # same segment sizes, no structure
        metrics = {"silhouette_matching": _matching_silhouette(codes, seg, seed=seed), **lv.stats(seg, te)}
        baseline = {"silhouette_matching": _matching_silhouette(codes, rand, seed=seed), **lv.stats(rand, te)}
        prof = []
        for k in range(int(self.n_clusters)):
            m = seg == k
            prof.append({"segment": k, "size": int(m.sum()), "share": round(float(m.mean()), 3),
                         **_label_cell(lv, te, m),
                         "distinctive": mode_profile(C, m) if m.any() else {},
                         "mode": {c: str(v) for c, v in list(self.modes_.iloc[k].items())[:8]}})
        feats = list(C.columns)
        notes = [f"KModes (k={int(self.n_clusters)}, Cao initialisation) on {len(feats)} categorical column(s): "
                 f"{', '.join(feats[:12])}{' …' if len(feats) > 12 else ''}; a missing value is a category of its own.",
                 "Silhouette uses the matching (Hamming) dissimilarity on up to 1,500 hold-out rows.",
                 "Profiles: each segment's attribute values whose share in the segment most exceeds their share "
                 "overall.",
                 "Baseline: the same segment sizes assigned at random."]
        if lv.column:
            notes.insert(1, f"The {lv.describe()} is not used to build segments; it only judges how actionable "
                            "they are (mutual information, range of its rate across segments).")
        if b.dropped:
            notes.append("Left out: " + "; ".join(f"{c} ({r})" for c, r in list(b.dropped.items())[:10]) + ".")
        expl = {"features": feats, "label": lv.column, "positive": lv.positive, "segments": prof,
                "fit_seconds": round(fit_s, 3),
                "split": {"train": int(len(tr)), "holdout": int(len(te)),
                          "protocol": f"{'stratified on the label, ' if lv.binary else 'random, '}"
                                      f"{float(self.test_size):.0%} hold-out (seeded)"},
                "notes": notes}
        rate_head = f"{lv.column}={show(lv.positive)} rate" if lv.binary else "label top-class share"
        rows = [[p["segment"], p["size"], p.get("label_rate", p.get("label_top_class_share")),
                 "; ".join(f"{c}: {v}" for c, v in p["distinctive"].items())] for p in prof]
        onehot = pd.get_dummies(C).to_numpy(dtype=float)
        plots_ = {"segments": plots.table(["segment", "size", rate_head if lv.column else "—", "distinctive values"],
                                          rows, "细分画像 Segment profiles (hold-out)"),
                  "clusters": pca_scatter(onehot, seg, "细分（独热编码主成分投影）Segments (PCA of one-hot)", seed=seed),
                  "vs_baseline": plots.compare(metrics, baseline, "模型与基线 Model vs baseline",
                                               "random segments, same sizes")}
        fig, ax = charts.figure(6.0, 3.6)
        names = [f"细分 {p['segment']}\n(n={p['size']})" for p in prof]
        if lv.binary:
            ax.bar(names, [p.get("label_rate") or 0 for p in prof], color="#2e86c1")
            ax.axhline(float(lv.y01[te].mean()), color="grey", ls="--", label="整体 overall")
            ax.set_ylabel(f"{lv.column} = {show(lv.positive)}")
            ax.legend()
        else:
            ax.bar(names, [p["size"] for p in prof], color="#2e86c1")
            ax.set_ylabel("规模 size")
        ax.set_title("KModes 客户细分 (hold-out)")
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="random segments, same sizes",
                          explanation=expl,
                          charts={"segment_churn" if lv.binary else "segment_sizes": charts.to_png(fig)},
                          plots=plots_)


@register
class GaussianMixtureSegments(MiningModel):
    """EM-fitted Gaussian mixture; k by BIC on the training part."""

    info: ClassVar[ModelInfo] = ModelInfo(
        key="segments_em", name_zh="客户细分（EM 高斯混合）", name_en="Customer segmentation (EM Gaussian mixture)",
        algorithm="EM (Gaussian mixture)", theme="clustering",
        application_zh="客户细分：用 EM 算法拟合高斯混合模型，按在网时长与消费等数值列自动分群，群数由 BIC 选定",
        application_en="soft segments of numeric columns (tenure, spend, minutes …) fitted by EM; number of "
                       "segments chosen by BIC",
        inputs="any table with numeric columns (features); optional id; optional label (e.g. churn) only to "
               "describe the segments",
        metrics=("holdout_loglik", "bic"), dataset="telco", task="clustering",
        roles=(Role("features", kinds=("numeric",), many=True, infer="rest", demo=tuple(GMM_FEATURES),
                    help_en="numeric columns to segment on (default: every usable numeric column with more than "
                            "5 distinct values)",
                    help_zh="用于分群的数值列（默认：全部取值多于 5 个的可用数值列）"),
               _id_role(), _label_role()),
        presets=(
            Preset("segmentation", "客户细分", "Customer segmentation", {},
                   note_en="Soft segments of spend and usage; bind label= (e.g. churn) to see its rate per segment.",
                   note_zh="按消费与使用量软分群；绑定 label（如是否流失）可看各细分的比例。"),
            Preset("students", "学生客户识别", "Student customer identification", {"max_components": 10},
                   note_en="Finer usage segments in which to look for student-like behaviour: bind label= a column "
                           "of known students to see where they concentrate. Segments to target, not a classifier "
                           "of individuals; the demo data has no student column.",
                   note_zh="更细的使用量分群，用于寻找学生类行为：绑定已知学生列（label）可看其集中在哪些细分。"
                           "给出可营销的细分，不判定个人；演示数据中没有学生标注列。"),
        ))

    def __init__(self, features: Any = None, id: str | None = None, label: str | None = None, positive: Any = None,
                 max_components: int = 8, log1p: bool = True, test_size: float = 0.3, seed: int = 0):
        self.features = features
        self.id = id
        self.label = label
        self.positive = positive
        self.max_components = max_components
        self.log1p = log1p
        self.test_size = test_size
        self.seed = seed
        check_int(max_components, "max_components", 1)  # at construction: a 400 when the run starts
        check_fraction(test_size, "test_size")

    def load_demo(self) -> pd.DataFrame:
        return datasets.load_telco()

    def bind(self, df: Any):
        """The roles, plus this family's rule: inferred codes (<= 5 values) and near-duplicate columns
        are left out -- every engine (local, Spark) sees this binding."""
        _not_a_table(self.info.key, df)
        b = super().bind(df)
        given = self.features not in (None, [], ())
        drop_few_levels(b, df, given)
        drop_redundant(b, df, given)
        return b

    def _raw(self, df: pd.DataFrame) -> pd.DataFrame:
        return numeric_frame(df, self.binding_["features"])

    def _matrix(self, df: pd.DataFrame) -> np.ndarray:
        F = self._raw(df).fillna(self.medians_)
        for c in self.log_columns_:
            # spend, minutes and tenure are right-skewed; log makes the Gaussian components meaningful
            F[c] = np.log1p(F[c].clip(lower=0))
        return F.to_numpy(dtype=float)

    def fit(self, X: Any, y: Any = None) -> "GaussianMixtureSegments":
        self.bind(X)
        return self._fit_bound(X)

    def _fit_bound(self, X: pd.DataFrame) -> "GaussianMixtureSegments":
        from sklearn.mixture import GaussianMixture
        from sklearn.preprocessing import StandardScaler

        F = self._raw(X)
        check_not_empty(F, self.info.key)
        require_rows(len(F), 50, self.info.key)
        self.medians_ = F.median()
        self.log_columns_ = [c for c in F.columns if bool(self.log1p) and float(F[c].min()) >= 0]
        M = self._matrix(X)
        self.scaler_ = StandardScaler().fit(M)
        Z = self.scaler_.transform(M)
        self.bic_path_ = {}
        best = None
        for k in range(1, max(1, int(self.max_components)) + 1):
            gm = GaussianMixture(k, covariance_type="full", random_state=int(self.seed), n_init=1,
                                 reg_covar=1e-4).fit(Z)
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
        """Every input column plus segment, its probability and the row's log-likelihood."""
        Z = self.scaler_.transform(self._matrix(df))
        p = self.gmm_.predict_proba(Z)
        return with_columns(df, segment=p.argmax(1), probability=p.max(1), loglik=self.gmm_.score_samples(Z))

    def evaluate(self, data: pd.DataFrame) -> Evaluation:
        from sklearn.mixture import GaussianMixture

        b = self.bind(data)
        lv = LabelView(data, b.get("label"), self.positive)
        seed = int(self.seed)
        require_rows(len(data), 72, self.info.key)  # 50 training rows at a 30 % hold-out
        tr, te = split(len(data), float(self.test_size), seed)
        t0 = time.perf_counter()
        self._fit_bound(data.iloc[tr])
        fit_s = time.perf_counter() - t0
        Ztr = self.scaler_.transform(self._matrix(data.iloc[tr]))
        Zte = self.scaler_.transform(self._matrix(data.iloc[te]))
        one = GaussianMixture(1, covariance_type="full", random_state=seed, reg_covar=1e-4).fit(Ztr)
        metrics = {"holdout_loglik": float(self.gmm_.score(Zte)), "bic": self.bic_,
                   "n_components": float(self.n_components_)}
        baseline = {"holdout_loglik": float(one.score(Zte)), "bic": float(one.bic(Ztr)), "n_components": 1.0}
        seg = self.gmm_.predict(Zte)
        metrics.update(lv.stats(seg, te))
        raw = self._raw(data.iloc[te])
        feats = list(raw.columns)
        comps = []
        for k in range(self.n_components_):
            m = seg == k
            row = {"segment": k, "weight": round(float(self.gmm_.weights_[k]), 3), "holdout_size": int(m.sum())}
            for c in feats:
                row[f"median_{c}"] = round(float(raw[c][m].median()), 2) if m.any() and raw[c][m].notna().any() \
                    else None
            row.update(_label_cell(lv, te, m))
            comps.append(row)
        notes = [f"EM Gaussian mixture (full covariance, k=1..{int(self.max_components)} by BIC) on {len(feats)} "
                 f"numeric column(s): {', '.join(feats[:12])}{' …' if len(feats) > 12 else ''}.",
                 (f"log1p applied to the non-negative columns ({', '.join(self.log_columns_[:12])}), then "
                  "standardised" if self.log_columns_ else "Columns standardised (no log transform)")
                 + "; missing values filled with the training median. The hold-out log-likelihood is the mean per row.",
                 "Baseline: a single Gaussian (k=1)."]
        if lv.column:
            notes.insert(1, f"The {lv.describe()} only describes the segments (its rate per segment); "
                            "it is not used to fit them.")
        if b.dropped:
            notes.append("Left out: " + "; ".join(f"{c} ({r})" for c, r in list(b.dropped.items())[:10]) + ".")
        expl = {"features": feats, "label": lv.column, "positive": lv.positive,
                "bic_by_k": {str(k): round(v, 1) for k, v in self.bic_path_.items()}, "segments": comps,
                "fit_seconds": round(fit_s, 3),
                "split": {"train": int(len(tr)), "holdout": int(len(te)),
                          "protocol": f"random {float(self.test_size):.0%} hold-out (seeded)"},
                "notes": notes}
        cols = ["segment", "weight", "holdout_size", *[f"median_{c}" for c in feats[:8]]]
        if lv.column:
            cols.append("label_rate" if lv.binary else "label_top_class_share")
        plots_ = {"segments": plots.table(cols, [[r.get(c) for c in cols] for r in comps],
                                          "细分画像 Segment profiles (hold-out)"),
                  "clusters": pca_scatter(Zte, seg, "细分（主成分投影）Segments (PCA projection, hold-out)", seed=seed),
                  "bic": {"type": "line", "title": "BIC 选择群数 BIC by number of components", "x_label": "k",
                          "y_label": "BIC", "series": [{"name": "BIC", "points": [[int(k), round(v, 3)] for k, v
                                                                                  in self.bic_path_.items()]}]},
                  "vs_baseline": plots.compare({"holdout_loglik": metrics["holdout_loglik"]},
                                               {"holdout_loglik": baseline["holdout_loglik"]},
                                               "留出集对数似然 Hold-out log-likelihood", "single Gaussian (k=1)")}
        fig, ax = charts.figure(6.0, 3.6)
        ax.plot(list(self.bic_path_), list(self.bic_path_.values()), "o-")
        ax.axvline(self.n_components_, color="#c0392b", ls="--", label=f"chosen k={self.n_components_}")
        ax.set_xlabel("components k")
        ax.set_ylabel("BIC")
        ax.set_title("EM 高斯混合: BIC 选择群数")
        ax.legend()
        return Evaluation(metrics=metrics, baseline=baseline, baseline_name="single Gaussian (k=1)",
                          explanation=expl, charts={"bic": charts.to_png(fig)}, plots=plots_)


__all__ = ["GMM_FEATURES", "KMODES_COLUMNS", "GaussianMixtureSegments", "KModesSegments"]
