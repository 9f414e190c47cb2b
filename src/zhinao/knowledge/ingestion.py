"""The ``kb.ingest`` background job: parse, chunk, embed and index files, idempotently.

Why it survives ``kill -9``: uploads are staged first as content-addressed blobs, and
each document goes through states recorded in SQL before any side effect in Milvus:

1. ``pending_version`` is chosen and committed (reused when resuming the same content);
2. chunks of ``doc_id:pending_version`` are deleted, then inserted (so a re-run never
   duplicates: primary keys are ``doc:version:index`` and the slate is wiped first);
3. one SQL commit flips ``version`` to the new one (readers switch atomically);
4. after a short grace (:data:`SUPERSEDED_GRACE_S`), the end-of-job sweep deletes the chunks of
   every other version: a search that read its scope (the old version's key) just before the
   switch may reach Milvus just after it, and must still find that version, not nothing.

A re-run of the job skips documents whose content hash is already active, and redoes
the others from step 2. A final sweep deletes chunks whose ``doc_key`` is neither active
nor pending (orphans of a crash between steps).

Untrusted files are parsed in a bounded worker process (:func:`parse_isolated`): a bomb,
a parser that runs too long or needs too much memory fails that one file with a message,
and the batch goes on. The job stops when it is cancelled: checks run between files and
embedding batches, and the parser worker is killed mid-file. A document that was being
indexed during ``MAX_INTERRUPTIONS`` unclean stops is failed instead of retried again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from zhinao.errors import InvalidRequest, ZhinaoError
from zhinao.knowledge.chunking import chunk_sections
from zhinao.knowledge.index import chunk_pk, quote_list
from zhinao.knowledge.ingest import parse_isolated
from zhinao.knowledge.models import KBCollection, KBDocument
from zhinao.knowledge.scopecache import bump
from zhinao.safety.archive import ArchiveLimits
from zhinao.safety.isolate import ParseLimits
from zhinao.store.db import utcnow
from zhinao.store.jobs import JobCancelled, JobContext

if TYPE_CHECKING:
    from zhinao.knowledge.config import KBConfig
    from zhinao.knowledge.index import MilvusIndex
    from zhinao.runtime.base import Embedder
    from zhinao.store.db import Database

log = logging.getLogger(__name__)

INGEST_JOB = "kb.ingest"
_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


#: a document that was being indexed during this many unclean stops is failed, not retried again
#: seconds between a replace's switch to the new version and the deletion of the old chunks: a
#: search that read its scope just before the switch still finds the old version (a search takes
#: milliseconds from scope to Milvus; one second covers a heavily loaded machine)
SUPERSEDED_GRACE_S = 1.0
MAX_INTERRUPTIONS = 2


def collection_lock(collection_id: int) -> threading.Lock:
    """One writer per collection at a time (version bookkeeping and orphan sweeps)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(collection_id, threading.Lock())


@contextlib.contextmanager
def _locked(collection_id: int, ctx: JobContext | None) -> Iterator[None]:
    """The collection's lock, waiting for it without going deaf to a cancel."""
    lock = collection_lock(collection_id)
    while not lock.acquire(timeout=0.2):
        if ctx is not None:
            ctx.check()
    try:
        yield
    finally:
        lock.release()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Uploaded files by content hash under ``home/kb/blobs`` (what a resumed job re-reads)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, digest: str, suffix: str = "") -> Path:
        return self.root / digest[:2] / f"{digest}{suffix.lower()}"

    def put(self, data: bytes, suffix: str = "") -> str:
        digest = sha256(data)
        p = self.path(digest, suffix)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(p)
        return digest

    def get(self, digest: str, suffix: str = "") -> bytes:
        p = self.path(digest, suffix)
        if not p.exists():
            raise InvalidRequest(f"staged upload {digest[:12]} is missing from {self.root}")
        return p.read_bytes()


def _date(v: Any) -> date | None:
    if v in (None, ""):
        return None
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v)[:10])
    except ValueError as e:
        raise InvalidRequest(f"effective_date must be YYYY-MM-DD, not {v!r}", param="effective_date") from e


def index_text(title: str, heading: list[str], body: str) -> str:
    """What BM25 and the embedder see: where the passage sits, then the passage."""
    ctx = " > ".join([t for t in [title, *heading] if t])
    return f"{ctx}\n{body}" if ctx else body


class Ingestor:
    """Runs ``kb.ingest`` jobs from the parts it uses (no service, no registry).

    ``delete_document`` is the service's hide-then-delete of one document (the same order
    readers rely on when a user deletes one); the embedder may be given as a zero-argument
    callable so that building the ingestor does not load the model.
    """

    def __init__(self, *, db: "Database", index: "MilvusIndex", embedder: "Embedder | Callable[[], Embedder]",
                 config: "KBConfig", blobs: BlobStore, settings: Any,
                 delete_document: Callable[[int, int], None], after_job: Callable[[int], Any] | None = None):
        self.db, self.index, self.cfg, self.blobs = db, index, config, blobs
        self._embedder = embedder
        self.delete_document = delete_document
        self.after_job = after_job  # e.g. re-choosing the collection's fusion weights (service.retune)
        self.archive = ArchiveLimits.from_settings(settings)
        self.parse_limits = ParseLimits.from_settings(settings)

    @property
    def embedder(self) -> "Embedder":
        e = self._embedder
        return e() if callable(e) and not hasattr(e, "embed") else e

    def __call__(self, ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
        """The job handler: the service registers this object for ``kb.ingest`` on its job runner."""
        if ctx.db.url != self.db.url:  # a runner shared by two stores would otherwise write to the wrong one
            raise RuntimeError(f"kb.ingest job for {ctx.db.url} reached the knowledge service of {self.db.url}")
        return self.run(ctx, params)

    def run(self, ctx: JobContext | None, params: dict[str, Any]) -> dict[str, Any]:
        cid = int(params["collection_id"])
        items: list[dict[str, Any]] = params.get("items", [])
        deletes: list[int] = params.get("delete", [])
        with self.db.session() as s:
            coll = s.get(KBCollection, cid)
            if coll is None:
                raise InvalidRequest(f"collection {cid} no longer exists")
            dim = coll.dim
        name = self.index.ensure(cid, dim)
        results: list[dict[str, Any]] = []
        total = max(1, len(items) + len(deletes))
        try:
            self._items(cid, name, items, results, total, ctx)
            for doc_id in deletes:
                if ctx is not None:
                    ctx.check()
                with _locked(cid, ctx):
                    self.delete_document(cid, doc_id)
                results.append({"doc_id": doc_id, "status": "deleted"})
        except JobCancelled as e:
            self._wind_down(cid, name, e.reason)
            raise
        if any(r.get("status") in ("replaced", "reindexed") for r in results):
            time.sleep(SUPERSEDED_GRACE_S)  # searches holding the old scope finish on the old chunks
        with collection_lock(cid):
            self.sweep(cid, name)
        self.index.flush(name)
        if self.after_job is not None and any(r.get("status") in ("added", "replaced", "reindexed", "deleted")
                                              for r in results):
            try:
                self.after_job(cid)
            except Exception:  # noqa: BLE001  (the documents are indexed; a stale fusion choice is not fatal)
                log.warning("after-job step for collection %s failed", cid, exc_info=True)
        counts: dict[str, int] = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {"collection_id": cid, "results": results, "counts": counts}

    def _items(self, cid: int, name: str, items: list[dict[str, Any]], results: list[dict[str, Any]], total: int,
               ctx: JobContext | None) -> None:
        for n, item in enumerate(items):
            if ctx is not None:
                ctx.check()
                ctx.progress(n / total, f"{n}/{len(items)} {item['source']}")
            try:
                with _locked(cid, ctx):
                    try:
                        results.append(self._one(cid, name, item, ctx))
                    except JobCancelled as e:
                        self._stopped(cid, item, e.reason, ctx)
                        raise
                    finally:
                        bump(self.db.url, cid)  # covers the early returns (metadata-only updates)
            except ZhinaoError as e:
                self._fail(cid, item, e.message)
                results.append({"source": item["source"], "status": "failed", "error": e.message,
                                "code": e.code})
            except Exception as e:  # an unexpected library error fails this file, not the batch
                log.exception("ingesting %s", item["source"])
                msg = f"{type(e).__name__}: {e}"
                self._fail(cid, item, msg)
                results.append({"source": item["source"], "status": "failed", "error": msg, "code": "internal"})

    # -- stopping ---------------------------------------------------------------------------
    def _stopped(self, cid: int, item: dict[str, Any], reason: str, ctx: JobContext | None) -> None:
        """The document this job was indexing when it had to stop.

        Cancelled: it goes back to what it was (a replaced document keeps serving its
        previous version; a new one is failed with "cancelled"). Shutdown: it stays
        ``indexing`` for the resumed job, marked as a clean stop (not a crash).
        """
        job_id = ctx.job_id if ctx else None
        with self.db.session() as s:
            doc = s.scalar(select(KBDocument).where(KBDocument.collection_id == cid,
                                                    KBDocument.source == item["source"]))
            if doc is None or doc.status != "indexing" or doc.job_id != job_id:
                return
            if reason == "shutdown":
                doc.meta = {**(doc.meta or {}), "stopped_cleanly": True}
                return
            doc.pending_hash = None
            doc.status = "ready" if doc.version > 0 else "failed"
            doc.error = f"ingestion was cancelled (job {job_id}) before this file was indexed"
            doc.updated_at = utcnow()

    def _wind_down(self, cid: int, name: str, reason: str) -> None:
        """After a stop: drop the chunks a cancelled document left behind, flush what is in."""
        try:
            if reason != "shutdown":
                with collection_lock(cid):
                    self.sweep(cid, name)
            self.index.flush(name)
        except Exception:  # noqa: BLE001  (the collection may be being dropped; the stop must go on)
            log.warning("cleaning up collection %s after a stop failed", cid, exc_info=True)

    # -- one document ----------------------------------------------------------------------
    def _one(self, cid: int, name: str, item: dict[str, Any], ctx: JobContext | None) -> dict[str, Any]:
        job_id = ctx.job_id if ctx else None
        source, digest = item["source"], item["sha256"]
        with self.db.session() as s:
            doc = s.scalar(select(KBDocument).where(KBDocument.collection_id == cid, KBDocument.source == source))
            if doc is not None and doc.status == "ready" and doc.content_hash == digest and doc.version > 0 \
                    and not item.get("reindex"):
                if self._meta_update(doc, item):
                    doc.updated_at = utcnow()
                return {"source": source, "doc_id": doc.id, "status": "unchanged", "chunks": doc.chunk_count}
            twin = s.scalar(select(KBDocument).where(KBDocument.collection_id == cid, KBDocument.content_hash == digest,
                                                     KBDocument.status == "ready", KBDocument.source != source))
            if twin is not None and not item.get("replace") and not item.get("reindex"):
                return {"source": source, "doc_id": twin.id, "status": "duplicate",
                        "duplicate_of": twin.source, "chunks": twin.chunk_count}
            if doc is None:
                doc = KBDocument(collection_id=cid, source=source, tags=[], access_tags=[], meta={})
                s.add(doc)
            resuming = doc.status == "indexing" and doc.pending_hash == digest and bool(doc.pending_version)
            meta = dict(doc.meta or {})
            clean = meta.pop("stopped_cleanly", False)
            if resuming and not clean:  # it was in flight when the process died
                meta["interrupted"] = int(meta.get("interrupted", 0)) + 1
            elif not resuming:
                meta.pop("interrupted", None)
            interrupted = int(meta.get("interrupted", 0))
            doc.meta = meta
            if resuming:
                pv = doc.pending_version  # resuming the very same content: reuse its version
            else:
                pv = max(doc.version or 0, doc.pending_version or 0) + 1
            doc.pending_version, doc.pending_hash = pv, digest
            doc.status, doc.error, doc.job_id = "indexing", None, job_id
            doc.size_bytes = int(item.get("size", 0))
            if self._meta_update(doc, item):
                doc.updated_at = utcnow()
            s.flush()
            doc_id = doc.id
        bump(self.db.url, cid)  # new tags of the still-active version apply at once
        if interrupted >= MAX_INTERRUPTIONS:
            raise InvalidRequest(f"{source}: the server stopped {interrupted} times while indexing this file; it is "
                                 "not retried again (the file may be what brings the server down) — check it and "
                                 "upload it again", code="interrupted")
        data = self.blobs.get(digest, item.get("suffix", ""))
        parsed = parse_isolated(data, source, archive=self.archive, limits=self.parse_limits,
                                check=ctx.check if ctx is not None else None)
        title = item.get("title") or parsed.title
        chunks = chunk_sections(parsed.sections, self.cfg.chunk_tokens, self.cfg.chunk_overlap)
        key = f"{doc_id}:{pv}"
        if resuming:  # a resumed run starts from a clean slate (a fresh version has no chunks yet)
            self.index.delete(name, f'doc_key == "{key}"')
        batch = self.cfg.embed_batch
        for start in range(0, len(chunks), batch):
            if ctx is not None:
                ctx.check()
            part = chunks[start:start + batch]
            texts = [index_text(title, c.heading, c.text) for c in part]
            vecs = self.embedder.embed(texts, kind="passage")
            self.index.insert(name, [{
                "pk": chunk_pk(doc_id, pv, c.index), "doc_id": doc_id, "version": pv, "doc_key": key,
                "idx": c.index, "page": c.page if c.page is not None else -1,
                "heading": json.dumps(c.heading, ensure_ascii=False)[:1990], "kind": c.kind,
                "body": c.text, "text": t, "dense": v} for c, t, v in zip(part, texts, vecs)])
        with self.db.session() as s:  # the atomic switch for readers
            doc = s.get(KBDocument, doc_id)
            old = doc.version
            doc.version, doc.pending_version, doc.content_hash, doc.pending_hash = pv, None, digest, None
            doc.status, doc.error, doc.chunk_count = "ready", None, len(chunks)
            doc.title = title or doc.title
            doc.doc_type = parsed.doc_type
            meta = {k: v for k, v in (doc.meta or {}).items() if k not in ("failed_hash", "interrupted")}
            doc.meta = {**meta, **parsed.meta, "pages": max((c.page or 0 for c in chunks), default=0)}
            doc.updated_at = utcnow()
        bump(self.db.url, cid)  # after the commit: readers switch to the new version now
        # earlier versions (replaced, or abandoned by a crash) go in the end-of-job sweep, after a grace
        status = "reindexed" if item.get("reindex") else "replaced" if old else "added"
        return {"source": source, "doc_id": doc_id, "status": status, "chunks": len(chunks), "version": pv}

    @staticmethod
    def _meta_update(doc: KBDocument, item: dict[str, Any]) -> bool:
        changed = False
        for f in ("title", "tags", "access_tags"):
            if item.get(f) is not None and getattr(doc, f) != item[f]:
                setattr(doc, f, item[f])
                changed = True
        if item.get("effective_date") is not None:
            d = _date(item["effective_date"])
            if doc.effective_date != d:
                doc.effective_date, changed = d, True
        if item.get("meta"):
            doc.meta = {**(doc.meta or {}), **item["meta"]}
            changed = True
        return changed

    def _fail(self, cid: int, item: dict[str, Any], message: str) -> None:
        with self.db.session() as s:
            doc = s.scalar(select(KBDocument).where(KBDocument.collection_id == cid,
                                                    KBDocument.source == item["source"]))
            if doc is None:
                doc = KBDocument(collection_id=cid, source=item["source"], tags=item.get("tags") or [],
                                 access_tags=item.get("access_tags") or [], meta={}, title=item.get("title") or "")
                s.add(doc)
            # pending_version stays as a burned number: the next attempt takes a fresh one, so
            # chunks a failed attempt may have written can never be mistaken for it (the sweep drops them)
            doc.pending_hash = None
            # remembered so that a folder sync does not retry the same broken bytes every round
            doc.meta = {**(doc.meta or {}), "failed_hash": item.get("sha256")}
            # a failed replace keeps serving the previous version
            doc.status = "ready" if doc.version > 0 else "failed"
            doc.error = message
            doc.size_bytes = int(item.get("size", 0))
            doc.updated_at = utcnow()
        bump(self.db.url, cid)

    def sweep(self, cid: int, name: str) -> int:
        """Delete chunks whose ``doc_key`` is neither active nor pending (crash leftovers)."""
        with self.db.session() as s:
            keep: list[str] = []
            for d in s.scalars(select(KBDocument).where(KBDocument.collection_id == cid)):
                if d.version > 0 and d.status != "deleting":
                    keep.append(f"{d.id}:{d.version}")
                if d.pending_version and d.status == "indexing":
                    keep.append(f"{d.id}:{d.pending_version}")
        expr = f"doc_key not in {quote_list(keep)}" if keep else "idx >= 0"
        before = self.index.count(name, expr)
        if before:
            self.index.delete(name, expr)
            log.info("swept %d orphan chunks from %s", before, name)
        return before
