"""Run model-written pandas code: an AST check, then a fresh, limited, offline subprocess.

The agent's ``write_code`` tool validates the Python it writes by running it on a
temporary copy of the table it reads. Model code is untrusted code, so — as
:mod:`zhinao.analytics.sandbox` does for SQL — the sandbox is layered, outermost first, and
each layer says what it guarantees:

1. **AST check** (:func:`check_code`): imports only from :data:`ALLOWED_IMPORTS` (pandas,
   numpy, math, statistics, datetime, re, json, collections, itertools); no ``open``,
   ``exec``/``eval``/``compile``/``__import__``, ``getattr``/``globals``/``vars``; no name,
   attribute or string with a double underscore (``().__class__.__mro__`` tricks); no
   attribute that reaches a module (``pd.io.common.os``), a frame (``gi_frame.f_globals``)
   or a native file reader/writer (``read_parquet``, ``to_pickle``, ``np.fromfile``) —
   pyarrow and numpy open those files in C++, below the audit hook. It exists to give the
   model a message naming what was refused so it can repair, and it keeps the well-known
   escapes out; it is not the only wall.
2. **Interpreter** (the preamble, :data:`_PREAMBLE`): ``python -I`` (no user site, no
   ``PYTHON*`` variables, no script directory on the path) with an environment holding only
   thread counts and the locale; builtins without ``open``/``exec``/``eval``/``compile``/
   ``getattr`` and an ``__import__`` that admits only the allowlist; a ``sys.addaudithook``
   hook (which cannot be removed) that refuses ``open`` outside the temporary folder (reads of
   the Python installation's own files excepted, for lazy imports), every ``socket.*``
   event, ``subprocess``, ``os.system``/``exec``/``spawn``/``fork``/``posix_spawn``/``kill``,
   ``ctypes``, directory listings and file operations outside the folder.
   This is the file guarantee: everything Python-level that touches a file passes the hook.
3. **Process** (the OS; guarantees that hold even if the code escaped the interpreter):
   a fresh process per run (nothing is reused between runs) in its own session, killed with
   its group at the wall deadline; ``RLIMIT_CPU`` (the kernel's SIGXCPU past the budget),
   ``RLIMIT_AS`` (the budget on top of what the imports use), ``RLIMIT_FSIZE``,
   ``RLIMIT_NOFILE``, ``RLIMIT_NPROC`` = 0 after the data is loaded (no child processes or
   threads — enforced by the kernel for a non-root server user; root ignores it, so a root
   server runs the code as ``nobody`` when ``nobody`` can start the interpreter
   (:func:`unprivileged_identity`), and otherwise the hook is what stops ``fork``),
   ``RLIMIT_CORE`` = 0; the working directory is a fresh
   ``0700`` temporary folder holding only the copied table(s), removed afterwards.
   **Network**: when ``unshare -rn`` works without privileges (user namespaces on; probed
   once, :func:`network_isolation`), the process runs in a new network namespace with no
   interface up — not even loopback reaches the server — whatever the code does.

What is *not* guaranteed at the OS level: file reads outside the folder by code that got
past layers 1 and 2 (there is no mount namespace here); that rests on the AST check and the
audit hook. :attr:`PyResult.isolation` reports which layers applied to a run.

The result comes back as plain JSON on a private copy of stdout (never a pickle): the
``result`` variable, else the value of the last expression, as a table (DataFrame,
Series, dict, list or scalar), plus what the code printed (capped), or an error message
that names the line.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zhinao.errors import InvalidRequest

ALLOWED_IMPORTS = frozenset({"pandas", "numpy", "math", "statistics", "datetime", "re", "json", "collections",
                             "itertools"})
#: submodules an import may name (``from collections import abc`` needs none of these)
ALLOWED_SUBMODULES = frozenset({"collections.abc", "pandas.api.types"})
#: builtins the code may not name at all
DENIED_BUILTINS = frozenset({
    "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "input", "breakpoint", "help", "exit", "quit", "memoryview", "__builtins__", "__loader__", "__spec__",
})
#: attributes that reach a module, a frame or code object, or a file reader/writer that opens files natively
DENIED_ATTRIBUTES = frozenset({
    # modules reachable as attributes of allowed ones
    "os", "sys", "subprocess", "builtins", "importlib", "socket", "ctypes", "ctypeslib", "pathlib", "shutil", "io",
    "pickle", "marshal", "inspect", "gc", "signal", "resource", "threading", "multiprocessing", "tempfile", "glob",
    "posix", "urllib", "http", "code", "codeop", "pty", "platform", "sysconfig", "site", "runpy", "pkgutil", "mmap",
    "select", "asyncio", "concurrent", "weakref", "f2py", "distutils", "testing", "compat", "util",
    # frames, code objects, generators' insides
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_globals", "f_locals", "f_builtins",
    "f_back", "f_code", "f_trace", "tb_frame", "tb_next", "co_code", "func_globals", "mro",
    # files read or written below the audit hook (pyarrow / numpy C code) or by pickle
    "to_parquet", "to_feather", "to_orc", "to_hdf", "to_pickle", "to_stata", "to_sql", "to_excel", "to_clipboard",
    "fromfile", "tofile", "load", "loadtxt", "genfromtxt", "save", "savez", "savez_compressed", "savetxt",
    "memmap", "DataSource", "HDFStore", "ExcelWriter", "ExcelFile", "eval",
})
#: attribute prefixes refused (every pandas reader: read_csv(engine="pyarrow") reads natively)
DENIED_ATTRIBUTE_PREFIXES = ("read_", "_")
#: methods that interpret a string as code or attribute paths: only with a literal string
_STRING_CODE = frozenset({"format", "format_map", "query"})
_RESULT_MARK = "\x00ZHINAO-RESULT\x00"
_READY_MARK = "\x00ZHINAO-READY\x00"
MB = 1024 * 1024


class CodeRefused(InvalidRequest):
    """The code uses something the Python sandbox does not allow (the message says what)."""

    code = "code_not_allowed"


@dataclass(frozen=True)
class PyLimits:
    """What one run may use (``ZHINAO_AGENT_CODE_*`` settings).

    Attributes:
        timeout_s: CPU and wall-clock budget of the code itself (after the imports).
        startup_s: wall-clock allowance for the interpreter start, imports and data load.
        memory_mb: address space the code may add on top of what the imports use.
        max_rows: rows of the result table returned (more are cut; ``truncated`` says so).
        max_output_chars: characters of printed output returned.
        max_file_mb: largest file the code may write inside its folder (``RLIMIT_FSIZE``).
        max_open_files: ``RLIMIT_NOFILE``.
        concurrency: runs at once in this process (more wait).
    """

    timeout_s: float = 10.0
    startup_s: float = 60.0
    memory_mb: int = 1024
    max_rows: int = 200
    max_output_chars: int = 20_000
    max_file_mb: int = 64
    max_open_files: int = 64
    concurrency: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> PyLimits:
        d = cls()
        return cls(timeout_s=float(getattr(settings, "agent_code_timeout_s", d.timeout_s)),
                   memory_mb=int(getattr(settings, "agent_code_memory_mb", d.memory_mb)),
                   max_rows=int(getattr(settings, "agent_code_max_rows", d.max_rows)))


@dataclass
class PyResult:
    """What one run produced.

    Attributes:
        ok: False when the code was refused, raised, or hit a limit (``error`` says which).
        stdout: what the code printed (capped at ``max_output_chars``).
        columns / rows: the result as a table (JSON-ready rows), or None.
        truncated: the result had more than ``max_rows`` rows.
        value: a short text of a result that is not a table, or None.
        error: the message for the user or the model's repair step.
        error_kind: ``refused`` | ``error`` | ``timeout`` | ``memory`` | ``crashed``.
        elapsed_ms: wall time of the whole run.
        isolation: the layers that applied (``ast``, ``audit_hook``, ``rlimits``, ``network_namespace``).
    """

    ok: bool
    stdout: str = ""
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    truncated: bool = False
    value: str | None = None
    error: str | None = None
    error_kind: str | None = None
    elapsed_ms: float = 0.0
    isolation: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def output_text(self, max_rows: int = 10) -> str:
        """Printed output plus the head of the result, as the answer's code panel shows it."""
        parts = [self.stdout.rstrip()] if self.stdout.strip() else []
        if self.columns is not None:
            head = [" | ".join(self.columns)] + [" | ".join("" if v is None else str(v) for v in r)
                                                 for r in (self.rows or [])[:max_rows]]
            more = len(self.rows or []) - max_rows
            if more > 0 or self.truncated:
                head.append(f"... ({'more than ' if self.truncated else ''}{len(self.rows or [])} rows)")
            parts.append("\n".join(head))
        elif self.value is not None:
            parts.append(self.value)
        if self.error:
            parts.append(self.error)
        return "\n".join(parts)


# -- layer 1: the AST check -------------------------------------------------------------------

def _refuse(node: ast.AST | None, what: str) -> CodeRefused:
    line = getattr(node, "lineno", None)
    at = f"line {line}: " if line else ""
    return CodeRefused(f"{at}{what} — the Python sandbox runs pandas/numpy analysis code on the table given as "
                       f"`df` only (allowed imports: {', '.join(sorted(ALLOWED_IMPORTS))}; no files, network, "
                       "processes or introspection)", param="code")


def _check_module(node: ast.AST, name: str | None) -> None:
    if not name:
        raise _refuse(node, "relative imports are not allowed")
    top = name.split(".")[0]
    if top not in ALLOWED_IMPORTS or ("." in name and name not in ALLOWED_SUBMODULES):
        raise _refuse(node, f"import of {name!r} is not allowed")


def check_code(source: str) -> ast.Module:
    """Refuse, naming the construct and its line, code that steps outside pandas analysis.

    Returns:
        The parsed module (the caller may reuse it).

    Raises:
        CodeRefused: the code does not parse, imports outside :data:`ALLOWED_IMPORTS`, names a
            denied builtin, or uses a double-underscore name, attribute or string, or a denied
            attribute (:data:`DENIED_ATTRIBUTES`, ``read_*``, ``_private``).
    """
    if not isinstance(source, str) or not source.strip():
        raise CodeRefused("no code to run", param="code")
    if len(source) > 100_000:
        raise CodeRefused("the code is longer than 100,000 characters", param="code")
    try:
        tree = ast.parse(source, "<code>", "exec")
    except SyntaxError as e:
        raise CodeRefused(f"line {e.lineno}: syntax error: {e.msg}", param="code") from None
    calls: set[int] = set()  # .format/.query attribute nodes that are the callee of a checked call
    for node in sorted(ast.walk(tree), key=lambda n: not isinstance(n, ast.Call)):  # calls first
        if isinstance(node, ast.Import):
            for a in node.names:
                _check_module(node, a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                _check_module(node, None)
            _check_module(node, node.module)
            for a in node.names:
                if a.name == "*":
                    raise _refuse(node, f"'from {node.module} import *' is not allowed; import the names you use")
                if a.name in DENIED_ATTRIBUTES or a.name.startswith(DENIED_ATTRIBUTE_PREFIXES):
                    raise _refuse(node, f"importing {a.name!r} from {node.module} is not allowed")
        elif isinstance(node, ast.Name):
            if node.id in DENIED_BUILTINS or node.id.startswith("__"):
                raise _refuse(node, f"{node.id!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            if node.attr in _STRING_CODE and id(node) not in calls:
                raise _refuse(node, f".{node.attr} may only be called directly, with a literal string")
            if node.attr in DENIED_ATTRIBUTES or node.attr.startswith(DENIED_ATTRIBUTE_PREFIXES):
                why = ("reads a file" if node.attr.startswith("read_") else "is not allowed")
                raise _refuse(node, f"attribute .{node.attr} {why}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _STRING_CODE:
            target = node.func.value if node.func.attr != "query" else (node.args[0] if node.args else None)
            if not (isinstance(target, ast.Constant) and isinstance(target.value, str)):
                raise _refuse(node, f".{node.func.attr}() needs a literal string here (a string built at run time "
                                    "could reach attributes the check cannot see)")
            calls.add(id(node.func))
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if "__" in text:
                raise _refuse(node, "strings containing '__' are not allowed")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith("__"):
                raise _refuse(node, f"the name {node.name!r} is not allowed")
        elif isinstance(node, ast.arg):
            if node.arg.startswith("__"):
                raise _refuse(node, f"the name {node.arg!r} is not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for n in node.names:
                if n.startswith("__"):
                    raise _refuse(node, f"the name {n!r} is not allowed")
        elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("__"):
            raise _refuse(node, f"the keyword {node.arg!r} is not allowed")
    return tree


# -- layer 3: the process -------------------------------------------------------------------------

_NETNS: list[str] | None = None
_NETNS_GUARD = threading.Lock()


def network_isolation() -> list[str]:
    """The command prefix that puts a process in a new network namespace, or ``[]``.

    ``unshare -rn`` needs no privileges where user namespaces are enabled (the usual Linux
    default); probed once per process by running ``true`` under it.
    """
    global _NETNS
    ident = unprivileged_identity()  # probe as the identity the code will run as
    with _NETNS_GUARD:
        if _NETNS is None:
            _NETNS = []
            exe = shutil.which("unshare") or next((p for p in ("/usr/bin/unshare", "/bin/unshare")
                                                   if os.path.exists(p)), None)
            true = shutil.which("true") or "/bin/true"
            if exe:
                try:
                    rc = subprocess.run([exe, "-rn", true], capture_output=True, timeout=10,
                                        preexec_fn=lambda: _drop(ident)).returncode  # noqa: PLW1509
                except (OSError, subprocess.SubprocessError):
                    rc = 1
                if rc == 0:
                    _NETNS = [exe, "-rn", "--"]
        return list(_NETNS)


_NOBODY: list[tuple[int, int] | None] = []


def unprivileged_identity() -> tuple[int, int] | None:
    """``(uid, gid)`` of ``nobody`` when this server runs as root and ``nobody`` can start the
    interpreter (probed once), else None.

    Root ignores ``RLIMIT_NPROC`` and every file permission, so a root server runs the code as
    ``nobody``: the kernel then refuses it child processes and the server's own files.
    """
    with _NETNS_GUARD:
        if not _NOBODY:
            ident = None
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                try:
                    import pwd

                    pw = pwd.getpwnam("nobody")
                    cand = (pw.pw_uid, pw.pw_gid)
                    rc = subprocess.run([sys.executable, "-I", "-c", "import pandas"], capture_output=True,
                                        timeout=120, cwd="/", env={"LC_ALL": "C.UTF-8"},
                                        preexec_fn=lambda: _drop(cand)).returncode  # noqa: PLW1509
                    ident = cand if rc == 0 else None
                except (KeyError, OSError, subprocess.SubprocessError):
                    ident = None
            _NOBODY.append(ident)
        return _NOBODY[0]


def _drop(ident: tuple[int, int] | None) -> None:
    if ident is not None:
        os.setgroups([])
        os.setgid(ident[1])
        os.setuid(ident[0])


def _allowed_read_roots() -> list[str]:
    """The Python installation's own folders: reading them (lazy imports) reveals nothing."""
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.add(os.path.realpath(p))
    for p in (sys.base_prefix, sys.prefix):
        roots.add(os.path.realpath(os.path.join(p, "lib")))
    return sorted(roots)


_SLOTS: dict[int, threading.BoundedSemaphore] = {}
_SLOTS_GUARD = threading.Lock()


def _slot(n: int) -> threading.BoundedSemaphore:
    with _SLOTS_GUARD:
        return _SLOTS.setdefault(max(1, n), threading.BoundedSemaphore(max(1, n)))


def _limit_child(limits: PyLimits, ident: tuple[int, int] | None) -> None:
    """preexec_fn: limits that hold from the first instruction (CPU and memory are tightened
    again by the preamble once the imports are done), then the unprivileged identity."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fsize = int(limits.max_file_mb) * MB
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = int(limits.max_open_files)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    cpu = int(limits.startup_s + limits.timeout_s) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _drop(ident)


def run_python(source: str, tables: Mapping[str, Any], *, limits: PyLimits | None = None, check: bool = True,
               audit: bool = True) -> PyResult:
    """Run ``source`` on copies of ``tables`` (name -> DataFrame) in a fresh sandboxed process.

    The code sees ``df`` (the first table), ``tables`` (all of them by name) and each table
    by its name where that is a plain identifier; ``pd``/``np`` are imported for it.

    Args:
        check: run the AST check first and give the code restricted builtins and imports
            (only tests of the inner layers turn it off).
        audit: install the audit hook (only tests of the OS layers turn it off).

    Returns:
        A :class:`PyResult`; refusals, exceptions and limits come back as ``ok=False`` with
        a message, never raised (the tool hands the message to the repair step).
    """
    limits = limits or PyLimits()
    t0 = time.perf_counter()
    ident = unprivileged_identity()
    netns = network_isolation()
    isolation = {"ast": bool(check), "audit_hook": bool(audit), "rlimits": True, "network_namespace": bool(netns),
                 "unprivileged_user": ident is not None or (hasattr(os, "geteuid") and os.geteuid() != 0)}
    if check:
        try:
            check_code(source)
        except CodeRefused as e:
            return PyResult(ok=False, error=e.message, error_kind="refused", isolation=isolation,
                            elapsed_ms=(time.perf_counter() - t0) * 1000)
    with _slot(limits.concurrency):
        folder = tempfile.mkdtemp(prefix="zhinao-py-")
        try:
            os.chmod(folder, 0o700)
            if ident is not None:
                os.chown(folder, ident[0], ident[1])
            files = {}
            for i, (name, frame) in enumerate(tables.items()):
                fname = f"t{i}.parquet"
                _to_parquet(frame, os.path.join(folder, fname))
                files[str(name)] = fname
            request = {"code": source, "tables": files, "timeout_s": float(limits.timeout_s),
                       "memory_bytes": int(limits.memory_mb) * MB, "max_rows": int(limits.max_rows),
                       "max_output_chars": int(limits.max_output_chars), "audit": bool(audit), "restrict": bool(check),
                       "read_roots": _allowed_read_roots(), "folder": os.path.realpath(folder)}
            if ident is not None:
                for f in files.values():
                    os.chown(os.path.join(folder, f), ident[0], ident[1])
            out = _spawn(netns, request, folder, limits, ident)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    out.isolation = isolation
    out.elapsed_ms = (time.perf_counter() - t0) * 1000
    return out


def _to_parquet(frame: Any, path: str) -> None:
    import pandas as pd

    df = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    for c in df.columns:  # mixed-type object columns do not convert to Arrow; their text does
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c].dropna().head(1000)}
            if len(kinds) > 1:
                df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))
    df.to_parquet(path, index=False)


def _spawn(prefix: list[str], request: dict[str, Any], folder: str, limits: PyLimits,
           ident: tuple[int, int] | None) -> PyResult:
    env = {"LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMEXPR_MAX_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    cmd = [*prefix, sys.executable, "-I", "-B", "-c", _PREAMBLE]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder,
                            env=env, close_fds=True, start_new_session=True,
                            preexec_fn=lambda: _limit_child(limits, ident))  # noqa: PLW1509 (no threads touched)
    cap = 8 * MB + 4 * int(limits.max_output_chars)
    out_buf, err_buf = bytearray(), bytearray()
    ready = threading.Event()

    def pump(stream: Any, buf: bytearray, watch: bool) -> None:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            if len(buf) < cap:
                buf += chunk[: cap - len(buf)]
            if watch and not ready.is_set() and _READY_MARK.encode() in buf:
                ready.set()
        ready.set() if watch else None

    readers = [threading.Thread(target=pump, args=(proc.stdout, out_buf, True), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_buf, False), daemon=True)]
    for r in readers:
        r.start()
    killed = None
    try:
        try:
            proc.stdin.write(json.dumps(request).encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        if not ready.wait(limits.startup_s):
            killed = "startup"
        else:
            try:
                proc.wait(timeout=limits.timeout_s + 2.0)
            except subprocess.TimeoutExpired:
                killed = "timeout"
    finally:
        if killed or proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait()
        for r in readers:
            r.join(5)
    return _decode(bytes(out_buf), bytes(err_buf), proc.returncode, killed, limits)


def _decode(out: bytes, err: bytes, rc: int, killed: str | None, limits: PyLimits) -> PyResult:
    text = out.decode("utf-8", "replace")
    if _RESULT_MARK in text:
        try:
            data = json.loads(text.rsplit(_RESULT_MARK, 1)[1])
            return PyResult(ok=bool(data.get("ok")), stdout=str(data.get("stdout") or ""),
                            columns=data.get("columns"), rows=data.get("rows"),
                            truncated=bool(data.get("truncated")), value=data.get("value"),
                            error=data.get("error"), error_kind=data.get("error_kind"))
        except (ValueError, TypeError):
            pass
    if killed == "timeout" or rc == -signal.SIGXCPU:
        return PyResult(ok=False, error=f"the code ran longer than {limits.timeout_s:g} s and was stopped; make it "
                        "do less work (vectorised pandas operations instead of Python loops)",
                        error_kind="timeout")
    if killed == "startup":
        return PyResult(ok=False, error=f"the Python sandbox did not start within {limits.startup_s:g} s "
                        "(the machine is overloaded); try again", error_kind="crashed")
    tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
    if any("MemoryError" in t or "Cannot allocate" in t or "bad_alloc" in t for t in tail) or rc == -signal.SIGKILL:
        return PyResult(ok=False, error=f"the code needed more than {limits.memory_mb} MB of memory and was stopped",
                        error_kind="memory")
    return PyResult(ok=False, error=f"the Python sandbox process ended without a result (exit {rc})"
                    + (f": {' / '.join(tail)}" if tail else ""), error_kind="crashed")


# -- layer 2: the preamble run by `python -I -c` in the child ---------------------------------------
# It reads its request from stdin, loads the tables, caps itself, installs the audit hook,
# signals ready, runs the code with restricted builtins and writes one JSON result.
_PREAMBLE = r'''
import ast, builtins, io, json, os, resource, sys, time, traceback
import collections, datetime, itertools, math, re, statistics
import numpy as np
import pandas as pd

_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 1)
_req = json.loads(sys.stdin.read())
_folder = _req["folder"]
_tables = {n: pd.read_parquet(f) for n, f in _req["tables"].items()}
ALLOWED = ''' + repr(sorted(ALLOWED_IMPORTS)) + r'''
SUBMODULES = ''' + repr(sorted(ALLOWED_SUBMODULES)) + r'''
DENIED = ''' + repr(sorted(DENIED_BUILTINS)) + r'''
RESULT, READY = ''' + repr(_RESULT_MARK) + ", " + repr(_READY_MARK) + r'''
_max_chars = int(_req["max_output_chars"])

def _finish(d):
    _out.write(RESULT + json.dumps(d, ensure_ascii=False, default=str))
    _out.flush()
    os._exit(0)

class _Capped(io.TextIOBase):
    def __init__(self):
        self.parts, self.n = [], 0
    def write(self, s):
        s = str(s)
        if self.n < _max_chars:
            self.parts.append(s[: _max_chars - self.n])
        self.n += len(s)
        return len(s)
    def text(self):
        t = "".join(self.parts)
        return t + ("\n... (output cut at %d characters)" % _max_chars if self.n > _max_chars else "")

# limits on top of what the imports and the data took
with open("/proc/self/statm") as _f:
    _vm = int(_f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
_cap = _vm + int(_req["memory_bytes"])
resource.setrlimit(resource.RLIMIT_AS, (_cap, _cap))
_ru = resource.getrusage(resource.RUSAGE_SELF)
_cpu = int(_ru.ru_utime + _ru.ru_stime + float(_req["timeout_s"])) + 1
_soft, _hard = resource.getrlimit(resource.RLIMIT_CPU)
resource.setrlimit(resource.RLIMIT_CPU, (min(_cpu, _hard), _hard))
try:
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
except (ValueError, OSError):
    pass

_roots = tuple(r.rstrip("/") + "/" for r in _req["read_roots"])
_inside = _folder.rstrip("/") + "/"
_DENY_IMPORTS = {"ctypes", "_ctypes", "socket", "_socket", "subprocess", "_posixsubprocess", "multiprocessing",
                 "pty", "ssl", "_ssl", "urllib.request", "http.client", "ftplib", "smtplib", "telnetlib", "webbrowser"}
_PROC_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                "os.kill", "os.killpg", "pty.spawn", "os.startfile", "sys.addaudithook", "os.chdir", "os.fchdir",
                "urllib.Request", "webbrowser.open", "pickle.find_class"}
_PATH_EVENTS = {"os.listdir", "os.scandir", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod",
                "os.chown", "os.link", "os.symlink", "os.truncate", "os.utime", "glob.glob", "shutil.copyfile",
                "shutil.copytree", "shutil.rmtree", "shutil.move", "shutil.chown", "os.walk", "tempfile.mkstemp",
                "tempfile.mkdtemp"}

def _real(p):
    if isinstance(p, bytes):
        p = p.decode("utf-8", "replace")
    return os.path.realpath(os.path.join(_folder, os.fspath(p)))

def _hook(event, args):
    if event == "open":
        path, mode = args[0], args[1] if len(args) > 1 else "r"
        if isinstance(path, int) or path is None:
            raise PermissionError("sandbox: opening file descriptors is not allowed")
        real = _real(path)
        if real.startswith(_inside):
            return
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writes = writes or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
        if not writes and real.startswith(_roots):
            return
        raise PermissionError("sandbox: no access to %s outside the data folder" % os.fspath(path))
    if event.startswith("socket.") or event.startswith("ctypes."):
        raise PermissionError("sandbox: %s is not allowed (no network, no native calls)" % event)
    if event in _PROC_EVENTS:
        raise PermissionError("sandbox: %s is not allowed (no processes)" % event)
    if event == "import" and (args[0] in _DENY_IMPORTS or str(args[0]).split(".")[0] in _DENY_IMPORTS):
        raise PermissionError("sandbox: import of %s is not allowed" % args[0])
    if event in _PATH_EVENTS:
        for a in args:
            if isinstance(a, (str, bytes)) or hasattr(a, "__fspath__"):
                if not _real(a).startswith(_inside) and _real(a) != _folder:
                    raise PermissionError("sandbox: %s outside the data folder is not allowed" % event)

def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or (name.split(".")[0] not in ALLOWED) or ("." in name and name not in SUBMODULES):
        raise ImportError("import of %r is not allowed in the sandbox" % name)
    return builtins.__import__(name, globals, locals, fromlist, level)

_builtins = {k: v for k, v in vars(builtins).items() if k not in DENIED}
_builtins["__import__"] = _guarded_import
if not _req.get("restrict", True):
    _builtins = builtins
_ns = {"__name__": "__main__", "__builtins__": _builtins, "pd": pd, "np": np, "tables": dict(_tables)}
if _tables:
    _ns["df"] = next(iter(_tables.values()))
for _n, _t in _tables.items():
    if _n.isidentifier() and not hasattr(builtins, _n) and _n not in ("pd", "np", "tables", "df", "result"):
        _ns[_n] = _t

_tree = ast.parse(_req["code"], "<code>", "exec")
if _tree.body and isinstance(_tree.body[-1], ast.Expr):
    _last = _tree.body[-1]
    _tree.body[-1] = ast.copy_location(ast.Assign(targets=[ast.Name("__zhinao_last__", ast.Store())],
                                                  value=_last.value), _last)
    ast.fix_missing_locations(_tree)
_code = compile(_tree, "<code>", "exec")
_lines = _req["code"].splitlines()
_stdout = _Capped()

def _where(e):
    line = None
    for fr in traceback.extract_tb(e.__traceback__):
        if fr.filename == "<code>":
            line = fr.lineno
    if line is None and isinstance(e, SyntaxError) and e.filename == "<code>":
        line = e.lineno
    if line and 0 < line <= len(_lines):
        return " (line %d: %s)" % (line, _lines[line - 1].strip()[:200])
    return ""

def _jsonable(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if v != v or v in (float("inf"), float("-inf")) else v
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, (pd.Timestamp, datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if v is pd.NaT or v is pd.NA:
        return None
    return str(v)

def _table(v):
    mr = int(_req["max_rows"])
    if isinstance(v, pd.Series):
        v = v.to_frame(name=str(v.name) if v.name is not None else "value")
    elif isinstance(v, dict) and v and all(np.isscalar(x) or x is None for x in v.values()):
        v = pd.Series(v).to_frame("value")
    elif isinstance(v, (list, tuple)) and v and all(np.isscalar(x) or x is None for x in v):
        v = pd.DataFrame({"value": list(v)})
    if isinstance(v, pd.DataFrame):
        plain = (not isinstance(v.index, pd.MultiIndex) and v.index.name is None
                 and pd.api.types.is_integer_dtype(v.index.dtype))
        if not plain:
            v = v.reset_index()  # group keys are columns of the answer; a filter's row numbers are not
        if isinstance(v.columns, pd.MultiIndex):
            v.columns = ["_".join(str(p) for p in c if str(p)) for c in v.columns]
        cols = [str(c) for c in v.columns]
        head = v.head(mr)
        rows = [[_jsonable(x) for x in r] for r in head.itertuples(index=False, name=None)]
        return {"columns": cols, "rows": rows, "truncated": len(v) > mr}
    if np.isscalar(v) or isinstance(v, (pd.Timestamp, datetime.date)):
        return {"columns": ["result"], "rows": [[_jsonable(v)]], "truncated": False}
    return {"value": repr(v)[:_max_chars]}

def _refused(name):
    def refuse(*a, **k):
        raise PermissionError("sandbox: %s is not available (files are read and written only as the sandbox "
                              "gives them)" % name)
    return refuse

# pandas dispatches method names given as strings (df.agg("to_parquet", ...)), and pyarrow, numpy
# and pickle open files in C below the audit hook: those entry points are replaced before the code runs
if _req.get("audit", True):
    _NATIVE_IO = ("to_parquet", "to_feather", "to_orc", "to_hdf", "to_pickle", "to_stata", "to_sql", "to_excel",
                  "to_clipboard", "tofile")
    for _cls in (pd.DataFrame, pd.Series, pd.Index, np.ndarray):
        for _name in _NATIVE_IO:
            if hasattr(_cls, _name):
                try:
                    setattr(_cls, _name, _refused(_name))
                except (TypeError, AttributeError):
                    pass
    for _name in [n for n in dir(pd) if n.startswith("read_")] + ["HDFStore", "ExcelFile", "ExcelWriter"]:
        setattr(pd, _name, _refused("pandas." + _name))
    for _name in ("load", "save", "savez", "savez_compressed", "fromfile", "memmap", "loadtxt", "savetxt",
                  "genfromtxt"):
        if hasattr(np, _name):
            setattr(np, _name, _refused("numpy." + _name))
    sys.addaudithook(_hook)
_out.write(READY + "\n")
_out.flush()
sys.stdout = sys.stderr = _stdout
try:
    exec(_code, _ns)
except MemoryError:
    _finish({"ok": False, "stdout": _stdout.text(), "error_kind": "memory",
             "error": "the code needed more than %d MB of memory and was stopped" % (_req["memory_bytes"] >> 20)})
except BaseException as e:
    kind = "refused" if isinstance(e, (PermissionError, ImportError)) and "sandbox" in str(e) else "error"
    _finish({"ok": False, "stdout": _stdout.text(), "error_kind": kind,
             "error": ("%s: %s" % (type(e).__name__, e))[:2000] + _where(e)})
_value = _ns.get("result", _ns.get("__zhinao_last__"))
_res = {"ok": True, "stdout": _stdout.text()}
if _value is not None:
    try:
        _res.update(_table(_value))
    except Exception as e:
        _res.update({"value": "(result could not be shown: %s)" % e})
_finish(_res)
'''

__all__ = ["ALLOWED_IMPORTS", "CodeRefused", "PyLimits", "PyResult", "check_code", "network_isolation",
           "run_python", "unprivileged_identity"]
