"""Upgrade step: ``alembic upgrade head`` through the user's own env.py, on the locked database.

env.py *is* the API (alembic#795), so we feed it rather than work around it: ``sqlalchemy.url``
is set to the database being deployed, ``DATABASE_URL`` points at it while env.py runs, and
``config.attributes["connection"]`` carries our connection for an env.py that honours it
(README, "env.py"). An env.py that builds its own engine still gets the DDL ``lock_timeout``
through libpq's ``PGOPTIONS``.

We run env.py like ``alembic.command.upgrade`` does, with an ``EnvironmentContext`` whose
``configure()`` also forces one transaction per revision (each all or nothing, and a long chain
does not exhaust the server's lock table), chains an ``on_version_apply`` hook for the
per-revision events, and puts our logging back after env.py's ``fileConfig``. Defensive
operations (:mod:`runner.defensive`) are active for the run.

A revision that fails on the DDL lock time-out is retried a bounded number of times.
Raises :class:`MigrationFailedError` (exit 8) naming the failed revision; the revisions before
it stay committed, the failed one is rolled back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from tenacity import (
    RetryCallState,
)

from runner import defensive
from runner.backends import Backend
from runner.config import Settings
from runner.defensive import SkippedOperation
from runner.errors import DeployError, MigrationFailedError
from runner.logs import get_logger, reassert_stdlib_logging
from runner.revisions import RevisionState
from runner.wait import describe

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AppliedRevision:
    """One revision that was applied and committed."""

    revision: str
    down_revisions: tuple[str, ...]
    duration_ms: float


@dataclass(slots=True)
class UpgradeResult:
    applied: list[AppliedRevision] = field(default_factory=list)
    skipped: list[SkippedOperation] = field(default_factory=list)
    attempts: int = 0


@dataclass(slots=True)
class _Tracker:
    """Follows the run: which revision started when, which were applied."""

    result: UpgradeResult
    current: str | None = None
    started: float = 0.0
    #: What env.py passed to ``context.configure(target_metadata=...)``.
    target_metadata: Any = None
    #: Event namespace: ``upgrade`` for the real database, ``shadow`` for a replay.
    step: str = "upgrade"

    def track(self, steps: Iterable[Any]) -> Iterator[Any]:
        # MigrationContext.run_migrations pulls the next step right before opening its
        # transaction, so "pulled" means "starting".
        for step in steps:
            self.current = step.info.up_revision_id
            defensive.set_current_revision(self.current)
            self.started = time.perf_counter()
            yield step

    def on_version_apply(self, *, step: Any, **_: Any) -> None:
        duration = round((time.perf_counter() - self.started) * 1000, 1)
        applied = AppliedRevision(
            revision=step.up_revision_id,
            down_revisions=tuple(step.down_revision_ids),
            duration_ms=duration,
        )
        self.result.applied.append(applied)
        self.current = None
        emit = log.info if self.step == "upgrade" else log.debug
        emit(
            f"{self.step}.revision_applied",
            revision=applied.revision,
            from_revisions=list(applied.down_revisions),
            duration_ms=duration,
        )


def _deploy_environment(
    config: Config,
    script: ScriptDirectory,
    fn: Any,
    target: str,
    tracker: _Tracker,
    settings: Settings,
) -> EnvironmentContext:
    """An ``EnvironmentContext`` whose ``configure()`` adds what a deploy needs.

    Alembic installs the proxy behind ``from alembic import context`` per class, so a
    subclass would expose nothing to env.py; the instance's ``configure`` is wrapped instead.
    """
    env = EnvironmentContext(config, script, fn=fn, as_sql=False, destination_rev=target)
    original = env.configure

    def configure(*args: Any, **kw: Any) -> None:
        # env.py ran fileConfig() at import time, before this call: take logging back.
        reassert_stdlib_logging()
        user_hook = kw.get("on_version_apply")
        tracker.target_metadata = kw.get("target_metadata")

        def on_version_apply(**hook_kw: Any) -> None:
            tracker.on_version_apply(**hook_kw)
            if user_hook is not None:
                user_hook(**hook_kw)

        kw["on_version_apply"] = on_version_apply
        kw["transaction_per_migration"] = True
        table = kw.get("version_table", "alembic_version")
        schema = kw.get("version_table_schema")
        if (table, schema) != (settings.version_table, settings.version_table_schema):
            log.warning(
                "upgrade.version_table_mismatch",
                env_py_version_table=table,
                env_py_version_table_schema=schema,
                settings_version_table=settings.version_table,
                settings_version_table_schema=settings.version_table_schema,
                hint="set --version-table / --version-table-schema to what env.py uses",
            )
        original(*args, **kw)

    env.configure = configure  # type: ignore[method-assign]
    return env


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _run_env_once(
    config: Config,
    script: ScriptDirectory,
    conn: Connection,
    target: str,
    tracker: _Tracker,
    settings: Settings,
    *,
    migrate: bool = True,
) -> None:
    def upgrade(rev: Any, context: Any) -> Any:
        if not migrate:
            return []
        # The same step list alembic.command.upgrade builds.
        return tracker.track(script._upgrade_revs(target, rev))

    config.attributes["connection"] = conn
    try:
        with _deploy_environment(config, script, upgrade, target, tracker, settings):
            script.run_env()
        if conn.in_transaction():
            conn.commit()
    except BaseException:
        if conn.in_transaction():
            conn.rollback()
        raise
    finally:
        config.attributes.pop("connection", None)
        reassert_stdlib_logging()


def upgrade_to_head(
    config: Config,
    script: ScriptDirectory,
    engine: Engine,
    backend: Backend,
    settings: Settings,
    state: RevisionState,
    url: str,
) -> UpgradeResult:
    """Apply ``state.pending`` (to ``state.target``) one committed revision at a time."""
    if state.target is None or not state.pending:
        return UpgradeResult()
    log.info("upgrade.started", target=state.target, pending=list(state.pending))
    result = run_upgrade(
        config,
        script,
        engine,
        backend,
        settings,
        state.target,
        url,
        defensive_mode=settings.defensive,
    )
    log.info(
        "upgrade.finished",
        applied=len(result.applied),
        skipped_operations=len(result.skipped),
        attempts=result.attempts,
    )
    return result


def run_upgrade(
    config: Config,
    script: ScriptDirectory,
    engine: Engine,
    backend: Backend,
    settings: Settings,
    target: str,
    url: str,
    *,
    defensive_mode: bool,
    step: str = "upgrade",
) -> UpgradeResult:
    """Run env.py to upgrade ``engine``'s database to ``target`` (a revision, head or heads).

    ``url`` is what env.py sees as ``sqlalchemy.url`` and ``DATABASE_URL`` for the run.
    """
    result = UpgradeResult()
    tracker = _Tracker(result, step=step)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    environ = {"DATABASE_URL": url, **backend.migration_environ(settings)}

    def before_retry(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        log.warning(
            "upgrade.lock_retry",
            revision=tracker.current,
            attempt=retry_state.attempt_number,
            error=describe(error) if error else None,
            sleep_s=round(retry_state.upcoming_sleep, 3),
        )

    retrying = backend.lock_retrying(settings, before_retry)
    try:
        with _environ(environ), defensive.defensive_operations(defensive_mode) as skipped:
            result.skipped = skipped
            for attempt in retrying:
                with attempt:
                    result.attempts = attempt.retry_state.attempt_number
                    with engine.connect() as conn:
                        backend.prepare_migration_connection(conn, settings)
                        _run_env_once(config, script, conn, target, tracker, settings)
    except DeployError:
        raise
    except Exception as exc:
        failed = tracker.current
        where = f"revision {failed}" if failed else "env.py (before any revision ran)"
        raise MigrationFailedError(
            f"migration failed in {where}: {describe(exc)}",
            revision=failed,
            applied=[a.revision for a in result.applied],
            hint=(
                f"{where} was rolled back; "
                + (
                    f"{len(result.applied)} earlier revision(s) stay applied; "
                    if result.applied
                    else ""
                )
                + "fix the migration and deploy again (run with --debug for the traceback)"
            ),
        ) from exc
    return result


def load_target_metadata(
    config: Config,
    script: ScriptDirectory,
    engine: Engine,
    backend: Backend,
    settings: Settings,
    url: str,
) -> Any:
    """env.py's ``target_metadata`` (the head models), by running env.py with no migrations.

    Returns None when env.py sets none. Raises :class:`MigrationFailedError` when env.py fails.
    """
    tracker = _Tracker(UpgradeResult())
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    try:
        with _environ({"DATABASE_URL": url}), engine.connect() as conn:
            _run_env_once(config, script, conn, "heads", tracker, settings, migrate=False)
    except Exception as exc:
        raise MigrationFailedError(
            f"env.py failed while loading target_metadata: {describe(exc)}",
            revision=None,
            applied=[],
            hint="run `alembic check` to see the same error",
        ) from exc
    return tracker.target_metadata
