"""jobs: attempts counter and a persisted cancel request

A job was resumed after every restart, however often it had been interrupted, so a file
that took the server down (a decompression bomb) was retried forever; and a cancel was
only an in-memory flag, lost when the process stopped before the job noticed it.
``attempts`` counts the starts that did not end cleanly (resume gives up past
``ZHINAO_JOB_MAX_ATTEMPTS``); ``cancel_requested`` makes a cancel survive a restart (the
job ends as ``cancelled`` and is never resumed).

Revision ID: 0004_job_attempts
Revises: 0001_core
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_job_attempts"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as b:
        b.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        b.add_column(sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as b:
        b.drop_column("cancel_requested")
        b.drop_column("attempts")
