"""FastAPI dependencies as ``Annotated`` aliases: the only place HTTP meets identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from zhinao.errors import PermissionDenied
from zhinao.maas.tenancy import Principal
from zhinao.platform import Platform


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


def bearer_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def get_principal(request: Request, platform: Annotated[Platform, Depends(get_platform)]) -> Principal:
    principal = platform.tenancy.authenticate(bearer_token(request))
    request.state.principal = principal
    return principal


def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("this action needs the admin role")
    return principal


def get_operator(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    principal.require_operator()
    return principal


PlatformDep = Annotated[Platform, Depends(get_platform)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
OperatorDep = Annotated[Principal, Depends(get_operator)]
