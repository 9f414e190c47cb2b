"""The SQL sandbox: the one way user- or model-written SQL runs on a workspace's DuckDB file.

Issue 8 showed that a plain ``duckdb.connect`` lets ``SELECT content FROM read_text(...)``
read any file the server can (secrets in ``/proc/self/environ``, other tenants' data). A
parser check alone cannot be trusted to close that: DuckDB has hundreds of functions,
replacement scans (``FROM '/etc/passwd'``), ``query('...')`` that runs a string, and new
ones every release. So the sandbox is layered, outermost first, and the *engine* layers are
the guarantee:

1. **Parser check** (:func:`check_sql`, sqlglot): one read-only ``SELECT``/set operation;
   tables only the workspace's own (or the query's CTEs, or ``information_schema``); table
   functions only :data:`TABLE_FUNCTIONS`; no file, settings or catalogue functions. It exists
   to give a message saying what to fix, not to keep anyone out.
2. **Engine** (:func:`connect` + :func:`engine_execute`): DuckDB's *own* parser must see
   exactly one ``SELECT`` statement; the connection is a fresh one on the workspace file,
   ``read_only``, with external access, extension loading/installing, persistent secrets and
   Python replacement scans off, a memory limit, no spilling, a thread count, and then
   ``SET lock_configuration=true`` so no statement can turn any of it back on.
3. **Limits**: a timer calls ``conn.interrupt()`` at ``timeout_s``; rows are read in batches
   and capped at ``max_rows`` (``truncated`` says so); the result's bytes are capped.
4. **Process** (``isolation="process"``, the default): the query runs in a pooled worker
   process of :mod:`zhinao.safety.isolate` (duckdb, pyarrow, sqlglot imported before its
   address space is capped with ``RLIMIT_AS``; a CPU limit per call), which is killed past the
   deadline. DuckDB's memory limit covers its buffer pool only, so ``repeat('x', 4e9)`` would
   otherwise allocate 8 GB in the server, and ``interrupt()`` is only checked between
   vectors (measured: 7 s to stop a 1 GB ``repeat``). A crash in the engine ends the worker,
   not the server. Results come back as an Arrow IPC stream (parsed, never unpickled).

Use :func:`run_readonly` (it takes the limits as keywords) or :meth:`SqlLimits.run`. The
functions here know nothing of HTTP; their errors are :class:`~zhinao.errors.InvalidRequest`
subclasses (400) with a message saying what to change.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import json
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from zhinao.errors import InvalidRequest, RateLimited

#: table functions a query may read from: they generate rows and touch no file
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "explode"})
#: function-name prefixes, suffixes and names refused anywhere in a query: file readers,
#: scanners of other databases, settings, the catalogue (which shows file paths) and SQL-in-a-string
DENIED_PREFIXES = ("read_", "parquet_", "sniff_", "duckdb_", "pragma_", "iceberg_", "delta_", "sqlite_",
                   "postgres_", "mysql_", "st_read", "json_execute", "test_", "from_substrait", "get_substrait")
DENIED_SUFFIXES = ("_scan",)
DENIED_FUNCTIONS = frozenset({
    "glob", "query", "query_table", "current_setting", "getenv", "checkpoint", "force_checkpoint",
    "load", "install", "which_secret", "enable_logging", "disable_logging", "truncate_duckdb_logs",
    "sql_auto_complete", "json_serialize_sql", "json_deserialize_sql", "json_serialize_plan",
})
#: sqlglot expression classes that are statements other than a query
_STATEMENT_CLASSES = ("Command", "Pragma", "Set", "Copy", "Attach", "Detach", "Install", "Use", "Create",
                      "Drop", "Insert", "Update", "Delete", "Merge", "Alter", "Export", "LoadData",
                      "Transaction", "Commit", "Rollback", "Kill", "Analyze", "Cache", "Uncache", "Refresh",
                      "Describe", "Summarize", "DML", "DDL")
_ALLOWED_SCHEMAS = ("main", "information_schema")
_MEM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.IGNORECASE)
_MEM_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
              "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
_GRACE_S = 3.0  #: the pool kills the worker this long after timeout_s (interrupt latency, result transfer)
_BATCH_ROWS = 2048


# -- errors ---------------------------------------------------------------------------------

class SqlRejected(InvalidRequest):
    """The statement is not allowed in the sandbox (not a single read-only query, or it names
    a file, a setting, another database or a function outside the allowlist)."""

    code = "sql_not_allowed"


class SqlFailed(InvalidRequest):
    """The query is allowed but DuckDB could not run it (syntax, unknown column, type error)."""

    code = "sql_error"


class SqlLimitExceeded(InvalidRequest):
    """The query ran past the time, memory or result-size limit."""

    code = "sql_limit_exceeded"


def _rejected(msg: str) -> SqlRejected:
    return SqlRejected(msg, param="sql")


# -- limits ---------------------------------------------------------------------------------

def memory_bytes(limit: str | int) -> int:
    """``"512MB"`` / ``"1GiB"`` / ``1000000`` as bytes (DuckDB's units: KB = 1000, KiB = 1024)."""
    if isinstance(limit, int):
        return limit
    m = _MEM_RE.match(str(limit))
    if not m:
        raise InvalidRequest(f"memory limit {limit!r} is not a size: use e.g. 512MB or 1GiB", param="memory_limit")
    return int(float(m.group(1)) * _MEM_UNITS[(m.group(2) or "B").upper()])


@dataclass(frozen=True)
class SqlLimits:
    """What one query may use. Built from settings by :meth:`from_settings`."""

    timeout_s: float = 10.0
    memory_limit: str = "512MB"  #: DuckDB's buffer pool; the child's address space gets twice this plus slack
    max_rows: int = 10_000
    threads: int = 1
    max_result_bytes: int = 64 * 1024 * 1024
    isolation: Literal["process", "inline"] = "process"
    concurrency: int = 4  #: queries running at once in this process (more wait, then 429)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise InvalidRequest("the SQL timeout must be positive", param="timeout_s")
        if self.max_rows < 1:
            raise InvalidRequest("max_rows must be at least 1", param="max_rows")
        if self.isolation not in ("process", "inline"):
            raise InvalidRequest("SQL isolation must be 'process' or 'inline'", param="isolation")
        memory_bytes(self.memory_limit)

    @classmethod
    def from_settings(cls, settings: Any) -> SqlLimits:
        d = cls()
        return cls(timeout_s=float(getattr(settings, "sql_timeout_s", d.timeout_s)),
                   memory_limit=str(getattr(settings, "sql_memory_limit", d.memory_limit)),
                   max_rows=int(getattr(settings, "sql_max_rows", d.max_rows)),
                   threads=int(getattr(settings, "sql_threads", d.threads)),
                   max_result_bytes=int(getattr(settings, "sql_max_result_bytes", d.max_result_bytes)),
                   isolation=getattr(settings, "sql_isolation", d.isolation),
                   concurrency=int(getattr(settings, "sql_concurrency", d.concurrency)))

    def but(self, **changes: Any) -> SqlLimits:
        """A copy with some limits changed (``limits.but(max_rows=100)``)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def run(self, path: str | Path, sql: str) -> QueryResult:
        return _dispatch(Path(path), sql, self, check=True)


# -- results --------------------------------------------------------------------------------

@dataclass
class QueryResult:
    """Rows of one sandboxed query, as an Arrow table plus what the caller must be told."""

    columns: list[str]
    types: list[str]  #: DuckDB type names
    table: Any  #: pyarrow.Table
    truncated: bool  #: more rows existed than ``max_rows``
    max_rows: int
    elapsed_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        return int(self.table.num_rows)

    def rows(self) -> list[tuple[Any, ...]]:
        """Rows as tuples of Python values (column names may repeat, so not dicts)."""
        cols = [c.to_pylist() for c in self.table.columns]
        return list(zip(*cols)) if cols else []

    def json_rows(self) -> list[list[Any]]:
        """Rows with every value JSON-safe (decimals as numbers, dates as ISO text, NaN as null)."""
        return [[plain(v) for v in row] for row in self.rows()]

    def frame(self):
        """A pandas DataFrame; decimals (``SUM`` of integers is a HUGEINT) become floats, as
        DuckDB's own ``.df()`` does."""
        import pyarrow as pa

        t = self.table
        for i, f in enumerate(t.schema):
            if pa.types.is_decimal(f.type):
                t = t.set_column(i, f.name, t.column(i).cast(pa.float64(), safe=False))
        return t.to_pandas(date_as_object=False)

    def as_dict(self) -> dict[str, Any]:
        """What the API returns."""
        return {"columns": self.columns, "types": self.types, "rows": self.json_rows(), "row_count": self.row_count,
                "truncated": self.truncated, "max_rows": self.max_rows, "elapsed_ms": round(self.elapsed_ms, 1)}


def plain(v: Any) -> Any:
    """One result value as JSON can carry it."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            return None
        return int(v) if v == v.to_integral_value() and abs(v) < 2**63 else float(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return f"<{len(v)} bytes>"
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, uuid.UUID):
        return str(v)
    return str(v)


# -- layer 1: the parser check --------------------------------------------------------------

def _func_name(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return str(node.name or "").lower()
    try:
        return node.sql_name().lower()
    except Exception:  # some sqlglot classes have no SQL name
        return type(node).__name__.lower()


def _denied_function(name: str) -> bool:
    return (name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES) or name.endswith(DENIED_SUFFIXES))


def _statement_types() -> tuple[type, ...]:
    from sqlglot import exp

    return tuple(c for c in (getattr(exp, n, None) for n in _STATEMENT_CLASSES) if isinstance(c, type))


def parse_single_query(sql: str, dialect: str = "duckdb") -> Any:
    """Parse ``sql`` and return its one read-only query (sqlglot expression), or raise.

    Shared by the sandbox and the data-source import: exactly one statement, a SELECT / set
    operation / parenthesised query at the root, and no statement of another kind anywhere
    inside (PostgreSQL's ``WITH x AS (DELETE ... RETURNING *)``, ``SELECT ... INTO``).
    """
    import sqlglot
    from sqlglot import exp

    if not isinstance(sql, str) or not sql.strip():
        raise _rejected("the SQL is empty: send one SELECT statement")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as e:
        raise SqlFailed(f"SQL does not parse: {str(e).splitlines()[0][:300]} (check quotes and brackets)",
                        param="sql") from None
    except RecursionError:
        raise _rejected("the SQL is nested too deeply to check; simplify it") from None
    if len(statements) != 1:
        raise _rejected(f"send exactly one statement (got {len(statements)}); one SELECT runs at a time")
    root = statements[0]
    query_types = (exp.Select, getattr(exp, "SetOperation", exp.Union), exp.Subquery)
    if not isinstance(root, query_types):
        raise _rejected(f"only a read-only SELECT (or WITH ... SELECT, UNION ...) is allowed, not "
                        f"{_kind(root)}; data changes through imports, not SQL")
    statement_types = _statement_types()
    for node in root.walk():
        if isinstance(node, statement_types):
            raise _rejected(f"{_kind(node)} is not allowed inside a query")
        if isinstance(node, exp.Select) and (node.args.get("into") is not None or node.args.get("locks")):
            raise _rejected("SELECT ... INTO and FOR UPDATE/SHARE change or lock data; send a plain SELECT")
    return root


def function_names(root: Any) -> Iterator[str]:
    """Lower-case names of every function called anywhere in a parsed query."""
    from sqlglot import exp

    for node in root.walk():
        if isinstance(node, exp.Func):
            yield _func_name(node)


def check_sql(sql: str, tables: Iterable[str] | None = None, *, catalog: str | None = None) -> None:
    """Refuse, with a message saying what to change, anything but one read-only query over
    ``tables`` (the workspace's own; ``None`` skips the table check).

    Raises:
        SqlRejected: a statement other than a query, several statements, or a file/setting/
            catalogue function, table function outside :data:`TABLE_FUNCTIONS`, or a table
            that is not the workspace's.
        SqlFailed: the SQL does not parse.
    """
    from sqlglot import exp

    root = parse_single_query(sql, "duckdb")
    ctes = {str(c.alias_or_name).lower() for c in root.find_all(exp.CTE)}
    known = None if tables is None else {t.lower() for t in tables}
    for node in root.walk():
        if isinstance(node, exp.Table):
            _check_table(node, ctes, known, catalog)
        elif isinstance(node, exp.Lateral) and isinstance(node.this, exp.Func):
            _check_table_function(node.this)
        elif isinstance(node, exp.Func):
            name = _func_name(node)
            if _denied_function(name):
                raise _rejected(f"function {name}() is not available in the SQL sandbox (files, settings and "
                                "the catalogue are off limits); query the workspace's tables instead")


def _kind(node: Any) -> str:
    name = type(node).__name__
    return {"Command": "this command", "Pragma": "PRAGMA", "Set": "SET", "Copy": "COPY", "Attach": "ATTACH",
            "Detach": "DETACH", "Install": "INSTALL", "Use": "USE", "Create": "CREATE", "Drop": "DROP",
            "Insert": "INSERT", "Update": "UPDATE", "Delete": "DELETE", "Merge": "MERGE", "Alter": "ALTER",
            "Export": "EXPORT", "Describe": "DESCRIBE (use information_schema.columns)",
            "Summarize": "SUMMARIZE (the dataset's profile has the summary)"}.get(name, name.upper())


def _check_table_function(fn: Any) -> None:
    name = _func_name(fn)
    if name not in TABLE_FUNCTIONS:
        raise _rejected(f"table function {name}() is not available in the SQL sandbox; read from the "
                        f"workspace's tables (table functions allowed: {', '.join(sorted(TABLE_FUNCTIONS))})")


def _check_table(node: Any, ctes: set[str], known: set[str] | None, catalog: str | None) -> None:
    from sqlglot import exp

    target = node.this
    if isinstance(target, exp.Func):
        _check_table_function(target)
        return
    if not isinstance(target, exp.Identifier):
        raise _rejected(f"cannot read from {node.sql('duckdb')[:80]!r}; name a table of the workspace")
    name = str(target.this)
    schema = (node.text("db") or "").lower()
    cat = (node.text("catalog") or "").lower()
    if cat and (catalog is None or cat != catalog.lower()):
        raise _rejected(f"database {cat!r} is not this workspace; only the workspace's own tables can be read")
    if schema and schema not in _ALLOWED_SCHEMAS:
        raise _rejected(f"schema {schema!r} is not available; use the workspace's tables (schema main)")
    if schema == "information_schema":
        return
    if not schema and name.lower() in ctes:
        return
    if "/" in name or "\\" in name or ("." in name and known is not None and name.lower() not in known):
        raise _rejected(f"{name!r} looks like a file path; the sandbox reads only the workspace's tables "
                        "(import the file as a dataset first)")
    if known is not None and name.lower() not in known:
        hint = f"; tables: {', '.join(sorted(known))}" if known and len(known) <= 30 else ""
        raise _rejected(f"table {name!r} is not in this workspace{hint}")


# -- layer 2: the engine --------------------------------------------------------------------

def engine_config(limits: SqlLimits) -> dict[str, Any]:
    """The DuckDB settings of a sandbox connection (each one checked by tests/security)."""
    return {
        "enable_external_access": False,  # no file, network, ATTACH, COPY, INSTALL outside the db file
        "allow_community_extensions": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,  # FROM df would read a Python variable of the caller
        "memory_limit": str(limits.memory_limit),
        "threads": int(limits.threads),
        "max_temp_directory_size": "0B",  # no spilling to disk: a query that needs more memory fails
        "temp_directory": "",
    }


def connect(path: str | Path, limits: SqlLimits | None = None):
    """A fresh, locked, read-only DuckDB connection on the workspace file (the engine guarantee).

    The caller closes it. ``lock_configuration`` is set last, so no statement run on the
    connection can change any setting of :func:`engine_config` back.
    """
    import duckdb

    limits = limits or SqlLimits()
    p = Path(path)
    if not p.is_file():
        raise SqlFailed(f"the workspace file is missing ({p.name}); recreate the workspace")
    try:
        con = duckdb.connect(str(p), read_only=True, config=engine_config(limits))
    except duckdb.IOException:  # the message names the file and the process holding it: not for the client
        raise SqlFailed("the workspace is busy (another process is writing to it); retry in a moment") from None
    try:
        con.execute("SET lock_configuration = true").fetchall()
    except BaseException:
        con.close()
        raise
    return con


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:400]


def _one_select(con: Any, sql: str) -> str:
    """DuckDB's own parser must find exactly one SELECT (DESCRIBE, SUMMARIZE and FROM-first are
    SELECTs to DuckDB); returns its text."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise SqlFailed(f"SQL does not parse: {_first_line(e)}", param="sql") from None
    if len(statements) != 1:
        raise _rejected(f"send exactly one statement (DuckDB found {len(statements)})")
    st = statements[0]
    if st.type != duckdb.StatementType.SELECT:
        raise _rejected(f"only a read-only SELECT is allowed, not {str(st.type).rsplit('.', 1)[-1]}")
    return st.query


def _workspace_tables(con: Any) -> tuple[list[str], str | None]:
    rows = con.execute("SELECT table_name, table_catalog FROM information_schema.tables "
                       "WHERE table_schema = 'main' AND table_catalog = current_database()").fetchall()
    cat = con.execute("SELECT current_database()").fetchall()
    return [r[0] for r in rows], (cat[0][0] if cat else None)


def _translate(e: BaseException, limits: SqlLimits) -> InvalidRequest:
    """A DuckDB exception as the sandbox error a user can act on."""
    import duckdb

    msg = _first_line(e)
    if isinstance(e, duckdb.InterruptException):
        return _timeout(limits)
    if isinstance(e, (duckdb.OutOfMemoryException, MemoryError)) or "bad allocation" in msg:
        return SqlLimitExceeded(f"the query needs more than the {limits.memory_limit} memory limit and was "
                                "stopped; aggregate or filter before sorting/joining, or select fewer columns",
                                code="sql_memory_limit", param="sql")
    if isinstance(e, duckdb.PermissionException) or "disabled by configuration" in msg \
            or "disabled through configuration" in msg:
        return _rejected(f"the SQL sandbox refused it: {msg} — only the workspace's own tables can be read")
    if "configuration has been locked" in msg or "read-only mode" in msg:
        return _rejected(f"the SQL sandbox refused it: {msg} — queries are read-only and settings are fixed")
    if isinstance(e, duckdb.ParserException):
        return SqlFailed(f"SQL does not parse: {msg}", param="sql")
    return SqlFailed(f"query failed: {msg}", param="sql")


def _run_here(path: Path, sql: str, limits: SqlLimits, check: bool) -> tuple[dict[str, Any], Any]:
    """Open, check, execute and cap in this process; returns (header, pyarrow.Table)."""
    import duckdb
    import pyarrow as pa

    t0 = time.perf_counter()
    con = connect(path, limits)
    timer = threading.Timer(limits.timeout_s, con.interrupt)
    timer.daemon = True
    try:
        if check:
            tables, catalog = _workspace_tables(con)
            check_sql(sql, tables, catalog=catalog)
        query = _one_select(con, sql)
        timer.start()
        try:
            rel = con.sql(query)
            if rel is None:  # not a query after all (defence in depth: _one_select said SELECT)
                raise _rejected("only a read-only SELECT is allowed")
            types = [str(t) for t in rel.types]
            reader = rel.to_arrow_reader(min(_BATCH_ROWS, limits.max_rows + 1))
            batches, n, size, truncated = [], 0, 0, False
            for batch in reader:
                size += batch.nbytes
                if size > limits.max_result_bytes:
                    raise SqlLimitExceeded(f"the result is larger than {limits.max_result_bytes} bytes "
                                           "(the result-size limit); select fewer columns or rows",
                                           code="sql_result_too_large", param="sql")
                batches.append(batch)
                n += batch.num_rows
                if n > limits.max_rows:
                    truncated = True
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, limits.max_rows)
        except duckdb.Error as e:
            raise _translate(e, limits) from None
        except MemoryError as e:
            raise _translate(e, limits) from None
    finally:
        timer.cancel()
        con.close()
    header = {"columns": [f.name for f in table.schema], "types": types, "truncated": truncated,
              "max_rows": limits.max_rows, "elapsed_ms": (time.perf_counter() - t0) * 1000}
    return header, table


def engine_execute(path: str | Path, sql: str, limits: SqlLimits | None = None) -> QueryResult:
    """The engine layers alone — DuckDB's statement check, the locked read-only connection and
    the limits — *without* the sqlglot check. For tests that prove the engine holds when the
    parser check is bypassed, and for diagnostics; callers use :func:`run_readonly`."""
    return _dispatch(Path(path), sql, limits or SqlLimits(), check=False)


def run_readonly(path: str | Path, sql: str, *, timeout_s: float | None = None, memory_limit: str | None = None,
                 max_rows: int | None = None, limits: SqlLimits | None = None, **more: Any) -> QueryResult:
    """Run one read-only query on the DuckDB file at ``path`` in the sandbox.

    Args:
        path: the workspace's ``.duckdb`` file.
        sql: one SELECT (WITH/UNION/FROM-first allowed) over the workspace's tables.
        timeout_s, memory_limit, max_rows: override ``limits`` (defaults: :class:`SqlLimits`).
        more: other :class:`SqlLimits` fields (``threads``, ``isolation`` ...).

    Returns:
        :class:`QueryResult` with at most ``max_rows`` rows (``truncated`` when there were more).

    Raises:
        SqlRejected, SqlFailed, SqlLimitExceeded (all 400); RateLimited when the sandbox is busy.
    """
    lim = (limits or SqlLimits()).but(timeout_s=timeout_s, memory_limit=memory_limit, max_rows=max_rows, **more)
    return _dispatch(Path(path), sql, lim, check=True)


# -- layer 4: the worker process ------------------------------------------------------------

_SLOTS: dict[int, threading.BoundedSemaphore] = {}
_SLOTS_GUARD = threading.Lock()
#: what a SQL worker imports before its address space is capped
WORKER_PRELOAD = ("zhinao.analytics.sandbox", "duckdb", "pyarrow", "sqlglot")


@contextlib.contextmanager
def _slot(limits: SqlLimits) -> Iterator[None]:
    """At most ``limits.concurrency`` queries at once; the next waits up to ``timeout_s``, then 429."""
    with _SLOTS_GUARD:
        sem = _SLOTS.setdefault(limits.concurrency, threading.BoundedSemaphore(max(1, limits.concurrency)))
    if not sem.acquire(timeout=limits.timeout_s):
        raise RateLimited(f"the SQL sandbox is running {limits.concurrency} queries already; retry shortly",
                          retry_after=min(limits.timeout_s, 5.0), code="sql_busy")
    try:
        yield
    finally:
        sem.release()


def _dispatch(path: Path, sql: str, limits: SqlLimits, *, check: bool) -> QueryResult:
    if not isinstance(sql, str):
        raise SqlFailed("the SQL must be text", param="sql")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as e:
        raise SqlFailed(f"the SQL contains a character that is not valid UTF-8 at position {e.start} (a lone "
                        "surrogate?); send it as plain text", param="sql") from None
    with _slot(limits):
        if limits.isolation == "inline":
            header, table = _run_here(path, sql, limits, check)
        else:
            header, table = _run_isolated(path, sql, limits, check)
    return QueryResult(header["columns"], header["types"], table, bool(header["truncated"]),
                       int(header["max_rows"]), float(header["elapsed_ms"]))


def address_space_budget(limits: SqlLimits) -> int:
    """What a SQL worker may map beyond its imports: DuckDB's pool twice over (allocations
    outside the pool, Arrow copies), the result three times (batches, table, IPC), and slack."""
    return 2 * memory_bytes(limits.memory_limit) + 3 * limits.max_result_bytes + 256 * 1024 * 1024


def worker_run(data: bytes, *, path: str, limits: dict[str, Any], check: bool) -> bytes:
    """In the worker process (:mod:`zhinao.safety.isolate`): run one query, return the encoded
    result. A refused or failed query is an answer, not a worker failure, so it travels back
    as data (``E`` + JSON) and the pool keeps the warm worker."""
    try:
        header, table = _run_here(Path(path), data.decode("utf-8"), SqlLimits(**limits), check)
        return b"R" + _encode_result(header, table)
    except (SqlRejected, SqlFailed, SqlLimitExceeded) as e:
        err = {"kind": type(e).__name__, "message": e.message, "code": e.code}
    except MemoryError:
        raise  # the pool replaces a worker whose heap ran out
    except Exception as e:  # anything else is still an answer about this query, not a crash
        err = {"kind": "SqlFailed", "message": f"query failed: {_first_line(e)}", "code": "sql_error"}
    return b"E" + json.dumps(err).encode()


_ERRORS = {c.__name__: c for c in (SqlRejected, SqlFailed, SqlLimitExceeded)}


def _encode_result(header: dict[str, Any], table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    head = json.dumps(header).encode()
    return struct.pack("<I", len(head)) + head + sink.getvalue().to_pybytes()


def _decode_result(payload: bytes) -> tuple[dict[str, Any], Any]:
    import pyarrow as pa

    (n,) = struct.unpack("<I", payload[:4])
    header = json.loads(payload[4:4 + n])
    table = pa.ipc.open_stream(payload[4 + n:]).read_all()
    return header, table


def _run_isolated(path: Path, sql: str, limits: SqlLimits, check: bool) -> tuple[dict[str, Any], Any]:
    """Run in a pooled worker with ``RLIMIT_AS`` and a CPU limit, killed past the deadline.

    The worker's own timer interrupts the query at ``timeout_s`` (a clean error, the worker
    is kept); the pool kills it ``_GRACE_S`` later if DuckDB did not stop (a long single
    allocation or function call, which ``interrupt()`` cannot reach)."""
    from zhinao.safety.isolate import ParseLimits, ParseMemoryExceeded, ParseTimeout, WorkerCrashed, runner_for

    pool = runner_for(ParseLimits(timeout_s=limits.timeout_s, memory_bytes=address_space_budget(limits),
                                  workers=max(1, limits.concurrency)), WORKER_PRELOAD)
    try:
        payload = pool.run("zhinao.analytics.sandbox:worker_run", sql.encode("utf-8"),
                           {"path": str(path), "limits": asdict(limits), "check": check},
                           timeout_s=limits.timeout_s + _GRACE_S, what="the query")
    except ParseTimeout:
        raise _timeout(limits) from None
    except (ParseMemoryExceeded, WorkerCrashed) as e:
        raise SqlLimitExceeded(f"the SQL engine stopped while running this query ({e.code}); it most likely "
                               f"needed more than the {limits.memory_limit} memory limit — aggregate or filter "
                               "first", code="sql_memory_limit", param="sql") from None
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        raise SqlFailed("query failed: the SQL worker returned no result", param="sql")
    payload = bytes(payload)
    if payload[:1] == b"E":
        err = json.loads(payload[1:])
        raise _ERRORS.get(err.get("kind"), SqlFailed)(str(err.get("message") or "query failed"),
                                                      code=err.get("code") or None, param="sql")
    return _decode_result(payload[1:])


def _timeout(limits: SqlLimits) -> SqlLimitExceeded:
    return SqlLimitExceeded(f"the query ran longer than the {limits.timeout_s:g} s limit and was stopped; "
                            "filter or aggregate earlier, or add LIMIT", code="sql_timeout", param="sql")
