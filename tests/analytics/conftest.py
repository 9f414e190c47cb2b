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
    from zhinao.capability import migration_dirs
    from zhinao.store.db import Database
    from zhinao.store.jobs import JobRunner

    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate(migration_dirs())  # the core's tables and every capability's
    jobs = JobRunner(db)
    yield db, jobs
    jobs.shutdown()
    db.dispose()


@pytest.fixture
def service(store, tmp_path):
    from zhinao.analytics.service import AnalyticsService
    from zhinao.settings import Settings

    from zhinao.analytics.capability import capability
    from zhinao.capability import bind_jobs

    db, jobs = store
    settings = Settings(home=tmp_path / "home")
    svc = AnalyticsService(settings=settings, db=db, jobs=jobs)
    bind_jobs(capability, jobs, lambda: svc)  # what the platform does with the capability's handlers
    return svc


@pytest.fixture
def ws(service):
    service.workspaces.create(TENANT, "w1", "test workspace")
    return "w1"
