"""Tenants, users, keys on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from zhinao.errors import AuthenticationError, Conflict, InvalidRequest, PermissionDenied
from zhinao.maas.tenancy import TenancyService, hash_key
from zhinao.store.db import Database


@pytest.fixture
def tenancy(db_url):
    db = Database(db_url)
    db.migrate()
    yield TenancyService(db)
    db.dispose()


def test_bootstrap_prints_generated_secrets_once(tenancy):
    printed = tenancy.bootstrap()
    assert set(printed) == {"admin_password", "admin_key"}
    assert tenancy.bootstrap() is None  # second start: nothing new, nothing printed
    p = tenancy.authenticate(printed["admin_key"])
    assert p.role == "operator" and p.is_operator and p.tenant == "default"
    token, user = tenancy.login("admin", printed["admin_password"])
    assert tenancy.authenticate(token).username == "admin"


def test_bootstrap_key_from_settings_is_not_printed(tenancy):
    printed = tenancy.bootstrap(admin_key="zk-from-env-0123456789abcdef", admin_password="pw-from-env")
    assert printed == {}
    assert tenancy.authenticate("zk-from-env-0123456789abcdef").is_admin


def test_keys_are_stored_hashed_scoped_and_revocable(tenancy):
    tenancy.bootstrap(admin_key="zk-admin-0123456789abcdef")
    t = tenancy.create_tenant("ops", rpm=10)
    k = tenancy.create_key(t["id"], name="svc", models=["echo"])
    with tenancy.db.engine.connect() as c:
        stored = [r[0] for r in c.execute(sa.text("SELECT key_hash FROM api_keys"))]
    assert k["key"] not in stored and hash_key(k["key"]) in stored
    p = tenancy.authenticate(k["key"])
    assert p.tenant == "ops" and p.models == ("echo",)
    with pytest.raises(PermissionDenied):
        p.check_model("other")
    tenancy.revoke_key(k["id"])
    with pytest.raises(AuthenticationError, match="revoked"):
        tenancy.authenticate(k["key"])


def test_validation_and_conflicts(tenancy):
    tenancy.bootstrap()
    t = tenancy.create_tenant("sales")
    with pytest.raises(Conflict):
        tenancy.create_tenant("sales")
    with pytest.raises(InvalidRequest):
        tenancy.create_tenant("bad name")
    with pytest.raises(InvalidRequest):
        tenancy.create_user(t["id"], "x", "short")
    with pytest.raises(InvalidRequest):
        tenancy.create_key(t["id"], role="root")
    with pytest.raises(InvalidRequest):
        tenancy.update_tenant(t["id"], rpm=-1)
    tenancy.update_tenant(t["id"], disabled=True)
    k = tenancy.create_key(t["id"])
    with pytest.raises(PermissionDenied, match="disabled"):
        tenancy.authenticate(k["key"])
