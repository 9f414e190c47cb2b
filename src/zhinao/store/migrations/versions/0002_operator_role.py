"""operator role; usernames unique per tenant; per-tenant model grants

1. Before this revision "an admin of tenant default" *was* the platform admin (models,
   tenants, every tenant's users and usage). The operator role now carries those powers, so
   every admin user of tenant ``default`` and every admin API key of that tenant becomes an
   operator: nobody loses what they could do, and the bootstrap credentials keep working.
   Admins of other tenants stay tenant admins.
2. Usernames were unique across the platform, so creating "alice" in tenant A answered 409
   when tenant B had an "alice": a cross-tenant leak. The stored name is now qualified by
   the tenant outside ``default`` (``acme/alice``; ``/`` is not allowed in a username), which
   makes the existing unique column unique per tenant without rebuilding the ``users`` table
   (on SQLite a rebuild would cascade-delete every key and conversation).
3. ``tenants.models``: the models a tenant is granted (JSON list; NULL = every platform model).

Revision ID: 0002_operator_role
Revises: 0001_core
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_operator_role"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("tenants", sa.Column("models", sa.JSON, nullable=True))
    if conn.dialect.name != "sqlite":  # SQLite does not enforce VARCHAR lengths
        op.alter_column("users", "username", type_=sa.String(201), existing_type=sa.String(100))
    default = conn.execute(sa.text("SELECT id FROM tenants WHERE name = 'default'")).scalar()
    if default is None:  # an empty store: bootstrap creates operators directly
        return
    conn.execute(sa.text("UPDATE users SET role = 'operator' WHERE tenant_id = :t AND role = 'admin'"),
                 {"t": default})
    conn.execute(sa.text("UPDATE api_keys SET role = 'operator' WHERE tenant_id = :t AND role = 'admin'"),
                 {"t": default})
    conn.execute(sa.text("UPDATE users SET username = (SELECT name FROM tenants WHERE tenants.id = users.tenant_id)"
                         " || '/' || username WHERE tenant_id <> :t AND username NOT LIKE '%/%'"), {"t": default})


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE users SET role = 'admin' WHERE role = 'operator'"))
    conn.execute(sa.text("UPDATE api_keys SET role = 'admin' WHERE role = 'operator'"))
    op.drop_column("tenants", "models")
