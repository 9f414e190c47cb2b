"""/api/alignment: datasets, training jobs, aligned models and compare mode (thin over the services).

Over :class:`zhinao.alignment.service.AlignmentService` (datasets, jobs, models) and
:class:`zhinao.alignment.compare.CompareService` (sample 2-4 answers, rank them). Every call is
scoped to the caller's tenant. Roles: datasets, training and the model list are a tenant admin's
(they decide what the tenant's models learn); compare mode is every member's — reviewers rank,
admins turn the rankings into datasets.

Over HTTP a stage's ``dataset`` and ``base_model`` must be *names* (a dataset, ``name@N``, a base
pack or a registered model), never a server path: the CLI runs as the operator on their own
machine and may name files, a web caller may not (a path could read another tenant's dataset
folder or any file the server can read).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhinao.errors import InvalidRequest, NotFound, PayloadTooLarge
from zhinao.gateway.deps import AdminDep, PlatformDep, PrincipalDep
from zhinao.gateway.errors import scrub_record

router = APIRouter(prefix="/api/alignment", tags=["alignment"])

JOB_KIND = "alignment.train"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}(@[0-9]{1,9})?")
#: loss, reward and KL keys a console chart draws (TRL's log names); the rest stay in ``series``
CHART_KEYS = ("loss", "eval_loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
              "accuracy", "objective/kl", "objective/scores", "objective/rlhf_reward", "learning_rate")


class DatasetIn(BaseModel):
    name: str = Field(..., description="dataset name (a lowercase slug); a new version when the content changed",
                      max_length=64)
    kind: str = Field(..., description="sft (demonstrations) or preference (comparisons)")
    eval_fraction: float = Field(0.2, description="share of prompts held out for evaluation, in [0, 1)")
    seed: int = Field(0, description="seed of the train/eval split")


class JobIn(BaseModel):
    stage: str = Field(..., description="sft, rm, dpo or ppo")
    config: dict[str, Any] = Field(default_factory=dict, description="stage config fields "
                                   "(GET /api/alignment/stages lists them with help)")


class SampleIn(BaseModel):
    prompt: str = Field(..., description="the question to compare answers to / 问题", max_length=8000)
    system: str | None = Field(None, description="optional system message", max_length=4000)
    n: int = Field(3, description="answers to draw, 2 to 4")
    model: str | None = Field(None, description="chat model (default: the platform's)", max_length=200)
    max_tokens: int = Field(256, description="tokens per answer, 1 to 4096")
    temperatures: list[float] | None = Field(None, description="one temperature per answer (default: spread)")
    seed: int = Field(0, description="seed of the first draw; each next draw adds one")


class AnswerIn(BaseModel):
    text: str = Field(..., description="the reviewer's own answer (a correction)", max_length=20000)


class RankIn(BaseModel):
    ranks: dict[str, int] = Field(..., description="answer id -> rank, 1 = best; no ties; at least two ranked")


def _svc(platform: Any) -> Any:
    return platform.alignment


def _compare(platform: Any) -> Any:
    svc = _svc(platform)
    cmp = getattr(svc, "compare", None)
    if cmp is None:  # a service built without it (an older capability object)
        from zhinao.alignment.compare import CompareService

        cmp = svc.compare = CompareService(platform.db, platform.llm_clients)
    return cmp


def _check_ref(value: Any, field: str, where: str = "config.") -> None:
    if value in (None, ""):
        return
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidRequest(f"{where}{field} must be a name (a dataset, name@version, a base pack or a registered "
                             f"model), not {value!r}; over the API files are imported first "
                             "(POST /api/alignment/datasets/import)", param=field)


# -- stages ------------------------------------------------------------------------------------
@router.get("/stages")
def stages(principal: AdminDep):
    """Each stage's config fields with type, default and help (the console's start form)."""
    from zhinao.alignment.config import STAGES

    return {name: cls.help() for name, cls in STAGES.items()}


# -- datasets ----------------------------------------------------------------------------------
@router.get("/datasets")
def list_datasets(principal: AdminDep, platform: PlatformDep):
    return [_public_ds(d) for d in _svc(platform).datasets(principal.tenant_id)]


def _public_ds(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "path"}  # server folders are not the caller's business


@router.post("/datasets", status_code=201)
def build_dataset(body: DatasetIn, principal: AdminDep, platform: PlatformDep):
    """A version built from the tenant's feedback: thumbs, corrections, regenerations, the agent's
    verdicts and compare-mode rankings (scrubbed, deduplicated, split by prompt)."""
    d = _svc(platform).build_dataset(principal.tenant_id, body.name, body.kind, None,
                                     eval_fraction=body.eval_fraction, seed=body.seed)
    return _public_ds(d)


@router.post("/datasets/import", status_code=201)
def import_dataset(principal: AdminDep, platform: PlatformDep, file: UploadFile = File(...),
                   name: str = Form(...), kind: str = Form(...), eval_fraction: float = Form(0.2),
                   seed: int = Form(0)):
    """A JSONL file in TRL's formats (``messages`` for sft; ``prompt``/``chosen``/``rejected``)."""
    limit = int(platform.settings.max_upload_bytes)
    chunks, size = [], 0
    while True:
        chunk = file.file.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"file {file.filename!r} is over the upload limit of {limit} bytes")
        chunks.append(chunk)
    fname = Path(file.filename or "upload.jsonl").name
    if not fname.endswith(".jsonl"):
        fname += ".jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / re.sub(r"[^\w.-]", "_", fname)
        p.write_bytes(b"".join(chunks))
        try:
            p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{fname}: not UTF-8 text; a JSONL file is one JSON object per line",
                                 param="file") from None
        d = _svc(platform).import_jsonl(principal.tenant_id, name, p, kind, eval_fraction=eval_fraction, seed=seed)
    return _public_ds(d)


@router.get("/datasets/{name}/export")
def export_dataset(name: str, principal: AdminDep, platform: PlatformDep,
                   split: str = Query("train", description="train, eval or all")):
    """The version's JSONL (``name`` or ``name@N``), as stored: scrubbed, TRL's format."""
    if split not in ("train", "eval", "all"):
        raise InvalidRequest("split must be train, eval or all", param="split")
    _check_ref(name, "dataset", where="")
    d = _svc(platform).dataset(principal.tenant_id, name)
    parts = ("train", "eval") if split == "all" else (split,)
    body = "".join((Path(d["path"]) / f"{p}.jsonl").read_text(encoding="utf-8") for p in parts)
    fname = f"{d['name']}-v{d['version']}-{split}.jsonl"
    return Response(body, media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{fname}"'})


# -- jobs --------------------------------------------------------------------------------------
@router.post("/jobs", status_code=202)
def submit_job(body: JobIn, principal: AdminDep, platform: PlatformDep):
    """Queue one stage; a bad config field is a 400 now, not a failed job later."""
    cfg = body.config
    if not isinstance(cfg, dict):
        raise InvalidRequest("config must be an object of field: value", param="config")
    for f in ("dataset", "base_model", "reward_model", "ref_model"):
        _check_ref(cfg.get(f), f)
    job_id = _svc(platform).submit(principal.tenant_id, body.stage, cfg)
    return {"job_id": job_id, "stage": body.stage}


def _job(platform: Any, principal: Any, job_id: int) -> dict[str, Any]:
    job = platform.jobs.get(job_id)  # NotFound for an unknown id
    if job["kind"] != JOB_KIND or job["tenant_id"] != principal.tenant_id:
        raise NotFound(f"training job {job_id} not found")
    return job


def _series(platform: Any, principal: Any, job_id: int) -> list[dict[str, Any]]:
    path = _svc(platform).run_dir(principal.tenant_id, f"job{job_id}") / "progress.jsonl"
    rows: list[dict[str, Any]] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _job_out(job: dict[str, Any], platform: Any) -> dict[str, Any]:
    out = scrub_record(job, platform)
    params = job.get("params") or {}
    out["stage"] = params.get("stage")
    cfg = params.get("config") or {}
    out["config"] = {k: cfg.get(k) for k in ("output_name", "base_model", "dataset", "reward_model", "max_steps",
                                             "lora", "learning_rate") if k in cfg}
    out.pop("params", None)
    if isinstance(out.get("result"), dict):  # the model folder is the server's
        out["result"] = {k: v for k, v in out["result"].items() if k != "path"}
    return out


@router.get("/jobs")
def list_jobs(principal: AdminDep, platform: PlatformDep, limit: int = 50):
    jobs = platform.jobs.list(kind=JOB_KIND, tenant_id=principal.tenant_id, limit=min(max(limit, 1), 500))
    return [_job_out(j, platform) for j in jobs]


@router.get("/jobs/{job_id}")
def get_job(job_id: int, principal: AdminDep, platform: PlatformDep):
    """The job with its recorded series (every log row: step, loss, reward, KL …) and the chart keys present."""
    job = _job(platform, principal, job_id)
    rows = _series(platform, principal, job_id)
    present = [k for k in CHART_KEYS if any(k in r for r in rows)]
    return {**_job_out(job, platform), "series": rows, "chart_keys": present}


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: int, principal: AdminDep, platform: PlatformDep):
    """Stop a queued or running stage (409 when it already finished); a cancelled stage registers nothing."""
    _job(platform, principal, job_id)
    job = platform.jobs.cancel(job_id, wait_s=5.0)
    return {"ok": True, "status": job["status"], "job": _job_out(job, platform)}


# -- models ------------------------------------------------------------------------------------
def _public_model(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in m.items() if k != "path"}
    base = str(out.get("base") or "")
    if "/" in base or "\\" in base:  # a folder the operator gave: its name only
        out["base"] = Path(base).name
    return out


@router.get("/models")
def list_models(principal: AdminDep, platform: PlatformDep):
    return [_public_model(m) for m in _svc(platform).models(principal.tenant_id)]


@router.get("/models/{name}")
def get_model(name: str, principal: AdminDep, platform: PlatformDep):
    """One aligned model with its evaluation report (``metrics``: pair accuracy, win rates, KL …)."""
    m = _svc(platform).model(principal.tenant_id, name)
    out = _public_model(m)
    out["report"] = m.get("metrics") or {}
    return out


# -- compare mode --------------------------------------------------------------------------------
@router.post("/compare", status_code=201)
async def sample(body: SampleIn, principal: PrincipalDep, platform: PlatformDep):
    """Draw 2-4 answers to one prompt (distinct texts kept once) through the metered model client."""
    return await _compare(platform).sample(principal, body.prompt, n=body.n, model=body.model, system=body.system,
                                           max_tokens=body.max_tokens, temperatures=body.temperatures,
                                           seed=body.seed)


@router.get("/compare")
def list_compare(principal: PrincipalDep, platform: PlatformDep, ranked: bool | None = None, limit: int = 50):
    """Newest first: a member's own comparisons, or (admin) the tenant's."""
    return _compare(platform).list(principal, ranked=ranked, limit=limit)


@router.get("/compare/{compare_id}")
def get_compare(compare_id: int, principal: PrincipalDep, platform: PlatformDep):
    return _compare(platform).get(principal, compare_id)


@router.post("/compare/{compare_id}/answers", status_code=201)
def add_answer(compare_id: int, body: AnswerIn, principal: PrincipalDep, platform: PlatformDep):
    """The reviewer writes a better answer of their own (it joins the ranking)."""
    return _compare(platform).add_answer(principal, compare_id, body.text)


@router.post("/compare/{compare_id}/rank")
def rank(compare_id: int, body: RankIn, principal: PrincipalDep, platform: PlatformDep):
    """Save the ranking: every higher answer is chosen over every lower (3 ranked: 3 pairs). Ties and a
    single answer are 400s."""
    ranks: dict[int, int] = {}
    for k, v in body.ranks.items():
        if not str(k).isdigit():
            raise InvalidRequest(f"ranks: {k!r} is not an answer id", param="ranks")
        ranks[int(k)] = v
    return _compare(platform).rank(principal, compare_id, ranks)
