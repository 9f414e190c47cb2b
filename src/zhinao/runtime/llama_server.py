"""llama.cpp's own ``llama-server``, started and supervised by Zhinao, one per model.

Why a child process rather than in-process llama-cpp-python: ``llama-server`` batches
its parallel slots continuously (measured here: 60 tok/s at 1 client, 118 aggregate at
8 on the 0.5B), and a crash in native code takes down one engine, not the gateway.
Zhinao owns the process: it picks a free port on 127.0.0.1, waits for ``/health``,
restarts it with exponential backoff when it dies, and terminates it on close. Requests
go over the OpenAI wire (:mod:`zhinao.runtime.openai_compat`), so closing a stream
closes the HTTP connection and llama-server frees the slot.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from zhinao.errors import EngineUnavailable, InvalidRequest
from zhinao.runtime.base import ChatDelta, ChatModel, GenerationParams, Message
from zhinao.runtime.openai_compat import OpenAIWire, chat_payload, completion_payload
from zhinao.runtime.tooling import assemble_calls, plain_messages, resolve_choice, tool_schema

log = logging.getLogger(__name__)


def find_llama_server(configured: str | None = None) -> str:
    """``Settings.llama_server_bin``, else the one next to this interpreter (.venv/bin), else PATH."""
    candidates = [configured] if configured else []
    candidates.append(str(Path(sys.executable).parent / "llama-server"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    found = shutil.which("llama-server")
    if found:
        return found
    raise EngineUnavailable(
        "llama-server binary not found (looked at " + ", ".join(c for c in candidates if c)
        + " and PATH); build it with scripts/build_llama_server.sh or set ZHINAO_LLAMA_SERVER_BIN")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the engine gets SIGTERM when Zhinao dies, so no orphan keeps the RAM."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LlamaServerProcess:
    """One supervised ``llama-server`` child.

    A single supervisor thread spawns, health-checks and restarts the child, so it is
    independent of any event loop (the gateway, the CLI and tests each run their own)
    and the child's parent-death signal is tied to a thread that lives exactly as long
    as the supervision.
    """

    def __init__(self, argv_base: list[str], *, name: str, start_timeout_s: float = 120.0,
                 log_path: Path | None = None, max_backoff_s: float = 30.0):
        self.argv_base = argv_base
        self.name = name
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path
        self.max_backoff_s = max_backoff_s
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.ready = threading.Event()
        self._started = threading.Event()  # the first start attempt finished (either way)
        self._start_error: EngineUnavailable | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._tail: deque[str] = deque(maxlen=40)  # last log lines, quoted in errors

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def argv(self) -> list[str]:
        return [*self.argv_base, "--host", "127.0.0.1", "--port", str(self.port)]

    def _spawn(self) -> None:
        with self._lock:
            if self._closing.is_set():
                raise EngineUnavailable(f"llama-server for {self.name!r} is shutting down")
            self.port = free_port()
            log.info("starting llama-server for %s on port %d", self.name, self.port)
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        threading.Thread(target=self._pump_log, args=(self.proc,), daemon=True,
                         name=f"llama-server-log-{self.name}").start()

    def _pump_log(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep the pipe drained (a full pipe would block the engine) and keep a tail."""
        sink = open(self.log_path, "ab") if self.log_path else None
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                self._tail.append(raw.decode("utf-8", "replace").rstrip())
                if sink:
                    sink.write(raw)
                    sink.flush()
        finally:
            if sink:
                sink.close()

    def _wait_healthy(self) -> None:
        """Poll ``/health`` until 200 (503 means still loading the model)."""
        deadline = time.monotonic() + self.start_timeout_s
        proc = self.proc
        assert proc is not None
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise EngineUnavailable(
                        f"llama-server for {self.name!r} exited with code {proc.returncode} while starting:\n"
                        + "\n".join(list(self._tail)[-12:]))
                try:
                    if http.get(self.base_url + "/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if self._closing.wait(0.1):
                    raise EngineUnavailable(f"llama-server for {self.name!r} is shutting down")
        self._terminate()
        raise EngineUnavailable(f"llama-server for {self.name!r} did not become healthy within "
                                f"{self.start_timeout_s:.0f} s:\n" + "\n".join(list(self._tail)[-12:]))

    def start(self) -> None:
        """Start and wait until healthy; supervision continues in the background. Idempotent:
        while supervised, waits for the engine (e.g. a restart in progress) instead."""
        with self._lock:
            if self._supervisor is None or not self._supervisor.is_alive():
                self._closing.clear()
                self._started.clear()
                self._start_error = None
                self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                                    name=f"llama-server-supervisor-{self.name}")
                self._supervisor.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error
        if not self.ready.wait(self.start_timeout_s):
            raise EngineUnavailable(f"llama-server for {self.name!r} is restarting and not ready yet")

    def _supervise(self) -> None:
        """Spawn, then restart the engine whenever it dies unexpectedly (backoff 0.5 s
        doubling to 30 s; reset once it has stayed up for a minute)."""
        try:
            self._spawn()
            self._wait_healthy()
        except (EngineUnavailable, OSError) as e:
            self._start_error = e if isinstance(e, EngineUnavailable) else EngineUnavailable(
                f"llama-server for {self.name!r} could not be started: {e}")
            self._terminate()
            self._started.set()
            return
        self.ready.set()
        self._started.set()
        backoff = 0.5
        while True:
            proc = self.proc
            assert proc is not None
            up_since = time.monotonic()
            code = proc.wait()
            if self._closing.is_set():
                return
            self.ready.clear()
            if time.monotonic() - up_since > 60:
                backoff = 0.5
            log.error("llama-server for %s (pid %d) exited with code %s; restarting in %.1f s. Last output:\n%s",
                      self.name, proc.pid, code, backoff, "\n".join(list(self._tail)[-8:]))
            if self._closing.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff_s)
            try:
                self._spawn()
                self._wait_healthy()
            except (EngineUnavailable, OSError) as e:
                if self._closing.is_set():
                    return
                log.error("restart of llama-server for %s failed: %s", self.name, e)
                continue
            self.restarts += 1
            self.ready.set()
            log.info("llama-server for %s restarted (pid %d, port %d)", self.name, self.proc.pid, self.port)

    def _terminate(self, grace_s: float = 5.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("llama-server for %s ignored SIGTERM; killing it", self.name)
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        """Stop supervising, then terminate (SIGTERM, SIGKILL after a grace period). Idempotent."""
        with self._lock:  # no spawn can start after this
            self._closing.set()
        self.ready.clear()
        self._terminate()
        sup = self._supervisor
        if sup is not None and sup is not threading.current_thread():
            sup.join(timeout=15)
        self._terminate()  # a child spawned while we were stopping
        self._supervisor = None


class LlamaServerChatModel(ChatModel):
    """A GGUF model served by a supervised ``llama-server`` child process."""

    backend = "llama-server"
    supports_completions = True

    def __init__(self, name: str = "llama-server", *, path: str | None = None, slots: int | None = None,
                 threads: int | None = None, context_window: int | None = None,
                 extra_args: Sequence[str] = (), settings: Any = None, **_: Any):
        if not path:
            raise InvalidRequest(f"model {name!r}: the llama-server backend needs path (a GGUF file)")
        if settings is None:
            from zhinao.settings import get_settings
            settings = get_settings()
        self.settings = settings
        self.name = name
        self.path = str(Path(path).expanduser())
        self.slots = slots or settings.llama_slots
        self.threads = threads or settings.llama_threads
        self.context_window = context_window or settings.llama_ctx  # per slot
        # The program to run is the installation's (ZHINAO_LLAMA_SERVER_BIN or the bundled build),
        # never a model declaration's: a declaration that could name it runs any command.
        self.binary = settings.llama_server_bin
        # extra_args only come from the operator's models file: the API refuses the option
        # (zhinao.runtime.registry.REQUEST_OPTIONS), and stored declarations are checked on load.
        self.extra_args = list(extra_args)
        self._proc: LlamaServerProcess | None = None
        self._wire: OpenAIWire | None = None
        self._native_tools: bool | None = None

    # -- engine lifecycle ----------------------------------------------------------------
    def argv(self) -> list[str]:
        return [find_llama_server(self.binary), "-m", self.path, "-np", str(self.slots),
                "-c", str(self.context_window * self.slots), "-t", str(self.threads),
                "-tb", str(self.threads), "--jinja", "--metrics", "--slots", "--no-webui",
                "-a", self.name, *self.extra_args]

    async def start(self) -> None:
        if self._proc is not None and self._proc.ready.is_set():
            return
        if not os.path.isfile(self.path):
            raise EngineUnavailable(f"model file for {self.name!r} not found: {self.path}")
        if self._proc is None:
            log_dir = Path(self.settings.home) / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.name)
            self._proc = LlamaServerProcess(self.argv(), name=self.name,
                                            start_timeout_s=self.settings.engine_start_timeout_s,
                                            log_path=log_dir / f"llama-server-{safe}.log")
        await asyncio.to_thread(self._proc.start)

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        if self._proc is not None:
            await asyncio.to_thread(self._proc.stop)
            self._proc = None
        self._wire = None

    @property
    def pid(self) -> int | None:
        """The engine's process id (observable: tests kill it to exercise the supervisor)."""
        return self._proc.pid if self._proc else None

    @property
    def restarts(self) -> int:
        return self._proc.restarts if self._proc else 0

    async def _ready_wire(self) -> OpenAIWire:
        """The wire to a healthy engine; waits out a restart in progress rather than failing."""
        await self.start()  # returns once healthy; during a restart it waits for it
        proc = self._proc
        assert proc is not None
        url = proc.base_url + "/v1"
        if self._wire is None or self._wire.base_url != url:  # a restart picks a new port
            self._wire = OpenAIWire(url, where=f"llama-server for {self.name!r}",
                                    timeout_s=self.settings.generation_timeout_s)
        return self._wire

    async def health(self) -> bool:
        if self._proc is None or not self._proc.ready.is_set():
            return False
        try:
            wire = await self._ready_wire()
            return (await wire.get("/health", timeout_s=2.0)).status_code == 200
        except EngineUnavailable:
            return False

    async def slots_state(self) -> list[dict[str, Any]]:
        """llama-server's ``/slots``: which slots are processing (for monitoring and tests)."""
        wire = await self._ready_wire()
        assert self._proc is not None
        resp = await wire.client().get(self._proc.base_url + "/slots", timeout=5.0)
        return resp.json() if resp.status_code == 200 else []

    # -- generation ----------------------------------------------------------------------
    async def native_tools(self) -> bool:
        """Whether llama-server renders tools with this model's template (``/props``).
        Without it llama-server silently ignores ``tools``, so Zhinao emulates them."""
        if self._native_tools is None:
            wire = await self._ready_wire()
            assert self._proc is not None
            try:
                props = (await wire.client().get(self._proc.base_url + "/props", timeout=5.0)).json()
                self._native_tools = bool(props.get("chat_template_caps", {}).get("supports_tools"))
            except (httpx.HTTPError, ValueError):
                return False
        return self._native_tools

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[ChatDelta]:
        mode, names = resolve_choice(params.tools, params.tool_choice)
        if mode is None:
            body = chat_payload(self.name, messages, dataclasses.replace(params, tools=None, tool_choice=None))
            deltas = self._with_retry(lambda wire: wire.stream_chat(body))
        elif mode == "auto" and await self.native_tools():
            # The template renders the tools; calls the server's parser misses (small
            # models like fenced JSON) are still recognised.
            body = chat_payload(self.name, messages, params)
            deltas = assemble_calls(self._with_retry(lambda wire: wire.stream_chat(body)), mode, names)
        else:
            # Forced calls are always grammar-constrained here: llama-server's own
            # "required" did not constrain Qwen2.5 (it answered in a code fence), and it
            # takes no named function at all.
            rf = ({"type": "json_schema", "json_schema": {"name": "tool_call",
                                                          "schema": tool_schema(params.tools or [], names)}}
                  if mode == "forced" else params.response_format)
            plain = dataclasses.replace(params, tools=None, tool_choice=None, response_format=rf)
            body = chat_payload(self.name, plain_messages(messages, params.tools), plain)
            deltas = assemble_calls(self._with_retry(lambda wire: wire.stream_chat(body)), mode, names)
        body["cache_prompt"] = True  # reuse the slot's KV cache for a repeated prefix (the agent's schema)
        try:
            async for d in deltas:
                yield d
        finally:
            await deltas.aclose()

    async def stream_text(self, prompt: str, params: GenerationParams) -> AsyncIterator[ChatDelta]:
        body = completion_payload(self.name, prompt, params)
        body["cache_prompt"] = True
        async for d in self._with_retry(lambda wire: wire.stream_completion(body)):
            yield d

    async def _with_retry(self, call: Any) -> AsyncIterator[ChatDelta]:
        """Run ``call(wire)``; if the engine could not be reached before any output (it
        crashed a moment ago), wait for the supervisor's restart and try once more."""
        for attempt in (0, 1):
            wire = await self._ready_wire()
            produced = False
            try:
                async for d in call(wire):
                    produced = True
                    yield d
                return
            except EngineUnavailable as e:
                if produced or attempt or not isinstance(e.__cause__, httpx.TransportError):
                    raise
                log.warning("llama-server for %s unreachable (%s); retrying after restart", self.name, e.__cause__)
                await asyncio.sleep(0.5)  # let the supervisor notice the exit and clear ``ready``
