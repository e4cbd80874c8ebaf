"""Lock step: one migration lock per (database, version table), held for the whole run.

PostgreSQL: a session advisory lock on a connection of its own. That connection is in
autocommit and never holds a transaction open, so a migration that runs
``CREATE INDEX CONCURRENTLY`` (which waits for every open transaction) cannot deadlock against
it (golang-migrate#960, goose#335). We poll ``pg_try_advisory_lock`` with backoff rather than
block in ``pg_advisory_lock``, so that we can log who holds the lock and give up at the
timeout (Atlas ``acquire``). The server releases the lock if this process dies.

SQLite: an OS file lock (``filelock``) on a file beside the database, released by the kernel
when the process dies.

Raises :class:`LockTimeoutError` (exit 5) at the lock timeout, and :class:`ConfigError`
(exit 2) when the session lock cannot work (a transaction-pooling proxy such as PgBouncer).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Protocol, TypedDict

from sqlalchemy import Connection, Engine, func, select, text
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from runner.config import Settings
from runner.errors import ConfigError, ConnectionLostError, LockLostError, LockTimeoutError
from runner.logs import get_logger

log = get_logger(__name__)

#: How often, at most, ``lock.waiting`` is logged while the lock is held elsewhere.
_WAITING_LOG_INTERVAL_S = 5.0


class Locker(Protocol):
    """A lock that must be acquired before, and released after, touching the schema."""

    name: str

    def acquire(self) -> None: ...

    def check(self) -> None:
        """Raise :class:`LockLostError` unless the lock is still held (cheap; called often)."""
        ...

    def release(self) -> None: ...

    def proof(self) -> LockProof | None:
        """What lets another session see that this lock is still held (:func:`still_held`);
        None when only this process can tell, or the lock is not held."""
        ...


def lock_name(settings: Settings) -> str:
    """The lock's name: ``--lock-key``, else the version table's qualified name."""
    if settings.lock_key:
        return settings.lock_key
    schema = settings.version_table_schema or ""
    return f"{schema}.{settings.version_table}"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    digest = hashlib.blake2b(f"alembic-deploy:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _retrying(settings: Settings, before_sleep: Any) -> Retrying:
    stop = (
        stop_after_delay(settings.lock_timeout)
        if settings.lock_timeout > 0
        else stop_after_attempt(1)
    )
    return Retrying(
        stop=stop,
        # Jitter, so that ten replicas polling one lock do not move in step.
        wait=wait_exponential(multiplier=settings.lock_poll_initial, max=settings.lock_poll_max)
        + wait_random(0, settings.lock_poll_initial),
        retry=retry_if_result(lambda acquired: acquired is False),
        before_sleep=before_sleep,
    )


# The lock's row in pg_locks (``l``): a bigint key shows as two oids.
_LOCK_ROW = """l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                 AND l.classid = CAST(:classid AS oid) AND l.objid = CAST(:objid AS oid)"""
_HOLDER_SQL = text(
    f"""
    SELECT l.pid, a.application_name, a.backend_start, a.state, a.query_start,
           a.client_addr::text AS client_addr
    FROM pg_locks AS l
    LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE {_LOCK_ROW}
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)


class LockProof(TypedDict):
    """What another session checks the lock by: a second advisory lock, on a random key,
    that the lock's session took right after the lock and gives up only with it."""

    witness: int  # a signed 64-bit advisory key that no other session knows


# Whether this session holds the lock (the runner's watch, on its lock connection).
_HELD_SQL = text(
    f"SELECT EXISTS (SELECT FROM pg_catalog.pg_locks l "
    f"WHERE l.pid = pg_catalog.pg_backend_pid() AND {_LOCK_ROW})"
)
# Whether the witness is still held, as any session of the server sees it: a shared
# transaction lock on it can be had only when no session holds it. The witness is random,
# so the session holding it is the runner's lock session; that session took it right after
# the lock and gives up the lock only after it (or with it, when the session ends), so while
# the witness is held so is the lock. A lock-manager call: a few microseconds in the server,
# where reading pg_locks and pg_stat_activity took ~1 ms before each commit. When the check
# fails it holds the witness until the transaction ends, which the failure rolls back.
_HELD_BY_SQL = text("SELECT NOT pg_catalog.pg_try_advisory_xact_lock_shared(:witness)")


def still_held(conn: Connection, proof: LockProof) -> bool:
    """Whether the lock ``proof`` describes is still held by its session, seen from ``conn``
    (the worker's, before a commit). False when it is not, or when ``conn`` is on another
    server."""
    return bool(conn.execute(_HELD_BY_SQL, {"witness": proof["witness"]}).scalar())


class PostgresAdvisoryLocker:
    """Session-level ``pg_try_advisory_lock`` on a dedicated autocommit connection."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.name = lock_name(settings)
        self.key = advisory_key(self.name)
        self._engine = engine
        self._settings = settings
        self._conn: Connection | None = None
        self._proof: LockProof | None = None

    def _key_parts(self) -> dict[str, int]:
        # pg_locks shows a bigint key as two oids: high 32 bits in classid, low in objid.
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFFFFFF}

    def holder(self, conn: Connection) -> dict[str, object] | None:
        """Who holds the lock now (pid, application_name, since), if anyone."""
        row = conn.execute(_HOLDER_SQL, self._key_parts()).mappings().first()
        if row is None:
            return None
        return {
            "pid": row["pid"],
            "application_name": row["application_name"],
            "since": row["backend_start"].isoformat() if row["backend_start"] else None,
            "state": row["state"],
            "client_addr": row["client_addr"],
        }

    def acquire(self) -> None:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._conn = conn
        started = time.monotonic()
        last_logged = [float("-inf")]
        last_holder: list[dict[str, object] | None] = [None]

        def try_lock() -> bool:
            return bool(conn.execute(select(func.pg_try_advisory_lock(self.key))).scalar())

        def before_sleep(state: RetryCallState) -> None:
            holder = self.holder(conn)
            last_holder[0] = holder
            now = time.monotonic()
            if now - last_logged[0] >= _WAITING_LOG_INTERVAL_S:
                last_logged[0] = now
                log.info(
                    "lock.waiting",
                    lock=self.name,
                    key=self.key,
                    holder=holder,
                    waited_s=round(now - started, 3),
                    timeout_s=self._settings.lock_timeout,
                )

        try:
            before = conn.execute(select(func.pg_backend_pid())).scalar()
            try:
                _retrying(self._settings, before_sleep)(try_lock)
            except RetryError:
                holder = self.holder(conn) or last_holder[0]
                self._close()
                pid = holder.get("pid") if holder else None
                raise LockTimeoutError(
                    f"migration lock {self.name!r} still held by another session "
                    f"(pid {pid}) after {self._settings.lock_timeout:g}s",
                    holder=holder,
                    hint=(
                        "another deploy is migrating; if that process is stuck, inspect it "
                        "with SELECT * FROM pg_stat_activity WHERE pid = "
                        f"{pid} and end it with SELECT pg_terminate_backend({pid}); "
                        "or raise --lock-timeout"
                    ),
                ) from None
            after = conn.execute(select(func.pg_backend_pid())).scalar_one()
            held = self.holder(conn)
        except BaseException:
            self._close()
            raise
        if before != after or held is None or held["pid"] != after:
            self.release()
            raise ConfigError(
                "the session advisory lock does not stick to one server connection "
                f"(backend pid {before} then {after}): a transaction-pooling proxy such as "
                "PgBouncer is in the way",
                hint="point --direct-url / DIRECT_DATABASE_URL at the database itself "
                "(bypassing the pooler); it is then used for all of the runner's work",
            )
        try:
            self._take_witness(conn)
        except BaseException:
            self._close()  # the server frees the session's locks with it
            raise
        log.info(
            "lock.acquired",
            lock=self.name,
            key=self.key,
            backend_pid=after,
            waited_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def check(self) -> None:
        conn = self._conn
        if conn is None:
            raise LockLostError(self.name, "the lock connection is closed")
        try:
            held = conn.execute(_HELD_SQL, self._key_parts()).scalar()
        except Exception as exc:
            self._close()
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
            if not self._server_answers():
                raise ConnectionLostError(
                    f"the database server went away while the migration lock was held: {reason}",
                    revision=None,
                    applied=(),
                    hint="whatever was running never committed (the server rolls it back); "
                    "nothing is wrong with the migration: check that the server is up, then "
                    "deploy again",
                ) from None
            raise LockLostError(self.name, f"its session ended: {reason}") from None
        if not held:
            raise LockLostError(self.name, "the server no longer shows it held")

    def proof(self) -> LockProof | None:
        return self._proof

    def _take_witness(self, conn: Connection) -> None:
        """Hold a second advisory lock on a random key beside the lock (:func:`still_held`).
        Not taken (a collision, one in 2**64): the worker then asks this process instead."""
        witness = int.from_bytes(os.urandom(8), "big", signed=True)
        if conn.execute(select(func.pg_try_advisory_lock(witness))).scalar():
            self._proof = LockProof(witness=witness)

    def _server_answers(self) -> bool:
        """Whether a fresh connection works (a lost lock session, not a lost server)."""
        try:
            with self._engine.connect() as probe:
                probe.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def release(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if self._proof is not None:
                # The witness first: while it is held, a worker takes the lock as held.
                conn.execute(select(func.pg_advisory_unlock(self._proof["witness"])))
                self._proof = None
            released = conn.execute(select(func.pg_advisory_unlock(self.key))).scalar()
            if released:
                log.info("lock.released", lock=self.name)
            else:
                log.warning("lock.release_failed", lock=self.name, reason="not held")
        except Exception as exc:  # the server frees a session lock when the session ends
            log.warning("lock.release_failed", lock=self.name, error=str(exc))
        finally:
            self._close()

    def _close(self) -> None:
        self._proof = None
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class FileLocker:
    """An OS file lock beside an SQLite database file."""

    def __init__(self, database_path: Path, settings: Settings) -> None:
        self.path = Path(f"{database_path}.alembic-deploy.lock")
        self.name = str(self.path)
        self._settings = settings
        # Imported here: only SQLite takes a file lock (~10 ms of every PostgreSQL start).
        import filelock

        self._lock = filelock.FileLock(str(self.path), thread_local=False)

    def acquire(self) -> None:
        from filelock import Timeout

        started = time.monotonic()
        last_logged = [float("-inf")]

        def try_lock() -> bool:
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                return False
            return True

        def before_sleep(state: RetryCallState) -> None:
            now = time.monotonic()
            if now - last_logged[0] >= _WAITING_LOG_INTERVAL_S:
                last_logged[0] = now
                log.info(
                    "lock.waiting",
                    lock=self.name,
                    holder=self._read_holder(),
                    waited_s=round(now - started, 3),
                    timeout_s=self._settings.lock_timeout,
                )

        try:
            _retrying(self._settings, before_sleep)(try_lock)
        except RetryError:
            holder = self._read_holder()
            raise LockTimeoutError(
                f"migration lock file {self.path} still held after "
                f"{self._settings.lock_timeout:g}s",
                holder=holder,
                hint="another runner is migrating this SQLite file; wait for it, or raise "
                "--lock-timeout",
            ) from None
        self._owner_path.write_text(str(os.getpid()))
        log.info(
            "lock.acquired", lock=self.name, waited_ms=round((time.monotonic() - started) * 1000, 1)
        )

    def check(self) -> None:
        if not self._lock.is_locked:
            raise LockLostError(self.name, "the lock file is no longer held")

    @property
    def _owner_path(self) -> Path:
        return Path(f"{self.path}.pid")

    def _read_holder(self) -> dict[str, object] | None:
        try:
            return {"pid": int(self._owner_path.read_text().strip())}
        except (OSError, ValueError):
            return None

    def proof(self) -> LockProof | None:
        return None  # a file lock only this process can check

    def release(self) -> None:
        if self._lock.is_locked:
            self._owner_path.unlink(missing_ok=True)
            self._lock.release()
            log.info("lock.released", lock=self.name)


class NullLocker:
    """No lock: an in-memory SQLite database belongs to this process alone."""

    name = "none"

    def acquire(self) -> None:
        log.info("lock.acquired", lock=self.name, reason="private in-memory database")

    def check(self) -> None:
        return None

    def release(self) -> None:
        return None

    def proof(self) -> LockProof | None:
        return None
