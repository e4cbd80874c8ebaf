"""The pipeline: config, wait, lock, revisions, upgrade, verify; each step timed.

``deploy()`` is ``migrate`` (and ``run`` before its exec). ``inspect_database()`` is the
read-only half used by ``status`` and ``check``. Both own the engine and the lock in one
``ExitStack``, so that the lock is released and the engine disposed before ``run`` execs the
app. Steps receive what they need as arguments; no step calls another.

Raises whatever the steps raise (all :class:`~runner.errors.DeployError` subclasses).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import structlog
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from runner.backends import Backend, backend_for
from runner.config import (
    Settings,
    masked_url,
    register_url_secret,
    render_url,
    resolve_url,
)
from runner.errors import ConnectionRefusedPermanentlyError, PostUpgradeDriftError
from runner.logs import get_logger
from runner.project import database_url, load_config, load_scripts
from runner.revisions import RevisionState, check_revisions, pending_revisions, read_db_heads
from runner.upgrade import AppliedRevision, upgrade_to_head
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


def deploy(settings: Settings, report: DeployReport) -> DeployReport:
    """Wait, lock, check revisions, upgrade, verify; release everything before returning."""
    with _step(report, "config"):
        target = _target(settings)
    with ExitStack() as stack:
        engine = _create_engine(target, settings)
        stack.callback(engine.dispose)
        with _step(report, "wait"):
            wait_for_database(engine, settings)
        with _step(report, "scripts"):
            config = load_config(settings)
            script = load_scripts(config)
        locker = target.backend.locker(engine, engine.url, settings)
        with _step(report, "lock"):
            locker.acquire()
        stack.callback(locker.release)
        with _step(report, "revisions"), engine.connect() as conn:
            state = check_revisions(script, conn, settings)
        report.db_heads_before = state.db_heads
        report.script_heads = state.script_heads
        report.pending = state.pending
        with _step(report, "upgrade"):
            result = upgrade_to_head(
                config, script, engine, target.backend, settings, state, target.url
            )
            report.applied = result.applied
            report.skipped_operations = len(result.skipped)
        with _step(report, "verify_after"):
            _verify_heads(engine, settings, script, state, report)
    return report


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
    expected = tuple(sorted(rev.revision for rev in script.get_revisions(state.target) if rev))
    if heads != expected:
        raise PostUpgradeDriftError(
            f"after the upgrade the database is stamped {list(heads)}, expected {list(expected)}",
            hint="env.py may be migrating another database or version table: make it use "
            "config.attributes['connection'] or sqlalchemy.url (README, env.py)",
        )


def inspect_database(settings: Settings, report: DeployReport) -> RevisionState:
    """Read-only: the revision state without refusing anything (for ``status``/``check``)."""
    with _step(report, "config"):
        target = _target(settings)
    with ExitStack() as stack:
        engine = _create_engine(target, settings)
        stack.callback(engine.dispose)
        with _step(report, "wait"):
            wait_for_database(engine, settings)
        with _step(report, "scripts"):
            script = load_scripts(load_config(settings))
        with _step(report, "revisions"), engine.connect() as conn:
            db_heads, exists = read_db_heads(conn, settings)
    script_heads = tuple(sorted(script.get_heads()))
    unknown = []
    for head in db_heads:
        try:
            script.get_revision(head)
        except Exception:
            unknown.append(head)
    pending = () if unknown else pending_revisions(script, db_heads, "heads")
    report.db_heads_before = report.db_heads_after = db_heads
    report.script_heads = script_heads
    report.pending = pending
    return RevisionState(script_heads, db_heads, "heads", pending, exists, tuple(unknown))
