"""``zhinao serve``: run the platform (API, console) with uvicorn, and stop it on time.

Stopping (SIGTERM from a service manager, Ctrl-C): uvicorn stops accepting connections and
lets open requests finish for ``ZHINAO_SHUTDOWN_GRACE_S``; at the same moment running jobs
are asked to stop (they check between files and batches, and go back to the queue to resume
at the next start). A job that does not stop in time must not hold the process: after the
grace period plus a few seconds for closing the store and engines, the process exits anyway.
Before this, a running ingestion kept ``zhinao serve`` alive for as long as it ran.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import typer

from zhinao.cli.remote import KEY_NAME

log = logging.getLogger(__name__)

#: seconds after the grace period for closing engines and the store before the hard exit
CLOSE_MARGIN_S = 3.0


def serve(host: str = typer.Option(None, help="Bind address (default ZHINAO_HOST or 127.0.0.1)"),
          port: int = typer.Option(None, help="Port (default ZHINAO_PORT or 8000)"),
          demo: bool = typer.Option(False, help="Load the demo data (sample knowledge base, analytics workspace)"),
          no_warm: bool = typer.Option(False, "--no-warm", help="Do not start the default model at boot")) -> None:
    """Start Zhinao: OpenAI-compatible /v1, console at /, /metrics. 启动平台。"""
    _quiet_start()  # before anything imports grpc (the demo opens the knowledge index)
    import uvicorn

    from zhinao.gateway.app import create_app
    from zhinao.platform import Platform
    from zhinao.settings import get_settings

    s = get_settings()
    host, port = host or s.host, port or s.port
    platform = Platform(s)
    platform.bootstrap()  # before the demo loader, which needs the default tenant
    if demo or s.demo:
        from zhinao.demo import load_demo

        load_demo(platform)
    app = create_app(platform, warm_default=not no_warm)
    from zhinao.cli.banner import log_locations, startup_banner

    # taken here, before the app's start would print them on their own: they go in the banner
    secrets = platform.take_bootstrap_secrets()
    print(startup_banner(f"http://{host}:{port}", secrets=secrets, home=s.home, default_model=s.default_model,
                         logs=log_locations(Path.cwd(), s.log_level)), flush=True)  # never re-wrapped: copyable
    grace = s.shutdown_grace_s
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=max(1, round(grace)))
    local = _LocalAccess(platform, f"http://{_client_host(host)}:{port}")
    server = _server(config, _Watchdog(platform, grace), on_started=local.publish, on_stopped=local.withdraw)
    try:
        server.run()
    finally:
        local.withdraw()  # also when startup failed; idempotent
    if not server.started:
        raise typer.Exit(3)  # the port is taken, or the app failed to start (uvicorn logged why)
    if _lingering_threads():
        # a job thread that ignored the stop request; the interpreter would wait for it at exit
        log.warning("exiting with job threads still running: %s", ", ".join(_lingering_threads()))
        _hard_exit(0)


def _quiet_start() -> None:
    """Keep the start banner the last thing on the terminal: uvicorn's start lines are INFO
    (its errors, e.g. a taken port, still show), grpc's C core (Milvus Lite's client) logs
    nothing unless GRPC_VERBOSITY says otherwise, and milvus_lite's import warning is dropped."""
    import warnings

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def _server(config, watchdog: "_Watchdog", on_started=None, on_stopped=None):
    """uvicorn's server, telling the watchdog when a stop signal arrives, and us when it listens and
    when it has stopped (inside ``shutdown``: after a signal, uvicorn re-raises it once ``run``
    returns, so code after ``server.run()`` never runs on SIGTERM)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # runs as a signal handler: no locks, just a pipe write
            watchdog.trigger()
            super().handle_exit(sig, frame)

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit and on_started is not None:
                try:
                    on_started()
                except Exception:  # the CLI then works in-process; the server itself is fine
                    log.exception("could not write the CLI discovery file")

        async def shutdown(self, sockets=None):
            try:
                await super().shutdown(sockets=sockets)
            finally:
                if on_stopped is not None:
                    on_stopped()

    return Server(config)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else (f"[{host}]" if ":" in host else host)


class _LocalAccess:
    """The discovery file and local token that let the CLI work beside this server.

    ``publish`` (once uvicorn listens) revokes ``cli-local`` keys left by an earlier process
    that died without stopping, creates a fresh operator key of tenant ``default`` named
    ``cli-local`` through TenancyService, records it in the audit log, and writes
    ``home/run/server.json`` (0600). ``withdraw`` (at stop) removes the file and revokes the
    key, so the token is only valid while this server runs. A hard exit (the watchdog) skips
    ``withdraw``: the file is then stale (dead pid), which readers ignore, and the key is
    revoked at the next start.
    """

    def __init__(self, platform, url: str):
        self.p, self.url = platform, url
        self.key_id: int | None = None

    def _audit(self, what: str, key_id: int) -> None:
        from zhinao.maas.audit import AuditEntry

        t = self.p.tenancy.tenant_by_name("default")
        self.p.audit.record(AuditEntry(action="write", method="CLI", route=f"serve: {what} cli-local key",
                                       path="zhinao serve", status=200, tenant_id=t["id"], tenant="default",
                                       username="zhinao-serve", role="operator", resource={"key_id": key_id},
                                       detail={"name": KEY_NAME, "pid": os.getpid()}))

    def publish(self) -> None:
        from zhinao.cli.remote import write_discovery

        t = self.p.tenancy.tenant_by_name("default")
        for k in self.p.tenancy.list_keys(t["id"]):
            if k["name"] == KEY_NAME and not k["revoked"]:
                try:
                    self.p.tenancy.revoke_key(k["id"])
                    self._audit("revoke stale", k["id"])
                except Exception:
                    log.exception("could not revoke the stale cli-local key %s", k["id"])
        k = self.p.tenancy.create_key(t["id"], name=KEY_NAME, role="operator")
        self.key_id = k["id"]
        self._audit("create", k["id"])
        path = write_discovery(self.p.settings.home, self.url, k["key"], k["id"])
        log.debug("CLI discovery file %s (key %s)", path, k["id"])  # the banner stays the last line

    def withdraw(self) -> None:
        from zhinao.cli.remote import remove_discovery

        remove_discovery(self.p.settings.home, os.getpid())
        if self.key_id is not None:
            try:
                self.p.tenancy.revoke_key(self.key_id)
                self._audit("revoke", self.key_id)
            except Exception:
                log.exception("could not revoke the cli-local key %s", self.key_id)
            self.key_id = None


class _Watchdog:
    """On the first stop signal: asks running jobs to stop, then bounds the whole shutdown.

    The signal handler only writes a byte to a pipe (signal-safe); this thread does the rest.
    """

    def __init__(self, platform, grace_s: float):
        self.platform = platform
        self.grace_s = grace_s
        self._r, self._w = os.pipe()
        threading.Thread(target=self._run, name="zhinao-shutdown-watchdog", daemon=True).start()

    def trigger(self) -> None:
        try:
            os.write(self._w, b"x")
        except OSError:
            pass

    def _run(self) -> None:
        os.read(self._r, 1)
        t0 = time.monotonic()
        try:
            self.platform.jobs.shutdown(grace_s=0)  # raise every job's stop flag now; do not wait here
        except Exception:
            log.exception("could not ask the running jobs to stop")
        time.sleep(max(0.0, t0 + self.grace_s + CLOSE_MARGIN_S - time.monotonic()))
        log.warning("shutdown took longer than ZHINAO_SHUTDOWN_GRACE_S=%.0f s + %.0f s; exiting now "
                    "(unfinished jobs resume at the next start)", self.grace_s, CLOSE_MARGIN_S)
        _hard_exit(0)


def _lingering_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()]


def _hard_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    logging.shutdown()
    os._exit(code)

