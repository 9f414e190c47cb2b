"""Generation metrics, kept by the layer that produces them.

A generation's counters (outcome, tokens, time to first token, decode speed) are written by
:class:`~zhinao.maas.generation.GenerationService` for every caller — the gateway, the CLI, a
capability's model client — so they live here, on the Platform, not on the web app. The
gateway only *exposes* them: its ``/metrics`` registry registers these collectors next to the
HTTP ones (:meth:`GenerationMetrics.register`).

Label values never come from client text: every series is kept forever by Prometheus, so a
model label is a registered model name, anything else ``other``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from zhinao.runtime.manager import ModelManager

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ModelLabel:
    """Maps a model label to a registered model name, or ``other``."""

    OTHER = "other"

    def __init__(self, models: "ModelManager"):
        self.models = models

    def __call__(self, name: str) -> str:
        try:
            known = name in self.models.names()
        except Exception:  # a manager mid-reload: never fail the caller over a metric
            known = False
        return name if known else self.OTHER

    def wrap(self, metric: Any) -> "Bounded":
        return Bounded(metric, self)


class Bounded:
    """A labelled metric whose first label (the model) is bounded; everything else passes through."""

    def __init__(self, metric: Any, label: ModelLabel):
        self._metric, self._label = metric, label

    def labels(self, model: str, *rest: str):
        return self._metric.labels(self._label(str(model)), *rest)

    def __getattr__(self, name):
        return getattr(self._metric, name)


class GenerationMetrics:
    """Counters and histograms of model generations, not bound to any registry until exposed."""

    def __init__(self, models: "ModelManager"):
        bound = ModelLabel(models)
        self._raw = [
            Counter("zhinao_generations_total", "Model generations", ["model", "outcome"], registry=None),
            Histogram("zhinao_time_to_first_token_seconds", "Time to first token", ["model"],
                      buckets=LATENCY_BUCKETS, registry=None),
            Counter("zhinao_tokens_total", "Tokens processed", ["model", "kind"], registry=None),
            Histogram("zhinao_generation_tokens_per_second", "Decode speed per generation", ["model"],
                      buckets=(1, 2, 5, 10, 20, 40, 60, 80, 120, 200, 400), registry=None),
        ]
        self.generations, self.ttft, self.tokens, self.tps = (bound.wrap(m) for m in self._raw)

    def register(self, registry: CollectorRegistry) -> None:
        """Expose these metrics through ``registry`` (the gateway's ``/metrics``)."""
        for m in self._raw:
            registry.register(m)
