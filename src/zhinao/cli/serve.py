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

import typer

from zhinao.cli.common import console

log = logging.getLogger(__name__)

#: seconds after the grace period for closing engines and the store before the hard exit
CLOSE_MARGIN_S = 3.0


def serve(host: str = typer.Option(None, help="Bind address (default ZHINAO_HOST or 127.0.0.1)"),
          port: int = typer.Option(None, help="Port (default ZHINAO_PORT or 8000)"),
          demo: bool = typer.Option(False, help="Load the demo data (sample knowledge base, analytics workspace)"),
          no_warm: bool = typer.Option(False, "--no-warm", help="Do not start the default model at boot")) -> None:
    """Start Zhinao: OpenAI-compatible /v1, console at /, /metrics. 启动平台。"""
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
    console.print(f"Zhinao 智脑 on http://{host}:{port}  (home {s.home}, default model {s.default_model})")
    grace = s.shutdown_grace_s
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=max(1, round(grace)))
    server = _server(config, _Watchdog(platform, grace))
    server.run()
    if not server.started:
        raise typer.Exit(3)  # the port is taken, or the app failed to start (uvicorn logged why)
    if _lingering_threads():
        # a job thread that ignored the stop request; the interpreter would wait for it at exit
        log.warning("exiting with job threads still running: %s", ", ".join(_lingering_threads()))
        _hard_exit(0)


def _server(config, watchdog: "_Watchdog"):
    """uvicorn's server, telling the watchdog when a stop signal arrives."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # runs as a signal handler: no locks, just a pipe write
            watchdog.trigger()
            super().handle_exit(sig, frame)

    return Server(config)


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

