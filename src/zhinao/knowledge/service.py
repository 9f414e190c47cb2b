"""KnowledgeService: the facade the API, CLI and console use (no HTTP in here).

Built from explicit parts (``KnowledgeService(settings=..., db=..., jobs=..., embedder=...,
llm=...)``): the platform wires them, tests pass their own. It never holds a chat engine:
every model call (answers, query condensation) goes through ``llm(principal, capability)``,
the MaaS layer's :class:`~zhinao.maas.client.LLMClient`, so scope, limits, the fair slot,
the timeout and usage apply as on /v1. Links and HTML highlighting are the web layer's
(``gateway/api/kb.py``): results name their collection and passage id.

Who may see what is decided here, once: collections are per tenant,
readable by the tenant (``visibility="tenant"``) or by members only (``"private"``);
writers are admins, the owner and members with ``can_write``; a document with access
tags is visible only to readers holding one of them (admins and the owner see all).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import func, select

from zhinao.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, PermissionDenied, ZhinaoError
from zhinao.knowledge.config import KBConfig, from_settings
from zhinao.knowledge.fusion import FusionProfile, FusionStore
from zhinao.knowledge.index import Hit, MilvusIndex
from zhinao.knowledge.ingest import doc_type_of, supported_extensions
from zhinao.knowledge.ingestion import INGEST_JOB, BlobStore, Ingestor, _date, collection_lock, sha256
from zhinao.knowledge.paths import read_paths
from zhinao.knowledge.models import KBCollection, KBDocument, KBMember
from zhinao.knowledge.retrieve import Scope, make_reranker, make_retriever
from zhinao.knowledge.scopecache import ScopeCache, bump
from zhinao.knowledge.rag import RagChat
from zhinao.runtime.base import ChatDelta, Embedder, GenerationParams
from zhinao.store.db import Database, utcnow
from zhinao.store.jobs import JobRunner, job_handler

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[\w\-\u4e00-\u9fff]{1,100}$")


@dataclass(frozen=True)
class SystemPrincipal:
    """The scheduler's and tools' identity: an admin of one tenant (same fields as maas Principal).

    Not a key: no model scope (``models`` None), no key limits; the tenant's grants and limits
    still apply to any model call made under it (the MaaS client checks them).
    """

    tenant_id: int = 1
    user_id: int | None = None
    role: str = "admin"
    username: str | None = "system"
    tenant: str = "system"
    key_id: int | None = None
    models: tuple[str, ...] | None = None
    granted: tuple[str, ...] | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def is_operator(self) -> bool:
        return False

    @property
    def is_admin(self) -> bool:
        return True

    def may_use(self, model: str) -> bool:
        return self.granted is None or model in self.granted

    def check_model(self, model: str, aliases: tuple[str, ...] = ()) -> None:
        if not self.may_use(model):
            raise PermissionDenied(f"model {model!r} is not granted to tenant {self.tenant_id}", code="model_not_granted")


def _is_admin(p: Any) -> bool:
    return getattr(p, "role", "") in ("admin", "operator")  # the operator administers its own tenant too


#: the usage rows of the knowledge base's model calls
CHAT_CAPABILITY = "kb.chat"
#: ``kb:<collection>`` is a model name on /v1 and in the console (see :meth:`KnowledgeService.model_route`)
KB_MODEL_PREFIX = "kb:"


class KnowledgeService:
    def __init__(self, *, settings: Any, db: Database, jobs: JobRunner,
                 embedder: Embedder | Callable[[], Embedder], llm: Callable[[Any, str], Any] | None = None,
                 config: KBConfig | None = None):
        """``embedder``: the embedder or a zero-argument callable giving it (loaded on first use).

        ``llm``: the MaaS client factory, ``llm(principal, capability) -> LLMClient``; without
        it the service still stores, indexes and searches, but cannot answer (chat is a 400).
        """
        self.settings, self.db, self.jobs, self.llm = settings, db, jobs, llm
        self._embedder = embedder
        self.config = config or from_settings(settings)
        home = Path(settings.home)
        self.blobs = BlobStore(home / "kb" / "blobs")
        self.index = MilvusIndex(self.config.milvus_path(home), self.config.milvus_token,
                                 prefix=self.config.milvus_prefix)
        self._scopes = ScopeCache(self.db.url)
        self.fusion = FusionStore(home / "kb" / "fusion")
        self.ingestor = Ingestor(db=db, index=self.index, embedder=lambda: self.embedder, config=self.config,
                                 blobs=self.blobs, settings=settings, delete_document=self.delete_document_now,
                                 after_job=self.retune)
        self.register_jobs(jobs)
        self._sync_stop = threading.Event()
        self._sync_thread: threading.Thread | None = None
        if self.config.sync_interval_s:
            self.start_scheduled_sync()

    def job_handlers(self) -> dict[str, Callable[..., Any]]:
        """The background jobs this service runs, by kind (for a runner or a capability to register)."""
        return {INGEST_JOB: self.ingestor}

    def register_jobs(self, jobs: JobRunner) -> None:
        register = getattr(jobs, "register", None)
        for kind, fn in self.job_handlers().items():
            if register is not None:
                register(kind, fn)
            else:  # the runner reads one process-wide table: the newest service owns its kinds
                job_handler(kind)(fn)

    @property
    def relevance_threshold(self) -> float:
        """Best-passage cosine under which chat answers "not found" (embedder-specific)."""
        from zhinao.knowledge.config import relevance_threshold

        return relevance_threshold(self.config, getattr(self.embedder, "backend", ""))

    @property
    def embedder(self) -> Embedder:
        e = self._embedder
        if callable(e) and not hasattr(e, "embed"):
            self._embedder = e = e()
        return e

    # -- access ------------------------------------------------------------------------
    def _collection(self, s, principal: Any, name_or_id: str | int, *, write: bool = False) -> KBCollection:
        q = select(KBCollection).where(KBCollection.tenant_id == principal.tenant_id)
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            q = q.where((KBCollection.id == int(name_or_id)) | (KBCollection.name == str(name_or_id)))
        else:
            q = q.where(KBCollection.name == str(name_or_id))
        coll = s.scalars(q).first()
        if coll is None:
            raise NotFound(f"knowledge collection {name_or_id!r} not found")
        member = self._member(s, coll, principal)
        if write and not self._can_write(coll, principal, member):
            raise PermissionDenied(f"you may not change collection {coll.name!r}")
        if not self._can_read(coll, principal, member):
            raise NotFound(f"knowledge collection {name_or_id!r} not found")  # do not reveal it exists
        return coll

    @staticmethod
    def _member(s, coll: KBCollection, principal: Any) -> KBMember | None:
        uid = getattr(principal, "user_id", None)
        if uid is None:
            return None
        return s.scalar(select(KBMember).where(KBMember.collection_id == coll.id, KBMember.user_id == uid))

    @staticmethod
    def _is_owner(coll: KBCollection, principal: Any) -> bool:
        uid = getattr(principal, "user_id", None)
        return uid is not None and coll.owner_user_id == uid

    def _can_read(self, coll: KBCollection, p: Any, m: KBMember | None) -> bool:
        return _is_admin(p) or self._is_owner(coll, p) or coll.visibility == "tenant" or m is not None

    def _can_write(self, coll: KBCollection, p: Any, m: KBMember | None) -> bool:
        return _is_admin(p) or self._is_owner(coll, p) or (m is not None and m.can_write)

    def _sees_all(self, coll: KBCollection, p: Any) -> bool:
        return _is_admin(p) or self._is_owner(coll, p)

    # -- collections ---------------------------------------------------------------------
    def create_collection(self, principal: Any, name: str, description: str = "",
                          visibility: str = "tenant") -> dict[str, Any]:
        if not _NAME.match(name or ""):
            raise InvalidRequest("collection name: 1-100 letters, digits, '_', '-' or Chinese characters",
                                 param="name")
        if visibility not in ("tenant", "private"):
            raise InvalidRequest("visibility must be 'tenant' or 'private'", param="visibility")
        with self.db.session() as s:
            exists = s.scalar(select(KBCollection).where(KBCollection.tenant_id == principal.tenant_id,
                                                         KBCollection.name == name))
            if exists is not None:
                raise Conflict(f"knowledge collection {name!r} already exists")
            coll = KBCollection(tenant_id=principal.tenant_id, name=name, description=description,
                                visibility=visibility, owner_user_id=getattr(principal, "user_id", None),
                                embedder=getattr(self.embedder, "name", ""), dim=self._dim())
            s.add(coll)
            s.flush()
            self.index.ensure(coll.id, coll.dim)
            return self._coll_dict(s, coll)

    def ensure_collection(self, principal: Any, name: str, **kw: Any) -> dict[str, Any]:
        try:
            return self.get_collection(principal, name)
        except NotFound:
            return self.create_collection(principal, name, **kw)

    def _dim(self) -> int:
        dim = int(getattr(self.embedder, "dim", 0) or 0)
        if not dim:
            dim = len(self.embedder.embed(["dim"], kind="query")[0])
        return dim

    def _coll_dict(self, s, coll: KBCollection) -> dict[str, Any]:
        rows = s.execute(select(KBDocument.status, func.count(), func.sum(KBDocument.chunk_count))
                         .where(KBDocument.collection_id == coll.id).group_by(KBDocument.status)).all()
        by_status = {st: n for st, n, _ in rows}
        return {"id": coll.id, "name": coll.name, "description": coll.description, "visibility": coll.visibility,
                "owner_user_id": coll.owner_user_id, "embedder": coll.embedder, "dim": coll.dim,
                "documents": sum(by_status.values()), "chunks": int(sum((c or 0) for _, _, c in rows)),
                "by_status": by_status, "sync_dir": coll.sync_dir,
                "created_at": coll.created_at.isoformat() if coll.created_at else None}

    def list_collections(self, principal: Any) -> list[dict[str, Any]]:
        with self.db.session() as s:
            out = []
            for coll in s.scalars(select(KBCollection).where(KBCollection.tenant_id == principal.tenant_id)
                                  .order_by(KBCollection.name)):
                if self._can_read(coll, principal, self._member(s, coll, principal)):
                    d = self._coll_dict(s, coll)
                    d["can_write"] = self._can_write(coll, principal, self._member(s, coll, principal))
                    out.append(d)
            return out

    def get_collection(self, principal: Any, name: str | int) -> dict[str, Any]:
        with self.db.session() as s:
            coll = self._collection(s, principal, name)
            d = self._coll_dict(s, coll)
            d["can_write"] = self._can_write(coll, principal, self._member(s, coll, principal))
            return d

    def delete_collection(self, principal: Any, name: str | int, *, wait_s: float = 15.0) -> None:
        """Delete a collection with its documents and passages.

        Ingestion jobs still working on it are cancelled first (their parser worker is
        killed), and the delete waits at most ``wait_s`` for them to let go of the
        collection: past that it is a 409 to retry, never a hang.
        """
        with self.db.session() as s:
            cid = self._collection(s, principal, name, write=True).id
        self.jobs.cancel_where("kb.ingest", lambda p: str(p.get("collection_id")) == str(cid), wait_s=wait_s)
        lock = collection_lock(cid)
        if not lock.acquire(timeout=wait_s):
            raise Conflict(f"knowledge collection {name!r} is busy: an ingestion job did not stop within {wait_s:g} s; "
                           "try again", code="collection_busy")
        try:
            with self.db.session() as s:
                coll = s.get(KBCollection, cid)
                self.index.drop(cid)
                self.fusion.drop(self.index.name(cid))
                if coll is not None:
                    s.delete(coll)
        finally:
            lock.release()
        self._scopes.forget(cid)
        bump(self.db.url, cid)

    def set_member(self, principal: Any, collection: str | int, user_id: int, *, can_write: bool = False,
                   access_tags: Sequence[str] = ()) -> dict[str, Any]:
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            m = s.scalar(select(KBMember).where(KBMember.collection_id == coll.id, KBMember.user_id == user_id))
            if m is None:
                m = KBMember(collection_id=coll.id, user_id=user_id)
                s.add(m)
            m.can_write, m.access_tags = bool(can_write), list(access_tags)
            return {"collection": coll.name, "user_id": user_id, "can_write": m.can_write,
                    "access_tags": m.access_tags}

    def remove_member(self, principal: Any, collection: str | int, user_id: int) -> None:
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            m = s.scalar(select(KBMember).where(KBMember.collection_id == coll.id, KBMember.user_id == user_id))
            if m is None:
                raise NotFound(f"user {user_id} is not a member of {coll.name!r}")
            s.delete(m)

    # -- documents -----------------------------------------------------------------------
    def stage(self, filename: str, data: bytes) -> dict[str, Any]:
        """Check one upload and keep its bytes; raises the per-file error (413, 400)."""
        filename = PurePath(filename.replace("\\", "/")).name if "/" not in filename else filename
        if len(data) > self.config.max_upload_bytes:
            raise PayloadTooLarge(f"{filename}: {len(data)} bytes is over the {self.config.max_upload_bytes}-byte "
                                  "limit per file", code="payload_too_large")
        if doc_type_of(filename) is None:
            raise InvalidRequest(f"{filename}: unsupported file type {PurePath(filename).suffix or '(none)'!r}; "
                                 f"supported: {', '.join(supported_extensions())}", code="unsupported_type")
        if not data:
            raise InvalidRequest(f"{filename}: the file is empty (0 bytes)", code="empty_file")
        suffix = PurePath(filename).suffix
        digest = self.blobs.put(data, suffix)
        return {"source": filename, "sha256": digest, "size": len(data), "suffix": suffix}

    def add_documents(self, principal: Any, collection: str | int, files: Iterable[tuple], *,
                      title: str | None = None, tags: Sequence[str] | None = None,
                      access_tags: Sequence[str] | None = None, effective_date: str | date | None = None,
                      wait: bool = False, replace: bool = False) -> dict[str, Any]:
        """Stage files and start one ingestion job. Bad files are reported, the rest go on.

        ``files`` holds ``(filename, bytes)`` or ``(filename, bytes, meta)`` where ``meta`` may
        set ``title``, ``tags``, ``access_tags``, ``effective_date`` for that file.

        Returns ``{"job_id", "accepted": [...], "rejected": [{"source", "error", "code", "status"}]}``;
        raises the file's own error when a single file was sent and it was refused.
        """
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            cid = coll.id
        if effective_date is not None:
            effective_date = _date(effective_date).isoformat() if _date(effective_date) else None
        accepted, rejected, errors = [], [], []
        for entry in files:
            filename, data = entry[0], entry[1]
            own = entry[2] if len(entry) > 2 else {}  # per-file metadata overrides the batch's
            try:
                item = self.stage(filename, data)
                item.update({"title": title, "tags": list(tags) if tags is not None else None,
                             "access_tags": list(access_tags) if access_tags is not None else None,
                             "effective_date": effective_date, "replace": replace})
                for key in ("title", "tags", "access_tags"):
                    if own.get(key) is not None:
                        item[key] = own[key] if key == "title" else list(own[key])
                if own.get("effective_date") is not None:
                    item["effective_date"] = _date(own["effective_date"]).isoformat()
            except ZhinaoError as e:
                errors.append(e)
                rejected.append({"source": filename, "error": e.message, "code": e.code, "status": e.status})
                continue
            accepted.append(item)
        if not accepted:
            if len(errors) == 1:
                raise errors[0]
            raise InvalidRequest("no file was accepted: " + "; ".join(r["error"] for r in rejected) if rejected
                                 else "no files were sent")
        job_id = self.jobs.submit("kb.ingest", {"collection_id": cid, "items": accepted},
                                  tenant_id=principal.tenant_id)
        out: dict[str, Any] = {"job_id": job_id, "accepted": [a["source"] for a in accepted], "rejected": rejected}
        if wait:
            out["job"] = self.jobs.wait(job_id)
        return out

    def add_paths(self, principal: Any, collection: str | int, paths: Iterable[str | Path], **kw: Any) -> dict:
        """Add files and folders (recursively); sources are paths relative to each folder given."""
        files, skipped = read_paths(paths)
        if not files:
            raise NotFound("; ".join(x["error"] for x in skipped) or "no files found")
        out = self.add_documents(principal, collection, files, **kw)
        out["rejected"] = skipped + out["rejected"]
        return out

    def sync_roots(self, principal: Any) -> list[Path]:
        """The folders a request may sync from (``ZHINAO_KB_SYNC_ROOTS``, ``{tenant}`` expanded), resolved."""
        tenant = str(getattr(principal, "tenant", "") or "")
        return [Path(str(r).replace("{tenant}", tenant)).expanduser().resolve() for r in self.settings.kb_sync_roots
                if tenant or "{tenant}" not in str(r)]

    def sync_dir(self, principal: Any, collection: str | int, directory: str | Path, *, wait: bool = False,
                 remember: bool = True, local: bool = False) -> dict[str, Any]:
        """Make the collection mirror a folder: new and changed files are indexed, deleted ones removed.

        A folder named by a request (``local=False``, the API) must lie inside one of the
        operator's ``kb_sync_roots`` after symlinks are resolved; with none configured,
        folder sync over the API is off. ``local=True`` is the machine's own user (the CLI)
        and the scheduled re-sync of a folder accepted earlier. Either way a file whose real
        path leaves the folder (a symlink pointing out) is skipped and reported, never read.
        """
        root = Path(directory).expanduser()
        real = root.resolve()
        if not local:
            roots = self.sync_roots(principal)
            if not roots:
                raise PermissionDenied("server-side folder sync is off: the platform operator lists the folders it "
                                       "may read in ZHINAO_KB_SYNC_ROOTS (upload files instead, or run 'zhinao kb "
                                       "sync' on the server)", code="sync_disabled")
            if not any(real.is_relative_to(r) for r in roots):  # checked before existence: no probing
                raise PermissionDenied(f"{directory} is outside the folders allowed for sync "
                                       f"({', '.join(map(str, roots))})", code="path_not_allowed")
        if not real.is_dir():
            raise NotFound(f"{root}: no such folder")
        root = real
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            cid = coll.id
            if remember:
                coll.sync_dir = str(root.resolve())
            known = {d.source: d for d in s.scalars(select(KBDocument).where(KBDocument.collection_id == cid))}
            # hashes a sync need not index again: the active content, or bytes that already failed
            known = {k: (d.id, {d.content_hash if d.status == "ready" else None, (d.meta or {}).get("failed_hash")})
                     for k, d in known.items()}
        items, rejected, seen = [], [], set()
        for f in sorted(root.rglob("*")):
            if not f.is_file() or f.name.startswith(".") or doc_type_of(f.name) is None:
                continue
            rel = f.relative_to(root).as_posix()
            if not f.resolve().is_relative_to(root):
                rejected.append({"source": rel, "error": "a link to a file outside the synced folder; skipped",
                                 "code": "path_not_allowed", "status": 403})
                continue
            seen.add(rel)
            data = f.read_bytes()
            prev = known.get(rel)
            if prev and sha256(data) in prev[1]:
                continue
            try:
                items.append(self.stage(rel, data) | {"replace": True})
            except ZhinaoError as e:
                rejected.append({"source": rel, "error": e.message, "code": e.code, "status": e.status})
        deletes = [doc_id for src, (doc_id, _) in known.items() if src not in seen]
        if not items and not deletes:
            return {"job_id": None, "added_or_changed": [], "deleted": [], "rejected": rejected}
        job_id = self.jobs.submit("kb.ingest", {"collection_id": cid, "items": items, "delete": deletes},
                                  tenant_id=principal.tenant_id)
        out = {"job_id": job_id, "added_or_changed": [i["source"] for i in items], "deleted": deletes,
               "rejected": rejected}
        if wait:
            out["job"] = self.jobs.wait(job_id)
        return out

    def reindex(self, principal: Any, collection: str | int, *, wait: bool = False) -> dict[str, Any]:
        """Rebuild a collection's passages in the current index from the stored originals.

        What moving a library from Milvus Lite to a Milvus server takes (point ``kb_milvus_uri``
        at the server, then reindex), and the way back after an index file was lost or written
        by an incompatible engine. Every ready document gets a new version, so readers keep the
        old passages, where the index still has them, until the new ones are in; documents whose
        original is missing fail one by one, the rest go on.
        """
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            cid = coll.id
            docs = s.scalars(select(KBDocument).where(KBDocument.collection_id == cid, KBDocument.version > 0,
                                                      KBDocument.status == "ready")).all()
            items = [{"source": d.source, "sha256": d.content_hash, "size": d.size_bytes,
                      "suffix": PurePath(d.source).suffix, "reindex": True} for d in docs]
        if not items:
            return {"job_id": None, "documents": 0}
        job_id = self.jobs.submit("kb.ingest", {"collection_id": cid, "items": items}, tenant_id=principal.tenant_id)
        out: dict[str, Any] = {"job_id": job_id, "documents": len(items)}
        if wait:
            out["job"] = self.jobs.wait(job_id)
        return out

    def replace_document(self, principal: Any, collection: str | int, doc_id: int, filename: str | None,
                         data: bytes, *, wait: bool = False) -> dict[str, Any]:
        """New content for an existing document; the old version serves until the new one is ready."""
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            doc = s.get(KBDocument, doc_id)
            if doc is None or doc.collection_id != coll.id:
                raise NotFound(f"document {doc_id} not found in {coll.name!r}")
            source, cid = doc.source, coll.id
        if filename and PurePath(filename).suffix.lower() != PurePath(source).suffix.lower():
            raise InvalidRequest(f"replacement must have the same type as {source!r}", param="file")
        item = self.stage(source, data) | {"replace": True}
        job_id = self.jobs.submit("kb.ingest", {"collection_id": cid, "items": [item]}, tenant_id=principal.tenant_id)
        out: dict[str, Any] = {"job_id": job_id, "doc_id": doc_id}
        if wait:
            out["job"] = self.jobs.wait(job_id)
        return out

    def list_documents(self, principal: Any, collection: str | int, *, status: str | None = None,
                       limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            allowed = self._allowed_tags(s, coll, principal)
            q = select(KBDocument).where(KBDocument.collection_id == coll.id).order_by(KBDocument.updated_at.desc())
            if status:
                q = q.where(KBDocument.status == status)
            docs = [d for d in s.scalars(q) if self._visible(d, allowed)]
            return [doc_dict(d) for d in docs[offset:offset + limit]]

    def get_document(self, principal: Any, collection: str | int, doc_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            doc = s.get(KBDocument, doc_id)
            if doc is None or doc.collection_id != coll.id or not self._visible(doc, self._allowed_tags(s, coll, principal)):
                raise NotFound(f"document {doc_id} not found in {coll.name!r}")
            return doc_dict(doc)

    def delete_document(self, principal: Any, collection: str | int, doc_id: int) -> None:
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            doc = s.get(KBDocument, doc_id)
            if doc is None or doc.collection_id != coll.id:
                raise NotFound(f"document {doc_id} not found in {coll.name!r}")
            cid = coll.id
        with collection_lock(cid):
            self.delete_document_now(cid, doc_id)

    def delete_document_now(self, cid: int, doc_id: int) -> None:
        """Hide first (SQL), then delete the chunks, then the row: readers never see a half state."""
        with self.db.session() as s:
            doc = s.get(KBDocument, doc_id)
            if doc is None:
                return
            doc.status, doc.updated_at = "deleting", utcnow()
        bump(self.db.url, cid)  # readers stop seeing it before its chunks go
        name = self.index.ensure(cid, self._coll_dim(cid))
        self.index.delete(name, f"doc_id == {doc_id}")
        with self.db.session() as s:
            doc = s.get(KBDocument, doc_id)
            if doc is not None:
                s.delete(doc)
        bump(self.db.url, cid)

    def _coll_dim(self, cid: int) -> int:
        with self.db.session() as s:
            coll = s.get(KBCollection, cid)
            return coll.dim if coll else self._dim()

    def passage(self, principal: Any, collection: str | int, pk: str) -> dict[str, Any]:
        """One passage by id (the target of a citation link)."""
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            scope = self._scope(s, coll, principal)
        rows = self.index.get(scope.collection, [pk])
        hits = scope.admit([Hit.from_entity(r, 0.0) for r in rows])
        if not hits:
            raise NotFound(f"passage {pk!r} not found (the document may have been replaced or deleted)")
        h = hits[0]
        h.doc = dict(scope.docs.get(h.doc_id, {}))
        return hit_dict(h, collection=coll.name)

    # -- scope & retrieval ---------------------------------------------------------------
    def _allowed_tags(self, s, coll: KBCollection, principal: Any) -> set[str] | None:
        """None: sees every document; else the access tags this reader holds."""
        if self._sees_all(coll, principal):
            return None
        m = self._member(s, coll, principal)
        return set(m.access_tags or []) if m else set()

    @staticmethod
    def _visible(doc: KBDocument, allowed: set[str] | None) -> bool:
        return allowed is None or not doc.access_tags or bool(allowed & set(doc.access_tags))

    def _scope(self, s, coll: KBCollection, principal: Any, *, tags: Sequence[str] | None = None,
               doc_types: Sequence[str] | None = None, date_from: str | date | None = None,
               date_to: str | date | None = None) -> Scope:
        allowed = self._allowed_tags(s, coll, principal)
        rows = self._scopes.rows(s, coll.id)  # cached until the collection's revision moves on
        keys, docs, restricted = rows.select(allowed, tags, doc_types, _date(date_from), _date(date_to))
        name = self.index.ensure(coll.id, coll.dim)
        return Scope(collection=name, active_keys=keys, docs=docs, restricted=restricted,
                     fusion=self.fusion.get(name))

    # -- fusion tuning (knowledge/fusion.py, knowledge/probes.py) ---------------------------
    def retune(self, cid: int) -> FusionProfile | None:
        """Choose collection ``cid``'s hybrid fusion on its own probe questions and keep it.

        Runs at the end of every ingestion job (so after ``kb reindex`` too); bounded by
        ``kb_fusion_probes``. A collection too small to tell the candidates apart keeps
        plain RRF (its profile is removed).
        """
        from zhinao.knowledge.probes import tune

        with self.db.session() as s:
            coll = s.get(KBCollection, cid)
            if coll is None:
                return None
            keys = self._scopes.rows(s, cid).all_keys
            name = self.index.ensure(cid, coll.dim)
        prof = tune(self.index, self.embedder, name, keys, n=self.config.fusion_probes, rrf_k=self.config.rrf_k,
                    rerank_pool=self.config.rerank_candidates) if keys else None
        if prof is None:
            self.fusion.drop(name)
        else:
            self.fusion.put(name, prof)
            log.info("collection %s: hybrid fusion %s (probe MRR %.3f on %d probes)", cid, prof.label,
                     prof.probe_mrr or 0.0, prof.probes)
        return prof

    def tune_fusion(self, principal: Any, collection: str | int) -> dict[str, Any]:
        """Re-choose a collection's fusion now (writers; ``kb eval`` and tools): the profile as data."""
        with self.db.session() as s:
            cid = self._collection(s, principal, collection, write=True).id
        prof = self.retune(cid)
        return (prof or FusionProfile()).as_dict()

    def fusion_profile(self, principal: Any, collection: str | int) -> dict[str, Any]:
        """How ``hybrid`` fuses for this collection now (the untuned default when never tuned)."""
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            name = self.index.name(coll.id)
        return (self.fusion.get(name) or FusionProfile()).as_dict()

    def retrieve(self, principal: Any, collection: str | int, query: str, *, k: int | None = None,
                 mode: str | None = None, rerank_with: str | None = None, **filters: Any) -> list[Hit]:
        """The best passages for ``query`` that this principal may read, with document info.

        ``mode`` is one of the configured retriever's modes (None: its default, hybrid for milvus).
        """
        query = (query or "").strip()
        if not query:
            raise InvalidRequest("the query is empty", param="q")
        k = k or self.config.top_k
        rerank_name = rerank_with or self.config.reranker
        reranker = make_reranker(rerank_name, embedder=self.embedder)  # unknown names fail before any work
        retriever = make_retriever(self.config.retriever, index=self.index, embedder=self.embedder,
                                   config=self.config)
        mode = retriever.check_mode(mode)
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            scope = self._scope(s, coll, principal, **filters)
        # a reranker can only promote what it is shown: give it a wider pool, then keep the best k
        pool = max(k, self.config.rerank_candidates) if reranker.reorders else k
        hits = reranker.rerank(query, retriever.retrieve(query, scope=scope, k=pool, mode=mode))[:k]
        for h in hits:
            h.doc = dict(scope.docs.get(h.doc_id, {}))
        return hits

    def search(self, principal: Any, query: str, *, collection: str | int | None = None, k: int = 10,
               tags: Sequence[str] | None = None, doc_types: Sequence[str] | None = None,
               date_from: str | None = None, date_to: str | None = None, mode: str = "hybrid") -> dict[str, Any]:
        """Library search: ranked documents, each with its best passages (the web layer highlights them)."""
        colls = [collection] if collection is not None else [c["name"] for c in self.list_collections(principal)]
        grouped: dict[tuple[str, int], dict[str, Any]] = {}
        for cname in colls:
            hits = self.retrieve(principal, cname, query, k=k * 3, mode=mode, tags=tags, doc_types=doc_types,
                                 date_from=date_from, date_to=date_to)
            for rank, h in enumerate(hits):
                key = (str(cname), h.doc_id)
                g = grouped.setdefault(key, {**h.doc, "collection": cname, "score": 0.0, "passages": []})
                # a document ranks by its best passage; further passages only break ties
                g["score"] += (1.0 if not g["passages"] else 0.01) / (1 + rank)
                if len(g["passages"]) < 3:
                    g["passages"].append(hit_dict(h, collection=str(cname)))
        ranked = sorted(grouped.values(), key=lambda g: -g["score"])[:k]
        for g in ranked:
            g["score"] = round(g["score"], 6)
        return {"query": query, "results": ranked}

    # -- chat ----------------------------------------------------------------------------
    def _rag(self, principal: Any) -> RagChat:
        if self.llm is None:
            raise InvalidRequest("no model client is configured for the knowledge base: it can search, not answer")
        return RagChat(llm=self.llm(principal, CHAT_CAPABILITY), get_collection=self.get_collection,
                       retrieve=self.retrieve, relevance_threshold=lambda: self.relevance_threshold,
                       passages=self.passage_texts, answerability=self.config.answerability,
                       answer_style=self.config.answer_style)

    def passage_texts(self, principal: Any, collection: str | int, limit: int = 4000) -> tuple[Any, Callable]:
        """(revision key, loader of title + heading + text of the passages ``principal`` may read).

        The answerability check calibrates itself per collection from these (cached by the key,
        so the loader runs once per revision and reader scope).
        """
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            scope = self._scope(s, coll, principal)
        key = (self.db.url, coll.id, hash(frozenset(scope.active_keys)))

        def load() -> list[str]:
            rows = self.index.query(scope.collection, "idx >= 0", ["doc_id", "version", "heading", "body"],
                                    limit=limit)
            out = []
            for r in rows:
                if f"{r['doc_id']}:{r['version']}" in scope.active_keys:
                    h = Hit.from_entity({**r, "pk": "", "idx": 0}, 0.0)
                    title = (scope.docs.get(h.doc_id) or {}).get("title", "")
                    out.append(f"{title}\n{' '.join(h.heading)}\n{h.body}")
            return out

        return key, load

    def chat_stream(self, principal: Any, collection: str | int, messages: Sequence[dict[str, Any]],
                    params: GenerationParams | None = None, *, model: str | None = None,
                    extra: dict[str, Any] | None = None, record_turn: bool = True) -> AsyncIterator[ChatDelta]:
        """Retrieval + generation, streamed; every model call through the principal's LLM client.

        The first and the last delta are :class:`~zhinao.knowledge.rag.CitedDelta` s carrying
        ``citations``; when ``extra`` is given, ``extra["citations"]``, ``extra["lang"]`` and
        ``extra["standalone_question"]`` are kept up to date as well (the /v1 and console layer
        adds the links and a plain-text source list). The model is checked (scope, grant)
        before retrieval and the answer's limits are reserved before the first delta, so a
        refusal is an error before anything is streamed. ``record_turn``: log the answer as a
        turn (off when the caller logs the conversation's own turn).
        """
        from zhinao.knowledge.citing import annotate_stream

        stream = self._rag(principal).stream(principal, collection, messages, params or GenerationParams(),
                                             model=model, extra=extra, record_turn=record_turn)
        return annotate_stream(stream, _last_user(messages), lambda cs: self._bodies(principal, collection, cs))

    def model_route(self, principal: Any, model: str, messages: Sequence[dict[str, Any]],
                    params: GenerationParams, extra: dict[str, Any]) -> AsyncIterator[ChatDelta]:
        """The composite model ``kb:<collection>`` (/v1, console): the caller logs the turn."""
        return self.chat_stream(principal, model[len(KB_MODEL_PREFIX):], messages, params, extra=extra,
                                record_turn=False)

    async def chat(self, principal: Any, collection: str | int, messages: Sequence[dict[str, Any]],
                   params: GenerationParams | None = None, *, model: str | None = None) -> dict[str, Any]:
        from zhinao.knowledge.citing import annotate

        res = await self._rag(principal).answer(principal, collection, messages, params or GenerationParams(),
                                                model=model)
        cites = res.get("citations") or []
        annotate(cites, res.get("answer") or "", _last_user(messages), self._bodies(principal, collection, cites))
        return res

    def _bodies(self, principal: Any, collection: str | int, citations: list[dict[str, Any]]) -> dict[str, str]:
        """The full texts of the cited passages (a citation carries a 300-character snippet)."""
        pks = [str(c["passage_id"]) for c in citations if c.get("passage_id")]
        if not pks:
            return {}
        with self.db.session() as s:
            coll = self._collection(s, principal, collection)
            name = self.index.ensure(coll.id, coll.dim)
        return {r["pk"]: r.get("body") or "" for r in self.index.get(name, pks)}

    # -- scheduled sync --------------------------------------------------------------------
    def start_scheduled_sync(self, interval_s: float | None = None) -> None:
        """Re-sync every collection that remembers a folder, every ``interval_s`` seconds."""
        interval = interval_s if interval_s is not None else self.config.sync_interval_s
        if not interval or self._sync_thread is not None:
            return

        def loop() -> None:
            while not self._sync_stop.wait(interval):
                self.sync_all()

        self._sync_thread = threading.Thread(target=loop, name="kb-sync", daemon=True)
        self._sync_thread.start()

    def sync_all(self) -> list[dict[str, Any]]:
        out = []
        with self.db.session() as s:
            todo = [(c.tenant_id, c.id, c.sync_dir) for c in s.scalars(select(KBCollection)
                                                                         .where(KBCollection.sync_dir.is_not(None)))]
        for tenant_id, cid, folder in todo:
            try:
                # the folder was accepted when it was remembered (root-checked over the API)
                out.append(self.sync_dir(SystemPrincipal(tenant_id=tenant_id), cid, folder, wait=True, local=True))
            except ZhinaoError as e:
                log.warning("scheduled sync of collection %s from %s: %s", cid, folder, e.message)
        return out

    def gc(self, principal: Any, collection: str | int) -> int:
        """Remove orphan chunks (none should exist; used after crashes and by tests)."""
        with self.db.session() as s:
            coll = self._collection(s, principal, collection, write=True)
            cid, dim = coll.id, coll.dim
        with collection_lock(cid):
            return self.ingestor.sweep(cid, self.index.ensure(cid, dim))

    def close(self) -> None:
        self._sync_stop.set()
        self.index.close()


def _last_user(messages: Sequence[dict[str, Any]]) -> str:
    for m in reversed(list(messages)):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return ""


def doc_dict(d: KBDocument) -> dict[str, Any]:
    return {"id": d.id, "collection_id": d.collection_id, "source": d.source, "title": d.title,
            "doc_type": d.doc_type, "tags": d.tags or [], "access_tags": d.access_tags or [],
            "effective_date": d.effective_date.isoformat() if d.effective_date else None,
            "status": d.status, "error": d.error, "version": d.version, "chunks": d.chunk_count,
            "size_bytes": d.size_bytes, "content_hash": d.content_hash, "job_id": d.job_id,
            "created_at": d.created_at.isoformat() if d.created_at else None,
            "updated_at": d.updated_at.isoformat() if d.updated_at else None}


def hit_dict(h: Hit, *, collection: str) -> dict[str, Any]:
    """A passage as data (the web layer adds its link and highlighting)."""
    return {"passage_id": h.pk, "doc_id": h.doc_id, "collection": collection, "title": h.doc.get("title", ""),
            "source": h.doc.get("source", ""), "page": h.page, "heading": h.heading, "text": h.body,
            "score": round(h.score, 6), "relevance": None if h.relevance is None else round(h.relevance, 4)}
