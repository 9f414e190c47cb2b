"""Each stage trains a few real steps on SmolLM2-135M (CPU, one thread): weights change, loss moves.

The data is arithmetic computed here (right vs wrong sums), so chosen and rejected differ in
substance and nothing is copied from a benchmark. One module-scoped service carries the
chain SFT -> reward model -> DPO / PPO, as the product runs it.
"""

from __future__ import annotations

import random

import pytest

from zhinao.alignment import datasets as ds

pytestmark = pytest.mark.slow
TENANT = 1


def _pairs(n: int, seed: int = 0) -> list[ds.Comparison]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rnd.randint(2, 40), rnd.randint(2, 40)
        wrong = a + b + rnd.choice([-3, -2, -1, 1, 2, 3])
        out.append(ds.Comparison((("user", f"What is {a} + {b}?"),), f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."))
    return out


@pytest.fixture(scope="module")
def svc(base_home, tmp_path_factory):
    import torch

    from zhinao.alignment.service import AlignmentService
    from zhinao.capability import migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database

    torch.set_num_threads(1)
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('align-db') / 'meta.db'}")
    db.migrate(migration_dirs())
    s = AlignmentService(Settings(home=base_home), db)
    pairs = _pairs(20)
    s.build_dataset(TENANT, "sums", "preference", pairs)
    s.build_dataset(TENANT, "sums-sft", "sft", [ds.Demonstration(p.prompt, p.chosen) for p in pairs])
    yield s
    db.dispose()


def _changed(a_dir, b_dir, body_only: bool = False) -> float:
    """Largest absolute difference between two checkpoints' shared weights."""
    from safetensors.torch import load_file

    a, b = load_file(f"{a_dir}/model.safetensors"), load_file(f"{b_dir}/model.safetensors")
    keys = [k for k in a if k in b and a[k].shape == b[k].shape]
    assert keys, "no shared weights to compare"
    return max(float((a[k] - b[k]).abs().max()) for k in keys)


def _base(svc):
    from zhinao.alignment.base_models import prepare

    return prepare("smollm2-135m", svc.settings)


def _loss_moved(m: dict) -> None:
    assert m["steps"] >= 3 and m["first_loss"] == m["first_loss"]  # not NaN
    assert abs(m["first_loss"] - m["last_loss"]) > 1e-3, m


def test_sft_lora_changes_weights_and_moves_the_loss(svc):
    r = svc.train(TENANT, "sft", {"dataset": "sums-sft", "output_name": "t-sft", "max_steps": 4, "save_steps": 2,
                                   "max_length": 64, "learning_rate": 1e-3})
    _loss_moved(r["metrics"])
    assert r["metrics"]["last_loss"] < r["metrics"]["first_loss"]
    assert _changed(_base(svc), r["path"]) > 1e-4
    assert svc.model(TENANT, "t-sft")["stage"] == "sft"


def test_reward_model_trains_from_the_sft_model_and_reports_pair_accuracy(svc):
    r = svc.train(TENANT, "rm", {"dataset": "sums", "base_model": "t-sft", "output_name": "t-rm", "max_steps": 4,
                                  "max_length": 64, "learning_rate": 5e-4})
    m = r["metrics"]
    _loss_moved(m)
    assert m["eval"]["n"] == 4 and 0 <= m["eval"]["pair_accuracy"] <= 1
    assert _changed(svc.model(TENANT, "t-sft")["path"], r["path"]) > 1e-4  # the body moved (LoRA merged)


def test_dpo_full_training_changes_weights(svc):
    r = svc.train(TENANT, "dpo", {"dataset": "sums", "base_model": "t-sft", "output_name": "t-dpo", "max_steps": 3,
                                   "max_length": 64, "lora": False, "learning_rate": 1e-5,
                                   "per_device_train_batch_size": 2})
    _loss_moved(r["metrics"])
    assert _changed(svc.model(TENANT, "t-sft")["path"], r["path"]) > 1e-6


def test_ppo_against_the_reward_model_records_kl_and_changes_the_policy(svc):
    r = svc.train(TENANT, "ppo", {"dataset": "sums", "base_model": "t-sft", "reward_model": "t-rm",
                                   "output_name": "t-ppo", "max_steps": 3, "max_length": 64, "response_length": 8,
                                   "learning_rate": 1e-4, "per_device_train_batch_size": 2})
    m = r["metrics"]
    assert m["steps"] == 3 and "kl" in m and "scores" in m
    assert _changed(svc.model(TENANT, "t-sft")["path"], r["path"]) > 1e-6
