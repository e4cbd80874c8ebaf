"""Upgrade step: ``alembic upgrade`` through the user's own env.py, in a worker, under the lock.

env.py *is* the API (alembic#795), so we feed it rather than work around it: in the worker
(:mod:`runner.worker`) ``sqlalchemy.url`` and ``DATABASE_URL`` name the database being
deployed, ``config.attributes["connection"]`` carries a prepared connection for an env.py that
honours it, and an env.py that builds its own engine still gets the DDL ``lock_timeout``
through libpq's ``PGOPTIONS``. The worker forces one transaction per revision (each all or
nothing; a long chain does not exhaust the server's lock table) and, before each commit, asks
this process or (on PostgreSQL, once it has been answered) sees for itself that this
process's lock session still holds the lock, so a lost lock stops the run before another
revision lands.

A revision that fails on the DDL lock time-out is retried in a fresh worker, a bounded number
of times. Raises :class:`MigrationFailedError` (exit 8) naming the failed revision (the
revisions before it stay committed, the failed one is rolled back), :class:`LockLostError`
(exit 5) and :class:`Interrupted` (exit 130).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState

from runner.deployment import Deployment, job, worker_environ
from runner.errors import ConfigError, ConnectionLostError, MigrationFailedError
from runner.lock import Locker
from runner.logs import get_logger
from runner.revisions import RevisionState
from runner.supervise import Supervisor, WorkerFailed

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
    skipped: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


class _LockTimeoutInWorker(Exception):
    def __init__(self, failed: WorkerFailed) -> None:
        super().__init__(failed.error)
        self.failed = failed


def upgrade_to_head(
    dep: Deployment,
    state: RevisionState,
    locker: Locker,
    on_applied: Callable[[AppliedRevision], None] | None = None,
    *,
    defensive: bool | None = None,
) -> UpgradeResult:
    """Apply ``state.pending`` (to ``state.target``) one committed revision at a time.

    ``on_applied`` is told of each revision as soon as it committed. ``defensive`` (default:
    the setting) turns the defensive lookups on or off for this run.
    """
    result = UpgradeResult()
    if state.target is None or not state.pending:
        return result
    settings = dep.settings
    if defensive is None:
        defensive = settings.defensive
    log.info(
        "upgrade.started",
        target=state.target,
        pending=list(state.pending),
        defensive=defensive,
        **(
            {"why": "the database is the snapshot's clean replay, which skipped nothing"}
            if settings.defensive and not defensive
            else {}
        ),
    )

    def applied(record: dict[str, Any]) -> None:
        revision = AppliedRevision(
            record["revision"], tuple(record["down_revisions"]), record["duration_ms"]
        )
        result.applied.append(revision)
        if on_applied is not None:
            on_applied(revision)

    supervisor = Supervisor(
        step="upgrade",
        watch=locker.check,
        on_applied=applied,
        on_configured=lambda configured: _require_version_table(configured, dep),
        cancel=dep.cancel_sessions,
        describe=dep.statement_status,
        debug=settings.debug,
    )
    spec = job(
        "upgrade",
        settings,
        dep.database,
        tag=supervisor.tag,
        stages=[[state.target]],
        defensive=defensive,
        gate=True,
        # The worker checks the lock itself before each commit, and asks only when it cannot
        # see it held: no round trip per revision.
        lock_proof=locker.proof(),
    )
    environ = worker_environ(settings, dep.database)

    def before_retry(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        failed = error.failed if isinstance(error, _LockTimeoutInWorker) else None
        log.warning(
            "upgrade.lock_retry",
            revision=failed.revision if failed else None,
            attempt=retry_state.attempt_number,
            error=failed.error if failed else None,
            sleep_s=round(retry_state.upcoming_sleep, 3),
        )

    retrying = dep.backend.lock_retrying(settings, before_retry)
    retrying.retry = _retry_lock_timeouts
    try:
        for attempt in retrying:
            with attempt:
                result.attempts = attempt.retry_state.attempt_number
                try:
                    outcome = supervisor.run(spec, environ)
                except WorkerFailed as failed:
                    if failed.lock_timeout:
                        raise _LockTimeoutInWorker(failed) from None
                    raise
                result.skipped.extend(outcome.skipped)
    except _LockTimeoutInWorker as timed_out:
        raise _failure(timed_out.failed, result) from None
    except WorkerFailed as failed:
        raise _failure(failed, result) from None
    log.info(
        "upgrade.finished",
        applied=len(result.applied),
        skipped_operations=len(result.skipped),
        attempts=result.attempts,
    )
    return result


def _retry_lock_timeouts(state: RetryCallState) -> bool:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return False
    return isinstance(outcome.exception(), _LockTimeoutInWorker)


def _failure(failed: WorkerFailed, result: UpgradeResult) -> MigrationFailedError:
    where = f"revision {failed.revision}" if failed.revision else "env.py (before any revision ran)"
    applied = [a.revision for a in result.applied] or failed.applied
    earlier = f"{len(applied)} earlier revision(s) stay applied; " if applied else ""
    if failed.connection_lost:
        return ConnectionLostError(
            f"the database connection was lost during {where}: {failed.error}",
            revision=failed.revision,
            applied=applied,
            traceback=failed.traceback,
            hint=f"{where} never committed (the server rolls it back); {earlier}nothing is "
            "wrong with the migration: check that the server is up, then deploy again",
        )
    return MigrationFailedError(
        f"migration failed in {where}: {failed.error}",
        revision=failed.revision,
        applied=applied,
        traceback=failed.traceback,
        hint=f"{where} was rolled back; {earlier}fix the migration and deploy again "
        "(run with --debug for the traceback)",
    )


def _require_version_table(configured: dict[str, Any], dep: Deployment) -> None:
    """Refuse (exit 2) before anything commits when env.py migrates another version table
    than the one the runner locked, read and will verify."""
    settings = dep.settings
    table = configured.get("version_table") or "alembic_version"
    schema = configured.get("version_table_schema")
    if (table, schema) != (settings.version_table, settings.version_table_schema):
        used = f"{schema}.{table}" if schema else table
        told = (
            f"{settings.version_table_schema}.{settings.version_table}"
            if settings.version_table_schema
            else settings.version_table
        )
        raise ConfigError(
            f"env.py migrates version table {used}, but alembic-deploy reads {told} "
            "(--version-table / --version-table-schema)",
            hint="set --version-table / --version-table-schema (or their ALEMBIC_DEPLOY_ "
            "variables) to what env.py passes to context.configure()",
        )
