"""Background jobs with progress, persisted so they survive a restart.

A capability registers a handler per job kind (``@job_handler("kb.ingest")``). The
handler receives a :class:`JobContext` (``progress()``, ``cancelled``) and the job's
params, and must be idempotent: after a crash (kill -9) :meth:`JobRunner.resume` runs
every job left ``queued`` or ``running`` again from the start, and the handler skips
what is already done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from zhinao.errors import NotFound
from zhinao.store.db import Database, utcnow
from zhinao.store.models import Job

log = logging.getLogger(__name__)

Handler = Callable[["JobContext", dict[str, Any]], dict[str, Any] | None]
_HANDLERS: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn
    return deco


class JobCancelled(Exception):
    pass


@dataclass
class JobContext:
    job_id: int
    db: Database
    _cancel: threading.Event

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` when the job was cancelled."""
        if self._cancel.is_set():
            raise JobCancelled()

    def progress(self, fraction: float, message: str = "") -> None:
        with self.db.session() as s:
            job = s.get(Job, self.job_id)
            if job is not None:
                job.progress = max(0.0, min(1.0, float(fraction)))
                if message:
                    job.message = message


def job_dict(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress,
            "message": job.message, "params": job.params, "result": job.result, "error": job.error,
            "tenant_id": job.tenant_id,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


class JobRunner:
    """Runs jobs on a small thread pool (CPU-bound work stays off the event loop)."""

    def __init__(self, db: Database, workers: int = 2):
        self.db = db
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zhinao-job")
        self._cancels: dict[int, threading.Event] = {}
        self._futures: dict[int, Future] = {}

    def submit(self, kind: str, params: dict[str, Any], tenant_id: int | None = None) -> int:
        if kind not in _HANDLERS:
            raise NotFound(f"no handler for job kind {kind!r}")
        with self.db.session() as s:
            job = Job(kind=kind, params=params, tenant_id=tenant_id, status="queued")
            s.add(job)
            s.flush()
            job_id = job.id
        self._start(job_id)
        return job_id

    def _start(self, job_id: int) -> None:
        ev = threading.Event()
        self._cancels[job_id] = ev
        self._futures[job_id] = self._pool.submit(self._run, job_id, ev)

    def _run(self, job_id: int, ev: threading.Event) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            kind, params = job.kind, dict(job.params or {})
            job.status, job.started_at, job.error = "running", utcnow(), None
        ctx = JobContext(job_id, self.db, ev)
        status, result, error = "succeeded", None, None
        try:
            result = _HANDLERS[kind](ctx, params)
        except JobCancelled:
            status = "cancelled"
        except Exception as e:  # a failed job must never take the process down
            log.exception("job %s (%s) failed", job_id, kind)
            status, error = "failed", f"{type(e).__name__}: {e}"
        with self.db.session() as s:
            job = s.get(Job, job_id)
            job.status, job.result, job.error, job.finished_at = status, result, error, utcnow()
            if status == "succeeded":
                job.progress = 1.0
        self._cancels.pop(job_id, None)

    def cancel(self, job_id: int) -> None:
        ev = self._cancels.get(job_id)
        if ev is None:
            raise NotFound(f"job {job_id} is not running")
        ev.set()

    def wait(self, job_id: int, timeout: float | None = None) -> dict[str, Any]:
        fut = self._futures.get(job_id)
        if fut is not None:
            fut.result(timeout=timeout)
        return self.get(job_id)

    def get(self, job_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            return job_dict(job)

    def list(self, kind: str | None = None, tenant_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(Job).order_by(Job.id.desc()).limit(limit)
            if kind:
                q = q.where(Job.kind == kind)
            if tenant_id is not None:
                q = q.where(Job.tenant_id == tenant_id)
            return [job_dict(j) for j in s.scalars(q)]

    def _unfinished(self):
        return select(Job).where(Job.status.in_(("queued", "running")))

    def pending_kinds(self) -> set[str]:
        """Kinds of the jobs a previous process left unfinished."""
        with self.db.session() as s:
            return {j.kind for j in s.scalars(self._unfinished())}

    def resume(self) -> list[int]:
        """Restart jobs a previous process left unfinished (their handlers are idempotent)."""
        with self.db.session() as s:
            ids = [j.id for j in s.scalars(self._unfinished()) if j.kind in _HANDLERS]
        for job_id in ids:
            log.info("resuming job %s", job_id)
            self._start(job_id)
        return ids

    def shutdown(self) -> None:
        for ev in self._cancels.values():
            ev.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
