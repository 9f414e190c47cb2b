"""Run one file's parser in a worker process with memory, CPU and wall-clock limits.

Why a process and not a thread with a timeout: a thread stuck inside lxml or zlib cannot
be stopped, and its memory is the server's memory. A worker process has its own address
space, capped by ``RLIMIT_AS`` (a parser that needs more gets ``MemoryError`` or dies,
and only that file fails); ``RLIMIT_CPU`` kills a parser that spins; a wall-clock
deadline and the caller's cancel check kill it from outside with SIGKILL, at once.

Workers are kept in a small pool (:class:`IsolatedRunner`), started on first use with the
parser libraries already imported, so a small file costs one round trip over a pipe
(about a millisecond), not an interpreter start. A worker that was killed, hit a limit,
served ``max_tasks`` files or grew past half its memory allowance is replaced.

The worker answers in JSON or raw bytes, never pickles: a parser the file took over
cannot hand the server code to run.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zhinao
from zhinao.errors import InvalidRequest, PayloadTooLarge, ZhinaoError

MB = 1024 * 1024
_LEN = struct.Struct(">Q")  # frame length prefix, as in zhinao.safety.worker
_STARTUP_TIMEOUT_S = 120.0  # importing the parser libraries on a loaded 2-core machine


class ParseTimeout(InvalidRequest):
    """The parser ran past its wall-clock or CPU budget and was killed."""

    code = "parse_timeout"


class ParseMemoryExceeded(PayloadTooLarge):
    """The parser needed more memory than a worker may use."""

    code = "parse_memory"


class WorkerCrashed(InvalidRequest):
    """The parser process died on this file (a crash in a native library)."""

    code = "parser_crashed"


@dataclass(frozen=True)
class ParseLimits:
    """Per-file parsing limits (``ZHINAO_PARSE_*`` settings)."""

    timeout_s: float = 60.0
    memory_bytes: int = 1024 * MB
    workers: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> "ParseLimits":
        values = {}
        for name in ("timeout_s", "memory_bytes", "workers"):
            v = getattr(settings, f"parse_{name}", None)
            if v is not None:
                values[name] = v
        return cls(**values)


@dataclass
class CallStats:
    """What one isolated call cost (the benchmark and tests read it)."""

    wall_s: float = 0.0
    child_wall_s: float = 0.0
    child_cpu_s: float = 0.0
    #: the worker's resident memory when it became ready, before the call and at the call's peak
    child_baseline_mb: float = 0.0
    child_rss_before_mb: float = 0.0
    child_peak_mb: float = 0.0
    worker_pid: int = 0
    killed: str | None = None


def _errors_by_name() -> dict[str, type[ZhinaoError]]:
    out: dict[str, type[ZhinaoError]] = {}
    todo: list[type[ZhinaoError]] = [ZhinaoError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return out


class _Worker:
    def __init__(self, preload: tuple[str, ...], memory_bytes: int):
        src = str(Path(zhinao.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
               # one thread per native library, and few malloc arenas: the address-space cap is for the file
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zhinao.safety.worker", "--memory-bytes", str(int(memory_bytes)),
             "--preload", ",".join(preload)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.out_fd = self.proc.stdout.fileno()
        self.in_fd = self.proc.stdin.fileno()
        os.set_blocking(self.in_fd, False)
        self.tasks = 0
        self.memory_bytes = memory_bytes
        ready = json.loads(self.read_frame(time.monotonic() + _STARTUP_TIMEOUT_S, None) or b"{}")
        if not ready.get("ready"):
            self.kill()
            raise RuntimeError("the parser worker did not start")
        self.baseline_mb = ready.get("maxrss_kb", 0) / 1024

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover (SIGKILL is not ignorable)
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    # -- framing with a deadline and a cancel check ----------------------------------------
    def write_all(self, buf: bytes, deadline: float, check: Callable[[], None] | None) -> None:
        view, off = memoryview(buf), 0
        while off < len(view):
            if check is not None:
                check()
            if time.monotonic() > deadline:
                raise TimeoutError
            _, w, _ = select.select([], [self.in_fd], [], 0.1)
            if not w:
                continue
            try:
                off += os.write(self.in_fd, view[off:off + (1 << 20)])
            except BlockingIOError:
                continue

    def read_exact(self, n: int, deadline: float, check: Callable[[], None] | None) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            if check is not None:
                check()
            if time.monotonic() > deadline:
                raise TimeoutError
            r, _, _ = select.select([self.out_fd], [], [], 0.1)
            if not r:
                continue
            chunk = os.read(self.out_fd, min(n - len(buf), 1 << 20))
            if not chunk:
                return None  # the worker died
            buf += chunk
        return bytes(buf)

    def read_frame(self, deadline: float, check: Callable[[], None] | None) -> bytes | None:
        head = self.read_exact(_LEN.size, deadline, check)
        if head is None:
            return None
        return self.read_exact(_LEN.unpack(head)[0], deadline, check)


@dataclass
class IsolatedRunner:
    """A pool of parser workers sharing one memory allowance per worker.

    Args:
        memory_bytes: address space each worker may add after its imports (``RLIMIT_AS``).
        workers: most workers alive at once (each call takes one; further calls wait).
        preload: modules every worker imports before it is capped.
        max_tasks: a worker is replaced after this many calls (allocator fragmentation).
    """

    memory_bytes: int = 1024 * MB
    workers: int = 2
    preload: tuple[str, ...] = ()
    max_tasks: int = 200
    _idle: list[_Worker] = field(default_factory=list, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)
    _cv: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    #: what the latest call cost (benchmarks and tests read it; None before any call)
    last: CallStats | None = field(default=None, init=False, repr=False)

    def run(self, fn: str, data: bytes, kwargs: dict[str, Any] | None = None, *, timeout_s: float = 60.0,
            check: Callable[[], None] | None = None, what: str = "the file") -> Any:
        """Call ``fn`` (``"zhinao.module:function"``) as ``fn(data, **kwargs)`` in a worker.

        Args:
            timeout_s: wall-clock (and CPU) budget of the call; the worker is killed past it.
            check: called about every 100 ms while waiting; if it raises (a cancelled job),
                the worker is killed at once and the exception propagates.
            what: names the file in error messages.

        Returns:
            The function's result: decoded JSON, or ``bytes`` when it returned bytes.

        Raises:
            ParseTimeout, ParseMemoryExceeded, WorkerCrashed, or the function's own
            :class:`~zhinao.errors.ZhinaoError` (same class, message, code).
        """
        return self.run_with_stats(fn, data, kwargs, timeout_s=timeout_s, check=check, what=what)[0]

    def run_with_stats(self, fn: str, data: bytes, kwargs: dict[str, Any] | None = None, *,
                       timeout_s: float = 60.0, check: Callable[[], None] | None = None,
                       what: str = "the file") -> tuple[Any, CallStats]:
        stats = CallStats()
        t0 = time.perf_counter()
        worker = self._acquire(check)
        stats.worker_pid, stats.child_baseline_mb = worker.pid, worker.baseline_mb
        keep = False
        try:
            deadline = time.monotonic() + timeout_s
            header = json.dumps({"fn": fn, "kwargs": kwargs or {}, "cpu_s": timeout_s}).encode()
            try:
                worker.write_all(_LEN.pack(len(header)) + header + _LEN.pack(len(data)), deadline, check)
                worker.write_all(data, deadline, check)
                head = worker.read_frame(deadline, check)
                payload = worker.read_frame(deadline, check) if head is not None else None
            except TimeoutError:
                stats.killed = "timeout"
                raise ParseTimeout(f"{what}: parsing took longer than {timeout_s:g} s and was stopped; the file is "
                                   "too large or too complex (split it, or raise ZHINAO_PARSE_TIMEOUT_S)") from None
            except (BrokenPipeError, ConnectionResetError):
                head = payload = None
            if head is None or payload is None:
                raise self._death(worker, what, timeout_s, stats)
            reply = json.loads(head)
            stats.child_wall_s, stats.child_cpu_s = reply.get("wall_s", 0.0), reply.get("cpu_s", 0.0)
            stats.child_rss_before_mb = reply.get("rss_before_kb", 0) / 1024
            stats.child_peak_mb = reply.get("peak_rss_kb", 0) / 1024 or reply.get("maxrss_kb", 0) / 1024
            worker.tasks += 1
            # a worker whose heap grew past half its allowance is replaced (its memory is not given back);
            # one that refused a file is kept: the file's error is the file's, not the worker's
            keep = stats.child_peak_mb < worker.baseline_mb + self.memory_bytes / MB / 2
            if not reply.get("ok"):
                err = reply.get("error") or {}
                keep = keep and err.get("type") not in ("MemoryError", "crash")
                raise self._error(err, what)
            result = payload if reply.get("kind") == "bytes" else json.loads(payload)
            return result, stats
        finally:
            stats.wall_s = time.perf_counter() - t0
            self.last = stats
            self._release(worker, keep)

    def _death(self, worker: _Worker, what: str, timeout_s: float, stats: CallStats) -> ZhinaoError:
        try:
            rc = worker.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        stats.killed = f"exit {rc}"
        if rc == -signal.SIGXCPU:
            return ParseTimeout(f"{what}: parsing used more than {timeout_s:g} s of CPU and was stopped; the file "
                                "is too large or too complex (split it, or raise ZHINAO_PARSE_TIMEOUT_S)")
        if rc == -signal.SIGKILL:  # not ours (we kill only on timeout/cancel): the kernel's OOM killer
            return ParseMemoryExceeded(f"{what}: parsing needed more memory than the machine could give and was "
                                       "stopped; split the file")
        return WorkerCrashed(f"{what}: the parser crashed on this file (exit {rc}); it is probably corrupted — "
                             "open and save it again, or convert it to another format")

    def _error(self, err: dict[str, Any], what: str) -> ZhinaoError:
        kind, message = err.get("type", "crash"), err.get("message", "")
        if kind == "MemoryError":
            return ParseMemoryExceeded(f"{what}: parsing needs more than {self.memory_bytes // MB} MB of memory and "
                                       "was stopped (split the file, or raise ZHINAO_PARSE_MEMORY_BYTES)")
        cls = _errors_by_name().get(kind)
        if cls is None:
            return InvalidRequest(f"{what}: cannot read this file: {message}", code="corrupt_file")
        e = cls.__new__(cls)
        ZhinaoError.__init__(e, message, code=err.get("code"), param=err.get("param"))
        return e

    # -- the pool ------------------------------------------------------------------------------
    def _acquire(self, check: Callable[[], None] | None) -> _Worker:
        with self._cv:
            while True:
                if self._closed:
                    raise RuntimeError("the parser pool is closed")
                while self._idle:
                    w = self._idle.pop()
                    if w.alive():
                        return w
                    self._count -= 1
                if self._count < max(1, self.workers):
                    self._count += 1
                    break
                self._cv.wait(0.1)
                if check is not None:
                    check()
        try:
            return _Worker(self.preload, self.memory_bytes)
        except BaseException:
            with self._cv:
                self._count -= 1
                self._cv.notify()
            raise

    def _release(self, worker: _Worker, keep: bool) -> None:
        keep = keep and worker.alive() and worker.tasks < self.max_tasks
        if not keep:
            worker.kill()
        with self._cv:
            if keep and not self._closed:
                self._idle.append(worker)
            else:
                if keep:
                    worker.kill()
                self._count -= 1
            self._cv.notify()

    def worker_pids(self) -> list[int]:
        with self._cv:
            return [w.pid for w in self._idle]

    def close(self) -> None:
        with self._cv:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cv.notify_all()
        for w in idle:
            w.kill()


_RUNNERS: dict[tuple[Any, ...], IsolatedRunner] = {}
_RUNNERS_GUARD = threading.Lock()


def runner_for(limits: ParseLimits, preload: tuple[str, ...] = ()) -> IsolatedRunner:
    """The process-wide pool for these limits and preloads (started lazily, closed at exit)."""
    key = (int(limits.memory_bytes), int(limits.workers), tuple(preload))
    with _RUNNERS_GUARD:
        r = _RUNNERS.get(key)
        if r is None or r._closed:
            r = _RUNNERS[key] = IsolatedRunner(memory_bytes=int(limits.memory_bytes), workers=int(limits.workers),
                                               preload=tuple(preload))
        return r


@atexit.register
def close_all() -> None:
    """Kill every idle worker (busy ones die with their pipes or their CPU limit)."""
    with _RUNNERS_GUARD:
        runners = list(_RUNNERS.values())
        _RUNNERS.clear()
    for r in runners:
        r.close()


__all__ = ["CallStats", "IsolatedRunner", "ParseLimits", "ParseMemoryExceeded", "ParseTimeout", "WorkerCrashed",
           "close_all", "runner_for"]
