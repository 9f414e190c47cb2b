"""Bounds on what an untrusted file may cost before and while it is parsed.

Two guards, for every capability that reads uploads (knowledge ingestion, analytics imports):

- :mod:`zhinao.safety.archive` reads a zip's central directory (DOCX, PPTX, XLSX are zips)
  and refuses it *before* anything is decompressed when it would unpack to too much, has
  too many members or compresses suspiciously well (a decompression bomb);
- :mod:`zhinao.safety.isolate` runs one file's parser in a worker process with an address
  space limit, a CPU limit and a wall-clock deadline, which the caller can also kill at
  once (cancel). A parser that blows a limit fails that file with a clear message; the
  process that serves requests never sees the memory or the time.

This package sits at the bottom of the layer picture next to ``store/``: it imports only
:mod:`zhinao.errors`, so knowledge and analytics can both use it without an upward arrow.
"""

from zhinao.safety.archive import ArchiveLimits, ArchiveRejected, inspect_zip, is_zip
from zhinao.safety.isolate import IsolatedRunner, ParseLimits, ParseTimeout, WorkerCrashed, runner_for

__all__ = ["ArchiveLimits", "ArchiveRejected", "inspect_zip", "is_zip", "IsolatedRunner", "ParseLimits",
           "ParseTimeout", "WorkerCrashed", "runner_for"]
