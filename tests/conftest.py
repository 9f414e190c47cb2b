"""Shared fixtures: real SQLite and real PostgreSQL stores, real Redis, the real app.

PostgreSQL (127.0.0.1:5432, trust auth, database ``test``) and Redis (127.0.0.1:6379)
are started on this project's machines before the session and before CI. Without them
the tests that need them skip with the reason — except under ``CI=true``, where a
missing server fails the run instead of hiding it.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from zhinao.settings import Settings, get_settings

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(cond: object, msg: str) -> None:
    """Skip the test unless ``cond`` holds, except under ``CI=true``, where it fails instead:
    a missing dependency in CI is a broken CI image, not a reason to report fewer tests green.
    Use it (never a bare ``pytest.skip``/``skipif``/``importorskip``) for every "needs X" skip."""
    if not cond:
        if IN_CI:
            pytest.fail(msg + " (CI=true: every dependency must be present, nothing may be skipped)")
        pytest.skip(msg, allow_module_level=True)  # also at module level (a module that needs pyspark)


def require_module(name: str, why: str = ""):
    """``pytest.importorskip`` that fails under ``CI=true``; returns the module."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        require(False, f"{name} is not installed ({e}){': ' + why if why else ''}")


def require_service(name: str, port: int) -> None:
    require(_port_open("127.0.0.1", port), f"{name} is not running on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def default_pack_path() -> str:
    """The default chat pack (Qwen2.5-Coder-0.5B), which ``make test`` installs through
    scripts/test_deps.sh from the package registry; skipped where it could not be installed."""
    from zhinao.runtime.packs import installed_path

    found = installed_path("qwen2.5-coder-0.5b", Settings().model_dir)
    if found is None:
        msg = "the qwen2.5-coder-0.5b pack is not installed (zhinao models install qwen2.5-coder-0.5b)"
        if IN_CI:
            pytest.fail(msg + " (CI=true: scripts/test_deps.sh installs it)")
        pytest.skip(msg)
    return str(found)


@pytest.fixture(scope="session")
def pg_database_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    require_service("PostgreSQL", 5432)
    import sqlalchemy as sa

    name = "zhinao_test_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # e.g. the role is not postgres
        admin = sa.create_engine(PG_ADMIN_URL.replace("postgres@", "root@"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        del e
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as c:
        c.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def redis_url():
    require_service("Redis", 6379)
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    prefix_keys = r.keys("zhinao:*")
    if prefix_keys:
        r.delete(*prefix_keys)
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path):
    """Every store test runs on both SQLite and the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'zhinao.db'}"
    base = request.getfixturevalue("pg_database_url")
    # a schema-isolated database per test: drop everything first
    import sqlalchemy as sa

    eng = sa.create_engine(base)
    with eng.begin() as c:
        c.execute(sa.text("DROP SCHEMA public CASCADE"))
        c.execute(sa.text("CREATE SCHEMA public"))
    eng.dispose()
    return base


@pytest.fixture
def settings(tmp_path: Path, monkeypatch) -> Settings:
    """Settings for an isolated installation under tmp_path (env vars are how users configure it)."""
    for k in list(os.environ):
        if k.startswith("ZHINAO_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("ZHINAO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZHINAO_DEFAULT_MODEL", "echo")
    monkeypatch.setenv("ZHINAO_EMBEDDING_MODEL", "hash")
    monkeypatch.setenv("ZHINAO_ADMIN_KEY", "zk-admin-test-key-000000000000")
    monkeypatch.setenv("ZHINAO_ADMIN_PASSWORD", "admin-password")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


ADMIN_KEY = "zk-admin-test-key-000000000000"


def pytest_collection_modifyitems(config, items):
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main
    thread while its browser fixture lives, and ``asyncio.run`` refuses to start under it."""
    items.sort(key=lambda item: 1 if item.get_closest_marker("browser") else 0)
