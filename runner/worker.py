"""The worker: a fresh child interpreter that runs the user's Alembic code for one job.

The runner's own process never imports env.py, the application or a revision module (they may
reconfigure logging, print to stdout, keep module-level state or call ``sys.exit``). Each job
runs here instead, started by :mod:`runner.supervise` as ``python -m runner.worker RECORDS
CONTROL`` with two pipe file descriptors:

* ``CONTROL`` (read): the job, one JSON line, then the parent's answers to commit requests;
* ``RECORDS`` (write): one JSON line per record: ``graph``, ``configured`` (env.py's version
  table), ``connected`` (backend pid),
  ``revision_started``, ``commit_requested`` (the parent answers ``commit`` or ``abort``; an
  upgrade that sees the parent's lock still held on its own connection does not ask),
  ``revision_applied``, ``operation_skipped``, ``log`` (stdlib logging), ``schema`` (a reflected
  stage), ``sql`` (offline output), ``failed`` and finally ``completed``.

Jobs: ``graph`` (the revision graph, no env.py), ``upgrade`` (env.py against the locked
database with defensive operations, or against a scratch database reflecting each stage),
``metadata`` (env.py's ``target_metadata`` as a schema), ``stamp`` and ``offline_sql``
(``alembic upgrade --sql``). A job that ends without ``completed`` failed, whatever the exit
status: a ``sys.exit(0)`` inside a revision is a failed migration. This module raises nothing
to its caller; failures become a ``failed`` record and exit status 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import json
import logging
import os
import select
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from runner.imports import pause_collection, resume_collection, skip_template_highlighting

if TYPE_CHECKING:
    from runner.lock import LockProof

#: Record names, in the order a job can send them.
RECORDS = (
    "graph",
    "configured",
    "connected",
    "revision_started",
    "commit_requested",
    "revision_applied",
    "operation_skipped",
    "log",
    "schema",
    "sql",
    "failed",
    "completed",
)


class Aborted(Exception):
    """The parent refused a commit (lock lost, or the replay reached the wrong database)."""


class Channel:
    """The two pipes to the parent: records out, answers in."""

    def __init__(self, records: BinaryIO, control: BinaryIO) -> None:
        self._records = records
        self._control = control
        # The app's threads log too: one record at a time, each written whole.
        self._lock = threading.Lock()

    def send(self, record: str, **data: Any) -> None:
        line = json.dumps({"record": record, **data}, default=str) + "\n"
        with self._lock:
            self._records.write(line.encode())
            self._records.flush()

    def receive(self) -> dict[str, Any]:
        line = self._control.readline()
        if not line:
            raise Aborted("the runner went away")
        message: dict[str, Any] = json.loads(line)
        return message

    def ask(self, record: str, **data: Any) -> dict[str, Any]:
        self.send(record, **data)
        return self.receive()

    def hung_up(self) -> bool:
        """Whether the parent closed the control pipe (it stops the child): the parent writes
        only answers, so a control pipe readable between questions is at its end."""
        readable, _, _ = select.select([self._control], [], [], 0)
        return bool(readable)


class _RecordHandler(logging.Handler):
    """Stdlib logging (Alembic's, the app's) as ``log`` records for the parent to re-emit."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self.channel.send(
                "log", logger=record.name, level=record.levelname.lower(), message=message
            )
        except Exception:  # never let logging break a migration
            self.handleError(record)


def _take_logging(channel: Channel, handler: _RecordHandler, debug: bool) -> None:
    """(Re)install our root handler: env.py's ``fileConfig`` replaces it at import."""
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in ("alembic", "sqlalchemy", "alembic.runtime.migration"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.disabled = False
    logging.getLogger("alembic").setLevel(logging.INFO if debug else logging.WARNING)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if debug else logging.WARNING)
    # "Running upgrade a -> b" is reported as revision records already.
    logging.getLogger("alembic.runtime.migration").setLevel(
        logging.DEBUG if debug else logging.WARNING
    )


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the runner dies (no orphaned migrations)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed control pipe still stops us
        pass


class Worker:
    """One job: what it needs from the parent and how each kind runs."""

    def __init__(self, channel: Channel, job: dict[str, Any]) -> None:
        self.channel = channel
        self.job = job
        self.handler = _RecordHandler(channel)
        self.current: str | None = None
        self.started = 0.0
        self.applied: list[str] = []
        #: Revisions applied inside a transaction that has not ended yet.
        self.committing: list[dict[str, Any]] = []
        self.external = False
        #: ``reflect_each``: each table's catalog digest when digests were last taken, the
        #: tables reflected since without one, the tables and enums after the previous
        #: revision, and the event triggers reporting the DDL of env.py's connection.
        self.digests: dict[Any, str] = {}
        self.undigested: set[Any] = set()
        self.known: set[Any] = set()
        #: None until read (a revision that reports no type keeps them once they are).
        self.enums: list[Any] | None = None
        #: The schemas reflected, listed again only after a revision that made a schema or
        #: that the watch could not follow (a renamed or dropped schema is one).
        self.listed: tuple[str | None, ...] | None = None
        self.watch: Any = None
        #: Whether the parent has answered a commit request since env.py's ``configure()``:
        #: only then has it read the ``configured`` record, which it may refuse (another
        #: version table than the one it locked and reads).
        self.heard: bool = False

    # --- shared pieces -------------------------------------------------------------------

    def _config(self, buffer: io.StringIO | None = None) -> Any:
        from alembic.config import Config

        config = Config(self.job["config_path"], output_buffer=buffer)
        if self.job.get("url"):
            config.set_main_option("sqlalchemy.url", self.job["url"].replace("%", "%%"))
        return config

    def _script(self, config: Any) -> Any:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(config)

    def _engine(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        return create_engine(
            self.job["url"], poolclass=NullPool, **self.job.get("engine_kwargs", {})
        )

    def _prepare(self, conn: Any) -> None:
        """Session settings (the DDL lock_timeout) and the backend pid for cancellation."""
        from sqlalchemy import text

        for statement in self.job.get("session_sql", []):
            conn.execute(text(statement["sql"]), statement.get("params", {}))
        if conn.in_transaction():
            conn.commit()
        from runner.backends import backend_for

        pid = backend_for(conn.engine.url).backend_pid(conn)
        if conn.in_transaction():
            conn.commit()
        self.channel.send("connected", backend_pid=pid)

    def _identity(self, conn: Any) -> dict[str, Any]:
        from runner.backends import backend_for

        identity: dict[str, Any] = backend_for(conn.engine.url).identity(conn)
        return identity

    def _run_env(self, config: Any, script: Any, conn: Any, target: str, migrate: bool) -> Any:
        """Run env.py like ``alembic.command.upgrade``; returns its ``target_metadata``."""
        from alembic.runtime.environment import EnvironmentContext

        from runner import defensive

        captured: dict[str, Any] = {}
        gate = bool(self.job.get("gate"))

        def steps(rev: Any, context: Any) -> Iterable[Any]:
            if not migrate:
                return []
            return self._track(script._upgrade_revs(target, rev))

        env = EnvironmentContext(config, script, fn=steps, as_sql=False, destination_rev=target)
        original = env.configure

        def configure(*args: Any, **kw: Any) -> None:
            _take_logging(self.channel, self.handler, bool(self.job.get("debug")))
            captured["metadata"] = kw.get("target_metadata")
            self.channel.send(
                "configured",
                version_table=kw.get("version_table", "alembic_version"),
                version_table_schema=kw.get("version_table_schema"),
            )
            self.heard = False
            user_hook = kw.get("on_version_apply")

            def on_version_apply(*, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
                if user_hook is not None:
                    user_hook(ctx=ctx, step=step, heads=heads, run_args=run_args)
                # Inside the revision's transaction, before its commit: the parent's say-so.
                if gate:
                    self._may_commit(ctx.connection, step.up_revision_id)
                # Reported once its transaction has ended (committed), not before. In an
                # "external" transaction (env.py used the connection before configure())
                # every revision commits only at the end of the run.
                self.external = bool(getattr(ctx, "_in_external_transaction", False))
                if self.job.get("reflect_each"):
                    # The schema this revision leaves, seen from its own transaction: only
                    # the tables it changed, on top of the previous revision's.
                    self.channel.send(
                        "schema",
                        index=-1,
                        revision=step.up_revision_id,
                        delta=self._reflect_changes(ctx.connection),
                    )
                self.committing.append(
                    {
                        "revision": step.up_revision_id,
                        "down_revisions": list(step.down_revision_ids),
                        "duration_ms": round((time.perf_counter() - self.started) * 1000, 1),
                    }
                )

            kw["on_version_apply"] = on_version_apply
            kw["transaction_per_migration"] = True
            if not migrate:
                kw["dont_mutate"] = True  # loading models must not create the version table
            connection = kw.get("connection")
            if self.job.get("guard") and connection is not None:
                # A replay: before any statement runs (autocommit blocks and SQLite DDL do not
                # wait for a commit), make sure this is not the real database.
                began = not connection.in_transaction()
                self._may_commit(connection, None)
                if began and connection.in_transaction():
                    # Our query must not leave a transaction that Alembic would take for
                    # env.py's own ("external"), which disables per-revision transactions.
                    connection.rollback()
            if self.job.get("reflect_each") and connection is not None:
                from runner.ddlwatch import DdlWatch

                self.watch = DdlWatch.install(connection)
            original(*args, **kw)
            # Decide defensive skips when each statement executes (a no-op without a session).
            defensive.guard(env.get_context().impl)

        env.configure = configure  # type: ignore[method-assign]
        config.attributes["connection"] = conn
        try:
            with env:
                script.run_env()
            if conn.in_transaction():
                # env.py ran the chain in a transaction of its own (it used the connection
                # before configure()): this is the commit, so it is asked for too.
                if gate and self.committing:
                    self._may_commit(conn, self.committing[-1]["revision"])
                conn.commit()
            self._committed()
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            self.committing = []
            raise
        finally:
            config.attributes.pop("connection", None)
            _take_logging(self.channel, self.handler, bool(self.job.get("debug")))
        return captured.get("metadata")

    def _may_commit(self, conn: Any, revision: str | None) -> None:
        """Ask the parent before a commit; raise :class:`Aborted` (roll back) if refused.

        An upgrade on PostgreSQL asks only once after env.py's ``configure()`` (the parent
        has then read the ``configured`` record, which it may refuse): after that, a commit
        that the server shows the parent's lock session still holding the lock for
        (``lock_proof``, :func:`runner.lock.still_held`) needs no answer. The parent still
        decides (and words) everything else: a lost lock, a stop (it closed the control
        pipe), a connection env.py opened to another kind of database, and every commit of
        a replay (``guard``: it checks where the commit would land).
        """
        proof = self.job.get("lock_proof")
        if (
            self.heard
            and proof is not None
            and not self.job.get("guard")
            and conn.dialect.name == "postgresql"
            and not self.channel.hung_up()
            and _lock_still_held(conn, proof)
        ):
            return
        identity = self._identity(conn) if self.job.get("guard") else {}
        answer = self.channel.ask("commit_requested", revision=revision, identity=identity)
        if answer.get("answer") != "commit":
            raise Aborted(answer.get("reason") or "the runner refused the commit")
        self.heard = True

    def _committed(self) -> None:
        """The revision whose transaction just ended committed: report it."""
        from runner import defensive

        if not self.committing:
            return
        committed, self.committing = self.committing, []
        for applied in committed:
            self.applied.append(applied["revision"])
            self.channel.send("revision_applied", **applied)
        self.current = None
        defensive.set_current_revision(None)

    def _track(self, steps: Iterable[Any]) -> Iterator[Any]:
        from runner import defensive

        # MigrationContext.run_migrations pulls the next step right before opening its
        # transaction, and after the previous one's transaction ended: "pulled" means the
        # previous revision committed and this one is starting.
        for step in steps:
            if not self.external:
                self._committed()
            self.current = step.info.up_revision_id
            defensive.set_current_revision(self.current)
            self.started = time.perf_counter()
            self.channel.send("revision_started", revision=self.current)
            yield step
        if not self.external:
            self._committed()

    def _reflect(self, engine: Any) -> dict[str, Any]:
        with engine.connect() as conn:
            return self._reflect_connection(conn)

    def _schemas(self, conn: Any) -> tuple[str | None, ...]:
        schemas = tuple(self.job.get("schemas") or [None])
        if self.job.get("all_schemas"):
            from runner.backends import backend_for

            found = backend_for(conn.engine.url).user_schemas(conn)
            schemas = tuple(dict.fromkeys((*schemas, *found)))
        return schemas

    def _reflect_connection(self, conn: Any) -> dict[str, Any]:
        from runner.schema import reflect_schema

        schema = reflect_schema(
            conn,
            schemas=self._schemas(conn),
            exclude_tables=tuple(self.job.get("exclude_tables", ())),
        )
        return schema.to_dict()

    def _reflect_changes(self, conn: Any) -> dict[str, Any]:
        """What changed since the previous revision: re-read only the tables it touched, so
        recording every revision of a chain costs what the revisions touched, not the whole
        schema each time. The event triggers tell which (:mod:`runner.ddlwatch`); without
        them, or when they cannot tell, each table's catalog digest
        (:func:`runner.schema.table_digests`) is compared with the last one taken."""
        from runner.schema import Reading, reflect_schema, table_digests

        schemas = self.listed if self.listed is not None else self._schemas(conn)
        excluded = tuple(self.job.get("exclude_tables", ()))
        watch = self.watch if self.watch is not None and self.watch.conn is conn else None
        seen = watch.changes(conn, schemas) if watch is not None else None
        if self.listed is not None and (seen is None or seen.schemas):
            listed = self._schemas(conn)
            if listed != schemas:
                # A schema the watch did not look in: digest every table of every schema.
                schemas, seen = listed, None
        self.listed = schemas
        if seen is not None and not seen.ddl and self.enums is not None:
            return {
                "schemas": list(schemas),
                "enums": self.enums,
                "tables": [],
                "removed": [],
                "via": "events",
            }
        if seen is None:
            digests = table_digests(conn, schemas=schemas, exclude_tables=excluded)
            tables = set(digests)
            # A table reflected since the last digests may have changed back to what its
            # digest says: read it again.
            changed = {k for k, d in digests.items() if self.digests.get(k) != d}
            changed |= self.undigested & tables
            self.digests, self.undigested = digests, set()
            if watch is not None:
                watch.resync(conn)
        else:
            changed = {key for key in seen.touched if key[1] not in excluded}
            tables = (self.known - seen.removed) | changed
            self.undigested |= changed
        removed = [list(key) for key in self.known - tables]
        self.known = tables
        # The watch read what the session has prepared: its statements, and SQLAlchemy's,
        # run prepared. No type reported, no enum changed (once they were read: env.py may
        # have made some before the watch began).
        enums = seen is None or seen.types or self.enums is None
        reading = Reading(
            execute=watch.execute if watch is not None else None,
            enums=enums,
            # Alembic commits the revision's own transaction once on_version_apply returns.
            last_in_transaction=not self.external,
        )
        with watch.preparing() if watch is not None else contextlib.nullcontext():
            schema = reflect_schema(
                conn, schemas=schemas, exclude_tables=excluded, only=changed, reading=reading
            )
        delta = schema.to_dict()
        if watch is not None:
            watch.remember(delta["tables"])
        if enums:
            self.enums = delta["enums"]
        delta["enums"] = self.enums
        return {**delta, "removed": removed, "via": "digests" if seen is None else "events"}

    # --- jobs ------------------------------------------------------------------------------

    def graph(self) -> None:
        script = self._script(self._config())
        revisions = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            walked = list(script.walk_revisions())
        for warning in caught:
            # Alembic keeps one of two files that share a revision id and only warns: the
            # other file's migration would silently never run.
            if "is present more than once" in str(warning.message):
                raise RuntimeError(
                    f"{warning.message}: two revision files share one id; give one of them "
                    "a new revision id (and fix the down_revision that names it)"
                )
        for rev in walked:
            revisions.append(
                {
                    "revision": rev.revision,
                    "down_revision": _as_list(rev.down_revision),
                    "dependencies": _as_list(rev.dependencies),
                    "branch_labels": sorted(rev._orig_branch_labels),
                    "path": rev.path,
                }
            )
        # What the no-op fast path hashes instead of loading the scripts (runner.fastpath).
        locations = [str(script.dir), *(str(p) for p in script._version_locations)]
        self.channel.send("graph", revisions=revisions, locations=locations)

    def upgrade(self) -> None:
        """Migrate through each stage's targets, reflecting after each stage when asked
        (``reflect``), or after each revision inside its transaction (``reflect_each``)."""
        from runner import defensive

        config = self._config()
        script = self._script(config)
        engine = self._engine()
        skipped_reporter = self._report_skip if self.job.get("defensive") else None
        try:
            with defensive.defensive_operations(skipped_reporter):
                for index, stage in enumerate(self.job["stages"]):
                    for target in stage:
                        with engine.connect() as conn:
                            self._prepare(conn)
                            self._run_env(config, script, conn, target, migrate=True)
                    if self.job.get("reflect"):
                        self.channel.send("schema", index=index, schema=self._reflect(engine))
        finally:
            engine.dispose()

    def metadata(self) -> None:
        from sqlalchemy import MetaData

        from runner.schema import Schema, schema_from_metadata

        config = self._config()
        script = self._script(config)
        engine = self._engine()
        try:
            with engine.connect() as conn:
                metadata = self._run_env(config, script, conn, "heads", migrate=False)
            dialect = engine.dialect
        finally:
            engine.dispose()
        if metadata is None:
            self.channel.send("schema", index=0, schema=None)
            return
        parts = [metadata] if isinstance(metadata, MetaData) else list(metadata)
        schemas = [schema_from_metadata(part, dialect) for part in parts]
        merged = Schema(
            tables={k: t for s in schemas for k, t in s.tables.items()},
            enums={k: e for s in schemas for k, e in s.enums.items()},
            schemas=tuple(dict.fromkeys(x for s in schemas for x in s.schemas)),
        )
        self.channel.send("schema", index=0, schema=merged.to_dict())

    def stamp(self) -> None:
        """Write a revision into the (possibly new) version table, as ``alembic stamp``."""
        from alembic.runtime.migration import MigrationContext

        script = self._script(self._config())
        engine = self._engine()
        try:
            with engine.begin() as conn:
                context = MigrationContext.configure(
                    conn,
                    opts={
                        "version_table": self.job["version_table"],
                        "version_table_schema": self.job.get("version_table_schema"),
                    },
                )
                context.stamp(script, self.job["revision"])
                if self.job.get("gate"):
                    self._may_commit(conn, self.job["revision"])
        finally:
            engine.dispose()

    def offline_sql(self) -> None:
        from alembic import command

        buffer = io.StringIO()
        config = self._config(buffer)
        command.upgrade(config, self.job["range"], sql=True)
        self.channel.send("sql", text=buffer.getvalue())

    def _report_skip(self, skipped: Any) -> None:
        self.channel.send(
            "operation_skipped",
            operation=skipped.operation,
            table=skipped.table,
            object=skipped.object,
            reason=skipped.reason,
            revision=skipped.revision,
        )

    def run(self) -> None:
        jobs: dict[str, Callable[[], None]] = {
            "graph": self.graph,
            "upgrade": self.upgrade,
            "metadata": self.metadata,
            "offline_sql": self.offline_sql,
            "stamp": self.stamp,
        }
        _take_logging(self.channel, self.handler, bool(self.job.get("debug")))
        jobs[self.job["kind"]]()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _describe(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = " ".join(str(inner).split())
    return text or type(inner).__name__


def _is_ddl_lock_timeout(job: dict[str, Any], exc: BaseException) -> bool:
    """Whether the job failed on the DDL lock time-out (the runner retries in a new worker)."""
    if not job.get("url"):
        return False
    from sqlalchemy.engine import make_url

    from runner.backends import backend_for

    return backend_for(make_url(job["url"])).is_ddl_lock_timeout(exc)


def _connection_lost(exc: BaseException) -> bool:
    """Whether the database connection broke (SQLAlchemy's dialect-specific disconnect
    detection: server shut down, session terminated, network gone)."""
    from sqlalchemy.exc import DBAPIError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def _lock_still_held(conn: Any, proof: LockProof) -> bool:
    """:func:`runner.lock.still_held`, its failure a refusal that says what failed (the
    revision's transaction is rolled back either way)."""
    from runner.lock import still_held

    try:
        return still_held(conn, proof)
    except Exception as exc:
        raise Aborted(f"the migration lock could not be checked before the commit: {exc}") from exc


def _preload() -> None:
    """Import what every job uses before its job arrives (a prestarted worker does this while
    the runner is still busy). Only libraries and the runner's own modules, which read no
    environment on import: no user code runs before the job."""
    for module in _PRELOADED:
        with contextlib.suppress(ImportError):  # psycopg2 on a SQLite-only install
            importlib.import_module(module)


_PRELOADED = (
    "sqlalchemy",
    "alembic.command",
    "alembic.runtime.environment",
    "alembic.script",
    "psycopg2",
    "runner.backends",  # every job's connection set-up (~35 ms: tenacity, structlog)
    "runner.defensive",
)


def main(argv: list[str]) -> int:
    """Run one job; the parent reads the outcome from the records, not the exit status."""
    _die_with_parent()
    pause_collection()
    skip_template_highlighting()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides what a Ctrl-C stops
    records_fd, control_fd = int(argv[1]), int(argv[2])
    for fd in (records_fd, control_fd):
        # A process env.py or the app starts must not hold the runner's pipes open.
        os.set_inheritable(fd, False)
    records = os.fdopen(records_fd, "wb")
    control = os.fdopen(control_fd, "rb")
    channel = Channel(records, control)
    _preload()
    resume_collection()  # before the job: env.py, the app and the revisions run as usual
    job = channel.receive()
    environ = job.get("environ")
    if environ is not None:
        # A prestarted worker was started with the runner's environment; this job's is the
        # one env.py must see (DATABASE_URL, PGOPTIONS, PGAPPNAME). Nothing has read it yet.
        os.environ.clear()
        os.environ.update(environ)
    worker = Worker(channel, job)
    try:
        worker.run()
    except BaseException as exc:  # SystemExit from a revision is a failure too
        kind = "exit" if isinstance(exc, SystemExit) else type(exc).__name__
        message = (
            f"sys.exit({exc.code!r}) was called" if isinstance(exc, SystemExit) else _describe(exc)
        )
        channel.send(
            "failed",
            error_type=kind,
            error=message,
            revision=worker.current,
            applied=worker.applied,
            aborted=isinstance(exc, Aborted),
            lock_timeout=_is_ddl_lock_timeout(job, exc),
            connection_lost=_connection_lost(exc),
            traceback="".join(traceback.format_exception(exc)),
        )
        return 1
    channel.send("completed", applied=worker.applied)
    return 0


if __name__ == "__main__":
    code = 1
    try:
        code = main(sys.argv)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        # os._exit: the app's atexit hooks and non-daemon threads must not outlive the job.
        os._exit(code)
