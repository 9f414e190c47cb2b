"""/api/tenants, /api/users, /api/keys: tenancy administration (thin over TenancyService)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from zhinao.errors import PermissionDenied
from zhinao.gateway.deps import AdminDep, PlatformDep, PrincipalDep

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


def _default_tenant_only(principal, tenant_id: int | None) -> int:
    """Admins of the default tenant administer every tenant; others only their own."""
    if tenant_id is None or tenant_id == principal.tenant_id:
        return principal.tenant_id
    if principal.tenant != "default":
        raise PermissionDenied("only platform admins (tenant 'default') may manage other tenants")
    return tenant_id


def _platform_admin(principal) -> None:
    if principal.tenant != "default":
        raise PermissionDenied("only platform admins (tenant 'default') may manage tenants")


@router.get("/tenants")
def list_tenants(principal: AdminDep, platform: PlatformDep):
    if principal.tenant != "default":
        return [platform.tenancy.get_tenant(principal.tenant_id)]
    return platform.tenancy.list_tenants()


@router.post("/tenants", status_code=201)
def create_tenant(body: TenantBody, principal: AdminDep, platform: PlatformDep):
    _platform_admin(principal)
    return platform.tenancy.create_tenant(body.name, body.display_name, body.rpm, body.tpm, body.tokens_per_day)


@router.patch("/tenants/{tenant_id}")
def update_tenant(tenant_id: int, body: TenantPatch, principal: AdminDep, platform: PlatformDep):
    _platform_admin(principal)
    return platform.tenancy.update_tenant(tenant_id, **body.model_dump(exclude_unset=True))


@router.delete("/tenants/{tenant_id}")
def delete_tenant(tenant_id: int, principal: AdminDep, platform: PlatformDep):
    _platform_admin(principal)
    platform.tenancy.delete_tenant(tenant_id)
    return {"ok": True}


@router.get("/users")
def list_users(principal: AdminDep, platform: PlatformDep, tenant_id: int | None = None):
    return platform.tenancy.list_users(_default_tenant_only(principal, tenant_id))


@router.post("/users", status_code=201)
def create_user(body: UserBody, principal: AdminDep, platform: PlatformDep):
    tid = _default_tenant_only(principal, body.tenant_id)
    return platform.tenancy.create_user(tid, body.username, body.password, body.role)


@router.patch("/users/{user_id}")
def update_user(user_id: int, body: UserPatch, principal: AdminDep, platform: PlatformDep):
    scope = None if principal.tenant == "default" else principal.tenant_id
    return platform.tenancy.update_user(user_id, tenant_id=scope, **body.model_dump(exclude_unset=True))


@router.delete("/users/{user_id}")
def delete_user(user_id: int, principal: AdminDep, platform: PlatformDep):
    if user_id == principal.user_id:
        from zhinao.errors import InvalidRequest

        raise InvalidRequest("you cannot delete yourself")
    scope = None if principal.tenant == "default" else principal.tenant_id
    platform.tenancy.delete_user(user_id, tenant_id=scope)
    return {"ok": True}


@router.get("/keys")
def list_keys(principal: PrincipalDep, platform: PlatformDep, tenant_id: int | None = None):
    if principal.is_admin:
        return platform.tenancy.list_keys(_default_tenant_only(principal, tenant_id))
    return platform.tenancy.list_keys(principal.tenant_id, user_id=principal.user_id)


@router.post("/keys", status_code=201)
def create_key(body: KeyBody, principal: PrincipalDep, platform: PlatformDep):
    if not principal.is_admin and (body.role != "member" or body.tenant_id not in (None, principal.tenant_id)):
        raise PermissionDenied("members may only create member keys for their own tenant")
    tid = _default_tenant_only(principal, body.tenant_id) if principal.is_admin else principal.tenant_id
    models = body.models
    if models is not None:
        for m in models:
            if not m.startswith("kb:"):
                platform.models.canonical(m)  # 404 for unknown models
    if principal.models is not None:  # a restricted key cannot mint a broader one
        models = [m for m in (models or list(principal.models)) if m in principal.models]
    user_id = principal.user_id if tid == principal.tenant_id else None
    return platform.tenancy.create_key(tid, name=body.name, user_id=user_id, role=body.role, models=models,
                                       rpm=body.rpm, tpm=body.tpm, tokens_per_day=body.tokens_per_day)


@router.delete("/keys/{key_id}")
def revoke_key(key_id: int, principal: PrincipalDep, platform: PlatformDep):
    if principal.is_admin:
        scope_t = None if principal.tenant == "default" else principal.tenant_id
        return platform.tenancy.revoke_key(key_id, tenant_id=scope_t)
    return platform.tenancy.revoke_key(key_id, tenant_id=principal.tenant_id, user_id=principal.user_id)
