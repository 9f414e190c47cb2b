"""/api/tenants, /api/users, /api/keys: tenancy administration (thin over TenancyService).

Tenants are the platform operator's; a tenant admin manages their own tenant's users and
keys and sees nothing of other tenants. Role bounds (nobody grants above their own role,
the last operator credential stays) are enforced by the service, given ``actor``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from zhinao.errors import InvalidRequest, PermissionDenied
from zhinao.gateway.deps import AdminDep, OperatorDep, PlatformDep, PrincipalDep
from zhinao.maas.tenancy import Principal

router = APIRouter(prefix="/api", tags=["admin"])


class TenantBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    display_name: str = ""
    rpm: int | None = None
    tpm: int | None = None
    tokens_per_day: int | None = None


class TenantPatch(BaseModel):
    display_name: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    tokens_per_day: int | None = None
    disabled: bool | None = None
    models: list[str] | None = Field(None, description="models granted to the tenant; null = every platform model")


class UserBody(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=200)
    role: str = "member"
    tenant_id: int | None = None


class UserPatch(BaseModel):
    password: str | None = Field(None, min_length=8, max_length=200)
    role: str | None = None
    disabled: bool | None = None


class KeyBody(BaseModel):
    name: str = Field("", max_length=100)
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    tokens_per_day: int | None = None
    tenant_id: int | None = None
    role: str = "member"


def _tenant_scope(principal: Principal, tenant_id: int | None) -> int:
    """The tenant an admin acts on: their own; another one only for the platform operator."""
    if tenant_id is None or tenant_id == principal.tenant_id:
        return principal.tenant_id
    if not principal.is_operator:
        raise PermissionDenied("only the platform operator may manage other tenants", code="operator_only")
    return tenant_id


def _row_scope(principal: Principal) -> int | None:
    """Which tenant's rows an admin may touch by id: all for the operator, else their own."""
    return None if principal.is_operator else principal.tenant_id


@router.get("/tenants")
def list_tenants(principal: AdminDep, platform: PlatformDep):
    if not principal.is_operator:
        return [platform.tenancy.get_tenant(principal.tenant_id)]
    return platform.tenancy.list_tenants()


@router.post("/tenants", status_code=201)
def create_tenant(body: TenantBody, principal: OperatorDep, platform: PlatformDep):
    return platform.tenancy.create_tenant(body.name, body.display_name, body.rpm, body.tpm, body.tokens_per_day)


@router.patch("/tenants/{tenant_id}")
def update_tenant(tenant_id: int, body: TenantPatch, principal: OperatorDep, platform: PlatformDep):
    fields = body.model_dump(exclude_unset=True)
    if fields.get("models") is not None:  # grants name platform models (aliases resolve to the model)
        fields["models"] = sorted({platform.models.canonical(m) for m in fields["models"]})
    return platform.tenancy.update_tenant(tenant_id, **fields)


@router.delete("/tenants/{tenant_id}")
def delete_tenant(tenant_id: int, principal: OperatorDep, platform: PlatformDep):
    platform.tenancy.delete_tenant(tenant_id)
    return {"ok": True}


@router.get("/users")
def list_users(principal: AdminDep, platform: PlatformDep, tenant_id: int | None = None, all: bool = False):
    if all:
        principal.require_operator()
        return platform.tenancy.list_users(None)
    return platform.tenancy.list_users(_tenant_scope(principal, tenant_id))


@router.post("/users", status_code=201)
def create_user(body: UserBody, principal: AdminDep, platform: PlatformDep):
    tid = _tenant_scope(principal, body.tenant_id)
    return platform.tenancy.create_user(tid, body.username, body.password, body.role, actor=principal)


@router.patch("/users/{user_id}")
def update_user(user_id: int, body: UserPatch, principal: AdminDep, platform: PlatformDep):
    return platform.tenancy.update_user(user_id, tenant_id=_row_scope(principal), actor=principal,
                                        **body.model_dump(exclude_unset=True))


@router.delete("/users/{user_id}")
def delete_user(user_id: int, principal: AdminDep, platform: PlatformDep):
    if user_id == principal.user_id:
        raise InvalidRequest("you cannot delete yourself")
    platform.tenancy.delete_user(user_id, tenant_id=_row_scope(principal), actor=principal)
    return {"ok": True}


@router.get("/keys")
def list_keys(principal: PrincipalDep, platform: PlatformDep, tenant_id: int | None = None, all: bool = False):
    if all:
        principal.require_operator()
        return platform.tenancy.list_keys(None)
    if principal.is_admin:
        return platform.tenancy.list_keys(_tenant_scope(principal, tenant_id))
    if tenant_id not in (None, principal.tenant_id):
        raise PermissionDenied("members may only list their own keys")
    return platform.tenancy.list_keys(principal.tenant_id, user_id=principal.user_id)


@router.post("/keys", status_code=201)
def create_key(body: KeyBody, principal: PrincipalDep, platform: PlatformDep):
    if not principal.is_admin and body.tenant_id not in (None, principal.tenant_id):
        raise PermissionDenied("members may only create keys for their own tenant")
    tid = _tenant_scope(principal, body.tenant_id)
    models = body.models
    if models is not None:
        for m in models:
            if not m.startswith("kb:"):
                platform.models.canonical(m)  # 404 for unknown models
    if principal.models is not None:  # a restricted key cannot mint a broader one
        models = [m for m in (models or list(principal.models)) if m in principal.models]
    # A key in one's own tenant belongs to its creator (so it follows their role from now on);
    # a key the operator makes for another tenant has no user and is bounded at creation.
    user_id = principal.user_id if tid == principal.tenant_id else None
    return platform.tenancy.create_key(tid, name=body.name, user_id=user_id, role=body.role, models=models,
                                       rpm=body.rpm, tpm=body.tpm, tokens_per_day=body.tokens_per_day,
                                       actor=principal)


@router.delete("/keys/{key_id}")
def revoke_key(key_id: int, principal: PrincipalDep, platform: PlatformDep):
    if principal.is_admin:
        return platform.tenancy.revoke_key(key_id, tenant_id=_row_scope(principal), actor=principal)
    return platform.tenancy.revoke_key(key_id, tenant_id=principal.tenant_id, user_id=principal.user_id,
                                       actor=principal)
