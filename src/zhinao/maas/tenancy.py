"""Tenants, users, roles, API keys and console sessions — no HTTP here.

Keys are random 32-byte tokens shown once (``zk-`` + urlsafe base64) and stored as
SHA-256 hashes: a stolen database does not leak usable keys, and lookups stay O(1).
Passwords use scrypt. The first start creates tenant ``default`` and user ``admin``;
the admin key comes from ``ZHINAO_ADMIN_KEY`` when set (then never printed).

Roles, highest first: ``operator`` (the platform operator: models, packs, tenants, data
sources, global settings, cross-tenant views; exists only in tenant ``default``), ``admin``
(a tenant admin: that tenant's users, keys, collections, workspaces) and ``member``. The
bootstrap user and key are operators. Nobody grants a role above their own, a key never
acts above its user's current role, and the last working operator credential cannot be
revoked, demoted, disabled or deleted (409), so the platform can always be administered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhinao.errors import AuthenticationError, Conflict, InvalidRequest, NotFound, PermissionDenied
from zhinao.maas.throttle import LoginThrottle
from zhinao.store.db import Database, utcnow
from zhinao.store.models import ApiKey, Tenant, User

ROLES = ("operator", "admin", "member")
#: A role's rank: a key or user is never given a rank above the one who creates it, and a
#: key's effective rank is never above its user's current rank.
ROLE_RANK = {"member": 0, "admin": 1, "operator": 2}
#: The only tenant where the operator role exists: the platform's own tenant.
OPERATOR_TENANT = "default"


def role_rank(role: str | None) -> int:
    return ROLE_RANK.get(role or "member", 0)


def lower_role(a: str, b: str) -> str:
    """The lower of two roles (an unknown role counts as member)."""
    return a if role_rank(a) <= role_rank(b) else b


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
    granted: tuple[str, ...] | None = None  #: platform models granted to the tenant; None = all

    @property
    def is_operator(self) -> bool:
        """The platform operator: models, packs, tenants, data sources, cross-tenant views."""
        return self.role == "operator" and self.tenant == OPERATOR_TENANT

    @property
    def is_admin(self) -> bool:
        """A tenant admin of this principal's tenant (the operator is one too)."""
        return self.role in ("admin", "operator")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDenied("this action needs the admin role")

    def require_operator(self) -> None:
        if not self.is_operator:
            raise PermissionDenied("this action needs the platform operator role")

    def may_use(self, model: str) -> bool:
        """Is canonical model ``model`` granted to this principal's tenant? (The operator sees all.)"""
        return self.granted is None or model in self.granted or self.is_operator

    def check_model(self, model: str, aliases: tuple[str, ...] = ()) -> None:
        if not self.may_use(model):
            raise PermissionDenied(f"model {model!r} is not granted to tenant {self.tenant!r}; ask the platform "
                                   "operator", code="model_not_granted")
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


#: verified when the username is unknown, so a wrong name costs the same time as a wrong password
_DUMMY_HASH = "scrypt$" + "00" * 16 + "$" + "00" * 64


def tenant_dict(t: Tenant) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "display_name": t.display_name, "rpm": t.rpm, "tpm": t.tpm,
            "tokens_per_day": t.tokens_per_day, "disabled": t.disabled, "models": t.models,
            "created_at": t.created_at.isoformat()}


def stored_username(tenant: str, username: str) -> str:
    """The stored (globally unique) form of a username: qualified by the tenant outside ``default``,
    so two tenants may both have an "alice" and neither learns about the other's."""
    return username if tenant == OPERATOR_TENANT else f"{tenant}/{username}"


def shown_username(stored: str) -> str:
    return stored.split("/", 1)[-1]


def user_dict(u: User, tenant: str | None = None) -> dict[str, Any]:
    return {"id": u.id, "username": shown_username(u.username), "role": u.role, "tenant_id": u.tenant_id,
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


def _check_grant(role: str, tenant: Tenant | None, actor: Principal | None) -> None:
    """May ``actor`` give ``role`` to a user or key of ``tenant``? Raises when not."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    if role == "operator" and (tenant is None or tenant.name != OPERATOR_TENANT):
        raise InvalidRequest(f"the operator role exists only in tenant {OPERATOR_TENANT!r}", param="role")
    if actor is not None and role_rank(role) > role_rank(actor.role):
        raise PermissionDenied(f"you cannot give the role {role!r}: it is above your own ({actor.role!r})",
                               code="role_too_high")


def _check_above(actor: Principal | None, role: str, what: str) -> None:
    """A tenant admin may not change a user or key that outranks them (the operator)."""
    if actor is not None and role_rank(role) > role_rank(actor.role):
        raise PermissionDenied(f"{what} has the role {role!r}, above your own ({actor.role!r})",
                               code="role_too_high")


def working_operator_credentials(s: Session) -> int:
    """How many ways to act as the operator remain: enabled operator users with a password,
    and unrevoked, unexpired operator API keys whose user (if any) is still an enabled operator."""
    users = s.scalar(select(func.count()).select_from(User).join(Tenant, Tenant.id == User.tenant_id).where(
        Tenant.name == OPERATOR_TENANT, Tenant.disabled.is_(False), User.role == "operator",
        User.disabled.is_(False), User.password_hash.is_not(None)))
    now = utcnow()
    keys = s.scalar(select(func.count()).select_from(ApiKey).join(Tenant, Tenant.id == ApiKey.tenant_id)
                    .outerjoin(User, User.id == ApiKey.user_id).where(
        Tenant.name == OPERATOR_TENANT, Tenant.disabled.is_(False), ApiKey.kind == "api",
        ApiKey.role == "operator", ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        or_(ApiKey.user_id.is_(None), and_(User.role == "operator", User.disabled.is_(False)))))
    return int(users or 0) + int(keys or 0)


def _keep_an_operator(s: Session, doing: str, before: int) -> None:
    """Refuse a change (called after flush, inside its transaction) that takes the operator
    credentials from ``before`` (counted at the start of the transaction) to none."""
    if before and working_operator_credentials(s) == 0:
        raise Conflict(f"{doing} would leave no working platform operator credential (user or API key); "
                       "create another operator first", code="last_operator")


class TenancyService:
    def __init__(self, db: Database, *, session_ttl_s: int = 7 * 24 * 3600, throttle: LoginThrottle | None = None):
        self.db = db
        self.session_ttl_s = session_ttl_s
        self.throttle = throttle or LoginThrottle()

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
            u = User(tenant_id=t.id, username="admin", password_hash=hash_password(password), role="operator")
            s.add(u)
            s.flush()
            key = admin_key or new_key()
            if not admin_key:
                printed["admin_key"] = key
            s.add(ApiKey(tenant_id=t.id, user_id=u.id, name="bootstrap admin", kind="api", prefix=key[:8],
                         key_hash=hash_key(key), role="operator"))
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
                username = shown_username(u.username)
                # A key never acts above its user's *current* role: demoting a user demotes their keys.
                role = u.role if k.kind == "session" else lower_role(k.role, u.role)
            if role not in ROLES:
                role = "member"
            if role == "operator" and t.name != OPERATOR_TENANT:
                role = "admin"  # the operator role exists only in the platform's own tenant
            now = utcnow()
            if k.last_used_at is None or (now - k.last_used_at).total_seconds() > 60:
                k.last_used_at = now  # coarse, to keep writes off the hot path
            return Principal(tenant_id=t.id, tenant=t.name, user_id=k.user_id, username=username, key_id=k.id,
                             role=role, models=tuple(k.models) if k.models is not None else None,
                             limits={"rpm": k.rpm, "tpm": k.tpm, "tokens_per_day": k.tokens_per_day},
                             granted=tuple(t.models) if t.models is not None else None)

    def login(self, username: str, password: str, tenant: str | None = None, *,
              client_ip: str | None = None) -> tuple[str, dict[str, Any]]:
        """Check a password and open a console session.

        Usernames are unique per tenant: ``tenant`` (or ``tenant/username``) picks the tenant;
        without it the name must be unique across tenants. Every failure gives the same
        message (nothing tells whether the name exists), and failures are throttled per
        account and per client address (:class:`~zhinao.maas.throttle.LoginThrottle`).
        """
        if tenant is None and "/" in username:
            tenant, username = username.split("/", 1)
        keys = self.throttle.keys(f"{tenant or '*'}/{username}", client_ip)
        self.throttle.check(keys)
        with self.db.session() as s:
            q = select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id)
            if tenant:
                q = q.where(Tenant.name == tenant, User.username == stored_username(tenant, username))
            else:  # unqualified: the one user of that name, whichever tenant
                like = "%/" + username.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                q = q.where(or_(User.username == username, User.username.like(like, escape="\\")))
            rows = s.execute(q.limit(2)).all()
            u, t = rows[0] if len(rows) == 1 else (None, None)
            ok = verify_password(password, u.password_hash if u is not None else _DUMMY_HASH)  # same time either way
            if u is None or not ok or u.disabled or t.disabled:
                self.throttle.failure(keys)
                raise AuthenticationError("wrong username or password (if your organisation has several tenants, "
                                          "sign in as tenant/username)", code="invalid_credentials")
            self.throttle.success(keys)
            token = new_key("zs-")
            s.add(ApiKey(tenant_id=u.tenant_id, user_id=u.id, name="console session", kind="session",
                         prefix=token[:8], key_hash=hash_key(token), role=u.role,
                         expires_at=utcnow() + timedelta(seconds=self.session_ttl_s)))
            return token, user_dict(u, t.name)

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
            if t.name == OPERATOR_TENANT and fields.get("disabled"):
                raise Conflict(f"tenant {OPERATOR_TENANT!r} holds the platform operators and cannot be disabled",
                               code="last_operator")
            for k, v in fields.items():
                if k in ("rpm", "tpm", "tokens_per_day"):
                    v = _positive(k, v)
                elif k == "disabled":
                    v = bool(v)
                elif k == "models":
                    if v is not None and (not isinstance(v, list) or not all(isinstance(m, str) for m in v)):
                        raise InvalidRequest("models must be a list of model names or null (= every platform "
                                             "model)", param="models")
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

    def create_user(self, tenant_id: int, username: str, password: str, role: str = "member", *,
                    actor: Principal | None = None) -> dict[str, Any]:
        """Create a user; ``actor`` (None = the machine's own user, the CLI) bounds the role."""
        if not username or len(username) > 100 or "/" in username:
            raise InvalidRequest("username must be 1-100 characters, without '/' (it separates tenant/username "
                                 "at sign-in)", param="username")
        if not password or len(password) < 8:
            raise InvalidRequest("password must be at least 8 characters", param="password")
        try:
            with self.db.session() as s:
                t = s.get(Tenant, tenant_id)
                if t is None:
                    raise NotFound(f"tenant {tenant_id} not found")
                _check_grant(role, t, actor)
                u = User(tenant_id=tenant_id, username=stored_username(t.name, username),
                         password_hash=hash_password(password), role=role)
                s.add(u)
                s.flush()
                return user_dict(u, t.name)
        except IntegrityError:
            raise Conflict(f"user {username!r} already exists in this tenant") from None

    def update_user(self, user_id: int, *, tenant_id: int | None = None, password: str | None = None,
                    role: str | None = None, disabled: bool | None = None,
                    actor: Principal | None = None) -> dict[str, Any]:
        with self.db.session() as s:
            u = s.get(User, user_id)
            if u is None or (tenant_id is not None and u.tenant_id != tenant_id):
                raise NotFound(f"user {user_id} not found")
            _check_above(actor, u.role, f"user {user_id}")
            before = working_operator_credentials(s)
            if password is not None:
                if len(password) < 8:
                    raise InvalidRequest("password must be at least 8 characters", param="password")
                u.password_hash = hash_password(password)
            if role is not None:
                _check_grant(role, s.get(Tenant, u.tenant_id), actor)
                u.role = role
            if disabled is not None:
                u.disabled = bool(disabled)
            s.flush()
            _keep_an_operator(s, "demoting or disabling this user", before)
            return user_dict(u)

    def delete_user(self, user_id: int, *, tenant_id: int | None = None, actor: Principal | None = None) -> None:
        with self.db.session() as s:
            u = s.get(User, user_id)
            if u is None or (tenant_id is not None and u.tenant_id != tenant_id):
                raise NotFound(f"user {user_id} not found")
            _check_above(actor, u.role, f"user {user_id}")
            before = working_operator_credentials(s)
            s.delete(u)
            s.flush()
            _keep_an_operator(s, "deleting this user", before)

    # -- keys ----------------------------------------------------------------------------
    def create_key(self, tenant_id: int, *, name: str = "", user_id: int | None = None, role: str = "member",
                   models: list[str] | None = None, rpm: int | None = None, tpm: int | None = None,
                   tokens_per_day: int | None = None, actor: Principal | None = None) -> dict[str, Any]:
        """Create an API key; its role is bounded by ``actor``'s role (None = the CLI) and by its user's.

        A key with a user never acts above that user's current role (see :meth:`authenticate`);
        a key without a user is bounded here, by its creator's role at creation time.
        """
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
            raise InvalidRequest("models must be a list of model names or null", param="models")
        key = new_key()
        with self.db.session() as s:
            t = s.get(Tenant, tenant_id)
            if t is None:
                raise NotFound(f"tenant {tenant_id} not found")
            _check_grant(role, t, actor)
            if user_id is not None:
                u = s.get(User, user_id)
                if u is None or u.tenant_id != tenant_id:
                    raise NotFound(f"user {user_id} not found")
                if role_rank(role) > role_rank(u.role):
                    raise PermissionDenied(f"a key cannot have a role above its user's ({u.role!r})", code="role_too_high")
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

    def revoke_key(self, key_id: int, *, tenant_id: int | None = None, user_id: int | None = None,
                   actor: Principal | None = None) -> dict[str, Any]:
        with self.db.session() as s:
            k = s.get(ApiKey, key_id)
            if k is None or (tenant_id is not None and k.tenant_id != tenant_id) or \
                    (user_id is not None and k.user_id != user_id):
                raise NotFound(f"key {key_id} not found")
            if actor is None or k.id != actor.key_id:  # revoking one's own key is always allowed
                _check_above(actor, k.role, f"key {key_id}")
            before = working_operator_credentials(s)
            if k.revoked_at is None:
                k.revoked_at = utcnow()
            s.flush()
            _keep_an_operator(s, "revoking this key", before)
            return key_dict(k)

    def tenant_limits(self, tenant_id: int) -> dict[str, int | None]:
        t = self.get_tenant(tenant_id)
        return {"rpm": t["rpm"], "tpm": t["tpm"], "tokens_per_day": t["tokens_per_day"]}


