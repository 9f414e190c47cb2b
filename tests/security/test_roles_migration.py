"""Migration 0002 on a store that already has data (SQLite and PostgreSQL): default-tenant
admins become operators, other tenants' usernames get qualified, and nothing is lost."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from zhinao.capability import migration_dirs
from zhinao.maas.tenancy import TenancyService, hash_key, hash_password
from zhinao.store.db import Database, alembic_config


def test_upgrade_keeps_keys_and_promotes_default_admins(db_url):
    cfg = alembic_config(db_url, migration_dirs())  # the core's branch and every capability's
    command.upgrade(cfg, "0001_core")  # the store as it was before the roles split
    command.upgrade(cfg, "k0001_knowledge")
    eng = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    now = "2026-01-01 00:00:00"
    with eng.begin() as c:  # no explicit ids: PostgreSQL's sequences must stay in step
        def ins(table: str, **row) -> int:
            row.setdefault("created_at", now)
            cols = ", ".join(row)
            vals = ", ".join(f":{k}" for k in row)
            c.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({vals})"), row)
            return c.execute(sa.text(f"SELECT max(id) FROM {table}")).scalar()

        pw = hash_password("password-123")
        d = ins("tenants", name="default", display_name="d", disabled=False)
        a = ins("tenants", name="acme", display_name="a", disabled=False)
        admin = ins("users", tenant_id=d, username="admin", password_hash=pw, role="admin", disabled=False)
        alice = ins("users", tenant_id=a, username="alice", password_hash=pw, role="admin", disabled=False)
        ins("users", tenant_id=d, username="bob", password_hash=pw, role="member", disabled=False)
        ins("api_keys", tenant_id=d, user_id=admin, name="boot", kind="api", prefix="zk-", key_hash=hash_key("zk-boot"),
            role="admin")
        ins("api_keys", tenant_id=a, user_id=alice, name="acme", kind="api", prefix="zk-", key_hash=hash_key("zk-acme"),
            role="admin")
    eng.dispose()
    db = Database(db_url)
    db.migrate(migration_dirs())  # every head, 0002 included
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM api_keys")).scalar() == 2  # nothing cascaded away
        rows = dict(c.execute(sa.text("SELECT username, role FROM users")).all())
    assert rows == {"admin": "operator", "acme/alice": "admin", "bob": "member"}
    t = TenancyService(db)
    assert t.authenticate("zk-boot").is_operator
    acme = t.authenticate("zk-acme")
    assert acme.role == "admin" and not acme.is_operator and acme.username == "alice"
    token, user = t.login("alice", "password-123")  # unique name: no tenant needed
    assert user["username"] == "alice" and user["tenant"] == "acme"
    t.create_user(t.tenant_by_name("acme")["id"], "bob", "password-123")  # "bob" exists in default: no conflict, no leak
    db.dispose()
