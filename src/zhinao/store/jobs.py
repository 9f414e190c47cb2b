"""Background jobs with progress, persisted so they survive a restart.

A capability declares a handler per job kind (``Capability.job_handlers``) and the
platform registers it on its runner (:meth:`JobRunner.register`); ``@job_handler`` is the
process-wide fallback that tests and one-off scripts use. The handler receives a :class:`JobContext` (``progress()``, ``check()``) and the job's params,
and must be idempotent: after a crash (kill -9) :meth:`JobRunner.resume` runs every job
left ``queued`` or ``running`` again from the start, and the handler skips what is
already done.

Stopping is cooperative and persisted:

- :meth:`JobRunner.cancel` records ``cancel_requested`` in the database *first*, then
  wakes the handler, whose next ``ctx.check()`` raises :class:`JobCancelled` (handlers
  call it between files, chunks and batches, and hand it to the parser worker, which is
  killed at once). The job ends ``cancelled``; even if the process dies before the
  handler noticed, the next start finds the request and never resumes that job.
- :meth:`JobRunner.shutdown` stops running handlers the same way but puts their jobs back
  to ``queued``: a job interrupted by a restart is resumed, one cancelled by a user is not.
- ``attempts`` counts starts that did not end cleanly; a job that was running during
  ``max_attempts`` crashes is failed instead of resumed again (a file that takes the
  process down must not be retried forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from zhinao.errors import Conflict, NotFound, ZhinaoError
from zhinao.store.db import Database, utcnow
from zhinao.store.models import Job

log = logging.getLogger(__name__)

Handler = Callable[["JobContext", dict[str, Any]], dict[str, Any] | None]
_HANDLERS: dict[str, Handler] = {}
UNFINISHED = ("queued", "running")


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` for ``kind`` in every runner of this process (tests, scripts).

    Capabilities do not use this: an import must not decide what a runner can run, so they
    declare their handlers and the platform calls :meth:`JobRunner.register`.
    """

    def deco(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn
    return deco


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check` once the job must stop.

    ``reason`` is ``"cancelled"`` (a user asked: the job ends cancelled) or ``"shutdown"``
    (the process is stopping: the job goes back to the queue and resumes at next start).
    """

    def __init__(self, reason: str = "cancelled"):
        super().__init__(reason)
        self.reason = reason


class _Stop:
    """A job's stop flag and why it was raised (a user's cancel wins over a shutdown)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None or reason == "cancelled":
            self.reason = reason
        self.event.set()


@dataclass
class JobContext:
    job_id: int
    db: Database
    _stop: _Stop = field(default_factory=_Stop)
    #: how often :meth:`check` looks for a cancel made by another process (another replica, the CLI)
    poll_s: float = 1.0
    _polled: float = field(default=0.0, repr=False)

    @property
    def cancelled(self) -> bool:
        return self._stop.event.is_set()

    @property
    def stop_reason(self) -> str | None:
        return self._stop.reason if self._stop.event.is_set() else None

    def check(self) -> None:
        """Raise :class:`JobCancelled` when the job was cancelled or the process is stopping."""
        now = time.monotonic()
        if not self._stop.event.is_set() and now - self._polled >= self.poll_s:
            self._polled = now
            with self.db.session() as s:
                if s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                    self._stop.set("cancelled")
        if self._stop.event.is_set():
            raise JobCancelled(self._stop.reason or "cancelled")

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
            "tenant_id": job.tenant_id, "attempts": job.attempts or 0,
            "cancel_requested": bool(job.cancel_requested),
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


class JobRunner:
    """Runs jobs on a small thread pool (CPU-bound work stays off the event loop).

    Args:
        max_attempts: a job that was running during this many unclean stops is failed by
            :meth:`resume` instead of started again.
    """

    def __init__(self, db: Database, workers: int = 2, max_attempts: int = 3):
        self.db = db
        self.max_attempts = max(1, int(max_attempts))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zhinao-job")
        self._stops: dict[int, _Stop] = {}
        self._futures: dict[int, Future] = {}
        self._guard = threading.Lock()
        self._stopping = False
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        """Run jobs of ``kind`` with ``handler`` on this runner (wins over ``@job_handler``)."""
        self._handlers[kind] = handler

    def handler(self, kind: str) -> Handler | None:
        """The handler this runner uses for ``kind``, or None."""
        return self._handlers.get(kind) or _HANDLERS.get(kind)

    def submit(self, kind: str, params: dict[str, Any], tenant_id: int | None = None) -> int:
        if self.handler(kind) is None:
            raise NotFound(f"no handler for job kind {kind!r}")
        with self.db.session() as s:
            job = Job(kind=kind, params=params, tenant_id=tenant_id, status="queued")
            s.add(job)
            s.flush()
            job_id = job.id
        self._start(job_id)
        return job_id

    def _start(self, job_id: int) -> None:
        """Schedule a stored job. While the process drains (after :meth:`shutdown`) the job is left
        ``queued``: it is stored, so the next start resumes it, and the caller gets its id, not an error."""
        stop = _Stop()
        with self._guard:
            if self._stopping:
                log.info("job %s stays queued: the process is stopping; it resumes at the next start", job_id)
                return
            self._stops[job_id] = stop
            try:
                self._futures[job_id] = self._pool.submit(self._run, job_id, stop)
            except RuntimeError:  # the pool shut down between the check and the submit
                self._stops.pop(job_id, None)
                log.info("job %s stays queued: the process is stopping; it resumes at the next start", job_id)

    def _run(self, job_id: int, stop: _Stop) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in UNFINISHED or job.cancel_requested or stop.reason == "cancelled":
                if job is not None and job.status in UNFINISHED:  # cancelled while it waited in the queue
                    job.status, job.finished_at, job.message = "cancelled", utcnow(), "cancelled before it started"
                self._forget(job_id)
                return
            if stop.event.is_set():  # the process is stopping: leave it queued for the next start
                self._forget(job_id)
                return
            kind, params = job.kind, dict(job.params or {})
            job.status, job.started_at, job.error = "running", utcnow(), None
            job.attempts = (job.attempts or 0) + 1  # taken back below when the run ends cleanly
        ctx = JobContext(job_id, self.db, stop)
        status, result, error, message = "succeeded", None, None, None
        try:
            handler = self.handler(kind)
            if handler is None:  # pragma: no cover - submit and resume check first
                raise RuntimeError(f"no handler for job kind {kind!r}")
            result = handler(ctx, params)
        except JobCancelled as e:
            if e.reason == "shutdown" and stop.reason != "cancelled":
                status, message = "queued", "interrupted by a shutdown; resumes at the next start"
            else:
                status, message = "cancelled", "cancelled"
        except Exception as e:  # a failed job must never take the process down
            if isinstance(e, ZhinaoError):  # the user's input: its message says it all, no traceback
                log.info("job %s (%s) failed: %s", job_id, kind, e)
            else:
                log.exception("job %s (%s) failed", job_id, kind)
            status, error = "failed", f"{type(e).__name__}: {e}"
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if status != "cancelled" and job.cancel_requested:
                status, message = "cancelled", "cancelled"  # the request came in as the handler ended
            job.status, job.result, job.error = status, result, error
            job.finished_at = None if status == "queued" else utcnow()
            job.attempts = max(0, (job.attempts or 0) - 1)  # a clean end, whatever the outcome
            if message:
                job.message = message
            if status == "succeeded":
                job.progress = 1.0
        self._forget(job_id)

    def _forget(self, job_id: int) -> None:
        with self._guard:
            self._stops.pop(job_id, None)

    def cancel(self, job_id: int, wait_s: float = 0.0) -> dict[str, Any]:
        """Cancel a queued or running job; it ends ``cancelled`` and is never resumed.

        The request is committed before the handler is woken, so it holds even if this
        process dies first. With ``wait_s``, waits that long for the handler to stop.

        Raises:
            NotFound: no such job.
            Conflict: the job already finished (the message says how).
        """
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            if job.status not in UNFINISHED:
                raise Conflict(f"job {job_id} already {job.status}; there is nothing to cancel",
                               code="job_finished")
            job.cancel_requested = True
        with self._guard:
            stop = self._stops.get(job_id)
        if stop is None:
            # not in this process: a queued one ends here; a running one is stopped by the process
            # that runs it (its handler polls the flag), or finished as cancelled by the next resume
            with self.db.session() as s:
                s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                          .values(status="cancelled", finished_at=utcnow(), message="cancelled"))
        else:
            stop.set("cancelled")
            if wait_s > 0:
                self._wait_stopped([job_id], wait_s)
        return self.get(job_id)

    def cancel_where(self, kind: str, match: Callable[[dict[str, Any]], bool], wait_s: float = 0.0) -> list[int]:
        """Cancel every unfinished job of ``kind`` whose params ``match``; wait up to ``wait_s`` for them."""
        with self.db.session() as s:
            ids = [j.id for j in s.scalars(select(Job).where(Job.kind == kind, Job.status.in_(UNFINISHED)))
                   if match(dict(j.params or {}))]
        for job_id in ids:
            try:
                self.cancel(job_id)
            except Conflict:
                pass  # it finished meanwhile
        if ids and wait_s > 0:
            self._wait_stopped(ids, wait_s)
        return ids

    def _wait_stopped(self, ids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for job_id in ids:
            fut = self._futures.get(job_id)
            if fut is None:
                continue
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                return False
        return True

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
        return select(Job).where(Job.status.in_(UNFINISHED))

    def pending_kinds(self) -> set[str]:
        """Kinds of the jobs a previous process left unfinished (and that will be resumed)."""
        with self.db.session() as s:
            return {j.kind for j in s.scalars(self._unfinished()) if not j.cancel_requested}

    def resume(self) -> list[int]:
        """Restart jobs a previous process left unfinished (their handlers are idempotent).

        A job whose cancel was requested ends ``cancelled``; one that was running during
        ``max_attempts`` unclean stops ends ``failed``; neither is started again.
        """
        ids = []
        with self.db.session() as s:
            for j in s.scalars(self._unfinished()):
                if j.cancel_requested:
                    j.status, j.finished_at, j.message = "cancelled", utcnow(), "cancelled"
                elif (j.attempts or 0) >= self.max_attempts:
                    j.status, j.finished_at = "failed", utcnow()
                    j.error = (f"the job was running when the server stopped {j.attempts} times; it is not resumed "
                               "again (a file in it may be crashing the server) — check its files and start it anew")
                    log.warning("job %s (%s) not resumed: %s", j.id, j.kind, j.error)
                elif self.handler(j.kind) is not None:
                    ids.append(j.id)
        with self._guard:
            ids = [i for i in ids if i not in self._stops]  # already running here
        for job_id in ids:
            log.info("resuming job %s", job_id)
            self._start(job_id)
        return ids

    def shutdown(self, grace_s: float | None = None) -> bool:
        """Stop every running job cooperatively; they go back to ``queued`` for the next start.

        Args:
            grace_s: how long to wait for handlers to stop (None: until they have).

        Returns:
            True when every handler stopped within the grace period.
        """
        self._stopping = True
        with self._guard:
            stops = list(self._stops.values())
            futures = list(self._futures.values())
        for stop in stops:
            stop.set("shutdown")
        deadline = None if grace_s is None else time.monotonic() + grace_s
        done = True
        for fut in futures:
            try:
                fut.result(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                done = False
                break
            except Exception:  # noqa: BLE001  (the handler's failure is already recorded)
                pass
        self._pool.shutdown(wait=done, cancel_futures=True)
        return done
