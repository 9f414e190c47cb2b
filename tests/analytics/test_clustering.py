"""KMeans SIM-farm warning (synthetic injection), KModes and EM segmentation on IBM Telco."""

from __future__ import annotations

import numpy as np
import pytest

from zhinao.analytics import datasets
from zhinao.analytics.catalog.clustering import (GaussianMixtureSegments, KModesSegments, SimFarmKMeans,
                                                 inject_sim_farm, usage_features)
from zhinao.errors import InvalidRequest


def test_injection_is_seeded_labelled_and_synthetic():
    telco = datasets.load_telco()
    a, b = inject_sim_farm(telco), inject_sim_farm(telco)
    assert a.equals(b)
    farm = a[a["is_sim_farm"] == 1]
    assert len(farm) == round(0.04 * len(telco)) and farm["customerID"].str.startswith("SYNFARM-").all()
    assert (a["is_sim_farm"] == 0).sum() == len(telco)
    assert SimFarmKMeans.info.synthetic
    f = usage_features(a)
    assert not f.isna().any().any()


@pytest.mark.slow
def test_sim_farm_cluster_beats_threshold_rule():
    m = SimFarmKMeans()
    ev = m.evaluate(m.load_demo())
    assert ev.metrics["f1"] > ev.baseline["f1"] + 0.2
    assert ev.metrics["recall"] > 0.8 and ev.metrics["precision"] > ev.baseline["precision"]
    assert any("SYNTHETIC" in n for n in ev.explanation["notes"])
    scored = m.predict_table(m.load_demo().tail(300))
    # the injected cards sit at the tail of the table: most are flagged
    assert scored["sim_farm_flag"].sum() > 200


@pytest.mark.slow
def test_kmodes_segments_separate_churn():
    m = KModesSegments()
    ev = m.evaluate(datasets.load_telco())
    for k in ("silhouette_matching", "churn_mutual_info_bits", "churn_rate_range"):
        assert ev.metrics[k] > ev.baseline[k], k
    assert len(ev.explanation["segments"]) == 4


@pytest.mark.slow
def test_em_mixture_beats_single_gaussian():
    m = GaussianMixtureSegments(max_components=6)
    ev = m.evaluate(datasets.load_telco())
    assert ev.metrics["holdout_loglik"] > ev.baseline["holdout_loglik"]
    assert ev.metrics["bic"] < ev.baseline["bic"]
    assert m.n_components_ == min(m.bic_path_, key=m.bic_path_.get) and m.n_components_ > 1
    probs = m.predict_table(datasets.load_telco().head(50))["probability"]
    assert ((probs > 0) & (probs <= 1)).all()


def test_bad_inputs():
    telco = datasets.load_telco()
    with pytest.raises(InvalidRequest, match="is_sim_farm"):
        SimFarmKMeans().evaluate(telco)
    with pytest.raises(InvalidRequest, match="Contract"):
        usage_features(telco.drop(columns="Contract"))
    with pytest.raises(InvalidRequest, match="not numeric"):
        bad = telco.head(100).copy()
        bad["tenure"] = "many"
        GaussianMixtureSegments().fit(bad)
    with pytest.raises(InvalidRequest, match="at least"):
        KModesSegments().fit(telco.head(5))
    assert np.isfinite(usage_features(telco)["spend_drift"]).all()
