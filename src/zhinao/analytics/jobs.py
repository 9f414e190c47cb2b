"""The ``analytics.run`` job handler, importable without pandas or scikit-learn.

The web app imports this at start-up (through the analytics router) so that
``JobRunner.resume()`` finds a handler for runs a crashed process left unfinished; the
heavy modules load only when a run actually executes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhinao.store.jobs import JobContext, job_handler

JOB_KIND = "analytics.run"


@job_handler(JOB_KIND)
def run_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from zhinao.analytics.runs import execute_run

    return execute_run(ctx.db, int(params["run_id"]), Path(params["home"]), ctx.progress)
