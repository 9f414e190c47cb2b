"""/api/audit: read, export and verify the audit log (thin over AuditService).

The platform operator sees every tenant; a tenant admin sees what their tenant did and
what was done to it; members are refused. Verifying the chain spans every tenant, so it is
the operator's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from zhinao.errors import InvalidRequest, PermissionDenied
from zhinao.gateway.deps import AdminDep, OperatorDep, PlatformDep
from zhinao.maas.audit import ACTIONS, parse_anchor, parse_time
from zhinao.maas.tenancy import Principal

router = APIRouter(prefix="/api/audit", tags=["audit"])
_ID = {"ge": 0, "le": 2**31 - 1}


def _scope(principal: Principal, tenant_id: int | None) -> tuple[int | None, int | None]:
    """(tenant filter, visible_to) for the caller: admins are pinned to their own tenant."""
    if principal.is_operator:
        return tenant_id, None
    if tenant_id is not None and tenant_id != principal.tenant_id:
        raise PermissionDenied("a tenant admin sees the audit log of their own tenant only")
    return None, principal.tenant_id


@router.get("")
def list_audit(principal: AdminDep, platform: PlatformDep,
               tenant_id: int | None = Query(None, **_ID, description="operator: rows by or about this tenant"),
               user_id: int | None = Query(None, **_ID), username: str | None = Query(None, max_length=100),
               action: str | None = Query(None, description="write | read | login"),
               method: str | None = Query(None, max_length=10), route: str | None = Query(None, max_length=300),
               status: int | None = Query(None, ge=100, le=599),
               since: str | None = Query(None, description="ISO date or date-time (UTC)"),
               until: str | None = Query(None, description="ISO date or date-time (UTC), exclusive"),
               before: int | None = Query(None, ge=1, le=2**62, description="page: rows before this seq"),
               limit: int = Query(100, ge=1, le=1000)):
    """Newest first. Page with ``before`` = the previous answer's ``next_before``."""
    if action is not None and action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}", param="action")
    tenant_filter, visible_to = _scope(principal, tenant_id)
    t_until = parse_time(until, "until")
    if until and len(until.strip()) == 10 and t_until is not None:
        t_until += timedelta(days=1)  # a date means "through that day"
    return platform.audit.list(tenant_id=tenant_filter, visible_to=visible_to, since=parse_time(since, "since"),
                               until=t_until, user_id=user_id, username=username, action=action,
                               method=method, route=route, status=status, before=before, limit=limit)


@router.get("/export")
async def export_audit(principal: AdminDep, platform: PlatformDep,
                       since: str | None = Query(None, description="ISO date or date-time (UTC)"),
                       tenant_id: int | None = Query(None, **_ID)):
    """Every matching row as JSON lines, in chain order (the same format as ``zhinao audit export``)."""
    tenant_filter, visible_to = _scope(principal, tenant_id)
    t_since = parse_time(since, "since")
    rows = platform.audit.iter_rows(since=t_since, tenant_id=tenant_filter if visible_to is None else visible_to)

    async def lines() -> AsyncIterator[str]:
        it = iter(rows)
        while True:
            batch = await asyncio.to_thread(lambda: [r for _, r in zip(range(500), it)])
            if not batch:
                return
            yield "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in batch)

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'})


@router.get("/verify")
def verify_audit(principal: OperatorDep, platform: PlatformDep,
                 anchor: str | None = Query(None, description="SEQ:HASH recorded from an earlier verify")):
    """Walk the whole hash chain; ``first_broken`` names the first altered, missing or relinked row."""
    return platform.audit.verify(anchor=parse_anchor(anchor) if anchor else None)
