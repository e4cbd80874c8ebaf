"""The dialect seam: everything that differs between PostgreSQL and SQLite, in one place.

Steps never test ``dialect.name``; they ask the :class:`Backend`: the one engine factory (a
driver that cannot load is exit 4 from every command), the migration lock, scratch databases
for shadow replay, session settings and the environment for migration connections (the DDL
``lock_timeout``), how to cancel a worker's server sessions, how a DDL lock time-out looks, and
where a snapshot is built. A URL is resolved once, into a :class:`Database`.

Raises :class:`~runner.errors.ConfigError` (exit 2) for a dialect with no lock implementation,
:class:`~runner.errors.ConnectionRefusedPermanentlyError` (exit 4) for a driver that cannot be
loaded, and :class:`ShadowUnavailable` when no scratch database can be had.
"""

from __future__ import annotations

import difflib
import math
import os
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from runner.config import Settings, masked_url, register_url_secret, render_url, resolve_url
from runner.errors import ConfigError, ConnectionRefusedPermanentlyError
from runner.lock import FileLocker, Locker, NullLocker, PostgresAdvisoryLocker
from runner.logs import get_logger

log = get_logger(__name__)

APPLICATION_NAME = "alembic-deploy"
#: Prefix of the scratch databases the runner creates (recognised and removed later).
SCRATCH_PREFIX = "alembic_deploy_shadow_"


class ShadowUnavailable(Exception):
    """No scratch database could be created (privileges, dialect)."""


class Backend:
    """What every supported dialect provides; subclasses fill in the differences."""

    name = "generic"

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        # NullPool: every connect() is a fresh connection, so nothing stale survives a
        # server restart while we wait, and the lock connection is never shared.
        return {"poolclass": NullPool}

    def configure_engine(self, engine: Engine) -> None:
        """Dialect-specific set-up of the runner's own engine (nothing by default)."""

    def check_url(self, url: URL) -> None:
        """Refuse (ConfigError) a URL of this dialect that can never work."""

    def worker_engine_kwargs(self, settings: Settings, tag: str) -> dict[str, Any]:
        """Engine options for the worker's connection (JSON-serialisable)."""
        return {}

    def locker(self, engine: Engine, url: URL, settings: Settings) -> Locker:
        raise NotImplementedError

    def migration_environ(self, settings: Settings, options: str = "") -> dict[str, str]:
        """Environment variables for connections that env.py opens itself."""
        return {}

    def session_sql(self, settings: Settings) -> list[dict[str, Any]]:
        """Statements (with parameters) that prepare a migration or reflection connection."""
        return []

    def prepare(self, conn: Connection, settings: Settings) -> None:
        """Run :meth:`session_sql` on one of the runner's own connections."""
        for statement in self.session_sql(settings):
            conn.execute(text(statement["sql"]), statement.get("params", {}))
        if conn.in_transaction():
            conn.commit()

    def cancel_sessions(self, engine: Engine, pids: list[int], tag: str, terminate: bool) -> None:
        """Cancel (or terminate) the server sessions of a worker; nothing to do by default."""

    def statement_status(self, engine: Engine, pids: list[int], tag: str) -> dict[str, Any]:
        """What the server says a worker's statement is doing (for heartbeats); {} if unknown."""
        return {}

    def write_refusal(self, conn: Connection, schemas: Sequence[str | None]) -> str | None:
        """Why this connection cannot change the schema (read-only, no privilege), if so."""
        return None

    def identity(self, conn: Connection) -> dict[str, Any]:
        """Which database a connection is on (the replay's commit gate compares these)."""
        database = conn.engine.url.database
        return {"database": os.path.realpath(database) if database else None}

    def backend_pid(self, conn: Connection) -> int | None:
        """The server process serving ``conn``, when the server has one (to cancel it)."""
        return None

    def same_database(self, a: URL, b: URL) -> bool:
        """Whether two URLs of this dialect name the same database."""
        return bool(a.database) and os.path.realpath(a.database or "") == os.path.realpath(
            b.database or ""
        )

    def empty_database(self, conn: Connection) -> None:
        """Drop every table of a ``--shadow-url`` database the runner has claimed."""
        insp = inspect(conn)
        quote = conn.dialect.identifier_preparer.quote
        for table in reversed(insp.get_table_names()):
            conn.execute(text(f"DROP TABLE {quote(table)}"))

    def all_tables(self, conn: Connection) -> list[str]:
        """Every table of the database, qualified outside the default schema."""
        insp = inspect(conn)
        found = list(insp.get_table_names())
        for schema in self.user_schemas(conn):
            found += [f"{schema}.{name}" for name in insp.get_table_names(schema=schema)]
        return found

    #: Whether ``snapshot`` can build on this dialect without a server (scratch files).
    local_snapshot = False

    def user_schemas(self, conn: Connection) -> list[str]:
        """Schemas besides the default one that hold the application's objects."""
        return []

    def mirror_settings(self, conn: Connection) -> dict[str, Any]:
        """What a shadow must reproduce of the target (schemas, search_path)."""
        return {}

    def prepare_shadow(self, conn: Connection, mirror: dict[str, Any]) -> None:
        """Reproduce ``mirror`` in an empty shadow database."""

    def shadow_options(self, mirror: dict[str, Any]) -> str:
        """Session options for the replay's connections (a search_path the target has, and
        commits that do not wait for the disk)."""
        return ""

    def is_ddl_lock_timeout(self, exc: BaseException) -> bool:
        return False

    def lock_retrying(
        self, settings: Settings, before_sleep: Callable[[RetryCallState], None]
    ) -> Retrying:
        """Retry what failed on a DDL/table lock time-out, ``--ddl-retries`` times."""
        return Retrying(
            stop=stop_after_attempt(settings.ddl_retries + 1),
            wait=wait_exponential(multiplier=1, max=15) + wait_random(0, 1),
            retry=retry_if_exception(self.is_ddl_lock_timeout),
            before_sleep=before_sleep,
            reraise=True,
        )

    @contextmanager
    def scratch_database(self, engine: Engine) -> Iterator[URL]:
        """An empty database to replay into, removed afterwards."""
        raise ShadowUnavailable(f"no shadow replay for {self.name}")
        yield  # pragma: no cover


_STATEMENT_STATUS = text(
    """
    SELECT a.pid, a.state, a.wait_event_type, a.wait_event, a.query,
           (SELECT string_agg(b.pid || ' (' || coalesce(b.application_name, '') || ', '
                              || coalesce(b.state, '') || ': '
                              || left(regexp_replace(b.query, '\\s+', ' ', 'g'), 80) || ')',
                              '; ')
            FROM pg_catalog.pg_stat_activity b
            WHERE b.pid = ANY(pg_catalog.pg_blocking_pids(a.pid))) AS blocked_by,
           coalesce(
             (SELECT p.phase || ' ' || p.blocks_done || '/' || p.blocks_total || ' blocks'
              FROM pg_catalog.pg_stat_progress_create_index p WHERE p.pid = a.pid),
             (SELECT p.phase || ' ' || p.heap_blks_scanned || '/' || p.heap_blks_total
                     || ' blocks'
              FROM pg_catalog.pg_stat_progress_cluster p WHERE p.pid = a.pid),
             (SELECT p.command || ' ' || p.tuples_processed || ' rows'
              FROM pg_catalog.pg_stat_progress_copy p WHERE p.pid = a.pid)
           ) AS phase
    FROM pg_catalog.pg_stat_activity a
    WHERE a.pid <> pg_catalog.pg_backend_pid()
      AND (a.pid = ANY(:pids) OR a.application_name = :tag)
    ORDER BY (a.state = 'active') DESC, a.query_start DESC NULLS LAST
    LIMIT 1
    """
)


class PostgresBackend(Backend):
    name = "postgresql"

    def engine_kwargs(self, settings: Settings) -> dict[str, Any]:
        return {
            **super().engine_kwargs(settings),
            "connect_args": {
                "connect_timeout": _connect_timeout(settings),
                "application_name": APPLICATION_NAME,
            },
        }

    def worker_engine_kwargs(self, settings: Settings, tag: str) -> dict[str, Any]:
        return {
            "connect_args": {"connect_timeout": _connect_timeout(settings), "application_name": tag}
        }

    def write_refusal(self, conn: Connection, schemas: Sequence[str | None]) -> str | None:
        row = conn.execute(
            text(
                "SELECT pg_catalog.pg_is_in_recovery() AS standby,"
                " pg_catalog.current_setting('transaction_read_only') = 'on' AS read_only,"
                " current_user AS role, current_schema() AS schema"
            )
        ).one()
        if row.standby:
            return "the server is a read-only hot standby (in recovery)"
        if row.read_only:
            return "the session is read-only (default_transaction_read_only is on)"
        for schema in {row.schema if name is None else name for name in schemas}:
            if schema is None:
                continue
            allowed = conn.execute(
                text(
                    "SELECT pg_catalog.has_schema_privilege(nspname, 'CREATE')"
                    " FROM pg_catalog.pg_namespace WHERE nspname = :schema"
                ),
                {"schema": schema},
            ).scalar()
            if allowed is False:  # None: not created yet (a migration may create it)
                return f"role {row.role} lacks the CREATE privilege on schema {schema}"
        return None

    def locker(self, engine: Engine, url: URL, settings: Settings) -> Locker:
        return PostgresAdvisoryLocker(engine, settings)

    def migration_environ(self, settings: Settings, options: str = "") -> dict[str, str]:
        # libpq reads PGOPTIONS for every connection, so the DDL lock_timeout also applies
        # to an env.py that builds its own engine from sqlalchemy.url or DATABASE_URL.
        options = f"{os.environ.get('PGOPTIONS', '')} {options}".strip()
        if settings.ddl_lock_timeout > 0:
            millis = int(settings.ddl_lock_timeout * 1000)
            options = f"{options} -c lock_timeout={millis}".strip()
        return {"PGOPTIONS": options} if options else {}

    def session_sql(self, settings: Settings) -> list[dict[str, Any]]:
        if settings.ddl_lock_timeout <= 0:
            return []
        millis = int(settings.ddl_lock_timeout * 1000)
        return [
            {
                "sql": "SELECT set_config('lock_timeout', :value, false)",
                "params": {"value": f"{millis}ms"},
            }
        ]

    def cancel_sessions(self, engine: Engine, pids: list[int], tag: str, terminate: bool) -> None:
        function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
        with engine.connect() as conn:
            conn.execute(
                text(
                    f"SELECT {function}(pid) FROM pg_stat_activity "  # function: a fixed name
                    "WHERE pid <> pg_backend_pid() "
                    "AND (pid = ANY(:pids) OR application_name = :tag)"
                ),
                {"pids": pids, "tag": tag},
            )
            conn.commit()
        log.info("worker.sessions_cancelled", pids=pids, terminate=terminate)

    def statement_status(self, engine: Engine, pids: list[int], tag: str) -> dict[str, Any]:
        # The busiest of the worker's sessions: its state and wait event, whom it waits for
        # (pg_blocking_pids, with what they run), and the progress view that applies.
        with engine.connect() as conn:
            row = conn.execute(_STATEMENT_STATUS, {"pids": pids, "tag": tag}).mappings().first()
        if row is None:
            return {}
        status: dict[str, Any] = {"state": row["state"]}
        if row["wait_event_type"]:
            status["waiting_for"] = f"{row['wait_event_type']}:{row['wait_event']}"
        if row["blocked_by"]:
            status["blocked_by"] = row["blocked_by"]
        if row["phase"]:
            status["progress"] = row["phase"]
        if row["query"]:
            status["statement"] = " ".join(row["query"].split())[:200]
        return status

    def backend_pid(self, conn: Connection) -> int | None:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        return int(pid) if pid is not None else None

    def same_database(self, a: URL, b: URL) -> bool:
        loopback = {"localhost", "127.0.0.1", "::1", "", None}

        def host(url: URL) -> str | None:
            return "loopback" if url.host in loopback else (url.host or "").lower()

        return (host(a), a.port or 5432, a.database) == (host(b), b.port or 5432, b.database)

    def user_schemas(self, conn: Connection) -> list[str]:
        insp = inspect(conn)
        default = insp.default_schema_name
        return sorted(
            name
            for name in insp.get_schema_names()
            if name != default
            and name != "information_schema"
            and not name.startswith(("pg_", "crdb_"))
        )

    def mirror_settings(self, conn: Connection) -> dict[str, Any]:
        # Only the schemas of the search_path (the role relies on them without naming them);
        # a schema the migrations create themselves must not exist before they run.
        row = conn.execute(
            text("SELECT current_setting('search_path'), current_schemas(false)")
        ).one()
        return {"search_path": row[0], "schemas": list(row[1] or [])}

    def prepare_shadow(self, conn: Connection, mirror: dict[str, Any]) -> None:
        for schema in mirror.get("schemas", []):
            conn.execute(CreateSchema(schema, if_not_exists=True))

    def shadow_options(self, mirror: dict[str, Any]) -> str:
        # A scratch database is thrown away: its commits need not wait for the disk (a
        # snapshot build commits once per revision). Whatever a crash would lose is replayed.
        options = "-c synchronous_commit=off"
        search_path = mirror.get("search_path")
        if not search_path:
            return options
        # libpq splits PGOPTIONS on spaces unless escaped; no SQL is built from the value.
        value = search_path.replace("\\", "\\\\").replace(" ", "\\ ")
        return f"{options} -c search_path={value}"

    def empty_database(self, conn: Connection) -> None:
        # Every schema a replay may have created, then the default one, re-created empty.
        for schema in self.user_schemas(conn):
            conn.execute(DropSchema(schema, cascade=True, if_exists=True))
        schema = inspect(conn).default_schema_name or "public"
        conn.execute(DropSchema(schema, cascade=True, if_exists=True))
        conn.execute(CreateSchema(schema))

    def identity(self, conn: Connection) -> dict[str, Any]:
        row = conn.execute(
            text(
                "SELECT current_database(), CAST(pg_postmaster_start_time() AS text), "
                "inet_server_port()"
            )
        ).one()
        return {"database": row[0], "server_started": row[1], "port": row[2]}

    def is_ddl_lock_timeout(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False  # a signal raised while a lock time-out was handled is a signal
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            orig = current.orig if isinstance(current, DBAPIError) else current
            if "55P03" in (getattr(orig, "pgcode", None), getattr(orig, "sqlstate", None)):
                return True
            current = current.__cause__ or current.__context__
        return False

    @contextmanager
    def scratch_database(self, engine: Engine) -> Iterator[URL]:
        name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
        quoted = engine.dialect.identifier_preparer.quote(name)  # no bind parameters in DDL
        admin = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            _remove_stale_scratch(admin)
            # Held by this session while the scratch database exists: a runner that dies
            # (SIGKILL, OOM) loses it with its connection, and the next run removes the
            # orphan. Taken before CREATE DATABASE, so no live one ever looks orphaned.
            admin.execute(text("SELECT pg_advisory_lock(:space, :key)"), _scratch_lock(name))
            try:
                admin.execute(text(f"CREATE DATABASE {quoted}"))
            except DBAPIError as exc:
                from runner.wait import describe

                raise ShadowUnavailable(
                    f"cannot create a shadow database: {describe(exc)}"
                ) from exc
            log.info("shadow.created", shadow_database=name)
            try:
                yield engine.url.set(database=name)
            finally:
                admin.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
                log.info("shadow.dropped", shadow_database=name)
        finally:
            admin.close()


#: First key of the advisory locks that mark scratch databases as alive ("adSH").
_SCRATCH_LOCK_SPACE = 0x61645348


def _scratch_lock(name: str) -> dict[str, int]:
    key = zlib.crc32(name.encode())
    return {"space": _SCRATCH_LOCK_SPACE, "key": key - (1 << 32) if key >= 1 << 31 else key}


def _remove_stale_scratch(admin: Connection) -> None:
    """Drop scratch databases whose runner is gone (no session holds their lock)."""
    rows = admin.execute(
        text(
            "SELECT datname FROM pg_catalog.pg_database"
            " WHERE datname LIKE :prefix AND pg_catalog.pg_has_role(datdba, 'USAGE')"
        ),
        {"prefix": SCRATCH_PREFIX.replace("_", "\\_") + "%"},
    ).scalars()
    names = list(rows)
    if not names:
        return
    held = {
        (int(classid), int(objid))
        for classid, objid in admin.execute(
            text(
                "SELECT classid::bigint, objid::bigint FROM pg_catalog.pg_locks"
                " WHERE locktype = 'advisory' AND objsubid = 2"
            )
        )
    }
    preparer = admin.dialect.identifier_preparer
    for name in names:
        lock = _scratch_lock(name)
        if (lock["space"], lock["key"] & 0xFFFFFFFF) in held:
            continue  # a live runner's replay
        try:
            admin.execute(text(f"DROP DATABASE IF EXISTS {preparer.quote(name)} WITH (FORCE)"))
        except DBAPIError as exc:
            log.warning("shadow.stale_kept", shadow_database=name, error=str(exc.orig))
            continue
        log.warning(
            "shadow.stale_removed",
            shadow_database=name,
            reason="left behind by a runner that was killed during a replay",
        )


class SqliteBackend(Backend):
    name = "sqlite"
    local_snapshot = True

    def check_url(self, url: URL) -> None:
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        folder = Path(database).resolve().parent
        if not folder.is_dir():
            raise ConfigError(
                f"the folder of the SQLite database does not exist: {folder}",
                hint="create it (SQLite creates the file, not its folder) or fix the path in "
                "the URL",
            )

    def configure_engine(self, engine: Engine) -> None:
        # pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so DDL would
        # commit as it runs: a heal that failed half-way would stay half-applied. The
        # driver's own transaction handling is turned off and SQLAlchemy's begin() emits
        # BEGIN (SQLAlchemy's documented recipe), so a heal is all or nothing. Foreign keys
        # stay unenforced on these connections, as in Alembic's batch mode: re-creating a
        # table must not cascade deletes.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = OFF")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

    def locker(self, engine: Engine, url: URL, settings: Settings) -> Locker:
        database = url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return NullLocker()
        return FileLocker(Path(database).resolve(), settings)

    @contextmanager
    def scratch_database(self, engine: Engine) -> Iterator[URL]:
        with tempfile.TemporaryDirectory(prefix="alembic-deploy-shadow-") as folder:
            yield make_url(f"sqlite:///{Path(folder) / 'shadow.db'}")


_BACKENDS: dict[str, type[Backend]] = {"postgresql": PostgresBackend, "sqlite": SqliteBackend}


def backend_for(url: URL) -> Backend:
    """The backend for a URL's dialect; exit 2 for one without a lock implementation."""
    dialect = url.get_backend_name()
    backend = _BACKENDS.get(dialect)
    if backend is None:
        # A misspelt scheme (postgress://, postgresq://) gets the spelling it was close to.
        close = difflib.get_close_matches(dialect, [*_BACKENDS, "postgres"], n=1, cutoff=0.75)
        if close:
            hint = f"did you mean {'postgresql' if close[0] == 'postgres' else close[0]}://?"
        else:
            hint = "alembic-deploy migrates PostgreSQL and SQLite only: use a postgresql:// or "
            hint += "sqlite:/// URL"
        raise ConfigError(
            f"unsupported database {dialect!r}: alembic-deploy has no migration lock for it",
            hint=hint,
        )
    return backend()


def _connect_timeout(settings: Settings) -> int:
    return max(2, math.ceil(min(settings.wait_timeout, 10.0)))


@dataclass(frozen=True, slots=True)
class Database:
    """A database URL resolved once: driver pinned, secret registered, backend chosen."""

    url: URL
    backend: Backend

    @classmethod
    def from_raw(cls, raw: str) -> Database:
        register_url_secret(raw)
        url = resolve_url(raw)
        backend = backend_for(url)
        backend.check_url(url)
        return cls(url, backend)

    @property
    def rendered(self) -> str:
        """The URL with its password (for SQLAlchemy and env.py, never for logs)."""
        return render_url(self.url)

    @property
    def masked(self) -> str:
        return masked_url(self.url)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def engine(self, settings: Settings) -> Engine:
        """The one engine factory: a driver that cannot load is exit 4 everywhere."""
        try:
            engine = create_engine(self.url, **self.backend.engine_kwargs(settings))
            self.backend.configure_engine(engine)
            return engine
        except (NoSuchModuleError, ArgumentError, ImportError) as exc:
            raise ConnectionRefusedPermanentlyError(
                f"cannot load the database driver for {self.url.drivername}: {exc}",
                hint="install the driver named in the URL (postgresql+psycopg2 needs "
                "psycopg2-binary), or drop the +driver part to use the installed one",
            ) from exc
