"""Training as a platform job: progress recorded, cancel registers nothing, kill -9 resumes from the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from zhinao.alignment import datasets as ds

pytestmark = pytest.mark.slow
TENANT = 1

CHILD = r"""
import sys, time
import torch
torch.set_num_threads(1)
from zhinao.alignment.capability import capability
from zhinao.alignment.service import AlignmentService
from zhinao.capability import bind_jobs
from zhinao.settings import Settings
from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner
db = Database(sys.argv[1]); jobs = JobRunner(db)
svc = AlignmentService(Settings(home=sys.argv[2]), db, jobs)
bind_jobs(capability, jobs, lambda: svc)
print(svc.submit(1, "sft", {"dataset": "demos", "output_name": "resumed-sft", "max_steps": 6, "save_steps": 2,
                            "max_length": 64}), flush=True)
time.sleep(3600)
"""


def _demos(n=16):
    return [ds.Demonstration((("user", f"Spell the number {i} in digits."),), f"{i}") for i in range(n)]


def _wait(pred, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_killed_with_sigkill_resumes_from_its_last_checkpoint(base_home, tmp_path):
    from zhinao.alignment.capability import capability
    from zhinao.alignment.service import AlignmentService
    from zhinao.capability import bind_jobs, migration_dirs
    from zhinao.settings import Settings
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    url = f"sqlite:///{tmp_path / 'meta.db'}"
    db = Database(url)
    db.migrate(migration_dirs())
    svc = AlignmentService(Settings(home=base_home), db, None)
    svc.build_dataset(TENANT, "demos", "sft", _demos())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(base_home)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        job_id = int(child.stdout.readline())
        run = svc.run_dir(TENANT, f"job{job_id}")
        _wait(lambda: list((run / "checkpoints").glob("checkpoint-2")) and (run / "progress.jsonl").is_file()
              and any(json.loads(x)["step"] >= 3 for x in (run / "progress.jsonl").read_text().splitlines()),
              300, "checkpoint-2 and step 3")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    before = [json.loads(x) for x in (run / "progress.jsonl").read_text().splitlines()]
    jobs = JobRunner(db)
    svc.jobs = jobs
    bind_jobs(capability, jobs, lambda: svc)
    try:
        assert jobs.resume() == [job_id]
        job = jobs.wait(job_id, timeout=600)
    finally:
        jobs.shutdown(grace_s=30)
    assert job["status"] == "succeeded", job
    after = [json.loads(x) for x in (run / "progress.jsonl").read_text().splitlines()][len(before):]
    steps_after = [r["step"] for r in after if "loss" in r]
    assert steps_after and min(steps_after) >= 3 and max(steps_after) == 6  # continued, not started over
    assert svc.model(TENANT, "resumed-sft")["job_id"] == job_id
    db.dispose()


def test_a_cancelled_job_registers_no_model(service, base_home):
    from zhinao.settings import Settings

    service.settings = Settings(home=base_home)
    service.root = base_home / "alignment"
    service.build_dataset(TENANT, "demos-c", "sft", _demos())
    job_id = service.submit(TENANT, "sft", {"dataset": "demos-c", "output_name": "never", "max_steps": 50,
                                            "max_length": 64})
    _wait(lambda: "step 1/" in service.jobs.get(job_id)["message"], 300, "the first step")
    service.jobs.cancel(job_id, wait_s=120)
    job = service.jobs.get(job_id)
    assert job["status"] == "cancelled", job
    assert service.find_model(TENANT, "never") is None
