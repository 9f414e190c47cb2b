"""/api/experiments: a tenant's A/B split between a base and a candidate model (thin over ExperimentService).

Admin-only: a tenant admin acts on their own tenant; the platform operator on any
(``tenant_id`` in the body or query). An experiment id of another tenant is a 404, as for
every other tenant resource. Writes are audited by the gateway's audit middleware.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from zhinao.gateway.api.admin import _tenant_scope
from zhinao.gateway.deps import AdminDep, PlatformDep
from zhinao.maas.experiments import ExperimentService

router = APIRouter(prefix="/api/experiments", tags=["experiments"])


class ExperimentBody(BaseModel):
    base: str = Field(min_length=1, max_length=200, description="the model the tenant's requests ask for")
    candidate: str = Field(min_length=1, max_length=200, description="the model that takes `share` of them")
    share: float = Field(ge=0.0, le=1.0, description="the candidate's part of the conversations, 0 to 1")
    name: str = Field("", max_length=100)
    tenant_id: int | None = None


class SharePatch(BaseModel):
    share: float = Field(ge=0.0, le=1.0)


def _svc(platform) -> ExperimentService:
    return ExperimentService(platform.db, platform.models)


@router.get("")
def list_experiments(principal: AdminDep, platform: PlatformDep, tenant_id: int | None = None):
    return _svc(platform).list(_tenant_scope(principal, tenant_id))


@router.post("", status_code=201)
def start_experiment(body: ExperimentBody, principal: AdminDep, platform: PlatformDep):
    tid = _tenant_scope(principal, body.tenant_id)
    return _svc(platform).start(tid, body.base, body.candidate, body.share, name=body.name,
                                created_by=principal.user_id)


def _scope_of(principal, platform, experiment_id: int) -> int:
    """The tenant whose experiment ``experiment_id`` is, if this admin may see it (else a 404)."""
    if principal.is_operator:
        return _svc(platform).tenant_of(experiment_id) or principal.tenant_id
    return principal.tenant_id


@router.get("/{experiment_id}")
def get_experiment(experiment_id: int, principal: AdminDep, platform: PlatformDep):
    """The experiment and its comparison (per-arm 👍 rates with Wilson intervals, the difference)."""
    return _svc(platform).compare(_scope_of(principal, platform, experiment_id), experiment_id)


@router.patch("/{experiment_id}")
def set_share(experiment_id: int, body: SharePatch, principal: AdminDep, platform: PlatformDep):
    return _svc(platform).set_share(_scope_of(principal, platform, experiment_id), body.share, experiment_id)


@router.post("/{experiment_id}/rollback")
def rollback(experiment_id: int, principal: AdminDep, platform: PlatformDep):
    """Share to 0, experiment rolled back: the base model serves every request from now on."""
    return _svc(platform).rollback(_scope_of(principal, platform, experiment_id), experiment_id)
