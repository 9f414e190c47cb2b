from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from zhinao.gateway.app import create_app
from zhinao.platform import Platform

ADMIN_KEY = "zk-admin-test-key-000000000000"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def write_models(settings, body: str) -> None:
    settings.models_path.parent.mkdir(parents=True, exist_ok=True)
    settings.models_path.write_text(body, encoding="utf-8")


@pytest.fixture
def platform(settings):
    write_models(settings, """
[[models]]
name = "slow"
backend = "echo"
slots = 2
options = { delay_s = 0.02 }

[[models]]
name = "tiny-ctx"
backend = "echo"
context_window = 32
""")
    return Platform(settings)


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform, warm_default=False)) as c:
        yield c
