"""Fixtures for analytics: a real SQLite metadata store, real DuckDB files, a real JobRunner."""

from __future__ import annotations

import os

import pytest

# keep BLAS/torch to one thread: the CI machine has two cores shared by everyone
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

TENANT = 1
OTHER_TENANT = 2


@pytest.fixture
def store(tmp_path):
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate()
    jobs = JobRunner(db)
    yield db, jobs
    jobs.shutdown()
    db.dispose()


@pytest.fixture
def service(store, tmp_path):
    from zhinao.analytics.service import AnalyticsService
    from zhinao.settings import Settings

    db, jobs = store
    settings = Settings(home=tmp_path / "home")
    return AnalyticsService(settings=settings, db=db, jobs=jobs)


@pytest.fixture
def ws(service):
    service.workspaces.create(TENANT, "w1", "test workspace")
    return "w1"
