"""The worker process of :mod:`zhinao.safety.isolate` (``python -m zhinao.safety.worker``).

It imports what it is told to preload, then caps its own address space at what it uses
after those imports plus ``--memory-bytes`` (``RLIMIT_AS``), and serves requests on
stdin/stdout, one at a time: a JSON header naming ``module:function`` and its keyword
arguments, then the file's bytes. Before each call the CPU limit (``RLIMIT_CPU``) is set
to the CPU time used so far plus the call's budget, so a parser stuck in a loop is killed
by the kernel (SIGXCPU) even if the parent were gone.

Replies are a JSON header and a payload (JSON or raw bytes), never a pickle: whatever an
attacker's file did to this process, the parent only ever decodes plain data from it.
Anything the parsers print goes to stderr, not into the protocol stream.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import struct
import sys
import time
from typing import Any, BinaryIO

_LEN = struct.Struct(">Q")


def read_frame(f: BinaryIO) -> bytes | None:
    head = f.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def write_frame(f: BinaryIO, payload: bytes) -> None:
    f.write(_LEN.pack(len(payload)))
    f.write(payload)


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM), so each call reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _cpu_used() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _error(e: BaseException) -> dict[str, Any]:
    from zhinao.errors import ZhinaoError

    if isinstance(e, ZhinaoError):
        return {"type": type(e).__name__, "message": e.message, "code": e.code, "param": e.param}
    return {"type": "MemoryError" if isinstance(e, MemoryError) else "crash",
            "message": f"{type(e).__name__}: {e}"[:2000]}


def serve(inp: BinaryIO, out: BinaryIO, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a parser killed by a limit leaves no core file
    baseline = _vm_bytes()
    if memory_bytes > 0:
        cap = baseline + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    write_frame(out, json.dumps({"ready": True, "pid": os.getpid(), "vm_bytes": baseline,
                                 "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}).encode())
    out.flush()
    while True:
        head = read_frame(inp)
        if head is None:
            return  # the parent closed the pipe (or died): nothing left to do
        data = read_frame(inp)
        if data is None:
            return
        req = json.loads(head)
        _reset_peak()
        rss0 = _status_kb("VmRSS")
        t0, c0 = time.perf_counter(), _cpu_used()
        budget = int(c0 + float(req.get("cpu_s") or 60) + 1)
        resource.setrlimit(resource.RLIMIT_CPU, (budget if cpu_hard == resource.RLIM_INFINITY
                                                 else min(budget, cpu_hard), cpu_hard))
        fatal = False
        try:
            module, _, name = str(req["fn"]).partition(":")
            if not module.startswith("zhinao."):
                raise PermissionError(f"worker runs zhinao functions only, not {req['fn']!r}")
            result = getattr(importlib.import_module(module), name)(data, **(req.get("kwargs") or {}))
            if isinstance(result, (bytes, bytearray)):
                kind, payload = "bytes", bytes(result)
            else:
                kind, payload = "json", json.dumps(result, ensure_ascii=False).encode()
            del result
            reply: dict[str, Any] = {"ok": True, "kind": kind}
        except BaseException as e:  # noqa: BLE001  (everything goes back to the parent as data)
            reply, payload = {"ok": False, "error": _error(e)}, b""
            fatal = isinstance(e, (MemoryError, KeyboardInterrupt, SystemExit))
        finally:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard, cpu_hard))
        reply.update({"wall_s": time.perf_counter() - t0, "cpu_s": _cpu_used() - c0, "rss_before_kb": rss0,
                      "peak_rss_kb": _status_kb("VmHWM"),
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
        try:
            write_frame(out, json.dumps(reply).encode())
            write_frame(out, payload)
            out.flush()
        except BrokenPipeError:
            return
        if fatal:  # the heap may be in any state after MemoryError: let the parent start a fresh worker
            return


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--memory-bytes", type=int, default=0)
    ap.add_argument("--preload", default="")
    args = ap.parse_args(argv)
    # the protocol gets its own copy of stdout; fd 1 itself now points at stderr
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    for mod in filter(None, args.preload.split(",")):
        importlib.import_module(mod)
    try:
        serve(inp, out, args.memory_bytes)
    finally:
        os._exit(0)  # no interpreter teardown: nothing to flush, and a damaged heap must not hang exit


if __name__ == "__main__":
    main(sys.argv[1:])
