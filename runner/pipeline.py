"""The pipelines: each step timed (``step.finished``), no step calling another.

``deploy()`` is ``migrate`` (and ``run`` before its exec): config, wait, scripts (the revision
graph, loaded by a worker), lock, revisions (adopting an unstamped database with ``--adopt``),
verify, heal, upgrade, verify again. ``inspect_database()`` is the read-only half behind
``status``, ``check``, ``plan`` and ``--dry-run``; ``write_snapshot()`` is ``snapshot``. Every
run of the user's code happens in a worker (:mod:`runner.supervise`). They own the engine and
the lock in one ``ExitStack``, so both are released before ``run`` execs the app.

Raises whatever the steps raise (all :class:`~runner.errors.DeployError` subclasses).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import structlog

from runner.adopt import rank_revisions, stamp
from runner.backends import Database, ShadowUnavailable
from runner.config import OnDrift, Settings, snapshot_path
from runner.deployment import Deployment, load_graph, run_job
from runner.drift import Finding, FindingKind
from runner.embedded import embedded_postgres
from runner.errors import (
    ConfigError,
    DatabaseNotWritableError,
    DriftError,
    PostUpgradeDriftError,
    UnstampedDatabaseError,
)
from runner.expected import Expected, ExpectedSchemas, Source, scope
from runner.heal import apply_repairs, plan_repairs, render_repairs, require_healable, row_checker
from runner.lock import Locker
from runner.logs import get_logger
from runner.project import database_url, load_config, target_url, url_source
from runner.report import DeployReport
from runner.revisions import RevisionState, read_db_heads, read_revisions
from runner.snapshot import build_snapshot, file_checksums, load_snapshot
from runner.upgrade import upgrade_to_head
from runner.verify import Verification, reflect_database, verify_schema
from runner.wait import wait_for_database

log = get_logger(__name__)


@contextmanager
def _step(report: DeployReport, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        report.steps_ms[name] = elapsed
        log.info("step.finished", step=name, duration_ms=elapsed)


def _database(settings: Settings) -> Database:
    """The database to deploy, resolved once: ``--direct-url``, ``DATABASE_URL``, the config.

    A URL given by flag or environment is enough to wait for the database; the Alembic config
    is read first only when it is the one that names the database.
    """
    raw = settings.effective_url or database_url(settings, load_config(settings))
    database = Database.from_raw(raw)
    structlog.contextvars.bind_contextvars(database=database.masked)
    return database


def _prologue(settings: Settings, report: DeployReport, stack: ExitStack) -> Deployment:
    """Resolve the URL, wait for the database, load the revision graph (in a worker).

    The engine is disposed by ``stack``.
    """
    with _step(report, "config"):
        database = _database(settings)
        engine = database.engine(settings)
    report.database, report.url_source = database.masked, url_source(settings)
    stack.callback(engine.dispose)
    with _step(report, "wait"):
        wait_for_database(engine, settings)
    with _step(report, "scripts"):
        graph = load_graph(settings, database)
    return Deployment(settings, database, engine, graph)


def deploy(settings: Settings, report: DeployReport) -> DeployReport:
    """Wait, lock, check revisions, verify, heal, upgrade, verify again; release everything."""
    with ExitStack() as stack:
        dep = _prologue(settings, report, stack)
        locker = dep.backend.locker(dep.engine, dep.database.url, settings)
        stack.callback(locker.release)  # first: a signal right after acquire still releases
        stack.callback(_final_heads, dep, report)
        with _step(report, "lock"):
            locker.acquire()
        sources = ExpectedSchemas(dep, watch=locker.check)
        with _step(report, "revisions"):
            with dep.engine.connect() as conn:
                state = read_revisions(conn, dep.graph, settings)
            if isinstance(state.refusal, UnstampedDatabaseError):
                with _step(report, "adopt"):
                    _adopt(dep, sources, locker, state.refusal)
                with dep.engine.connect() as conn:
                    state = read_revisions(conn, dep.graph, settings)
            if state.refusal is not None:
                raise state.refusal
            if state.pending:
                _require_writable_database(dep)
        report.db_heads_before = state.db_heads
        report.script_heads = state.script_heads
        report.pending = state.pending
        expected_after: Expected | None = None
        proven = False  # the database is the clean replay's, at the stamped revision
        if state.target is not None:
            with _step(report, "verify"):
                final = dep.graph.resolve(state.target)
                stages = [state.db_heads, final] if state.pending else [state.db_heads]
                resolved = sources.resolve(stages)
                # With nothing to apply, "after" is "before" (or "healed"): not verified twice.
                expected_after = resolved[-1] if state.pending else None
                before = verify_schema(dep, resolved[0], stage="before")
                report.expected_source = before.source.value
                report.drift_before = list(before.findings)
            if _missing(before.findings):
                with _step(report, "heal"):
                    _heal(dep, locker, resolved[0], before, state, report)
            proven = (
                not before.findings
                and before.source in (Source.BASE, Source.SNAPSHOT)
                and resolved[-1].source is Source.SNAPSHOT
            )
        with _step(report, "upgrade"):
            # Each revision is reported as it commits, so a failed run's summary is true too.
            # From a database identical to the clean replay's, the pending revisions do what
            # they did there: if the snapshot saw them skip nothing, no statement needs a
            # defensive lookup (one catalog query per create or drop).
            checks = settings.defensive and not (proven and sources.replays_cleanly(state.pending))
            result = upgrade_to_head(
                dep, state, locker, on_applied=report.applied.append, defensive=checks
            )
            report.skipped_operations = len(result.skipped)
        with _step(report, "verify_after"):
            _verify_heads(dep, state, report)
            if expected_after is not None:
                after = verify_schema(dep, expected_after, stage="after")
                report.drift_after = list(after.findings)
                missing = _missing(after.findings)
                if missing and settings.on_drift is not OnDrift.WARN:
                    raise PostUpgradeDriftError(
                        "after the upgrade the schema still lacks what head requires",
                        findings=missing,
                        hint="run `alembic-deploy status` to see the drift; a missing object "
                        "from an earlier revision is repaired by `migrate` (self-heal)",
                    )
        # A run that lost its lock along the way is not a success, whatever it did.
        locker.check()
    return report


def _adopt(
    dep: Deployment,
    sources: ExpectedSchemas,
    locker: Locker,
    unstamped: UnstampedDatabaseError,
) -> None:
    """Stamp an unstamped database with the revision it physically matches (``--adopt``)."""
    actual = reflect_database(dep)
    ranked = rank_revisions(sources, actual)
    if not ranked:
        raise UnstampedDatabaseError(
            unstamped.tables,
            dep.settings.version_table,
            matched="no snapshot or shadow replay is available to tell which revision it is",
            hint="build a snapshot with `alembic-deploy snapshot` (or allow shadow replay), "
            "or stamp it yourself with `alembic stamp <revision>`",
        )
    best = ranked[0]
    how = "exactly" if best.exact else f"closest, {len(best.findings)} difference(s)"
    log.info(
        "adopt.matched",
        revision=best.revision,
        exact=best.exact,
        findings=[f.to_dict() for f in best.findings],
    )
    if not dep.settings.adopt:
        raise UnstampedDatabaseError(
            unstamped.tables,
            dep.settings.version_table,
            matched=f"it physically matches revision {best.revision} ({how})",
            hint=f"adopt it with `alembic-deploy migrate --adopt` (or ALEMBIC_DEPLOY_ADOPT=1), "
            f"or stamp it yourself: alembic stamp {best.revision}",
        )
    stamp(dep, best.revision, locker)


def _missing(findings: Sequence[Finding]) -> list[Finding]:
    """Findings of objects that should exist and do not (what healing is about)."""
    return [f for f in findings if f.healable or f.kind is FindingKind.MISSING_PRIMARY_KEY]


def _heal(
    dep: Deployment,
    locker: Locker,
    expected: Expected,
    before: Verification,
    state: RevisionState,
    report: DeployReport,
) -> None:
    """Apply ``--on-drift``: repair missing objects in one transaction, fail, or only warn."""
    settings = dep.settings
    missing = _missing(before.findings)
    if settings.on_drift is OnDrift.WARN:
        log.warning("heal.skipped", reason="--on-drift warn", findings=len(missing))
        return
    if settings.on_drift is OnDrift.FAIL:
        raise DriftError(
            f"object(s) of revision {', '.join(state.db_heads)} are missing",
            findings=missing,
            hint="with --on-drift heal (the default) migrate re-creates them additively; "
            "`alembic-deploy plan` prints the SQL",
        )
    assert expected.schema is not None and before.actual is not None
    _require_writable_database(dep)
    with dep.engine.connect() as conn:
        # The DDL lock_timeout: a repair queued behind a long transaction gives up instead of
        # blocking every reader of the table behind its ACCESS EXCLUSIVE request.
        dep.backend.prepare(conn, settings)
        with conn.begin():
            plan = plan_repairs(
                before.findings,
                expected.schema,
                before.actual,
                has_rows=row_checker(conn),
                dialect=conn.dialect.name,
            )
            require_healable(plan)
            locker.check()  # never change the schema without the lock
            try:
                apply_repairs(conn, plan.repairs, stamped=state.db_heads)
            except DriftError as failed:
                if not dep.backend.is_ddl_lock_timeout(failed):
                    raise
                raise DriftError(
                    f"{failed.message} (--ddl-lock-timeout {settings.ddl_lock_timeout:g} s)",
                    hint="another session holds a lock on the table (a long or idle-in-"
                    "transaction session); nothing was changed: end it or deploy again later",
                ) from failed
            locker.check()  # ... nor commit it after the lock was lost meanwhile
    report.repairs = [repair.describe() for repair in plan.repairs]
    log.info("heal.finished", repairs=len(plan.repairs))
    healed = verify_schema(dep, expected, stage="healed")
    still = _missing(healed.findings)
    if still:
        raise DriftError(
            "object(s) still missing after healing",
            findings=still,
            hint="this is a bug in the repair plan: run `alembic-deploy plan` and report it",
        )


def _require_writable_database(dep: Deployment) -> None:
    """Refuse up front what would only fail inside the first migration (or repair)."""
    with dep.engine.connect() as conn:
        refusal = dep.backend.write_refusal(conn, scope(dep.settings))
    if refusal is not None:
        raise DatabaseNotWritableError(
            f"cannot migrate: {refusal}",
            hint="deploy against the primary with a role that owns the application's schema "
            "(GRANT CREATE ON SCHEMA ... or run as its owner); nothing was changed",
        )


def _final_heads(dep: Deployment, report: DeployReport) -> None:
    """What the version table says when the run ends, whatever happened (for the summary)."""
    try:
        with dep.engine.connect() as conn:
            report.db_heads_after, _ = read_db_heads(conn, dep.settings)
    except Exception as exc:  # the summary must not hide the run's own error
        log.debug("deploy.final_heads_unknown", error=str(exc))


def _verify_heads(dep: Deployment, state: RevisionState, report: DeployReport) -> None:
    with dep.engine.connect() as conn:
        heads, _ = read_db_heads(conn, dep.settings)
    report.db_heads_after = heads
    if state.target is None:
        return
    expected = dep.graph.resolve(state.target)
    if heads != expected:
        raise PostUpgradeDriftError(
            f"after the upgrade the database is stamped {list(heads)}, expected {list(expected)}",
            hint="env.py may be migrating another database or version table: make it use "
            "config.attributes['connection'] or sqlalchemy.url (README, env.py)",
        )


def inspect_database(
    settings: Settings,
    report: DeployReport,
    *,
    with_repairs: bool = False,
    explain: bool = False,
) -> RevisionState:
    """Read-only: revision state and drift (for ``status``, ``check`` and ``plan``).

    The revision policy's refusal is returned in the state, not raised: ``status`` reports
    it, ``check`` and ``plan`` raise it.
    """
    with ExitStack() as stack:
        dep = _prologue(settings, report, stack)
        with _step(report, "revisions"), dep.engine.connect() as conn:
            state = read_revisions(conn, dep.graph, settings)
        report.db_heads_before = report.db_heads_after = state.db_heads
        report.script_heads = state.script_heads
        report.pending = state.pending
        if state.unknown:
            return state
        with _step(report, "verify"):
            sources = ExpectedSchemas(dep)
            (expected,) = sources.resolve([state.db_heads])
            verification = verify_schema(dep, expected, stage="status")
            report.expected_source = verification.source.value
            report.drift_before = list(verification.findings)
            # Ranking every revision costs a replay of the graph without a snapshot: only
            # `status` explains a wrong stamp.
            if explain and verification.errors and verification.actual is not None:
                ranked = rank_revisions(sources, verification.actual)
                # Only a revision the schema matches exactly explains the findings better than
                # the stamp: a merely "closer" one would invite a wrong `alembic stamp` over
                # objects that were dropped by hand (drift, which heal repairs).
                if ranked and ranked[0].exact and (ranked[0].revision,) != state.db_heads:
                    report.closest = ranked[0].revision
                    log.info(
                        "verify.closest_revision",
                        stamped=list(state.db_heads),
                        closest=ranked[0].revision,
                        differences=len(ranked[0].findings),
                    )
            if with_repairs and expected.schema is not None and verification.actual:
                with dep.engine.connect() as conn:
                    repairs = plan_repairs(
                        verification.findings,
                        expected.schema,
                        verification.actual,
                        has_rows=row_checker(conn),
                        dialect=conn.dialect.name,
                    )
                    report.repair_sql = render_repairs(repairs.repairs, conn.dialect.name)
                report.unhealable = list(repairs.unhealable)
        if with_repairs and state.pending and state.target and len(state.db_heads) <= 1:
            start = state.db_heads[0] if state.db_heads else "base"
            report.pending_sql = offline_sql(dep, f"{start}:{state.target}")
    return state


def offline_sql(dep: Deployment, revision_range: str) -> str:
    """``alembic upgrade --sql RANGE``, rendered by a worker."""
    result = run_job(
        dep,
        "offline_sql",
        failure=f"cannot render the SQL of {revision_range}",
        hint="`alembic upgrade --sql` shows the same error; some migrations need a live "
        "database and cannot be rendered offline",
        range=revision_range,
    )
    return result.sql or ""


@contextmanager
def _snapshot_server(settings: Settings) -> Iterator[str]:
    """Where to replay for a snapshot: --shadow-url, SQLite, embedded PostgreSQL, the target."""
    if settings.shadow_url:
        yield settings.shadow_url
        return
    configured = target_url(settings)
    if configured and Database.from_raw(configured).backend.local_snapshot:
        yield configured
        return
    try:
        with embedded_postgres() as url:
            yield url
        return
    except ShadowUnavailable as exc:
        if not configured:
            raise ConfigError(
                f"no server to build the snapshot on: {exc}",
                hint="install alembic-deploy[snapshot], or pass --shadow-url / DATABASE_URL",
            ) from exc
        log.info("snapshot.server_fallback", reason=str(exc))
    yield configured


def _require_writable(path: Path) -> None:
    folder = path.resolve().parent
    if (
        not folder.is_dir()
        or not os.access(folder, os.W_OK | os.X_OK)
        or (path.exists() and not os.access(path, os.W_OK))
    ):
        raise ConfigError(
            f"cannot write the snapshot to {path}: "
            + ("its folder does not exist" if not folder.is_dir() else "permission denied"),
            hint="give --output a writable path (the folder must exist)",
        )


def write_snapshot(settings: Settings) -> Path:
    """``snapshot``: build (or with ``--check`` verify) the snapshot file."""
    path = Path(settings.output) if settings.output else snapshot_path(settings)
    if settings.check_only:
        graph = load_graph(settings, None)
        existing = load_snapshot(path)
        if existing is None:
            raise DriftError(
                f"no snapshot at {path}", hint="build it with `alembic-deploy snapshot`"
            )
        current = file_checksums(graph)
        stale = existing.edited(current) + sorted(set(existing.checksums) - set(current))
        if stale:
            raise DriftError(
                f"snapshot {path} is stale: revision file(s) changed, added or removed: "
                f"{', '.join(stale)}",
                hint="rebuild it with `alembic-deploy snapshot` and commit it",
            )
        log.info("snapshot.fresh", snapshot=str(path), revisions=len(current))
        return path
    _require_writable(path)  # before a replay that may take minutes
    with _snapshot_server(settings) as raw, ExitStack() as stack:
        database = Database.from_raw(raw)
        engine = database.engine(settings)
        stack.callback(engine.dispose)
        wait_for_database(engine, settings)
        dep = Deployment(
            settings, database, engine, load_graph(settings, database), builds_snapshot=True
        )
        snapshot = build_snapshot(dep, scope(settings))
    path.write_text(snapshot.to_json())
    log.info("snapshot.written", snapshot=str(path), bytes=path.stat().st_size)
    return path


def plan_sql(settings: Settings, report: DeployReport) -> str:
    """``plan`` and ``--dry-run``: repairs, then pending revisions' SQL; read-only."""
    state = inspect_database(settings, report, with_repairs=True)
    if state.refusal is not None:
        raise state.refusal
    parts = ["-- repairs (additive, one transaction)"]
    parts += report.repair_sql or ["-- none"]
    parts += [f"-- cannot heal: {f.kind} {f.target}: {f.detail}" for f in report.unhealable]
    parts.append("-- pending revisions")
    if not state.pending:
        parts.append("-- none")
    elif len(state.db_heads) > 1:
        parts.append(
            "-- the database is on several branches "
            f"({', '.join(state.db_heads)}); offline SQL cannot start from there"
        )
    else:
        parts.append(report.pending_sql)
    return "\n".join(parts) + "\n"
