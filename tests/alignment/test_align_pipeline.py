"""The demo pipeline's ``ci`` profile end to end on SmolLM2-135M: four models registered, a report, a deploy.

A second run must train nothing (every model's stored config equals the profile's), add no
dataset version and no model row. Real trainers, real store, the real GGUF round trip.
"""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.slow


def test_ci_profile_registers_the_four_models_and_a_rerun_duplicates_nothing(settings, base_home):
    import shutil

    import torch

    from zhinao.alignment import pipeline
    from zhinao.platform import Platform

    torch.set_num_threads(1)
    # reuse the session's converted base model (the conversion is ~20 s)
    src = base_home / "alignment" / "base" / "smollm2-135m"
    dst = settings.home / "alignment" / "base" / "smollm2-135m"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)
    p = Platform(settings)
    p.bootstrap()
    try:
        tenant = p.tenancy.tenant_by_name("default")["id"]
        svc = p.service("alignment")
        lines: list[str] = []
        r = pipeline.run(p, tenant, profile="ci", echo=lines.append)
        names = {m["name"]: m for m in svc.models(tenant)}
        assert set(pipeline.NAMES.values()) <= set(names)
        assert names["demo-rm"]["stage"] == "rm" and names["demo-ppo"]["config"]["reward_model"] == "demo-rm"
        assert set(r["stages"]) >= {"data", "sft", "rm", "dpo", "ppo", "report", "deploy"}
        rep = r["reports"]["demo-dpo"]
        assert rep["sft"] == "demo-sft" and 0 <= rep["reward_model"]["pair_accuracy"] <= 1
        assert {"over_sft", "over_base"} <= set(rep["win_rate"])
        assert rep["kl"]["per_answer"] >= 0 and rep["kl"]["tokens"] > 0
        assert "report" in svc.model(tenant, "demo-dpo")["metrics"]
        assert "demo-dpo" in p.models and r["deployed"]["demo-dpo"]["verify"]
        n_models, n_ds = len(svc.models(tenant)), len(svc.datasets(tenant))

        again = pipeline.run(p, tenant, profile="ci", report=False, echo=lines.append)
        assert again["skipped"] == ["sft", "rm", "dpo", "ppo"]
        assert all(d["reused"] for d in again["datasets"].values())
        assert again["deployed"]["demo-dpo"].get("skipped") is True
        assert (len(svc.models(tenant)), len(svc.datasets(tenant))) == (n_models, n_ds)
        assert any("up to date" in line for line in lines)
    finally:
        asyncio.run(p.models.close())
