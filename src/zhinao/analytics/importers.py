"""Read user data into pandas: CSV (UTF-8, GBK/GB18030 detected), Parquet, Excel, JSON, SQL.

Every reader enforces the size limit before reading and turns parser failures into
:class:`InvalidRequest` messages that name the line or column at fault, so a user (or
the agent) can fix the file instead of reading a traceback.

Compressed formats are where a small upload becomes a large frame: an XLSX is a zip (its
central directory is checked against the archive limits before anything is inflated),
and both XLSX and Parquet are read in a bounded worker process (:mod:`zhinao.safety`)
that hands the frame back as Arrow IPC, so a file that needs too much memory or time
fails with a 413/400 instead of taking the server's memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zhinao.errors import InvalidRequest, PayloadTooLarge
from zhinao.safety.archive import ArchiveLimits, inspect_zip, is_zip
from zhinao.safety.isolate import ParseLimits, runner_for

FORMATS = ("csv", "parquet", "excel", "json")
_EXT = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
        ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
_DATE_RE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


@dataclass
class Imported:
    frame: pd.DataFrame
    detail: dict[str, Any] = field(default_factory=dict)  #: format, encoding, delimiter, conversions ...


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def check_size(size: int, limit: int, what: str = "file") -> None:
    if size > limit:
        raise PayloadTooLarge(f"{what} is {human_bytes(size)}; the import limit is {human_bytes(limit)} "
                              f"({limit} bytes). Split the file or pull it from the database with a query.",
                              code="import_too_large")


def guess_format(filename: str, fmt: str | None = None) -> str:
    if fmt:
        fmt = fmt.lower().replace("xlsx", "excel").replace("jsonl", "json")
        if fmt not in FORMATS:
            raise InvalidRequest(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", param="format")
        return fmt
    ext = Path(filename).suffix.lower()
    if ext not in _EXT:
        raise InvalidRequest(f"cannot tell the format of {filename!r} from its extension; "
                             f"pass format= one of {', '.join(FORMATS)}", param="format")
    return _EXT[ext]


def detect_encoding(raw: bytes) -> str:
    """utf-8 (with or without BOM) when it decodes strictly, else GB18030 (superset of GBK/GB2312),
    else charset-normalizer's best guess."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        raw.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw[:1_000_000]).best()
    if best is None:
        raise InvalidRequest("cannot detect the text encoding of the file; pass encoding= (e.g. utf-8, gb18030)",
                             param="encoding")
    return best.encoding


def _sniff_delimiter(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def read_csv_bytes(raw: bytes, encoding: str | None = None, delimiter: str | None = None) -> Imported:
    enc = encoding or detect_encoding(raw)
    try:
        text = raw.decode(enc)
    except (UnicodeDecodeError, LookupError) as e:
        raise InvalidRequest(f"file is not valid {enc}: {e}", param="encoding") from e
    if not text.strip():
        raise InvalidRequest("the file is empty")
    sep = delimiter or _sniff_delimiter(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                         skipinitialspace=False)
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        msg = (f"line {m.group(2)} has {m.group(3)} fields where the header has {m.group(1)}" if m else str(e))
        raise InvalidRequest(f"malformed CSV: {msg}") from e
    except pd.errors.EmptyDataError as e:
        raise InvalidRequest("the file has no columns") from e
    df, conv = infer_types(df)
    return Imported(df, {"format": "csv", "encoding": enc, "delimiter": sep, "conversions": conv})


def infer_types(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Turn text columns that are entirely numbers, booleans or ISO-like dates into typed columns.

    A column whose non-blank values are all numeric becomes numeric and its blank cells
    (empty or whitespace) become null — recorded in the returned conversions so the profile
    can say so (the Telco ``TotalCharges`` case).
    """
    conv: dict[str, str] = {}
    df = df.copy()
    for c in df.columns:
        s = df[c]
        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            continue
        stripped = s.astype("string").str.strip()
        nonblank = stripped[stripped.notna() & stripped.ne("")]
        if nonblank.empty:
            continue
        blanks = int((stripped.notna() & stripped.eq("")).sum())
        num = pd.to_numeric(nonblank.str.replace(",", "", regex=False) if nonblank.str.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?").all() else nonblank,
                            errors="coerce")
        if num.notna().all():
            full = pd.Series(np.nan, index=s.index)
            full.loc[nonblank.index] = num.astype(float)
            if (full.dropna() % 1 == 0).all() and full.notna().all() and full.abs().max() < 2**53:
                df[c] = full.astype("int64")
            else:
                df[c] = full
            conv[c] = "numeric" + (f" ({blanks} blank cells -> null)" if blanks else "")
            continue
        low = nonblank.str.lower()
        if low.isin(["true", "false"]).all():
            df[c] = stripped.str.lower().map({"true": True, "false": False})
            conv[c] = "boolean"
            continue
        if nonblank.str.match(_DATE_RE).all():
            parsed = pd.to_datetime(nonblank.str.replace("/", "-").str.replace(".", "-", regex=False), errors="coerce")
            if parsed.notna().all():
                full = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
                full.loc[nonblank.index] = parsed
                df[c] = full
                conv[c] = "datetime"
    return df, conv


def apply_types(df: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """Apply user-declared column types; a value that does not parse names its column and row."""
    df = df.copy()
    for col, typ in (types or {}).items():
        if col not in df.columns:
            raise InvalidRequest(f"type given for unknown column {col!r}", param=col)
        s = df[col]
        typ = typ.lower()
        if typ in ("date", "datetime", "timestamp"):
            out = pd.to_datetime(s, errors="coerce")
        elif typ in ("int", "integer", "bigint", "float", "double", "number", "numeric"):
            out = pd.to_numeric(s.astype("string").str.strip().replace("", pd.NA), errors="coerce")
        elif typ in ("str", "string", "text", "varchar"):
            df[col] = s.astype("string")
            continue
        else:
            raise InvalidRequest(f"unknown type {typ!r} for column {col!r}; use date, number or text", param=col)
        bad = out.isna() & s.notna() & s.astype("string").str.strip().ne("")
        if bad.any():
            first = bad.idxmax()
            raise InvalidRequest(f"column {col!r} has values that are not a valid {typ}: {s[first]!r} at row "
                                 f"{int(df.index.get_loc(first)) + 1} ({int(bad.sum())} bad of {len(s)})", param=col)
        df[col] = out
    return df


def read_bytes(raw: bytes, filename: str, fmt: str | None = None, *, encoding: str | None = None,
               sheet: str | int | None = None, limit: int, archive: ArchiveLimits | None = None,
               parse: ParseLimits | None = None) -> Imported:
    """Read an uploaded file's bytes (size already known) into a frame.

    Args:
        archive: limits for zip-based formats (XLSX); default :class:`ArchiveLimits`.
        parse: memory/time limits of the worker that reads XLSX and Parquet.
    """
    check_size(len(raw), limit, f"file {filename!r}")
    kind = guess_format(filename, fmt)
    if kind == "csv":
        out = read_csv_bytes(raw, encoding, "\t" if filename.lower().endswith(".tsv") else None)
    elif kind == "parquet":
        df = _isolated("parquet_to_arrow", raw, filename, {}, parse)
        out = Imported(df, {"format": "parquet"})
    elif kind == "excel":
        archive = archive or ArchiveLimits()
        if is_zip(raw):  # the central directory only, in this process: a bomb never reaches the worker
            inspect_zip(raw, filename, archive, deep=False)
        df = _isolated("excel_to_arrow", raw, filename, {"sheet": sheet, "filename": filename,
                                                         "archive": archive.as_dict()}, parse)
        out = Imported(df, {"format": "excel", "sheet": sheet if sheet is not None else 0})
    else:
        out = _read_json(raw, encoding)
    df = out.frame
    if df.shape[1] == 0:
        raise InvalidRequest("the file has no columns")
    out.frame = _clean_columns(df)
    out.detail.setdefault("filename", Path(filename).name)
    return out


# -- compressed formats, read in a bounded worker ------------------------------------------------
#: what the table worker imports before its memory is capped
TABLE_WORKER_PRELOAD = ("zhinao.analytics.importers", "pandas", "openpyxl", "pyarrow", "pyarrow.parquet")


def _isolated(fn: str, raw: bytes, filename: str, kwargs: dict[str, Any], parse: ParseLimits | None) -> pd.DataFrame:
    import pyarrow as pa

    parse = parse or ParseLimits()
    blob = runner_for(parse, TABLE_WORKER_PRELOAD).run(f"zhinao.analytics.importers:{fn}", raw, kwargs,
                                                       timeout_s=parse.timeout_s, what=f"file {filename!r}")
    try:
        return pa.ipc.open_stream(blob).read_all().to_pandas()
    except (pa.ArrowInvalid, TypeError, ValueError) as e:  # never expected: the worker wrote it
        raise InvalidRequest(f"file {filename!r}: the reader returned unreadable data: {e}") from e


def _frame_to_arrow(df: pd.DataFrame) -> bytes:
    """A frame as Arrow IPC stream bytes (plain data, no pickle); mixed-type columns become text."""
    import pyarrow as pa

    arrays, names = [], []
    for i, name in enumerate(df.columns):
        col = df.iloc[:, i]
        try:
            arr = pa.array(col, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
            arr = pa.array([None if _blank(v) else str(v) for v in col], type=pa.string())
        arrays.append(arr)
        names.append(str(name))
    table = pa.Table.from_arrays(arrays, names=names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _blank(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def excel_to_arrow(raw: bytes, sheet: str | int | None = None, filename: str = "upload.xlsx",
                   archive: dict[str, Any] | None = None) -> bytes:
    """In the worker: the archive check (nested archives included), ``read_excel``, Arrow IPC bytes."""
    if is_zip(raw):
        inspect_zip(raw, filename, ArchiveLimits(**archive) if archive else None, deep=True)
    try:
        df = pd.read_excel(io.BytesIO(raw), sheet_name=sheet if sheet is not None else 0)
    except MemoryError:
        raise
    except ValueError as e:
        raise InvalidRequest(f"cannot read the Excel file: {e}", param="sheet") from e
    except Exception as e:
        raise InvalidRequest(f"not a readable Excel file: {e}") from e
    return _frame_to_arrow(df)


def parquet_to_arrow(raw: bytes) -> bytes:
    """In the worker: a Parquet file (whose pages may inflate enormously) as Arrow IPC bytes."""
    try:
        df = pd.read_parquet(io.BytesIO(raw))
    except MemoryError:
        raise
    except Exception as e:  # pyarrow raises many types for corrupt input
        raise InvalidRequest(f"not a readable Parquet file: {e}") from e
    return _frame_to_arrow(df)


def _read_json(raw: bytes, encoding: str | None) -> Imported:
    text = raw.decode(encoding or detect_encoding(raw)).strip()
    if not text:
        raise InvalidRequest("the file is empty")
    try:
        if text.startswith("["):
            records = json.loads(text)
            lines = False
        elif text.startswith("{") and "\n" in text and text.splitlines()[0].rstrip().endswith("}"):
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            lines = True
        else:
            obj = json.loads(text)
            records = obj.get("data") or obj.get("records") or obj.get("rows") if isinstance(obj, dict) else None
            if not isinstance(records, list):
                raise InvalidRequest("JSON must be an array of objects, JSON lines, or an object with a "
                                     "'data'/'records'/'rows' array")
            lines = False
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not records or not all(isinstance(r, dict) for r in records):
        raise InvalidRequest("JSON must hold a non-empty list of objects (one per row)")
    df = pd.json_normalize(records)
    for c in df.columns:  # lists/dicts left after normalising are stored as JSON text
        if df[c].map(lambda v: isinstance(v, (list, dict))).any():
            df[c] = df[c].map(lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)
    df, conv = infer_types(df)
    return Imported(df, {"format": "json", "json_lines": lines, "conversions": conv})


def _clean_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Column names as DuckDB can keep them: stripped, non-empty, unique."""
    names, seen = [], {}
    for i, c in enumerate(df.columns):
        n = str(c).strip() or f"column_{i + 1}"
        if n.startswith("Unnamed: "):
            n = f"column_{i + 1}"
        k = n.lower()
        if k in seen:
            seen[k] += 1
            n = f"{n}_{seen[k]}"
        else:
            seen[k] = 1
        names.append(n)
    df.columns = names
    return df


def read_path(path: str | Path, fmt: str | None = None, *, encoding: str | None = None,
              sheet: str | int | None = None, limit: int) -> Imported:
    p = Path(path)
    if not p.is_file():
        raise InvalidRequest(f"no such file: {str(p)!r}", param="path")
    check_size(p.stat().st_size, limit, f"file {p.name!r}")
    return read_bytes(p.read_bytes(), p.name, fmt, encoding=encoding, sheet=sheet, limit=limit)


#: sqlglot dialect per SQLAlchemy backend name (the import's query is checked in its own dialect)
SQL_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql",
                "mssql": "tsql", "oracle": "oracle", "duckdb": "duckdb"}
#: functions refused in an import query whatever the source: they read the database server's
#: files, run a query given as a string, reach other servers, or change server state
_SOURCE_DENIED_PREFIXES = ("pg_read_", "pg_ls_", "pg_stat_file", "lo_", "dblink", "query_to_xml", "cursor_to_xml",
                           "table_to_xml", "schema_to_xml", "database_to_xml", "pg_terminate", "pg_cancel",
                           "pg_reload", "pg_rotate", "pg_promote", "pg_switch", "pg_file", "set_config",
                           "load_extension", "readfile", "writefile", "fts3_tokenizer", "read_", "glob")


def check_source_query(query: str, dialect: str) -> None:
    """One read-only SELECT in the source's dialect, without file/server functions.

    The check gives a message; on PostgreSQL and SQLite the session is also made read-only
    (see :func:`read_sql`), and the operator registers sources with a read-only account.
    """
    from zhinao.analytics.sandbox import function_names, parse_single_query

    root = parse_single_query(query, dialect)
    for name in function_names(root):
        if name.startswith(_SOURCE_DENIED_PREFIXES):
            raise InvalidRequest(f"function {name}() is not allowed in an import query (it reaches the database "
                                 "server's files or state); select the rows you need", param="query",
                                 code="sql_not_allowed")


def _read_only_session(conn: Any, backend: str, timeout_s: float) -> None:
    """Make the import's transaction read-only and time-bounded where the backend lets us."""
    if backend == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
    elif backend == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _scrub(text: str, u: Any) -> str:
    """A driver message without the source's password, user or host (tenants never see them)."""
    for secret in (u.password, u.username, u.host):
        if secret:
            text = text.replace(str(secret), "***")
    return text


def read_sql(url: str, query: str, *, max_rows: int = 5_000_000, timeout_s: float = 300.0,
             source: str = "the data source") -> Imported:
    """Run one read-only SELECT against ``url`` and return its rows.

    ``url`` comes from an operator-registered data source (:mod:`zhinao.analytics.datasources`),
    never from a request; messages name ``source`` and never the URL, user or host.
    """
    import logging

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    try:
        u = make_url(url)
    except ArgumentError:
        raise InvalidRequest(f"data source {source!r} is misconfigured (not a database URL); ask the platform "
                             "operator to fix it", code="datasource_misconfigured") from None
    backend = u.get_backend_name()
    check_source_query(query, SQL_DIALECTS.get(backend, backend))
    try:
        engine = create_engine(u, poolclass=NullPool)
    except (NoSuchModuleError, ImportError):
        raise InvalidRequest(f"data source {source!r} needs a database driver that is not installed "
                             f"({u.drivername}); ask the platform operator", code="datasource_misconfigured") from None
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as e:
            logging.getLogger(__name__).warning("data source %s unreachable: %s", source, _scrub(str(e), u))
            raise InvalidRequest(f"data source {source!r} is unreachable right now; retry later or ask the platform "
                                 "operator", code="datasource_unreachable") from None
        with conn:
            try:
                _read_only_session(conn, backend, timeout_s)
                res = conn.execution_options(stream_results=True).execute(text(query))
                cols = list(res.keys())
                rows = res.fetchmany(max_rows + 1)
            except SQLAlchemyError as e:
                orig = getattr(e, "orig", None) or e
                msg = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:400]
                raise InvalidRequest(f"data source {source!r} refused the query: {_scrub(msg, u)}",
                                     param="query") from None
            finally:
                conn.rollback()
    finally:
        engine.dispose()
    if len(rows) > max_rows:
        raise PayloadTooLarge(f"query returns more than {max_rows} rows (the import row limit); "
                              "aggregate or filter it", code="import_too_large")
    df = _clean_columns(pd.DataFrame.from_records(rows, columns=cols))
    return Imported(df, {"format": "sql", "source": source, "query": query})
