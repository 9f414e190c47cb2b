"""`zhinao align …` on a real installation under tmp_path: data, eval --json, a stage as a job, bad input."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from zhinao.alignment import datasets as ds
from zhinao.cli.align import app

runner = CliRunner()


def _pairs_file(path, n=12, seed=3):
    rnd = random.Random(seed)
    recs = []
    for i in range(n):
        a, b = rnd.randint(2, 60), rnd.randint(2, 60)
        recs.append(ds.Comparison((("user", f"Add {a} and {b}. [{i}]"),), f"The sum is {a + b}.",
                                  f"The sum is {a + b + rnd.choice([-2, -1, 1, 2])}."))
    ds.write_jsonl(path, recs)
    return path, recs


@pytest.fixture(scope="module")
def reward_folder(base_home, tmp_path_factory):
    """A real (untrained, seeded) reward model: SmolLM2's body with a one-output score head."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from zhinao.alignment.base_models import cache_dir, load_tokenizer, resolve
    from zhinao.settings import Settings

    torch.manual_seed(0)
    s = Settings(home=base_home)
    base = cache_dir(s, resolve("smollm2-135m", s))
    tok = load_tokenizer(base)
    m = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    m.config.pad_token_id = tok.pad_token_id
    out = tmp_path_factory.mktemp("rm") / "rm"
    m.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_eval_json_scores_a_pairs_file_and_flips_when_the_pairs_are_swapped(reward_folder, tmp_path):
    path, recs = _pairs_file(tmp_path / "pairs.jsonl")
    r = runner.invoke(app, ["eval", "--reward-model", str(reward_folder), "--pairs", str(path), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["n"] == 12 and 0 <= out["pair_accuracy"] <= 1 and out["ci95"][0] <= out["pair_accuracy"]
    swapped, _ = tmp_path / "swapped.jsonl", None
    ds.write_jsonl(swapped, [ds.Comparison(c.prompt, c.rejected, c.chosen) for c in recs])
    r2 = runner.invoke(app, ["eval", "-r", str(reward_folder), "-p", str(swapped), "--json"])
    back = json.loads(r2.stdout.strip().splitlines()[-1])
    # no ties between distinct texts: every pair the model got right is wrong once swapped
    assert back["correct"] == out["n"] - out["correct"]
    assert back["mean_margin"] == pytest.approx(-out["mean_margin"], abs=1e-3)


def test_eval_refuses_a_file_without_pairs_and_a_causal_lm(base_home, reward_folder, tmp_path):
    sft = tmp_path / "sft.jsonl"
    ds.write_jsonl(sft, [ds.Demonstration((("user", "hi"),), "hello")])
    r = runner.invoke(app, ["eval", "-r", str(reward_folder), "-p", str(sft), "--json"])
    assert r.exit_code == 2 and "no comparisons" in r.output
    from zhinao.alignment.base_models import cache_dir, resolve
    from zhinao.settings import Settings

    s = Settings(home=base_home)
    pairs, _ = _pairs_file(tmp_path / "p.jsonl", n=2)
    r = runner.invoke(app, ["eval", "-r", str(cache_dir(s, resolve("smollm2-135m", s))), "-p", str(pairs)])
    assert r.exit_code == 2 and "not a reward model" in r.output


def test_data_builds_versions_and_bad_config_is_refused_before_anything_loads(settings, tmp_path):
    path, _ = _pairs_file(tmp_path / "pairs.jsonl")
    r = runner.invoke(app, ["data", "sums", "--kind", "preference", "--from-jsonl", str(path), "--json",
                            "--export", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["version"] == 1 and row["n_train"] + row["n_eval"] == 12 and row["n_eval"] >= 1
    assert len((tmp_path / "out" / "eval.jsonl").read_text().splitlines()) == row["n_eval"]
    r = runner.invoke(app, ["data", "sums", "--kind", "preference", "--from-jsonl", str(path)])
    assert r.exit_code == 0 and "unchanged, same version" in r.output
    r = runner.invoke(app, ["data", "empty", "--kind", "sft"])  # no feedback stored yet
    assert r.exit_code == 2 and "no demonstrations" in r.output
    r = runner.invoke(app, ["sft", "--dataset", "sums", "--set", "max_stepz=3"])
    assert r.exit_code == 2 and "unknown sft config field" in r.output and "max_steps" in r.output
    r = runner.invoke(app, ["ppo", "--dataset", "sums"])
    assert r.exit_code == 2 and "reward_model is required" in r.output
    r = runner.invoke(app, ["rm", "--help-config", "--json"])
    assert r.exit_code == 0 and any(f["name"] == "center_rewards_coefficient" for f in json.loads(r.stdout))


@pytest.mark.slow
def test_sft_runs_as_a_platform_job_with_progress_and_registers_the_model(settings, base_home, tmp_path):
    from zhinao.alignment.base_models import cache_dir, resolve
    from zhinao.settings import Settings

    s = Settings(home=base_home)
    base = cache_dir(s, resolve("smollm2-135m", s))
    path, recs = _pairs_file(tmp_path / "pairs.jsonl")
    demos = tmp_path / "demos.jsonl"
    ds.write_jsonl(demos, [ds.Demonstration(c.prompt, c.chosen) for c in recs])
    assert runner.invoke(app, ["data", "demos", "--kind", "sft", "--from-jsonl", str(demos)]).exit_code == 0
    r = runner.invoke(app, ["sft", "-d", "demos", "-b", str(base), "--output-name", "cli-sft", "--set", "max_steps=3",
                            "--set", "max_length=64", "--json"])
    assert r.exit_code == 0, r.output
    job = json.loads(r.stdout)
    assert job["status"] == "succeeded" and job["result"]["model"] == "cli-sft"
    assert job["result"]["metrics"]["steps"] == 3 and "step 3/3" in r.stderr
    r = runner.invoke(app, ["models", "--json"])
    assert [m["name"] for m in json.loads(r.stdout)] == ["cli-sft"]
    r = runner.invoke(app, ["eval", "-r", "cli-sft", "-p", str(path), "--json"])  # by registered name
    assert r.exit_code == 2 and "is a sft model, not a reward model" in r.output
    r = runner.invoke(app, ["eval", "-r", "no-such-rm", "-p", str(path), "--json"])
    assert r.exit_code == 2 and "not found" in r.output
