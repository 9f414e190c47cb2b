"""Files and folders given on a command line, read the way the knowledge base names its sources.

Shared by ``KnowledgeService.add_paths`` (in-process) and the CLI's remote client (which uploads
the same files to a running server), so both give a document the same source name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_paths(paths: Iterable[str | Path]) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
    """(files as (relative name, bytes), skipped entries with an error) for files and folders (recursively,
    hidden files left out); a source is the path relative to the folder it was found in."""
    files: list[tuple[str, bytes]] = []
    skipped: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    files.append((f.relative_to(p).as_posix(), f.read_bytes()))
        elif p.is_file():
            files.append((p.name, p.read_bytes()))
        else:
            skipped.append({"source": str(p), "error": f"{p}: no such file or folder", "code": "not_found"})
    return files, skipped
