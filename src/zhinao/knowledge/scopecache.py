"""The active documents of a collection, cached between queries.

Every retrieval needs the active ``doc_id:version`` keys (and a little document info) of
the collection it searches. Loading those rows through the ORM costs ~50 µs a document,
so at a few thousand documents it was a large share of each query. The rows change only
when a document is added, replaced, re-tagged, fails or is deleted, so they are cached
per collection and reloaded when the collection's *revision* moves on.

The revision is two things together:

* an in-process counter that every writer here bumps right after its SQL commit
  (:func:`bump`), exact for the process that holds the Milvus Lite file;
* a cheap SQL fingerprint (row count, sum of active versions, latest ``updated_at``) that
  also notices writes made by another process (several workers on a Milvus server).

A reader takes the revision *before* it reads the rows, so rows stored under a revision
are never older than that revision: a writer that commits in between bumps it again and
the next reader reloads. Who may see which document is still decided per query, from the
cached rows, in :meth:`ScopeRows.select`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select

from zhinao.knowledge.models import KBDocument

_COUNTERS: dict[tuple[str, int], int] = {}
_GUARD = threading.Lock()


def bump(db_url: str, collection_id: int) -> None:
    """Call after committing any change to a collection's documents (version, status, tags...)."""
    with _GUARD:
        key = (db_url, collection_id)
        _COUNTERS[key] = _COUNTERS.get(key, 0) + 1


def counter(db_url: str, collection_id: int) -> int:
    return _COUNTERS.get((db_url, collection_id), 0)


@dataclass(frozen=True)
class DocRow:
    id: int
    version: int
    key: str
    tags: frozenset[str]
    access_tags: frozenset[str]
    doc_type: str
    effective_date: date | None
    info: dict[str, Any]  # what a hit carries: title, source, doc_type, tags, effective_date


@dataclass
class ScopeRows:
    """The active, not-being-deleted documents of one collection."""

    rows: list[DocRow]
    all_keys: frozenset[str]
    all_docs: dict[int, dict[str, Any]]
    any_access_tags: bool

    def select(self, allowed: set[str] | None, tags=None, doc_types=None, d0: date | None = None,
               d1: date | None = None) -> tuple[set[str] | frozenset[str], dict[int, dict[str, Any]], bool]:
        """(keys, docs, restricted) for a reader holding ``allowed`` access tags (None: sees all)."""
        filtered = bool(tags or doc_types or d0 or d1)
        if not filtered and (allowed is None or not self.any_access_tags):
            return self.all_keys, self.all_docs, False
        keys: set[str] = set()
        docs: dict[int, dict[str, Any]] = {}
        restricted = filtered
        want_tags = set(tags or ())
        for d in self.rows:
            if allowed is not None and d.access_tags and not (allowed & d.access_tags):
                restricted = True
                continue
            if want_tags and not (want_tags & d.tags):
                continue
            if doc_types and d.doc_type not in doc_types:
                continue
            if (d0 and (d.effective_date is None or d.effective_date < d0)) or \
               (d1 and (d.effective_date is None or d.effective_date > d1)):
                continue
            keys.add(d.key)
            docs[d.id] = d.info
        return keys, docs, restricted


def _fingerprint(s, collection_id: int) -> tuple:
    row = s.execute(select(func.count(), func.coalesce(func.sum(KBDocument.version), 0),
                           func.max(KBDocument.updated_at))
                    .where(KBDocument.collection_id == collection_id)).one()
    return tuple(row)


def _load(s, collection_id: int) -> ScopeRows:
    cols = (KBDocument.id, KBDocument.version, KBDocument.title, KBDocument.source, KBDocument.doc_type,
            KBDocument.tags, KBDocument.access_tags, KBDocument.effective_date)
    q = select(*cols).where(KBDocument.collection_id == collection_id, KBDocument.version > 0,
                            KBDocument.status != "deleting")
    rows: list[DocRow] = []
    for did, ver, title, source, doc_type, tags, access, eff in s.execute(q):
        info = {"doc_id": did, "title": title, "source": source, "doc_type": doc_type, "tags": tags,
                "effective_date": eff.isoformat() if eff else None}
        rows.append(DocRow(did, ver, f"{did}:{ver}", frozenset(tags or ()), frozenset(access or ()), doc_type,
                           eff, info))
    return ScopeRows(rows=rows, all_keys=frozenset(r.key for r in rows), all_docs={r.id: r.info for r in rows},
                     any_access_tags=any(r.access_tags for r in rows))


class ScopeCache:
    """Per-collection :class:`ScopeRows`, valid while the collection's revision stands still."""

    def __init__(self, db_url: str):
        self.db_url = db_url
        self._cache: dict[int, tuple[tuple, ScopeRows]] = {}
        self._lock = threading.Lock()

    def rows(self, s, collection_id: int) -> ScopeRows:
        rev = (counter(self.db_url, collection_id), _fingerprint(s, collection_id))
        hit = self._cache.get(collection_id)
        if hit is not None and hit[0] == rev:
            return hit[1]
        rows = _load(s, collection_id)
        with self._lock:
            self._cache[collection_id] = (rev, rows)
        return rows

    def forget(self, collection_id: int) -> None:
        with self._lock:
            self._cache.pop(collection_id, None)
