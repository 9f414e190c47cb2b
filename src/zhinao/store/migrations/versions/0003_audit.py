"""audit log: append-only, hash-chained record of every write and every cross-tenant read

``audit_log`` has one row per audited request; ``hash`` = sha256(``prev_hash`` + the row's
canonical JSON), so changing, removing or reordering a row breaks the chain from there on
(``zhinao audit verify``). ``audit_head`` is a single row holding the last sequence number
and hash: every writer first updates it, which serialises appends across threads and
processes on SQLite and PostgreSQL alike, and lets verify notice a truncated tail.

Triggers refuse UPDATE and DELETE on ``audit_log`` (append-only in the database itself);
someone with the power to drop them is caught by the hash chain instead.

Revision ID: 0003_audit
Revises: 0001_core
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_audit"
down_revision = "0001_core"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
        sa.Column("tenant_id", sa.Integer, index=True),  # the actor's tenant (no FK: history outlives tenants)
        sa.Column("tenant", sa.String(100)),
        sa.Column("target_tenant_id", sa.Integer, index=True),  # the tenant acted on, when another
        sa.Column("user_id", sa.Integer),
        sa.Column("username", sa.String(100)),
        sa.Column("key_id", sa.Integer),
        sa.Column("role", sa.String(20)),
        sa.Column("action", sa.String(20), nullable=False),  # write | read | login
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("route", sa.String(300), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("resource", sa.JSON),
        sa.Column("detail", sa.JSON),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute(sa.text(f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')"))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(sa.text(f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                               "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"))
    elif dialect == "postgresql":
        op.execute(sa.text("CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                           "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"))
        op.execute(sa.text("CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
                           "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"))
        op.execute(sa.text("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                           "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log"))
        op.execute(sa.text("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log"))
        op.execute(sa.text("DROP FUNCTION IF EXISTS audit_log_append_only()"))
    op.drop_table("audit_head")
    op.drop_table("audit_log")
