"""Alembic environment: runs on the connection the application passes in, or on the URL.

Only the core's tables are imported here (the store sits below the capabilities). Upgrades
need no metadata; for ``--autogenerate`` the caller names the modules that declare the other
branches' tables in ``config.attributes["model_modules"]`` (the platform passes each
capability's ``models``).
"""

import importlib

from alembic import context
from sqlalchemy import engine_from_config, pool

import zhinao.store.models  # noqa: F401  (the core tables)
from zhinao.store.db import Base

config = context.config
for _name in config.attributes.get("model_modules", ()):
    importlib.import_module(_name)
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
