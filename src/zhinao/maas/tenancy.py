"""Tenants, users, roles, API keys and console sessions — no HTTP here.

Keys are random 32-byte tokens shown once (``zk-`` + urlsafe base64) and stored as
SHA-256 hashes: a stolen database does not leak usable keys, and lookups stay O(1).
Passwords use scrypt. The first start creates tenant ``default`` and user ``admin``;
the admin key comes from ``ZHINAO_ADMIN_KEY`` when set (then never printed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from zhinao.errors import AuthenticationError, Conflict, InvalidRequest, NotFound, PermissionDenied
from zhinao.store.db import Database, utcnow
from zhinao.store.models import ApiKey, Tenant, User

ROLES = ("admin", "member")


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from an API key or a console session."""

    tenant_id: int
    tenant: str
    user_id: int | None
    username: str | None
    key_id: int | None
    role: str
    models: tuple[str, ...] | None = None  #: models this key may use; None = all
    limits: dict[str, Any] = field(default_factory=dict)  #: key-level rpm/tpm/tokens_per_day

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDenied("this action needs the admin role")

    def check_model(self, model: str, aliases: tuple[str, ...] = ()) -> None:
        if self.models is not None and model not in self.models and not set(aliases) & set(self.models):
            raise PermissionDenied(f"this API key may not use model {model!r}; allowed: {', '.join(self.models)}",
                                   code="model_not_allowed")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(prefix: str = "zk-") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${dk.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, dk = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(got.hex(), dk)


def tenant_dict(t: Tenant) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "display_name": t.display_name, "rpm": t.rpm, "tpm": t.tpm,
            "tokens_per_day": t.tokens_per_day, "disabled": t.disabled, "created_at": t.created_at.isoformat()}


def user_dict(u: User, tenant: str | None = None) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "role": u.role, "tenant_id": u.tenant_id,
            "tenant": tenant, "disabled": u.disabled, "created_at": u.created_at.isoformat()}


def key_dict(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "tenant_id": k.tenant_id, "user_id": k.user_id,
            "role": k.role, "models": k.models, "rpm": k.rpm, "tpm": k.tpm, "tokens_per_day": k.tokens_per_day,
            "revoked": k.revoked_at is not None, "created_at": k.created_at.isoformat(),
            "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None}


def _positive(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise InvalidRequest(f"{name} must be a non-negative integer or null", param=name)
    return v


class TenancyService:
    def __init__(self, db: Database, *, session_ttl_s: int = 7 * 24 * 3600):
        self.db = db
        self.session_ttl_s = session_ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}

    # -- bootstrap -----------------------------------------------------------------------
    def bootstrap(self, admin_key: str | None = None, admin_password: str | None = None,
                  defaults: dict[str, int | None] | None = None) -> dict[str, str] | None:
        """Create the default tenant and admin on an empty store.

        Returns the generated secrets to print once, or None when nothing was created.
        Secrets supplied through settings are not returned (so they are never printed).
        """
        with self.db.session() as s:
            if s.scalar(select(func.count()).select_from(Tenant)):
                return None
            t = Tenant(name="default", display_name="Default tenant", **(defaults or {}))
            s.add(t)
            s.flush()
            printed: dict[str, str] = {}
            password = admin_password or secrets.token_urlsafe(12)
            if not admin_password:
                printed["admin_password"] = password
            u = User(tenant_id=t.id, username="admin", password_hash=hash_password(password), role="admin")
            s.add(u)
            s.flush()
            key = admin_key or new_key()
            if not admin_key:
                printed["admin_key"] = key
            s.add(ApiKey(tenant_id=t.id, user_id=u.id, name="bootstrap admin", kind="api", prefix=key[:8],
                         key_hash=hash_key(key), role="admin"))
            return printed

    # -- authentication ------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        h = hash_key(token)
        with self.db.session() as s:
            row = s.execute(select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id)
                            .where(ApiKey.key_hash == h)).first()
            if row is None:
                raise AuthenticationError("invalid API key (check for typos; keys are shown only once at creation)")
            k, t = row
            if k.revoked_at is not None:
                raise AuthenticationError("this API key has been revoked", code="revoked_api_key")
            if k.expires_at is not None and k.expires_at < utcnow():
                raise AuthenticationError("this session has expired; sign in again", code="expired")
            if t.disabled:
                raise PermissionDenied(f"tenant {t.name!r} is disabled")
            username, role = None, k.role
            if k.user_id is not None:
                u = s.get(User, k.user_id)
                if u is None or u.disabled:
                    raise AuthenticationError("the user of this key is disabled")
                username = u.username
                role = u.role if k.kind == "session" else k.role
            now = utcnow()
            if k.last_used_at is None or (now - k.last_used_at).total_seconds() > 60:
                k.last_used_at = now  # coarse, to keep writes off the hot path
            return Principal(tenant_id=t.id, tenant=t.name, user_id=k.user_id, username=username, key_id=k.id,
                             role=role, models=tuple(k.models) if k.models is not None else None,
                             limits={"rpm": k.rpm, "tpm": k.tpm, "tokens_per_day": k.tokens_per_day})

    def login(self, username: str, password: str) -> tuple[str, dict[str, Any]]:
        with self.db.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None or u.disabled or not verify_password(password, u.password_hash):
                raise AuthenticationError("wrong username or password", code="invalid_credentials")
            token = new_key("zs-")
            s.add(ApiKey(tenant_id=u.tenant_id, user_id=u.id, name="console session", kind="session",
                         prefix=token[:8], key_hash=hash_key(token), role=u.role,
                         expires_at=utcnow() + timedelta(seconds=self.session_ttl_s)))
            t = s.get(Tenant, u.tenant_id)
            return token, user_dict(u, t.name if t else None)

    def logout(self, token: str) -> None:
        with self.db.session() as s:
            k = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token), ApiKey.kind == "session"))
            if k is not None:
                k.revoked_at = utcnow()

    # -- tenants -------------------------------------------------------------------------
    def list_tenants(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [tenant_dict(t) for t in s.scalars(select(Tenant).order_by(Tenant.id))]

    def get_tenant(self, tenant_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            t = s.get(Tenant, tenant_id)
            if t is None:
                raise NotFound(f"tenant {tenant_id} not found")
            return tenant_dict(t)

    def tenant_by_name(self, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            t = s.scalar(select(Tenant).where(Tenant.name == name))
            if t is None:
                raise NotFound(f"tenant {name!r} not found")
            return tenant_dict(t)

    def create_tenant(self, name: str, display_name: str = "", rpm: int | None = None, tpm: int | None = None,
                      tokens_per_day: int | None = None) -> dict[str, Any]:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise InvalidRequest("tenant name must be letters, digits, '-' or '_'", param="name")
        try:
            with self.db.session() as s:
                t = Tenant(name=name, display_name=display_name or name, rpm=_positive("rpm", rpm),
                           tpm=_positive("tpm", tpm), tokens_per_day=_positive("tokens_per_day", tokens_per_day))
                s.add(t)
                s.flush()
                return tenant_dict(t)
        except IntegrityError:
            raise Conflict(f"tenant {name!r} already exists") from None

    def update_tenant(self, tenant_id: int, **fields: Any) -> dict[str, Any]:
        with self.db.session() as s:
            t = s.get(Tenant, tenant_id)
            if t is None:
                raise NotFound(f"tenant {tenant_id} not found")
            for k, v in fields.items():
                if k in ("rpm", "tpm", "tokens_per_day"):
                    v = _positive(k, v)
                elif k == "disabled":
                    v = bool(v)
                elif k != "display_name":
                    raise InvalidRequest(f"unknown tenant field {k!r}", param=k)
                setattr(t, k, v)
            return tenant_dict(t)

    def delete_tenant(self, tenant_id: int) -> None:
        with self.db.session() as s:
            t = s.get(Tenant, tenant_id)
            if t is None:
                raise NotFound(f"tenant {tenant_id} not found")
            if t.name == "default":
                raise InvalidRequest("the default tenant cannot be deleted")
            s.delete(t)

    # -- users ---------------------------------------------------------------------------
    def list_users(self, tenant_id: int | None = None) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(User).order_by(User.id)
            if tenant_id is not None:
                q = q.where(User.tenant_id == tenant_id)
            return [user_dict(u) for u in s.scalars(q)]

    def create_user(self, tenant_id: int, username: str, password: str, role: str = "member") -> dict[str, Any]:
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {ROLES}", param="role")
        if not username or len(username) > 100:
            raise InvalidRequest("username must be 1-100 characters", param="username")
        if not password or len(password) < 8:
            raise InvalidRequest("password must be at least 8 characters", param="password")
        try:
            with self.db.session() as s:
                if s.get(Tenant, tenant_id) is None:
                    raise NotFound(f"tenant {tenant_id} not found")
                u = User(tenant_id=tenant_id, username=username, password_hash=hash_password(password), role=role)
                s.add(u)
                s.flush()
                return user_dict(u)
        except IntegrityError:
            raise Conflict(f"user {username!r} already exists") from None

    def update_user(self, user_id: int, *, tenant_id: int | None = None, password: str | None = None,
                    role: str | None = None, disabled: bool | None = None) -> dict[str, Any]:
        with self.db.session() as s:
            u = s.get(User, user_id)
            if u is None or (tenant_id is not None and u.tenant_id != tenant_id):
                raise NotFound(f"user {user_id} not found")
            if password is not None:
                if len(password) < 8:
                    raise InvalidRequest("password must be at least 8 characters", param="password")
                u.password_hash = hash_password(password)
            if role is not None:
                if role not in ROLES:
                    raise InvalidRequest(f"role must be one of {ROLES}", param="role")
                u.role = role
            if disabled is not None:
                u.disabled = bool(disabled)
            return user_dict(u)

    def delete_user(self, user_id: int, *, tenant_id: int | None = None) -> None:
        with self.db.session() as s:
            u = s.get(User, user_id)
            if u is None or (tenant_id is not None and u.tenant_id != tenant_id):
                raise NotFound(f"user {user_id} not found")
            s.delete(u)

    # -- keys ----------------------------------------------------------------------------
    def create_key(self, tenant_id: int, *, name: str = "", user_id: int | None = None, role: str = "member",
                   models: list[str] | None = None, rpm: int | None = None, tpm: int | None = None,
                   tokens_per_day: int | None = None) -> dict[str, Any]:
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {ROLES}", param="role")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
            raise InvalidRequest("models must be a list of model names or null", param="models")
        key = new_key()
        with self.db.session() as s:
            if s.get(Tenant, tenant_id) is None:
                raise NotFound(f"tenant {tenant_id} not found")
            k = ApiKey(tenant_id=tenant_id, user_id=user_id, name=name, kind="api", prefix=key[:8],
                       key_hash=hash_key(key), role=role, models=models, rpm=_positive("rpm", rpm),
                       tpm=_positive("tpm", tpm), tokens_per_day=_positive("tokens_per_day", tokens_per_day))
            s.add(k)
            s.flush()
            return {**key_dict(k), "key": key}

    def list_keys(self, tenant_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(ApiKey).where(ApiKey.kind == "api").order_by(ApiKey.id)
            if tenant_id is not None:
                q = q.where(ApiKey.tenant_id == tenant_id)
            if user_id is not None:
                q = q.where(ApiKey.user_id == user_id)
            return [key_dict(k) for k in s.scalars(q)]

    def revoke_key(self, key_id: int, *, tenant_id: int | None = None, user_id: int | None = None) -> dict[str, Any]:
        with self.db.session() as s:
            k = s.get(ApiKey, key_id)
            if k is None or (tenant_id is not None and k.tenant_id != tenant_id) or \
                    (user_id is not None and k.user_id != user_id):
                raise NotFound(f"key {key_id} not found")
            if k.revoked_at is None:
                k.revoked_at = utcnow()
            return key_dict(k)

    def tenant_limits(self, tenant_id: int) -> dict[str, int | None]:
        t = self.get_tenant(tenant_id)
        return {"rpm": t["rpm"], "tpm": t["tpm"], "tokens_per_day": t["tokens_per_day"]}


