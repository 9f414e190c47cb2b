"""Fixtures for alignment: a real SQLite store with every branch migrated, the real service.

Torch and BLAS keep to one thread: the machine's two cores are shared (RLHF-NOTES: two threads
under contention slowed steps 10-25x)."""

from __future__ import annotations

import os

import pytest

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

TENANT = 1


@pytest.fixture
def store(tmp_path):
    from zhinao.capability import migration_dirs
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate(migration_dirs())
    jobs = JobRunner(db)
    yield db, jobs
    jobs.shutdown()
    db.dispose()


@pytest.fixture
def service(store, tmp_path):
    from zhinao.alignment.capability import capability
    from zhinao.alignment.service import AlignmentService
    from zhinao.capability import bind_jobs
    from zhinao.settings import Settings

    db, jobs = store
    svc = AlignmentService(Settings(home=tmp_path / "home"), db, jobs)
    bind_jobs(capability, jobs, lambda: svc)
    return svc


@pytest.fixture(scope="session")
def base_home(tmp_path_factory):
    """One home whose SmolLM2-135M conversion (~20 s) every training test shares."""
    from zhinao.alignment.base_models import prepare
    from zhinao.settings import Settings

    home = tmp_path_factory.mktemp("align-home")
    prepare("smollm2-135m", Settings(home=home))
    return home
