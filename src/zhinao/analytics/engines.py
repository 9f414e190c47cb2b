"""The ``Engine`` protocol: what fits and evaluates a catalogue model in a run.

A run names its engine (``engine="local"`` by default, ``"spark"`` for MLlib). The runner
knows only this protocol, so a new engine (Ray, a remote Spark cluster, a database's
in-place ML) is a plug-in, not an ``if engine == ...`` in the runner:

- ``name``; ``scores_rows`` (whether the saved model can score a table afterwards);
- ``available()`` raises :class:`~zhinao.errors.EngineUnavailable` (503) with the fix when the
  engine's software is missing (pyspark, Java);
- ``supports(model_cls)`` says whether the engine can run that catalogue entry at all, and
  ``why_not(model_cls)`` says why not (the 400 a run gets);
- ``evaluate(model, data, out_dir, table=None) -> Evaluation``: the same metrics, baseline,
  binding (``model.binding_``), notes and charts as the embedded run, so the run record, API,
  CLI and console need no engine-specific code. ``table`` is the workspace table the run reads
  (``data`` is ``model.from_frame(table)``, or the demo data when there is no table);
- ``save(model, out_dir)`` persists what the run fitted (``model.joblib``, ``model.zip`` ...).

Engines register by entry point (group ``zhinao.engines`` in ``pyproject.toml``), built-ins
exactly like extensions; :func:`register_engine` adds one at run time (tests, notebooks).
The two built-ins are also known by import path below, so an install whose package metadata
predates the group still has them.
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata
from pathlib import Path
from typing import Any, ClassVar

from zhinao.analytics.catalog.base import Evaluation, MiningModel
from zhinao.errors import InvalidRequest

#: entry point group of run engines
GROUP = "zhinao.engines"
#: the built-ins (also declared as entry points); import paths, so pyspark is imported lazily
BUILTINS = {"local": "zhinao.analytics.engines:LocalEngine", "spark": "zhinao.analytics.spark_runs:SparkEngine"}


class Engine(abc.ABC):
    """Fits and evaluates catalogue models for runs (one instance per process, no state)."""

    name: ClassVar[str]
    #: the saved model can score a table after the run (``score_table``, ``runs score``)
    scores_rows: ClassVar[bool] = False
    description_en: ClassVar[str] = ""
    description_zh: ClassVar[str] = ""

    def available(self) -> None:
        """Raise :class:`~zhinao.errors.EngineUnavailable` naming what to install; default: always there."""

    def supports(self, model_cls: type[MiningModel]) -> bool:
        """Whether this engine can run ``model_cls`` (a catalogue class, not an instance)."""
        return self.why_not(model_cls) is None

    def why_not(self, model_cls: type[MiningModel]) -> str | None:
        """Why ``model_cls`` cannot run here (a message for the user), or None when it can."""
        return None

    @abc.abstractmethod
    def evaluate(self, model: MiningModel, data: Any, out_dir: Path, *, table: Any = None) -> Evaluation:
        """Hold-out evaluation as :meth:`MiningModel.evaluate` reports it; files may go to ``out_dir``."""

    @abc.abstractmethod
    def save(self, model: MiningModel, out_dir: Path) -> Path | None:
        """Persist the fitted model under ``out_dir``; the file a download serves (None: nothing)."""


class LocalEngine(Engine):
    """The embedded engine: the catalogue model's own ``evaluate`` (DuckDB + scikit-learn …), joblib."""

    name = "local"
    scores_rows = True
    description_en = "embedded: DuckDB + scikit-learn in the server process"
    description_zh = "内嵌引擎：服务进程内的 DuckDB + scikit-learn"

    def evaluate(self, model: MiningModel, data: Any, out_dir: Path, *, table: Any = None) -> Evaluation:
        return model.evaluate(data)

    def save(self, model: MiningModel, out_dir: Path) -> Path:
        import joblib

        path = Path(out_dir) / "model.joblib"
        joblib.dump(model, path)
        return path


# -- registry ------------------------------------------------------------------------------
_extra: dict[str, type[Engine]] = {}
_instances: dict[str, Engine] = {}


def register_engine(cls: type[Engine], name: str | None = None) -> type[Engine]:
    """Register an engine at run time (tests, notebooks); entry points are the usual way."""
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise TypeError(f"{cls!r} is not an Engine subclass (implement Engine.evaluate and Engine.save)")
    key = name or cls.name
    _extra[key] = cls
    _instances.pop(key, None)
    return cls


def engine_names() -> list[str]:
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUP)} | set(_extra) | set(BUILTINS))


def _load(ref: str) -> Any:
    mod, _, attr = ref.partition(":")
    return getattr(importlib.import_module(mod), attr)


def engine_class(name: str) -> type[Engine]:
    """The engine registered as ``name``; unknown names are a 400 naming the choices."""
    if name in _extra:
        return _extra[name]
    cls = None
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            break
    if cls is None and name in BUILTINS:
        cls = _load(BUILTINS[name])
    if cls is None:
        raise InvalidRequest(f"unknown engine {name!r}; engines: {', '.join(engine_names())}", param="engine")
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise InvalidRequest(f"entry point {GROUP}:{name} is {cls!r}, not an Engine subclass", param="engine")
    return cls


def get_engine(name: str) -> Engine:
    """The (shared, stateless) instance of engine ``name``."""
    name = name or "local"
    if name not in _instances:
        _instances[name] = engine_class(name)()
    return _instances[name]


def check_engine(name: str, model_cls: type[MiningModel]) -> Engine:
    """Before a run is queued: a known engine (400), that runs this model (400), installed (503)."""
    eng = get_engine(name)
    reason = eng.why_not(model_cls)
    if reason:
        raise InvalidRequest(reason, param="engine")
    eng.available()
    return eng


def engines_for(model_cls: type[MiningModel]) -> list[str]:
    """The engines that can run ``model_cls`` (the catalogue lists them; installation not checked)."""
    out = []
    for n in engine_names():
        try:
            if get_engine(n).supports(model_cls):
                out.append(n)
        except Exception:  # a broken plug-in must not hide the catalogue  # noqa: BLE001
            continue
    return out


__all__ = ["BUILTINS", "Engine", "GROUP", "LocalEngine", "check_engine", "engine_class", "engine_names",
           "engines_for", "get_engine", "register_engine"]
