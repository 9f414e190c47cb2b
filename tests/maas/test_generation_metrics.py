"""Generation metrics belong to the MaaS layer (issue 9: metrics live in the layer that produces them).

A generation started outside any web app (the CLI, a capability's model client) is counted on
the platform's :class:`GenerationMetrics`; the gateway only exposes that object on ``/metrics``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.testclient import TestClient

from zhinao.gateway.app import create_app
from zhinao.maas.generation import GenerationService
from zhinao.platform import Platform
from zhinao.runtime.base import GenerationParams

ADMIN_KEY = "zk-metrics-test-key-0000000000"


def _count(metrics, model: str, outcome: str = "ok") -> float:
    return metrics.generations.labels(model, outcome)._value.get()


def test_a_generation_without_an_app_is_counted_on_the_platform(settings):
    settings.admin_key = ADMIN_KEY
    p = Platform(settings)
    p.bootstrap()
    principal = p.tenancy.authenticate(ADMIN_KEY)
    before = _count(p.generation_metrics, "echo")

    async def run():
        gen = GenerationService(p).start(principal, "echo", [{"role": "user", "content": "你好 metrics"}],
                                         GenerationParams(), endpoint="test")
        async for _ in gen:
            pass

    asyncio.run(run())
    assert _count(p.generation_metrics, "echo") == before + 1


def test_the_gateway_exposes_the_platforms_generation_metrics(settings):
    settings.admin_key = ADMIN_KEY
    settings.metrics_token = "metrics-token-for-this-test"
    p = Platform(settings)
    with TestClient(create_app(p, warm_default=False)) as c:
        h = {"Authorization": f"Bearer {ADMIN_KEY}"}
        r = c.post("/v1/chat/completions", headers=h,
                   json={"model": "echo", "messages": [{"role": "user", "content": "hello"}]})
        assert r.status_code == 200, r.text
        assert _count(p.generation_metrics, "echo") == 1
        text = c.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-this-test"}).text
        assert 'zhinao_generations_total{model="echo",outcome="ok"} 1.0' in text
        # one object: the app's view and the platform's are the same series
        assert c.app.state.metrics.generations._metric is p.generation_metrics.generations._metric


def test_the_maas_layer_reads_no_web_app_metrics():
    src = (Path(__file__).resolve().parents[2] / "src" / "zhinao" / "maas" / "generation.py").read_text("utf-8")
    assert 'getattr(platform, "metrics")' not in src and '"metrics", None)' not in src
