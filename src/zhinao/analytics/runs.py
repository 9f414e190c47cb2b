"""Catalogue runs as background jobs: train, evaluate on a hold-out, compare with the
baseline, explain, chart, persist a new version, and optionally score into a table.

A run is a row in ``analytics_runs`` and a job of kind ``analytics.run`` (:func:`run_job`; the
analytics capability declares it and the platform registers it on its job runner). Its artefacts live
in ``<home>/analytics/models/<key>/v<N>/``: ``model.joblib`` (the fitted instance, as
``evaluate`` left it: trained on the training part, which is what the metrics describe),
``evaluation.json`` and ``charts/<name>.png``. A run with ``engine="spark"`` fits the
model's MLlib counterpart instead (:mod:`zhinao.analytics.spark_runs`) and keeps the MLlib
model in ``mllib/`` (``model.zip`` for download). The job handler reads everything it needs
from the row, so a run resumed after a crash simply runs again (idempotent).
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from zhinao.analytics.catalog import catalogue
from zhinao.analytics.catalog.base import MiningModel
from zhinao.analytics.catalog.protocol import beats_baseline, higher_is_better, primary_metric, supports_predict
from zhinao.analytics.models import AnalyticsRun, AnalyticsWorkspace
from zhinao.errors import InvalidRequest, NotFound, ZhinaoError
from zhinao.store.db import Database, utcnow
from zhinao.store.jobs import JobContext, JobRunner

#: the job kind of a run; its handler is :func:`run_job`, declared by ``analytics/capability.py``
JOB_KIND = "analytics.run"
#: rows read to preview a binding (column kinds are judged on them)
PREVIEW_ROWS = 2000


def model_class(key: str) -> type[MiningModel]:
    cat = catalogue()
    if key not in cat:
        raise NotFound(f"no catalogue model {key!r}; known: {', '.join(sorted(cat))}")
    return cat[key]


def check_params(cls: type[MiningModel], params: dict[str, Any] | None, preset: str | None = None) -> dict[str, Any]:
    """Constructor parameters, refusing names the model does not take.

    Role bindings are parameters named after the role (``target``, ``features`` …); the older
    names (``id_column``, ``time_column`` …, :data:`roles.ALIASES`) still work where the model
    has no parameter of that name. A ``preset`` (an application model of the entry) supplies
    defaults that explicit parameters override.
    """
    from zhinao.analytics.catalog.roles import ALIASES

    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    out: dict[str, Any] = {}
    if preset:
        presets = {p.key: p for p in cls.info.presets}
        if preset not in presets:
            raise InvalidRequest(f"model {cls.info.key!r} has no preset {preset!r}; presets: "
                                 f"{', '.join(presets) or 'none'}", param="preset")
        out.update(presets[preset].params)
    for k, v in dict(params or {}).items():
        if k not in allowed and ALIASES.get(k) in allowed:
            k = ALIASES[k]
        if k not in allowed:
            roles = [r.name for r in cls.info.roles]
            raise InvalidRequest(f"model {cls.info.key!r} has no parameter {k!r}; parameters: {', '.join(allowed)}"
                                 + (f" (column roles: {', '.join(roles)})" if roles else ""), param=k)
        out[k] = v
    return out


def jsonable(v: Any) -> Any:
    """Explanations may hold numpy scalars, tuples, NaN: make them strict JSON."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


def run_dict(r: AnalyticsRun, detail: bool = True) -> dict[str, Any]:
    cls = catalogue().get(r.model_key)
    metric = primary_metric(cls.info) if cls else None
    if r.metrics and metric not in r.metrics:  # a Spark counterpart may report other metrics: its first
        metric = next(iter(r.metrics))
    out = {"id": r.id, "model_key": r.model_key, "version": r.version, "dataset": r.dataset, "params": r.params,
           "engine": r.engine or "local", "status": r.status, "job_id": r.job_id, "workspace_id": r.workspace_id, "metrics": r.metrics,
           "baseline": r.baseline, "baseline_name": r.baseline_name, "charts": r.charts or [],
           "score_table": r.score_table, "error": r.error, "duration_s": r.duration_s,
           "primary_metric": metric, "higher_is_better": higher_is_better(metric) if metric else None,
           "created_at": r.created_at.isoformat() if r.created_at else None,
           "finished_at": r.finished_at.isoformat() if r.finished_at else None}
    if r.metrics and r.baseline and metric in r.metrics and metric in r.baseline:
        m, b = r.metrics[metric], r.baseline[metric]
        out["beats_baseline"] = (m > b) if higher_is_better(metric) else (m < b)
    else:
        out["beats_baseline"] = None
    expl = r.explanation or {}
    out["preset"] = r.preset
    out["binding"] = r.binding
    out["split"] = expl.get("split")
    out["notes"] = list(expl.get("notes") or [])
    if detail:
        out["explanation"] = r.explanation
        plots = Path(r.artifact_dir or ".") / "plots.json" if r.status == "succeeded" else None
        out["plots"] = sorted(json.loads(plots.read_text(encoding="utf-8"))) if plots and plots.is_file() else []
    return out


class RunManager:
    """Start, follow and use catalogue runs; the heavy work happens in :func:`execute_run`."""

    def __init__(self, db: Database, home: Path, workspaces, jobs: JobRunner | None = None):
        self.db, self.home, self.workspaces, self.jobs = db, Path(home), workspaces, jobs

    def start(self, tenant_id: int, key: str, *, workspace: str | None = None, dataset: str | None = None,
              params: dict[str, Any] | None = None, score_table: str | None = None,
              engine: str = "local", preset: str | None = None) -> dict[str, Any]:
        """Queue a run (a background job when a JobRunner is present, else run it now).

        ``engine`` names a registered :class:`~zhinao.analytics.engines.Engine` (``local``, ``spark`` …).
        """
        cls = model_class(key)
        params = check_params(cls, params, preset)
        cls(**params)  # bad values fail here, not in the job
        from zhinao.analytics.engines import check_engine

        engine = engine or "local"
        eng = check_engine(engine, cls)
        wsid = None
        if dataset and not workspace:
            raise InvalidRequest("a dataset lives in a workspace: pass workspace too", param="workspace")
        if workspace:
            wsid = self.workspaces.workspace_id(tenant_id, workspace)
            if dataset:
                self.workspaces.dataset(tenant_id, workspace, dataset)  # 404 now rather than in the job
        if score_table:
            from zhinao.analytics.workspace import check_table_name

            check_table_name(score_table)
            if not workspace:
                raise InvalidRequest("score_table needs a workspace to write into", param="workspace")
            if not supports_predict(cls):
                raise InvalidRequest(f"model {key!r} does not score rows", param="score_table")
            if not eng.scores_rows:
                raise InvalidRequest(f"scoring into a table needs engine 'local'; engine {engine!r} runs report "
                                     "metrics only", param="score_table")
        for _ in range(5):  # the version number is unique per model key; retry on a race
            try:
                with self.db.session() as s:
                    v = (s.scalar(select(func.max(AnalyticsRun.version)).where(AnalyticsRun.model_key == key)) or 0) + 1
                    run = AnalyticsRun(tenant_id=tenant_id, workspace_id=wsid, model_key=key, version=v,
                                       dataset=dataset or f"demo:{cls.info.dataset}", params=jsonable(params),
                                       engine=engine, status="queued", score_table=score_table, preset=preset or None,
                                       artifact_dir=str(self.home / "analytics" / "models" / key / f"v{v}"))
                    s.add(run)
                    s.flush()
                    run_id = run.id
                break
            except IntegrityError:
                continue
        else:  # pragma: no cover - five collisions in a row
            raise InvalidRequest("could not allocate a model version; retry")
        if self.jobs is not None:
            job_id = self.jobs.submit(JOB_KIND, {"run_id": run_id, "home": str(self.home)}, tenant_id=tenant_id)
            with self.db.session() as s:
                s.get(AnalyticsRun, run_id).job_id = job_id
        else:
            try:
                execute_run(self.db, run_id, self.home)
            except ZhinaoError:
                pass  # recorded on the run
        return self.get(tenant_id, run_id)

    def _run(self, s, tenant_id: int, run_id: int) -> AnalyticsRun:
        r = s.get(AnalyticsRun, run_id)
        if r is None or r.tenant_id != tenant_id:
            raise NotFound(f"run {run_id} not found")
        return r

    def get(self, tenant_id: int, run_id: int, detail: bool = True) -> dict[str, Any]:
        with self.db.session() as s:
            out = run_dict(self._run(s, tenant_id, run_id), detail)
        if self.jobs is not None and out["job_id"] and out["status"] in ("queued", "running"):
            try:
                job = self.jobs.get(out["job_id"])
                out["progress"], out["message"] = job["progress"], job["message"]
            except NotFound:
                pass
        else:
            out["progress"] = 1.0 if out["status"] in ("succeeded", "failed") else 0.0
        return out

    def list(self, tenant_id: int, key: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(AnalyticsRun).where(AnalyticsRun.tenant_id == tenant_id).order_by(AnalyticsRun.id.desc()).limit(limit)
            if key:
                q = q.where(AnalyticsRun.model_key == key)
            return [run_dict(r, detail=False) for r in s.scalars(q)]

    def wait(self, tenant_id: int, run_id: int, timeout: float | None = None) -> dict[str, Any]:
        r = self.get(tenant_id, run_id, detail=False)
        if self.jobs is not None and r["job_id"]:
            self.jobs.wait(r["job_id"], timeout)
        return self.get(tenant_id, run_id)

    def artifact_dir(self, tenant_id: int, run_id: int) -> Path:
        with self.db.session() as s:
            r = self._run(s, tenant_id, run_id)
            if r.status != "succeeded":
                raise InvalidRequest(f"run {run_id} has not succeeded (status {r.status})")
            return Path(r.artifact_dir)

    def chart(self, tenant_id: int, run_id: int, name: str) -> bytes:
        d = self.artifact_dir(tenant_id, run_id)
        p = d / "charts" / f"{name}.png"
        if "/" in name or ".." in name or not p.is_file():
            raise NotFound(f"run {run_id} has no chart {name!r}")
        return p.read_bytes()

    def plots(self, tenant_id: int, run_id: int) -> dict[str, Any]:
        """The run's interactive chart specs (``plots.json``; empty for runs made before issue 10)."""
        p = self.artifact_dir(tenant_id, run_id) / "plots.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def preview_binding(self, tenant_id: int, key: str, workspace: str, dataset: str,
                        params: dict[str, Any] | None = None, preset: str | None = None) -> dict[str, Any]:
        """How a run of ``key`` on ``dataset`` would bind its roles, before it starts (the run
        dialog shows the inferred defaults). ``ok`` false with ``error`` when it would not bind."""
        from zhinao.analytics.catalog.roles import column_kind

        cls = model_class(key)
        params = check_params(cls, params, preset)
        model = cls(**params)
        df = self.workspaces.frame(tenant_id, workspace, dataset, limit=PREVIEW_ROWS)
        columns = [{"name": str(c), "kind": column_kind(df[c], str(c))} for c in df.columns]
        try:
            b = model.bind(df)
            binding, error = b.to_dict(), None
            target = b.get("target")
            if target and cls.info.task == "classification" and "positive" in params.keys() | set(model.get_params()):
                from zhinao.analytics.catalog.roles import positive_class

                if df[target].nunique(dropna=True) == 2:  # the run would stop on an ambiguous label: say it now
                    positive_class(df[target], target, params.get("positive"))
        except InvalidRequest as e:
            binding, error = (b.to_dict() if "b" in locals() else None), e.message
        return {"model_key": key, "dataset": dataset, "params": jsonable(params), "columns": columns,
                "binding": jsonable(binding) if binding else None, "ok": error is None, "error": error}

    def fitting_tables(self, tenant_id: int, run_id: int, workspace: str) -> list[dict[str, Any]]:
        """Tables of ``workspace`` the run's model can score: they hold every column the run bound
        (its target and label excepted, which new rows need not have)."""
        run = self.get(tenant_id, run_id, detail=False)
        if not supports_predict(model_class(run["model_key"])) or (run.get("engine") or "local") != "local":
            return []
        cols = run.get("binding") or {}
        need: set[str] = set()
        for role, v in (cols.get("columns") or {}).items():
            if role in ("target", "label"):
                continue
            need |= set(v if isinstance(v, list) else [v] if v else [])
        out = []
        for d in self.workspaces.datasets(tenant_id, workspace):
            prof = self.workspaces.dataset(tenant_id, workspace, d["name"]).get("profile") or {}
            have = {str(c.get("name")) for c in prof.get("columns", [])}
            missing = sorted(need - have)
            out.append({"name": d["name"], "rows": d.get("rows"), "fits": not missing, "missing": missing[:10]})
        return [t for t in out if t["fits"]]

    def model_file(self, tenant_id: int, run_id: int) -> Path:
        """``model.joblib`` (engine local) or ``model.zip`` (the saved MLlib model of a Spark run)."""
        d = self.artifact_dir(tenant_id, run_id)
        for name in ("model.joblib", "model.zip"):
            if (d / name).is_file():
                return d / name
        raise NotFound(f"run {run_id} saved no model file")

    def load_model(self, tenant_id: int, run_id: int) -> MiningModel:
        import joblib

        path = self.model_file(tenant_id, run_id)
        if path.suffix != ".joblib":
            engine = self.get(tenant_id, run_id, detail=False)["engine"]
            raise InvalidRequest(f"run {run_id} ran on engine {engine!r}: its saved model ({path.name}) cannot score "
                                 "here; run the model with engine 'local' to score rows")
        return joblib.load(path)

    def score(self, tenant_id: int, run_id: int, workspace: str, dataset: str,
              output: str | None = None) -> dict[str, Any]:
        """Score a workspace table with a run's fitted model into a new table (replaced if present)."""
        run = self.get(tenant_id, run_id, detail=False)
        cls = model_class(run["model_key"])
        if not supports_predict(cls):
            raise InvalidRequest(f"model {run['model_key']!r} does not score rows")
        model = self.load_model(tenant_id, run_id)
        df = self.workspaces.frame(tenant_id, workspace, dataset)
        out = _score_frame(model, df)
        name = output or f"{dataset}_{run['model_key']}_v{run['version']}"[:63]
        return self.workspaces.save_frame(
            tenant_id, workspace, name, out, source="score", replace=True,
            detail={"run_id": run_id, "model": run["model_key"], "version": run["version"], "input": dataset},
            description=f"{cls.info.name_zh} v{run['version']} 对 {dataset} 的评分 / scores of {dataset}")


def _score_frame(model: MiningModel, df: pd.DataFrame) -> pd.DataFrame:
    try:
        out = model.predict_table(df)
    except ZhinaoError:
        raise
    except KeyError as e:
        raise InvalidRequest(f"the table lacks column {e.args[0]!r} that the model needs", param=str(e.args[0])) from e
    except (ValueError, TypeError) as e:
        raise InvalidRequest(f"cannot score this table: {e}") from e
    if not isinstance(out, pd.DataFrame):
        raise InvalidRequest(f"{type(model).__name__}.predict_table returned {type(out).__name__}, not a table")
    return out


def execute_run(db: Database, run_id: int, home: Path,
                progress: Callable[[float, str], None] = lambda f, m: None) -> dict[str, Any]:
    """Do run ``run_id``: everything is read from its row; artefacts overwrite any partial ones."""
    from zhinao.analytics.workspace import Workspace, WorkspaceManager

    with db.session() as s:
        r = s.get(AnalyticsRun, run_id)
        if r is None:
            raise NotFound(f"run {run_id} not found")
        if r.status == "succeeded":
            return {"run_id": run_id, "status": "succeeded"}
        key, params, dataset, wsid, score_table = r.model_key, dict(r.params or {}), r.dataset, r.workspace_id, r.score_table
        engine = r.engine or "local"
        tenant_id, out_dir = r.tenant_id, Path(r.artifact_dir)
        ws = s.get(AnalyticsWorkspace, wsid) if wsid else None
        ws_path, ws_name = (ws.path, ws.name) if ws else (None, None)
        r.status, r.error = "running", None
    t0 = time.perf_counter()
    made_dir = False
    try:
        cls = model_class(key)
        model = cls(**params)
        progress(0.05, "loading data / 读取数据")
        frame = None
        if dataset and not dataset.startswith("demo:"):
            if ws_path is None:
                raise InvalidRequest(f"run {run_id}: workspace of dataset {dataset!r} is gone")
            frame = Workspace(ws_path).read_table(dataset)
            data = model.from_frame(frame)
        else:
            data = model.load_demo()
        progress(0.15, "training and evaluating on the hold-out / 训练并在留出集上评估"
                 + (" (Spark)" if engine == "spark" else ""))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        (out_dir / "charts").mkdir(parents=True)
        made_dir = True
        from zhinao.analytics.engines import get_engine

        eng = get_engine(engine)
        try:
            ev = eng.evaluate(model, data, out_dir, table=frame)
        except ZhinaoError:
            raise
        except (KeyError, ValueError, TypeError) as e:  # user data the model could not digest
            raise InvalidRequest(f"model {key!r} cannot use this data: {type(e).__name__}: {e}") from e
        progress(0.75, "saving model, charts and metrics / 保存模型与图表")
        for name, png in ev.charts.items():
            (out_dir / "charts" / f"{name}.png").write_bytes(png)
        eng.save(model, out_dir)
        metric = primary_metric(cls.info)
        if metric not in ev.metrics and ev.metrics:
            metric = next(iter(ev.metrics))
        bound = getattr(model, "binding_", None)
        binding = jsonable(bound.to_dict()) if bound is not None else None
        evaluation = {"model_key": key, "engine": engine, "params": jsonable(params), "dataset": dataset,
                      "metrics": jsonable(ev.metrics), "baseline": jsonable(ev.baseline),
                      "baseline_name": ev.baseline_name, "explanation": jsonable(ev.explanation),
                      "binding": binding, "beats_baseline": beats_baseline(ev, metric)}
        (out_dir / "evaluation.json").write_text(json.dumps(evaluation, ensure_ascii=False, indent=1), encoding="utf-8")
        (out_dir / "plots.json").write_text(json.dumps(jsonable(getattr(ev, "plots", {}) or {}), ensure_ascii=False),
                                            encoding="utf-8")
        if score_table:
            progress(0.85, f"scoring into {score_table} / 写入评分表")
            src = frame if frame is not None else (data if isinstance(data, pd.DataFrame) else None)
            if src is None:
                raise InvalidRequest(f"model {key!r} demo data is not a table; score a workspace dataset instead")
            WorkspaceManager(db, home).save_frame(
                tenant_id, ws_name, score_table, _score_frame(model, src), source="score", replace=True,
                detail={"run_id": run_id, "model": key, "input": dataset},
                description=f"{cls.info.name_zh} 评分 / scores")
        with db.session() as s:
            r = s.get(AnalyticsRun, run_id)
            r.metrics, r.baseline, r.baseline_name = evaluation["metrics"], evaluation["baseline"], ev.baseline_name
            r.explanation, r.charts, r.binding = evaluation["explanation"], sorted(ev.charts), binding
            r.status, r.finished_at, r.duration_s = "succeeded", utcnow(), time.perf_counter() - t0
        progress(1.0, "done / 完成")
        return {"run_id": run_id, "status": "succeeded", "metrics": evaluation["metrics"]}
    except BaseException as e:
        msg = e.message if isinstance(e, ZhinaoError) else f"{type(e).__name__}: {e}"
        if made_dir:  # a failed run leaves no half-written artefacts behind
            shutil.rmtree(out_dir, ignore_errors=True)
        with db.session() as s:
            r = s.get(AnalyticsRun, run_id)
            r.status, r.error, r.finished_at, r.duration_s = "failed", msg, utcnow(), time.perf_counter() - t0
        raise


def run_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """The ``analytics.run`` job: everything comes from the run's row (``home`` from the job)."""
    return execute_run(ctx.db, int(params["run_id"]), Path(params["home"]), ctx.progress)
