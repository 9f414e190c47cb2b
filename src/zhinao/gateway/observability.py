"""Metrics (Prometheus), structured JSON logs with request ids.

Metrics live in a registry per app so tests can build many apps in one process. Queue
depth and busy slots are read from the schedulers at scrape time, never duplicated.

Label values never come from client text: every series is a time series kept forever by
Prometheus, so ``model: "kb:<anything>"`` used to let any caller grow the scrape without
bound. Model labels are the registered model names (anything else is ``other``); route
labels are route templates (see the middleware). ``/metrics`` itself answers only a bearer
of ``ZHINAO_METRICS_TOKEN`` or, with no token set, a loopback client (:func:`metrics_allowed`).
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import json
import logging
import sys
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

from zhinao.errors import AuthenticationError, PermissionDenied
from zhinao.maas.metrics import LATENCY_BUCKETS, GenerationMetrics
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from zhinao.runtime.manager import ModelManager

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")



class Metrics:
    """The gateway's registry: HTTP metrics of its own, and the platform's generation metrics
    (:class:`zhinao.maas.metrics.GenerationMetrics`, written by the MaaS layer) exposed beside them."""

    def __init__(self, models: "ModelManager", generation: "GenerationMetrics | None" = None):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zhinao_requests_total", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram("zhinao_request_latency_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.generation = generation if generation is not None else GenerationMetrics(models)
        self.generation.register(r)
        g = self.generation
        self.generations, self.ttft, self.tokens, self.tps = g.generations, g.ttft, g.tokens, g.tps
        self.errors = Counter("zhinao_errors_total", "Errors returned to clients", ["status", "code"], registry=r)
        self.registry.register(_SchedulerCollector(models))


_LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def metrics_allowed(token: str | None, authorization: str | None, client_host: str | None) -> None:
    """Raise unless the scraper may read ``/metrics`` (queue sizes and model names are not public).

    With ``ZHINAO_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` is accepted (from
    anywhere); unset, only a loopback client.
    """
    if token:
        given = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else ""
        if not given:
            raise AuthenticationError("/metrics needs 'Authorization: Bearer <ZHINAO_METRICS_TOKEN>'",
                                      code="missing_api_key")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise AuthenticationError("wrong metrics token (ZHINAO_METRICS_TOKEN)", code="invalid_api_key")
        return
    if not _is_loopback(client_host):
        raise PermissionDenied("/metrics answers loopback clients only; set ZHINAO_METRICS_TOKEN and scrape with "
                               "'Authorization: Bearer <token>' to read it from elsewhere", code="metrics_forbidden")


class _SchedulerCollector:
    def __init__(self, models: "ModelManager"):
        self.models = models

    def collect(self):
        depth = GaugeMetricFamily("zhinao_queue_depth", "Requests waiting for a slot", labels=["model"])
        busy = GaugeMetricFamily("zhinao_busy_slots", "Generations running", labels=["model"])
        cap = GaugeMetricFamily("zhinao_slots", "Generation slots", labels=["model"])
        for spec in self.models.specs():
            st = self.models.resolve(spec.name).scheduler.stats()
            depth.add_metric([spec.name], st.queued)
            busy.add_metric([spec.name], st.busy)
            cap.add_metric([spec.name], st.capacity)
        yield depth
        yield busy
        yield cap


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
             "level": record.levelname, "logger": record.name, "msg": record.getMessage(),
             "request_id": request_id_var.get()}
        for k in ("method", "path", "status", "duration_ms", "tenant", "model"):
            if hasattr(record, k):
                d[k] = getattr(record, k)
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter())
    root.handlers[:] = [h]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
