"""The alignment service: dataset versions, the aligned-model registry, training as jobs.

What the CLI, a job handler and (later) the console page call. It owns the ``alignment_*``
tables and the ``home/alignment`` folder:

    home/alignment/datasets/t<tenant>/<name>/v<N>/{train,eval}.jsonl
    home/alignment/runs/t<tenant>/<job-or-name>/         checkpoints, progress.jsonl, the merged model
    home/alignment/base/<model>/                         GGUF packs converted to fp32 once

A model is registered only after its training ended and its merged checkpoint was written:
a failed or killed job leaves nothing half-registered (the folder is resumed or replaced).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from zhinao.alignment import datasets as ds
from zhinao.alignment.compare import collect_compare
from zhinao.alignment.models import AlignedModel, AlignmentDataset
from zhinao.errors import Conflict, InvalidRequest, NotFound
from zhinao.store.db import Database

JOB_KIND = "alignment.train"


def _ds_dict(d: AlignmentDataset) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "version": d.version, "kind": d.kind, "content_hash": d.content_hash,
            "n_train": d.n_train, "n_eval": d.n_eval, "path": d.path, "stats": d.stats,
            "created_at": d.created_at.isoformat() if d.created_at else None}


def _model_dict(m: AlignedModel) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "stage": m.stage, "base": m.base, "path": m.path,
            "dataset_id": m.dataset_id, "job_id": m.job_id, "config": m.config, "metrics": m.metrics,
            "description": m.description, "created_at": m.created_at.isoformat() if m.created_at else None}


class AlignmentService:
    """Built by the capability from the platform's parts (settings, store, job runner)."""

    def __init__(self, settings: Any, db: Database, jobs: Any = None):
        self.settings = settings
        self.db = db
        self.jobs = jobs
        self.root = Path(settings.home) / "alignment"

    # -- datasets ---------------------------------------------------------------------------
    def build_dataset(self, tenant_id: int, name: str, kind: str, records: list[ds.Record] | None = None, *,
                      names: tuple[str, ...] = (), eval_fraction: float = 0.2, seed: int = 0,
                      source: str = "") -> dict[str, Any]:
        """Scrub, dedupe, split and store a version of ``name``; the same content is the same version.

        Args:
            records: the records; None collects them from the tenant's feedback.
            kind: ``sft`` (demonstrations) or ``preference`` (comparisons); the other kind is left out.

        Raises:
            InvalidRequest: nothing usable (empty or one-sided), a bad name or fraction.
        """
        _check_name(name)
        stats: dict[str, Any] = {"source": source or ("product" if records is None else "records"),
                                 "eval_fraction": eval_fraction, "seed": seed}
        if records is None:
            got = ds.collect(self.db, tenant_id)
            ranked = collect_compare(self.db, tenant_id)  # reviewers' rankings in compare mode
            stats["collected"] = {**got.stats, **ranked.stats}
            records = [*got.demonstrations, *ranked.demonstrations, *got.comparisons, *ranked.comparisons]
        ds.require_usable(records, kind, where=f"dataset {name!r}")
        want = ds.Demonstration if kind == "sft" else ds.Comparison
        cleaned, report = ds.clean([r for r in records if isinstance(r, want)], names)
        stats.update(report)
        ds.require_usable(cleaned, kind, where=f"dataset {name!r} after dedupe and scrubbing")
        train, ev = ds.split_by_prompt(cleaned, eval_fraction, seed)
        h = ds.content_hash(train, ev)
        with self.db.session() as s:
            same = s.scalar(select(AlignmentDataset).where(
                AlignmentDataset.tenant_id == tenant_id, AlignmentDataset.name == name,
                AlignmentDataset.content_hash == h))
            if same is not None:
                return {**_ds_dict(same), "reused": True}
            version = (s.scalar(select(func.max(AlignmentDataset.version)).where(
                AlignmentDataset.tenant_id == tenant_id, AlignmentDataset.name == name)) or 0) + 1
            folder = self.root / "datasets" / f"t{tenant_id}" / name / f"v{version}"
            if folder.exists():  # left by a process that died before its row was committed
                shutil.rmtree(folder)
            ds.write_jsonl(folder / "train.jsonl", train)
            ds.write_jsonl(folder / "eval.jsonl", ev)
            stats["prompts"] = {"train": len({ds.prompt_key(r.prompt) for r in train}),
                                "eval": len({ds.prompt_key(r.prompt) for r in ev})}
            row = AlignmentDataset(tenant_id=tenant_id, name=name, version=version, kind=kind, content_hash=h,
                                   n_train=len(train), n_eval=len(ev), path=str(folder), stats=stats)
            s.add(row)
            s.flush()
            return {**_ds_dict(row), "reused": False}

    def import_jsonl(self, tenant_id: int, name: str, path: Path | str, kind: str, **kw: Any) -> dict[str, Any]:
        """A version of ``name`` from a JSONL file in TRL's format (scrubbed and split like product data)."""
        records = ds.read_jsonl(path, kind)
        return self.build_dataset(tenant_id, name, kind, records, source=f"file:{Path(path).name}", **kw)

    def dataset(self, tenant_id: int, ref: str) -> dict[str, Any]:
        """``name`` (latest version) or ``name@N``."""
        name, _, ver = ref.partition("@")
        with self.db.session() as s:
            q = select(AlignmentDataset).where(AlignmentDataset.tenant_id == tenant_id, AlignmentDataset.name == name)
            if ver:
                if not ver.isdigit():
                    raise InvalidRequest(f"dataset version must be a number: {ref!r}", param="dataset")
                q = q.where(AlignmentDataset.version == int(ver))
            row = s.scalar(q.order_by(AlignmentDataset.version.desc()).limit(1))
            if row is None:
                raise NotFound(f"dataset {ref!r} not found; build it with `zhinao align data`")
            return _ds_dict(row)

    def datasets(self, tenant_id: int) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(AlignmentDataset).where(AlignmentDataset.tenant_id == tenant_id).order_by(
                AlignmentDataset.name, AlignmentDataset.version)
            return [_ds_dict(d) for d in s.scalars(q)]

    def records(self, tenant_id: int, ref: str, split: str = "train") -> tuple[list[ds.Record], dict[str, Any] | None]:
        """The records of a dataset version's split, or of a JSONL file (ref is a path; no row)."""
        p = Path(ref)
        if ref.endswith(".jsonl") or p.is_file():
            return ds.read_jsonl(p), None
        d = self.dataset(tenant_id, ref)
        return ds.read_jsonl(Path(d["path"]) / f"{split}.jsonl"), d

    # -- models -----------------------------------------------------------------------------
    def register_model(self, tenant_id: int, name: str, *, stage: str, base: str, path: str,
                       dataset_id: int | None, job_id: int | None, config: dict[str, Any],
                       metrics: dict[str, Any], replace: bool = True) -> dict[str, Any]:
        _check_name(name)
        with self.db.session() as s:
            row = s.scalar(select(AlignedModel).where(AlignedModel.tenant_id == tenant_id, AlignedModel.name == name))
            if row is not None and not replace:
                raise Conflict(f"aligned model {name!r} exists")
            if row is None:
                row = AlignedModel(tenant_id=tenant_id, name=name)
                s.add(row)
            row.stage, row.base, row.path, row.dataset_id = stage, base, path, dataset_id
            row.job_id, row.config, row.metrics = job_id, config, metrics
            s.flush()
            return _model_dict(row)

    def model(self, tenant_id: int, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.scalar(select(AlignedModel).where(AlignedModel.tenant_id == tenant_id, AlignedModel.name == name))
            if row is None:
                raise NotFound(f"aligned model {name!r} not found; `zhinao align models` lists them")
            return _model_dict(row)

    def find_model(self, tenant_id: int, name: str) -> dict[str, Any] | None:
        try:
            return self.model(tenant_id, name)
        except NotFound:
            return None

    def models(self, tenant_id: int) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(AlignedModel).where(AlignedModel.tenant_id == tenant_id).order_by(AlignedModel.id)
            return [_model_dict(m) for m in s.scalars(q)]

    def update_metrics(self, tenant_id: int, name: str, metrics: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.scalar(select(AlignedModel).where(AlignedModel.tenant_id == tenant_id, AlignedModel.name == name))
            if row is not None:
                row.metrics = {**(row.metrics or {}), **metrics}

    # -- training ---------------------------------------------------------------------------
    def run_dir(self, tenant_id: int, key: str) -> Path:
        return self.root / "runs" / f"t{tenant_id}" / key

    def submit(self, tenant_id: int, stage: str, config: dict[str, Any]) -> int:
        """Validate ``config`` for ``stage`` now (a bad field is a 4xx, not a failed job), then queue it."""
        from zhinao.alignment.config import stage_config

        cfg = stage_config(stage, config)
        if self.jobs is None:
            raise InvalidRequest("this alignment service has no job runner")
        return self.jobs.submit(JOB_KIND, {"stage": stage, "config": cfg.to_dict()}, tenant_id=tenant_id)

    def train(self, tenant_id: int, stage: str, config: dict[str, Any], *, job_id: int | None = None,
              progress: Any = None, check: Any = None) -> dict[str, Any]:
        """Run one stage in this thread (what the job handler and ``--wait`` without a server do)."""
        from zhinao.alignment.config import stage_config
        from zhinao.alignment.trainers import run_stage

        cfg = stage_config(stage, config)
        if cfg.stage == "grpo":  # its data is a workspace's accepted examples, its reward the sandbox
            from zhinao.alignment.grpo import run_grpo

            return run_grpo(self, tenant_id, cfg, job_id=job_id, progress=progress, check=check)
        return run_stage(self, tenant_id, cfg, job_id=job_id, progress=progress, check=check)


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name or ""):
        raise InvalidRequest(f"name {name!r} must be a lowercase slug (a-z, 0-9, . _ -), up to 64 characters",
                             param="name")
