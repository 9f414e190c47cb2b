"""Shared CLI plumbing: one Platform per command, errors printed as one clear line."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from zhinao.errors import ZhinaoError

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def platform() -> Iterator[Any]:
    from zhinao.platform import Platform

    p = Platform()
    _log_to_file(Path(p.settings.home))
    p.bootstrap()
    announcement = p.take_bootstrap_secrets()
    if announcement:  # the CLI created the store: this is the only time the secrets exist in clear
        err_console.print(announcement, markup=False, highlight=False)
    try:
        yield p
    finally:
        import asyncio

        with contextlib.suppress(Exception):
            asyncio.run(p.aclose())


def _log_to_file(home: Path) -> None:
    """In-process commands log to ``<home>/logs/cli.log``, not the terminal: a failed run shows
    one clear message, and the details (a traceback for a bug) are in the file."""
    import logging

    root = logging.getLogger()
    if any(getattr(h, "_zhinao_cli", False) for h in root.handlers):
        return
    try:
        (home / "logs").mkdir(parents=True, exist_ok=True)
        h = logging.FileHandler(home / "logs" / "cli.log", encoding="utf-8")
    except OSError:  # a read-only home still runs commands
        return
    h._zhinao_cli = True  # type: ignore[attr-defined]
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(h)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def cli_principal(p: Any):
    """The CLI acts as the platform operator (tenant default): whoever runs it has the store's files."""
    from zhinao.maas.tenancy import Principal

    t = p.tenancy.tenant_by_name("default")
    return Principal(tenant_id=t["id"], tenant="default", user_id=None, username="cli", key_id=None, role="operator")


def handle_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ZhinaoError as e:
            err_console.print(f"[red]error:[/red] {escape(e.message)}", soft_wrap=True)  # one line: URLs stay whole
            raise typer.Exit(2) from None
    return wrapper
