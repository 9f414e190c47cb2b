"""/api/auth: console sign-in with username + password, returning a session token."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from zhinao.gateway.deps import PlatformDep, PrincipalDep, bearer_token

router = APIRouter(prefix="/api", tags=["auth"])


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=201, description="username, or tenant/username")
    password: str = Field(min_length=1, max_length=200)
    tenant: str | None = Field(None, max_length=100, description="the user's tenant (usernames are unique per tenant)")


@router.post("/auth/login")
async def login(body: LoginBody, request: Request, platform: PlatformDep):
    ip = request.client.host if request.client else None
    token, user = await asyncio.to_thread(platform.tenancy.login, body.username, body.password, body.tenant or None,
                                          client_ip=ip)
    return {"token": token, "user": user}


@router.post("/auth/logout")
def logout(request: Request, principal: PrincipalDep, platform: PlatformDep):
    token = bearer_token(request)
    if token:
        platform.tenancy.logout(token)
    return {"ok": True}


@router.get("/me")
def me(principal: PrincipalDep):
    return {"id": principal.user_id, "username": principal.username, "role": principal.role,
            "tenant_id": principal.tenant_id, "tenant": principal.tenant, "key_id": principal.key_id,
            "models": list(principal.models) if principal.models is not None else None}
