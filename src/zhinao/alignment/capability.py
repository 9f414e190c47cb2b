"""The alignment capability: RLHF from the product's own feedback (SFT, reward model, DPO, PPO).

Declared here and nowhere in the core (see :mod:`zhinao.capability`): the
:class:`~zhinao.alignment.service.AlignmentService`, the ``alignment.train`` job handler (one
stage per job, with progress and checkpoints, resumed from the last checkpoint after a
restart), the ``alignment`` Alembic branch (dataset versions, aligned models) and the
``zhinao align`` commands. Importing it loads no torch: TRL and transformers load when a
job runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zhinao.capability import Capability, CliEntry, ConsolePageEntry, Parts, ServiceHandler


def _train(service: Any, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    from zhinao.alignment.jobs import train_job

    return train_job(service, ctx, params)


class AlignmentCapability(Capability):
    order = 40
    name = "alignment"
    cli = (CliEntry("align", "zhinao.cli.align:app",
                    "Align models on feedback: data, SFT, reward model, DPO, PPO, eval / 对齐"),)
    routers = ("zhinao.gateway.api.alignment:router",)
    console_pages = (ConsolePageEntry("alignment", "/static/pages/alignment.js"),)
    job_kind_prefixes = ("alignment.",)
    migrations = Path(__file__).parent / "migrations"
    models = ("zhinao.alignment.models", "zhinao.alignment.compare")

    def build(self, parts: Parts) -> Any:
        from zhinao.alignment.compare import CompareService
        from zhinao.alignment.service import AlignmentService

        service = AlignmentService(settings=parts.settings, db=parts.db, jobs=parts.jobs)
        service.compare = CompareService(parts.db, parts.llm)  # compare mode draws through the metered client
        return service

    def job_handlers(self) -> Mapping[str, ServiceHandler]:
        return {"alignment.train": _train}


capability = AlignmentCapability()
