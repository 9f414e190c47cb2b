"""Capabilities as plug-ins: the one protocol a package implements to join the platform.

A *capability* (knowledge, analytics, later the agent, alignment, the apps) is a package that
brings a service and the ways to reach it. It tells the platform everything through one
object, a :class:`Capability`, found by entry point in group ``zhinao.capabilities``
(``pyproject.toml``), exactly as chat backends are found in ``zhinao.chat_backends``::

    [project.entry-points."zhinao.capabilities"]
    knowledge = "zhinao.knowledge.capability:capability"

The core (``platform.py``, ``gateway/app.py``, ``store/``, ``cli/``, ``console/pages.py``)
names no capability: it asks this registry. Built-ins register the same way as a
third-party package; tests add one with :func:`register` (the same path the entry points
take) and take it away with :func:`unregister`.

Layering: this module sits above ``store``/``runtime``/``maas`` (whose types a capability's
service receives in :class:`Parts`) and below ``platform``, ``gateway``, ``console`` and
``cli`` (which read the declarations). The web router, the CLI sub-app and the console page of a
capability belong to the web, CLI and console layers, so a capability *names* them (a
``"module:attribute"`` string, or a URL path for a page) and the layer that mounts them
imports them: importing a capability never imports FastAPI routes or Typer apps, and a
capability's own modules never import the layers above them (``tests/test_architecture.py``).

Only :meth:`Capability.build` is required; everything else has an empty default.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from zhinao.store.db import Database
from zhinao.store.jobs import JobContext, JobRunner

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zhinao.capabilities"

#: a capability's job handler: its own service first, then what every job handler receives
ServiceHandler = Callable[[Any, JobContext, dict[str, Any]], "dict[str, Any] | None"]


@dataclass
class Parts:
    """What a capability's service may be built from: explicit parts, never the platform.

    Providers (``embedder``, ``llm``) are callables so that building a service loads nothing
    it does not use (the embedding model loads on the first embedding, not at start-up).

    Attributes:
        settings: the one :class:`zhinao.settings.Settings` object.
        db: the metadata store.
        jobs: the platform's job runner (the capability's handlers are registered on it).
        embedder: returns the platform's :class:`zhinao.runtime.base.Embedder`.
        llm: the MaaS model-client factory (scope, limits, fair slot, timeout, usage), or None
            where the platform has none (the MaaS layer's client, see ``zhinao.maas``).
        audit: the audit log service.
        usage: the usage ledger.
        tenancy: tenants, users and keys.
        services: ``services(name)`` returns another capability's service, built on first use
            (the agent uses the analytics service); None where there is no platform.
    """

    settings: Any
    db: Database
    jobs: JobRunner
    embedder: Callable[[], Any]
    llm: Any = None
    audit: Any = None
    usage: Any = None
    tenancy: Any = None
    services: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class CliEntry:
    """One thing a capability adds to the ``zhinao`` command line.

    Attributes:
        path: where it goes: ``"kb"`` (a top-level sub-app or command), or ``"models run"``
            (command ``run`` inside the existing group ``models``).
        target: ``"module:attribute"`` of a ``typer.Typer`` (a sub-app) or a function (a command).
        help: the one-line help shown in ``zhinao --help``.
    """

    path: str
    target: str
    help: str = ""


@dataclass(frozen=True)
class ConsolePageEntry:
    """A console screen: its id and the same-origin URL path of its script."""

    id: str
    script: str


class Capability:
    """Base class (and protocol) of a capability; subclass it and set the class attributes.

    Attributes:
        name: the service's name (``platform.services[name]``, ``platform.<name>``); a slug.
        routers: ``"module:attribute"`` of each FastAPI ``APIRouter`` the gateway mounts.
        cli: what it adds to the command line (:class:`CliEntry`).
        console_pages: the console screens (:class:`ConsolePageEntry`); scripts are same-origin.
        job_kind_prefixes: kinds of its jobs start with one of these; a pending job of such a
            kind makes the platform build the service before resuming jobs after a restart.
        migrations: the folder of its Alembic branch (its own tables), or None.
        models: modules declaring its SQLAlchemy tables (for Alembic ``--autogenerate``).
        order: where it comes in menus, command lists and mounting (lower first, then by name).
    """

    name: str = ""
    order: int = 100
    routers: tuple[str, ...] = ()
    cli: tuple[CliEntry, ...] = ()
    console_pages: tuple[ConsolePageEntry, ...] = ()
    job_kind_prefixes: tuple[str, ...] = ()
    migrations: Path | None = None
    models: tuple[str, ...] = ()

    def build(self, parts: Parts) -> Any:
        """Build the service from ``parts`` (called once per platform, on first use)."""
        raise NotImplementedError

    def job_handlers(self) -> Mapping[str, ServiceHandler]:
        """Job kind -> ``handler(service, ctx, params)``. Registered on the platform's runner."""
        return {}

    def model_routes(self) -> Mapping[str, Callable[..., Any]]:
        """Composite model names it serves: prefix -> ``route(service, principal, model, messages,
        params, extra)`` returning an async iterator of deltas (``kb:`` for the knowledge base)."""
        return {}

    def build_at_start(self, settings: Any) -> bool:
        """True when the service must exist as soon as the server starts (a scheduled task)."""
        return False

    def close(self, service: Any) -> None:
        """Release what the service holds (files, threads); called once at shutdown."""
        close = getattr(service, "close", None)
        if close is not None:
            close()

    def owns_job(self, kind: str) -> bool:
        return any(kind.startswith(p) for p in self.job_kind_prefixes) or kind in self.job_handlers()


_registered: dict[str, Capability] = {}
_from_entry_points: dict[str, Capability] | None = None
_lock = threading.Lock()


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _check(cap: Any, origin: str) -> Capability:
    if not isinstance(cap, Capability):
        raise TypeError(f"capability {origin} is {type(cap).__name__}, not a zhinao.capability.Capability")
    name = getattr(cap, "name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"capability {origin} has name {name!r}: use a lowercase slug (a-z, 0-9, '_')")
    return cap


def _load_entry_points() -> dict[str, Capability]:
    found: dict[str, Capability] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except ModuleNotFoundError as e:  # a capability whose package is absent from this build
            log.warning("capability %s (%s) not loaded: %s", ep.name, ep.value, e)
            continue
        cap = obj() if isinstance(obj, type) else obj
        found[ep.name] = _check(cap, f"{ep.name} ({ep.value})")
    return found


def register(cap: Capability) -> Capability:
    """Add (or replace) a capability, as an entry point would: tests and embedding programs."""
    cap = _check(cap, repr(cap))
    with _lock:
        _registered[cap.name] = cap
    return cap


def unregister(name: str) -> None:
    """Remove a capability added with :func:`register`."""
    with _lock:
        _registered.pop(name, None)


def capabilities() -> dict[str, Capability]:
    """Every capability: the entry points (loaded once), then those added with :func:`register`."""
    global _from_entry_points
    with _lock:
        if _from_entry_points is None:
            _from_entry_points = _load_entry_points()
        found = {**_from_entry_points, **_registered}
    return dict(sorted(found.items(), key=lambda kv: (getattr(kv[1], "order", 100), kv[0])))


def migration_dirs(caps: Iterable[Capability] | None = None) -> list[Path]:
    """The Alembic branch folders of ``caps`` (default: every capability)."""
    caps = capabilities().values() if caps is None else caps
    return [Path(c.migrations) for c in caps if c.migrations is not None]


def model_modules(caps: Iterable[Capability] | None = None) -> list[str]:
    caps = capabilities().values() if caps is None else caps
    return [m for c in caps for m in c.models]


def bind_jobs(cap: Capability, jobs: JobRunner, service: Callable[[], Any]) -> None:
    """Register ``cap``'s job handlers on ``jobs``; each asks ``service()`` for the service when a
    job runs (the platform passes its lazy lookup; a test that built the service, a lambda)."""
    for kind, handler in cap.job_handlers().items():
        jobs.register(kind, _bound_handler(cap.name, handler, service))


def _bound_handler(name: str, handler: ServiceHandler, service: Callable[[], Any]):
    def run(ctx: JobContext, params: dict[str, Any]) -> Any:
        return handler(service(), ctx, params)

    run.__qualname__ = run.__name__ = f"{name}:{getattr(handler, '__name__', 'job')}"
    return run


def resolve(target: str) -> Any:
    """Import ``"module:attribute"`` (the form routers and CLI entries are named in).

    Raises:
        ValueError: the target is not ``module:attribute``.
    """
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{target!r} must be 'module:attribute'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
