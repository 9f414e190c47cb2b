"""/api/jobs: background jobs (ingestion, analytics runs, training) and their progress."""

from __future__ import annotations

from fastapi import APIRouter

from zhinao.errors import NotFound
from zhinao.gateway.deps import PlatformDep, PrincipalDep
from zhinao.gateway.errors import scrub_record

router = APIRouter(prefix="/api", tags=["jobs"])


@router.get("/jobs")
def list_jobs(principal: PrincipalDep, platform: PlatformDep, kind: str | None = None, limit: int = 50,
              all: bool = False):
    """The caller's tenant's jobs; ``all=true`` (every tenant's and the platform's) is the operator's."""
    if all:
        principal.require_operator()
    jobs = platform.jobs.list(kind=kind, tenant_id=None if all else principal.tenant_id,
                              limit=min(max(limit, 1), 500))
    return [scrub_record(j, platform) for j in jobs]


@router.get("/jobs/{job_id}")
def get_job(job_id: int, principal: PrincipalDep, platform: PlatformDep):
    job = platform.jobs.get(job_id)
    # platform jobs (no tenant) and other tenants' jobs exist only for the operator
    if job["tenant_id"] != principal.tenant_id and not principal.is_operator:
        raise NotFound(f"job {job_id} not found")
    return scrub_record(job, platform)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: int, principal: PrincipalDep, platform: PlatformDep):
    """Stop a queued or running job (409 when it already finished). Waits a few seconds for it to
    stop, so the reply usually says ``cancelled``; a cancelled job is never resumed after a restart."""
    get_job(job_id, principal, platform)
    job = platform.jobs.cancel(job_id, wait_s=5.0)
    return {"ok": True, "status": job["status"], "job": scrub_record(job, platform)}
