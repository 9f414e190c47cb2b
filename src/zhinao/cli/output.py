"""How CLI commands print: tables that never hide a value, and ``--json`` for scripts.

Every command that prints a table takes ``--json`` and then writes exactly one JSON document
to stdout (progress bars and notes go to stderr), so ``zhinao data catalog --json | jq`` works.
Without ``--json``, a table on a terminal is a Rich table that folds long cells instead of
cutting them to ``…``; when stdout is a pipe or a file it is plain TSV (a header line, then
one line per row), which ``cut``/``awk``/spreadsheets read and which never truncates. Before
this, ``zhinao data catalog | cat`` printed 80-column Rich tables with "logist…" cells.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import typer

from zhinao.cli.common import console

#: the option every table command declares (the test walks the app and checks it)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout instead of a table")


def _tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def print_json(obj: Any) -> None:
    """One JSON document on stdout (UTF-8 kept readable; dates and paths as strings)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str, indent=1) + "\n")
    sys.stdout.flush()


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A table: Rich with folding cells on a terminal, TSV (tabs and newlines in cells escaped) otherwise."""
    if not _tty():
        if title:
            sys.stdout.write(f"# {title}\n")
        for r in [list(columns), *rows]:
            sys.stdout.write("\t".join(_cell(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                                       for v in r) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(str(c), overflow="fold", no_wrap=False)
    for r in rows:
        t.add_row(*[_cell(v) for v in r])
    console.print(t)


def records(rows: Sequence[dict], columns: Sequence[str], *, title: str | None = None) -> None:
    """A table of dicts, one column per key (missing keys print empty)."""
    table(columns, [[r.get(c) for c in columns] for r in rows], title=title)
