"""/api/usage: metered tokens per tenant / key / model / day."""

from __future__ import annotations

from fastapi import APIRouter

from zhinao.errors import PermissionDenied
from zhinao.gateway.deps import PlatformDep, PrincipalDep

router = APIRouter(prefix="/api", tags=["usage"])


@router.get("/usage")
def usage(principal: PrincipalDep, platform: PlatformDep, days: int = 30, group_by: str = "day",
          all: bool = False, tenant_id: int | None = None):
    if all or (tenant_id is not None and tenant_id != principal.tenant_id):
        if not principal.is_operator:
            raise PermissionDenied("only the platform operator may read other tenants' usage", code="operator_only")
        scope = tenant_id
    else:
        scope = principal.tenant_id
    key_scope = None if principal.is_admin else principal.key_id
    return platform.usage.query(tenant_id=scope, days=days, group_by=group_by, key_id=key_scope)
