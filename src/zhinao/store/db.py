"""Engine and sessions for the metadata store (SQLite by default, PostgreSQL by URL).

SQLite runs in WAL mode with a busy timeout so the gateway's writers and readers do not
block each other. The schema is owned by Alembic (:func:`migrate`): the core's branch lives
here, and every capability keeps its own branch in its own folder, which the caller passes in
(``version_dirs``; the platform gets them from the capability registry). The store names no
capability: it sits below them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

#: the core tables' branch (tenants, keys, usage, jobs, audit); capabilities bring their own
CORE_MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


class Base(DeclarativeBase):
    """Declarative base shared by every package's tables."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """One engine + session factory. Services receive this, never a global."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits on success, rolls back on error."""
        s = self.sessionmaker()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def migrate(self, version_dirs: Iterable[Path] = ()) -> None:
        """Upgrade the core branch and the branches in ``version_dirs`` to their heads."""
        migrate(self.url, self.engine, version_dirs)

    def dispose(self) -> None:
        self.engine.dispose()


def version_locations(version_dirs: Iterable[Path] = ()) -> list[Path]:
    """The core branch, then each existing folder of ``version_dirs`` once, in order."""
    out = [CORE_MIGRATIONS]
    for p in version_dirs:
        p = Path(p)
        if p.is_dir() and p not in out:
            out.append(p)
    return out


def alembic_config(url: str, version_dirs: Iterable[Path] = ()):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("version_locations", " ".join(str(p) for p in version_locations(version_dirs)))
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, engine: Engine | None = None, version_dirs: Iterable[Path] = ()) -> None:
    """Bring the schema to the newest revision of every branch given (``upgrade heads``).

    A database that already holds a revision of a branch not given here (a capability that
    was uninstalled) makes Alembic refuse: pass every branch the database has seen.
    """
    from alembic import command

    cfg = alembic_config(url, version_dirs)
    if engine is not None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
    else:
        command.upgrade(cfg, "heads")
