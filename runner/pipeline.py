"""The pipelines: each step timed (``step.finished``), no step calling another.

``deploy()`` is ``migrate`` (and ``run`` before its exec): config, wait, scripts, lock,
revisions (adopting an unstamped database with ``--adopt``), verify, heal, upgrade, verify
again. ``inspect_database()`` is the read-only half behind ``status``, ``check``, ``plan`` and
``--dry-run``; ``write_snapshot()`` is ``snapshot``. They own the engine and the lock in one
``ExitStack``, so the lock is released and the engine disposed before ``run`` execs the app.

Raises whatever the steps raise (all :class:`~runner.errors.DeployError` subclasses).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from runner.adopt import rank_revisions, stamp
from runner.backends import Backend, backend_for
from runner.config import (
    OnDrift,
    Settings,
    masked_url,
    register_url_secret,
    render_url,
    resolve_url,
)
from runner.drift import Finding, FindingKind
from runner.embedded import embedded_postgres
from runner.errors import (
    ConfigError,
    ConnectionRefusedPermanentlyError,
    DriftError,
    PostUpgradeDriftError,
    UnstampedDatabaseError,
)
from runner.expected import Expected, ExpectedSchemas, scope, snapshot_path
from runner.heal import apply_repairs, plan_repairs, render_repairs, require_healable, row_checker
from runner.logs import get_logger, reassert_stdlib_logging
from runner.project import configured_url, database_url, load_config, load_scripts
from runner.revisions import (
    RevisionState,
    check_revisions,
    pending_revisions,
    read_db_heads,
    unknown_revisions,
)
from runner.schema import reflect_schema
from runner.shadow import ShadowUnavailable, excluded_tables
from runner.snapshot import build_snapshot, file_checksums, load_snapshot
from runner.upgrade import AppliedRevision, upgrade_to_head
from runner.verify import Verification, verify_schema
from runner.wait import wait_for_database

log = get_logger(__name__)


@dataclass(slots=True)
class DeployReport:
    """What a run did, filled in as it goes (so a failed run can still be summarised)."""

    db_heads_before: tuple[str, ...] = ()
    db_heads_after: tuple[str, ...] = ()
    script_heads: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    applied: list[AppliedRevision] = field(default_factory=list)
    skipped_operations: int = 0
    steps_ms: dict[str, float] = field(default_factory=dict)
    expected_source: str = "none"
    drift_before: list[Finding] = field(default_factory=list)
    drift_after: list[Finding] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    #: ``--dry-run`` / ``plan``: the SQL the repairs would run, and what none can heal.
    repair_sql: list[str] = field(default_factory=list)
    unhealable: list[Finding] = field(default_factory=list)
    #: ``status`` of a drifted database: the revision it physically matches best.
    closest: str | None = None


@contextmanager
def _step(report: DeployReport, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        report.steps_ms[name] = elapsed
        log.info("step.finished", step=name, duration_ms=elapsed)


@dataclass(frozen=True, slots=True)
class _Target:
    """The database to deploy: its URL (secret included) and dialect backend."""

    url: str
    backend: Backend


def _target(settings: Settings) -> _Target:
    # A URL given by flag or environment is enough to wait for the database; the Alembic
    # config is read first only when it is the one that names the database.
    raw = settings.effective_url or database_url(settings, load_config(settings))
    register_url_secret(raw)
    url = resolve_url(raw)
    structlog.contextvars.bind_contextvars(database=masked_url(url))
    return _Target(render_url(url), backend_for(url))


def _create_engine(target: _Target, settings: Settings) -> Engine:
    try:
        return create_engine(target.url, **target.backend.engine_kwargs(settings))
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise ConnectionRefusedPermanentlyError(
            f"cannot load the database driver: {exc}",
            hint="install the driver named in the URL (postgresql+psycopg2 needs "
            "psycopg2-binary) or drop the +driver part",
        ) from exc


def _connect(
    settings: Settings, report: DeployReport, stack: ExitStack
) -> tuple[_Target, Engine, Config, ScriptDirectory]:
    """The common prologue: resolve the URL, wait for the database, load the scripts.

    The engine is disposed by ``stack``.
    """
    with _step(report, "config"):
        target = _target(settings)
    engine = _create_engine(target, settings)
    stack.callback(engine.dispose)
    with _step(report, "wait"):
        wait_for_database(engine, settings)
    with _step(report, "scripts"):
        config = load_config(settings)
        script = load_scripts(config)
    return target, engine, config, script


def deploy(settings: Settings, report: DeployReport) -> DeployReport:
    """Wait, lock, check revisions, upgrade, verify; release everything before returning."""
    with ExitStack() as stack:
        target, engine, config, script = _connect(settings, report, stack)
        locker = target.backend.locker(engine, engine.url, settings)
        with _step(report, "lock"):
            locker.acquire()
        stack.callback(locker.release)
        with _step(report, "revisions"):
            try:
                with engine.connect() as conn:
                    state = check_revisions(script, conn, settings)
            except UnstampedDatabaseError as unstamped:
                with _step(report, "adopt"):
                    _adopt(config, script, engine, target.backend, settings, unstamped)
                with engine.connect() as conn:
                    state = check_revisions(script, conn, settings)
        report.db_heads_before = state.db_heads
        report.script_heads = state.script_heads
        report.pending = state.pending
        expected_after: Expected | None = None
        if state.target is not None:
            with _step(report, "verify"):
                sources = ExpectedSchemas(
                    config, script, engine, target.backend, settings, target.url
                )
                final = _target_heads(script, state.target)
                stages = [state.db_heads, final] if state.pending else [state.db_heads]
                resolved = sources.resolve(stages)
                # With nothing to apply, "after" is "before" (or "healed"): not verified twice.
                expected_after = resolved[-1] if state.pending else None
                before = verify_schema(
                    engine, target.backend, resolved[0], settings, stage="before"
                )
                report.expected_source = before.source.value
                report.drift_before = list(before.findings)
            if _missing(before.findings):
                with _step(report, "heal"):
                    _heal(engine, target.backend, settings, resolved[0], before, state, report)
        if settings.dry_run:
            return report
        with _step(report, "upgrade"):
            result = upgrade_to_head(
                config, script, engine, target.backend, settings, state, target.url
            )
            report.applied = result.applied
            report.skipped_operations = len(result.skipped)
        with _step(report, "verify_after"):
            _verify_heads(engine, settings, script, state, report)
            if expected_after is not None:
                after = verify_schema(
                    engine, target.backend, expected_after, settings, stage="after"
                )
                report.drift_after = list(after.findings)
                missing = _missing(after.findings)
                if missing and settings.on_drift is not OnDrift.WARN:
                    raise PostUpgradeDriftError(
                        f"after the upgrade the schema still lacks what head requires: "
                        f"{len(missing)} problem(s): "
                        + "; ".join(f"{f.kind} {f.target}" for f in missing[:5]),
                        hint="run `alembic-deploy status` to see the drift; a missing object "
                        "from an earlier revision is repaired by `migrate` (self-heal)",
                    )
    return report


def _adopt(
    config: Config,
    script: ScriptDirectory,
    engine: Engine,
    backend: Backend,
    settings: Settings,
    unstamped: UnstampedDatabaseError,
) -> None:
    """Stamp an unstamped database with the revision it physically matches (``--adopt``)."""
    with engine.connect() as conn:
        actual = reflect_schema(
            conn, schemas=scope(settings), exclude_tables=excluded_tables(settings)
        )
    ranked = rank_revisions(config, script, engine, backend, settings, actual)
    if not ranked:
        raise unstamped
    best = ranked[0]
    how = "exactly" if best.exact else f"closest, {len(best.findings)} difference(s)"
    log.info(
        "adopt.matched",
        revision=best.revision,
        exact=best.exact,
        findings=[f.to_dict() for f in best.findings],
    )
    if not settings.adopt:
        raise UnstampedDatabaseError(
            unstamped.tables,
            settings.version_table,
            matched=f"it physically matches revision {best.revision} ({how})",
            hint=f"adopt it with `alembic-deploy migrate --adopt` (or ALEMBIC_DEPLOY_ADOPT=1), "
            f"or stamp it yourself: alembic stamp {best.revision}",
        )
    with engine.begin() as conn:
        stamp(conn, script, settings, best.revision)


def _missing(findings: Sequence[Finding]) -> list[Finding]:
    """Findings of objects that should exist and do not (what healing is about)."""
    return [f for f in findings if f.healable or f.kind is FindingKind.MISSING_PRIMARY_KEY]


def _heal(
    engine: Engine,
    backend: Backend,
    settings: Settings,
    expected: Expected,
    before: Verification,
    state: RevisionState,
    report: DeployReport,
) -> None:
    """Apply ``--on-drift``: repair missing objects in one transaction, fail, or only warn."""
    missing = _missing(before.findings)
    if settings.on_drift is OnDrift.WARN:
        log.warning("heal.skipped", reason="--on-drift warn", findings=len(missing))
        return
    if settings.on_drift is OnDrift.FAIL:
        raise DriftError(
            f"{len(missing)} object(s) of revision {', '.join(state.db_heads)} are missing: "
            + "; ".join(f"{f.kind} {f.target}" for f in missing[:10]),
            hint="with --on-drift heal (the default) migrate re-creates them additively; "
            "`alembic-deploy plan` prints the SQL",
        )
    assert expected.schema is not None and before.actual is not None
    with engine.connect() as conn, conn.begin() as transaction:
        plan = plan_repairs(
            before.findings, expected.schema, before.actual, has_rows=row_checker(conn)
        )
        require_healable(plan)
        if settings.dry_run:
            report.repair_sql = render_repairs(plan.repairs, conn.dialect.name)
            transaction.rollback()
            return
        apply_repairs(conn, plan.repairs, stamped=state.db_heads)
    report.repairs = [repair.describe() for repair in plan.repairs]
    log.info("heal.finished", repairs=len(plan.repairs))
    healed = verify_schema(engine, backend, expected, settings, stage="healed")
    still = _missing(healed.findings)
    if still:
        raise DriftError(
            f"{len(still)} object(s) still missing after healing: "
            + "; ".join(f"{f.kind} {f.target}" for f in still[:10]),
            hint="this is a bug in the repair plan: run `alembic-deploy plan` and report it",
        )


def _target_heads(script: ScriptDirectory, target: str) -> tuple[str, ...]:
    return tuple(sorted(rev.revision for rev in script.get_revisions(target) if rev))


def _verify_heads(
    engine: Engine,
    settings: Settings,
    script: ScriptDirectory,
    state: RevisionState,
    report: DeployReport,
) -> None:
    with engine.connect() as conn:
        heads, _ = read_db_heads(conn, settings)
    report.db_heads_after = heads
    if state.target is None:
        return
    expected = _target_heads(script, state.target)
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
    """Read-only: revision state and drift, refusing nothing (for ``status``/``check``)."""
    with ExitStack() as stack:
        target, engine, config, script = _connect(settings, report, stack)
        with _step(report, "revisions"), engine.connect() as conn:
            db_heads, exists = read_db_heads(conn, settings)
        script_heads = tuple(sorted(script.get_heads()))
        unknown = unknown_revisions(script, db_heads)
        pending = () if unknown else pending_revisions(script, db_heads, "heads")
        report.db_heads_before = report.db_heads_after = db_heads
        report.script_heads = script_heads
        report.pending = pending
        if not unknown:
            with _step(report, "verify"):
                sources = ExpectedSchemas(
                    config, script, engine, target.backend, settings, target.url
                )
                (expected,) = sources.resolve([db_heads])
                verification = verify_schema(
                    engine, target.backend, expected, settings, stage="status"
                )
                with engine.connect() as conn:
                    report.expected_source = verification.source.value
                    report.drift_before = list(verification.findings)
                    # Ranking every revision costs a replay of the graph without a snapshot:
                    # only `status` explains a wrong stamp.
                    if explain and verification.errors and verification.actual is not None:
                        ranked = rank_revisions(
                            config, script, engine, target.backend, settings, verification.actual
                        )
                        if ranked and (ranked[0].revision,) != db_heads:
                            report.closest = ranked[0].revision
                            log.info(
                                "verify.closest_revision",
                                stamped=list(db_heads),
                                closest=ranked[0].revision,
                                differences=len(ranked[0].findings),
                            )
                    if with_repairs and expected.schema is not None and verification.actual:
                        repairs = plan_repairs(
                            verification.findings,
                            expected.schema,
                            verification.actual,
                            has_rows=row_checker(conn),
                        )
                        report.repair_sql = render_repairs(repairs.repairs, conn.dialect.name)
                        report.unhealable = list(repairs.unhealable)
    return RevisionState(script_heads, db_heads, "heads", pending, exists, tuple(unknown))


@contextmanager
def _snapshot_server(settings: Settings) -> Iterator[str]:
    """Where to replay for a snapshot: --shadow-url, SQLite, embedded PostgreSQL, the target."""
    if settings.shadow_url:
        yield settings.shadow_url
        return
    configured = settings.effective_url or configured_url(load_config(settings))
    if configured and resolve_url(configured).get_backend_name() == "sqlite":
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


def write_snapshot(settings: Settings) -> Path:
    """``snapshot``: build (or with ``--check`` verify) the snapshot file."""
    config = load_config(settings)
    script = load_scripts(config)
    path = Path(settings.output) if settings.output else snapshot_path(settings)
    if settings.check_only:
        existing = load_snapshot(path)
        if existing is None:
            raise DriftError(
                f"no snapshot at {path}", hint="build it with `alembic-deploy snapshot`"
            )
        current = file_checksums(script)
        stale = existing.edited(current) + sorted(set(existing.checksums) - set(current))
        if stale:
            raise DriftError(
                f"snapshot {path} is stale: revision file(s) changed, added or removed: "
                f"{', '.join(stale)}",
                hint="rebuild it with `alembic-deploy snapshot` and commit it",
            )
        log.info("snapshot.fresh", snapshot=str(path), revisions=len(current))
        return path
    with _snapshot_server(settings) as raw:
        register_url_secret(raw)
        url = resolve_url(raw)
        backend = backend_for(url)
        engine = create_engine(url, **backend.engine_kwargs(settings))
        try:
            wait_for_database(engine, settings)
            snapshot = build_snapshot(config, script, engine, backend, settings, scope(settings))
        finally:
            engine.dispose()
    path.write_text(snapshot.to_json())
    log.info("snapshot.written", snapshot=str(path), bytes=path.stat().st_size)
    return path


def plan_sql(settings: Settings, report: DeployReport) -> str:
    """``plan`` and ``migrate --dry-run``: repairs, then pending revisions' SQL; read-only."""
    state = inspect_database(settings, report, with_repairs=True)
    parts = ["-- repairs (additive, one transaction)"]
    parts += report.repair_sql or ["-- none"]
    parts += [f"-- cannot heal: {f.kind} {f.target}: {f.detail}" for f in report.unhealable]
    parts.append("-- pending revisions")
    if state.unknown or not state.pending:
        parts.append("-- none")
        return "\n".join(parts) + "\n"
    if len(state.db_heads) > 1:
        parts.append(
            "-- the database is on several branches "
            f"({', '.join(state.db_heads)}); offline SQL cannot start from there"
        )
        return "\n".join(parts) + "\n"
    buffer = io.StringIO()
    config = Config(settings.config_path, output_buffer=buffer)
    config.set_main_option(
        "sqlalchemy.url",
        render_url(resolve_url(settings.effective_url or database_url(settings, config))).replace(
            "%", "%%"
        ),
    )
    start = state.db_heads[0] if state.db_heads else "base"
    target = "heads" if len(state.script_heads) > 1 else "head"
    try:
        command.upgrade(config, f"{start}:{target}", sql=True)
    finally:
        reassert_stdlib_logging()
    parts.append(buffer.getvalue())
    return "\n".join(parts)
