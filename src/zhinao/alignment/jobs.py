"""The ``alignment.train`` job: one stage per job, with progress, cancel and resume.

The handler is idempotent as the job runner requires (:mod:`zhinao.store.jobs`): the run
folder is keyed by the job id, so a job resumed after a crash continues from its last
checkpoint; a model already registered by this job is returned instead of trained again.
"""

from __future__ import annotations

from typing import Any


def train_job(service: Any, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    stage = params.get("stage")
    config = dict(params.get("config") or {})
    tenant_id = int(params.get("tenant_id") or _job_tenant(ctx) or 1)
    from zhinao.alignment.config import stage_config

    cfg = stage_config(stage, config)
    name = cfg.output_name
    if name:
        row = service.find_model(tenant_id, name)
        if row is not None and row.get("job_id") == ctx.job_id:
            return {"model": name, "path": row["path"], "metrics": row["metrics"], "resumed": "already registered"}
    ctx.progress(0.01, f"{stage}: loading the base model and the data")
    return service.train(tenant_id, stage, config, job_id=ctx.job_id, progress=ctx.progress, check=ctx.check)


def _job_tenant(ctx: Any) -> int | None:
    from zhinao.store.models import Job

    with ctx.db.session() as s:
        job = s.get(Job, ctx.job_id)
        return job.tenant_id if job is not None else None
