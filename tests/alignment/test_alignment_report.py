"""The evaluation report on real models: the base model against itself, and the margin's sign.

Base vs itself must read a win rate of exactly 50% (every item a tie) and a KL of ~0; swapping
chosen and rejected must flip the sign of every preference margin; a model trained a few steps
away from the base must have KL > 0. Nothing is mocked: SmolLM2-135M in transformers, a reward
head initialised on its body.
"""

from __future__ import annotations

import pytest

from zhinao.alignment import datasets as ds
from zhinao.alignment.report import Evaluator, evaluate, held_out_pairs, win_rate

pytestmark = pytest.mark.slow


def test_win_rate_counts_ties_half_and_has_an_interval():
    w = win_rate([1.0, 2.0, 3.0, 0.0], [0.0, 2.0, 4.0, -1.0])
    assert (w["wins"], w["ties"], w["losses"]) == (2, 1, 1)
    assert w["win_rate"] == 0.625 and 0 < w["ci95"][0] < 0.625 < w["ci95"][1] < 1


@pytest.fixture(scope="module")
def ev_base(base_home):
    import torch

    torch.set_num_threads(1)
    ev = Evaluator(max_new_tokens=12, max_length=384)
    base = ev.policy("base", base_home / "alignment" / "base" / "smollm2-135m")
    return ev, base


def _seqcls_folder(base_home, tmp_path):
    """A reward model folder: the base body with a fresh one-output head (what RewardTrainer starts from)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from zhinao.alignment.base_models import load_tokenizer

    src = base_home / "alignment" / "base" / "smollm2-135m"
    tok = load_tokenizer(src)
    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    m.config.pad_token_id = tok.pad_token_id
    m.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    return tmp_path / "rm"


def test_base_against_itself_is_fifty_percent_and_zero_kl(ev_base, base_home, tmp_path):
    ev, base = ev_base
    pairs = held_out_pairs(limit=3)
    prompts = [ds._msgs(p.prompt) for p in pairs[:2]]
    from zhinao.alignment.report import behaviour_sets

    sets = behaviour_sets(limit=1)
    rep = evaluate(ev, base, {"self": base}, base, _seqcls_folder(base_home, tmp_path), pairs, prompts, sets)
    for judge in ("reward_model", "preference_split"):
        w = rep["win_rate"]["over_self"][judge]
        assert w["win_rate"] == 0.5 and w["ties"] == w["n"] > 0, w
    assert abs(rep["kl"]["per_answer"]) < 1e-4 and rep["kl"]["tokens"] > 0
    assert rep["reward_model"]["n"] == 3
    assert set(rep["behaviour"]["base"]) == {"false_premise", "refusal"}
    assert rep["behaviour"]["base"]["refusal"]["n"] == 1


def test_swapping_chosen_and_rejected_flips_every_margin(ev_base):
    ev, base = ev_base
    pairs = held_out_pairs(limit=3)
    m = [ev.logp(base, ds._msgs(p.prompt), p.chosen) - ev.logp(base, ds._msgs(p.prompt), p.rejected) for p in pairs]
    s = [ev.logp(base, ds._msgs(p.prompt), p.rejected) - ev.logp(base, ds._msgs(p.prompt), p.chosen) for p in pairs]
    assert all(abs(a) > 1e-3 for a in m)  # different answers: the base model does not score them equal
    assert all(abs(a + b) < 1e-6 for a, b in zip(m, s))
    assert win_rate(m, s)["win_rate"] == round(sum(a > 0 for a in m) / len(m), 4)
    assert win_rate(m, s)["ties"] == 0


def test_kl_is_positive_for_a_changed_model(ev_base, tmp_path):
    import torch

    ev, base = ev_base
    from zhinao.alignment.base_models import load_causal_lm

    changed = load_causal_lm(base.folder)
    with torch.no_grad():
        changed.lm_head.weight.add_(0.02 * torch.randn_like(changed.lm_head.weight))
    changed.save_pretrained(tmp_path / "changed")
    base.tok.save_pretrained(tmp_path / "changed")
    other = ev.policy("changed", tmp_path / "changed")
    msgs = ds._msgs(held_out_pairs(limit=1)[0].prompt)
    kl, n = ev.kl(other, base, msgs)
    assert n > 0 and kl > 1e-3
    assert ev.kl(base, base, msgs)[0] == pytest.approx(0.0, abs=1e-5)


def test_report_cli_on_a_model_registered_from_the_base_and_refusals(settings, base_home):
    """``zhinao align report`` end to end: a sft model that *is* the base reads 50% over the base, KL 0;
    a reward model or an unknown name is a clear error, not a traceback."""
    import json
    import shutil

    from typer.testing import CliRunner

    from zhinao.cli.align import app
    from zhinao.platform import Platform

    src = base_home / "alignment" / "base" / "smollm2-135m"
    dst = settings.home / "alignment" / "base" / "smollm2-135m"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)
    p = Platform(settings)
    p.bootstrap()
    tenant = p.tenancy.tenant_by_name("default")["id"]
    svc = p.service("alignment")
    svc.register_model(tenant, "same-as-base", stage="sft", base="smollm2-135m", path=str(dst), dataset_id=None,
                       job_id=None, config={}, metrics={})
    p.db.dispose()
    runner = CliRunner()
    r = runner.invoke(app, ["report", "same-as-base", "--limit", "1", "--max-new-tokens", "6", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["sft"] is None and rep["win_rate"]["over_base"]["preference_split"]["win_rate"] == 0.5
    assert rep["kl"]["per_answer"] == pytest.approx(0.0, abs=1e-5)
    assert "report" in svc.model(tenant, "same-as-base")["metrics"] and "reward_model" not in rep
    svc.register_model(tenant, "a-judge", stage="rm", base="smollm2-135m", path=str(dst), dataset_id=None,
                       job_id=None, config={}, metrics={})
    r = runner.invoke(app, ["report", "a-judge"])
    assert r.exit_code != 0 and "reward model" in r.output
    r = runner.invoke(app, ["report", "no-such-model"])
    assert r.exit_code != 0 and "not found" in r.output
