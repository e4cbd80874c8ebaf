"""The dialect seam: everything that differs between PostgreSQL and SQLite, in one place.

Steps never test ``dialect.name``; they ask the :class:`Backend` for the engine options, the
lock, the environment that migration connections need, and how to recognise a DDL lock
time-out. Raises nothing itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from runner.config import Settings
from runner.lock import FileLocker, Locker, NullLocker, PostgresAdvisoryLocker

APPLICATION_NAME = "alembic-deploy"


class Backend:
    """Defaults for a database we know nothing special about (no lock)."""

    name = "generic"

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        # NullPool: every connect() is a fresh connection, so nothing stale survives a
        # server restart while we wait, and the lock connection is never shared.
        return {"poolclass": NullPool}

    def locker(self, engine: Engine, url: URL, settings: Settings) -> Locker:
        return NullLocker()

    def migration_environ(self, settings: Settings) -> dict[str, str]:
        """Environment variables for connections that env.py opens itself."""
        return {}

    def prepare_migration_connection(self, conn: Connection, settings: Settings) -> None:
        """Session settings for the connection handed to env.py (after the lock is held)."""

    def is_ddl_lock_timeout(self, exc: BaseException) -> bool:
        return False

    def lock_retrying(
        self, settings: Settings, before_sleep: Callable[[RetryCallState], None]
    ) -> Retrying:
        """Retry what failed on a DDL/table lock time-out, ``--ddl-retries`` times."""
        return Retrying(
            stop=stop_after_attempt(settings.ddl_retries + 1),
            wait=wait_exponential_jitter(initial=1, max=15, jitter=1),
            retry=retry_if_exception(self.is_ddl_lock_timeout),
            before_sleep=before_sleep,
            reraise=True,
        )


class PostgresBackend(Backend):
    name = "postgresql"

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        connect_timeout = max(2, math.ceil(min(settings.wait_timeout, 10.0)))
        return {
            **super().engine_kwargs(settings),
            "connect_args": {
                "connect_timeout": connect_timeout,
                "application_name": APPLICATION_NAME,
            },
        }

    def locker(self, engine: Engine, url: URL, settings: Settings) -> Locker:
        return PostgresAdvisoryLocker(engine, settings)

    def migration_environ(self, settings: Settings) -> dict[str, str]:
        # libpq reads PGOPTIONS for every connection, so the DDL lock_timeout also applies
        # to an env.py that builds its own engine from sqlalchemy.url or DATABASE_URL.
        options = os.environ.get("PGOPTIONS", "")
        if settings.ddl_lock_timeout > 0:
            millis = int(settings.ddl_lock_timeout * 1000)
            options = f"{options} -c lock_timeout={millis}".strip()
        return {"PGOPTIONS": options} if options else {}

    def prepare_migration_connection(self, conn: Connection, settings: Settings) -> None:
        if settings.ddl_lock_timeout > 0:
            millis = int(settings.ddl_lock_timeout * 1000)
            conn.execute(
                text("SELECT set_config('lock_timeout', :value, false)"),
                {"value": f"{millis}ms"},
            )
            conn.commit()

    def is_ddl_lock_timeout(self, exc: BaseException) -> bool:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            orig = current.orig if isinstance(current, DBAPIError) else current
            if getattr(orig, "pgcode", None) == "55P03" or getattr(orig, "sqlstate", None) == (
                "55P03"
            ):
                return True
            current = current.__cause__ or current.__context__
        return False


class SqliteBackend(Backend):
    name = "sqlite"

    def locker(self, engine: Engine, url: URL, settings: Settings) -> Locker:
        database = url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return NullLocker()
        return FileLocker(Path(database).resolve(), settings)


def backend_for(url: URL) -> Backend:
    """The backend for a URL's dialect."""
    dialect = url.get_backend_name()
    if dialect == "postgresql":
        return PostgresBackend()
    if dialect == "sqlite":
        return SqliteBackend()
    return Backend()
