"""Exit codes and the error tree.

Every failure the runner expects is a :class:`DeployError` subclass that carries its
``exit_code``, the data that explains it, and an operator ``hint``. Steps translate driver
and Alembic exceptions into these at the point where their meaning is known
(``raise ... from exc``); ``cli.main`` is the only place that turns them into an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, unique
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.drift import Finding


@unique
class ExitCode(IntEnum):
    """Process exit codes (README, "Exit codes")."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    UNREACHABLE = 3
    CONNECTION_REFUSED = 4
    LOCK_TIMEOUT = 5
    REVISION_GRAPH = 6
    DRIFT = 7
    MIGRATION_FAILED = 8
    POST_UPGRADE_DRIFT = 9
    PENDING = 10
    INTERRUPTED = 130


class DeployError(Exception):
    """A failure the runner expected; ``str()`` is the one-line message."""

    exit_code: ExitCode = ExitCode.UNEXPECTED
    event: str = "deploy.failed"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(DeployError):
    """Bad flag, environment variable, URL or Alembic configuration."""

    exit_code = ExitCode.USAGE
    event = "config.invalid"


class DatabaseUnreachableError(DeployError):
    """Transient connection failures lasted until the wait deadline."""

    exit_code = ExitCode.UNREACHABLE
    event = "wait.gave_up"

    def __init__(self, message: str, *, attempts: int, last_error: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.attempts = attempts
        self.last_error = last_error


class ConnectionRefusedPermanentlyError(DeployError):
    """A connection failure that retrying cannot fix (password, unknown database, driver)."""

    exit_code = ExitCode.CONNECTION_REFUSED
    event = "wait.failed"


class DatabaseNotWritableError(DeployError):
    """The database cannot take the migration's writes: a read-only server (hot standby,
    ``default_transaction_read_only``) or a role without CREATE on the schema."""

    exit_code = ExitCode.CONNECTION_REFUSED
    event = "revisions.not_writable"


class LockTimeoutError(DeployError):
    """Another runner held the migration lock until the lock timeout."""

    exit_code = ExitCode.LOCK_TIMEOUT
    event = "lock.timed_out"

    def __init__(self, message: str, *, holder: dict[str, object] | None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.holder = holder


class LockLostError(DeployError):
    """The migration lock's session ended while the runner worked."""

    exit_code = ExitCode.LOCK_TIMEOUT
    event = "lock.lost"

    def __init__(self, lock: str, reason: str) -> None:
        self.lock = lock
        self.reason = reason
        super().__init__(
            f"lost the migration lock {lock!r} ({reason}): another runner may be migrating "
            "now, so the revision in progress was rolled back and nothing more was applied",
            hint="the lock's session was ended (pg_terminate_backend, idle_session_timeout, a "
            "failover or a network cut); deploy again, it continues from the last committed "
            "revision",
        )


class RevisionGraphError(DeployError):
    """The revision graph or the database's stamp cannot be upgraded safely."""

    exit_code = ExitCode.REVISION_GRAPH
    event = "revisions.refused"


class MultipleHeadsError(RevisionGraphError):
    """The scripts have several unlabelled heads."""

    def __init__(self, heads: Sequence[str]) -> None:
        self.heads = tuple(heads)
        joined = " ".join(self.heads)
        super().__init__(
            f"the migration scripts have {len(self.heads)} heads: {', '.join(self.heads)}",
            hint=f'merge them with: alembic merge -m "merge heads" {joined} '
            "(or pass --allow-multiple-heads to upgrade every head)",
        )


class UnknownRevisionError(RevisionGraphError):
    """The database is stamped with a revision the scripts do not contain."""

    def __init__(self, revisions: Sequence[str]) -> None:
        self.revisions = tuple(revisions)
        super().__init__(
            "database is ahead of this code, or a migration file was deleted: "
            f"stamped revision {', '.join(self.revisions)} is not in the migration scripts",
            hint="deploy the code that contains this revision, or pass "
            "--allow-unknown-revision to start the app without migrating (rollbacks)",
        )


class UnstampedDatabaseError(RevisionGraphError):
    """Tables exist but the version table is missing or empty."""

    def __init__(
        self,
        tables: Sequence[str],
        version_table: str,
        *,
        matched: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.tables = tuple(tables)
        shown = ", ".join(self.tables[:5]) + (" ..." if len(self.tables) > 5 else "")
        super().__init__(
            f"database has {len(self.tables)} table(s) ({shown}) but no revision in "
            f"{version_table}" + (f"; {matched}" if matched else ""),
            hint=hint
            or "stamp the revision this schema matches with `alembic stamp <revision>`, or "
            "run with --adopt",
        )


class DriftError(DeployError):
    """The physical schema differs from the stamped revision and was not healed.

    Carries its ``findings``; the message names the first ten of them.
    """

    exit_code = ExitCode.DRIFT
    event = "verify.failed"

    def __init__(
        self, what: str, *, findings: Sequence[Finding] = (), hint: str | None = None
    ) -> None:
        self.findings = tuple(findings)
        message = what
        if self.findings:
            shown = "; ".join(f"{f.kind} {f.target}" for f in self.findings[:10])
            more = f" (and {len(self.findings) - 10} more)" if len(self.findings) > 10 else ""
            message = f"{what}: {len(self.findings)} problem(s): {shown}{more}"
        super().__init__(message, hint=hint)


class MigrationFailedError(DeployError):
    """A revision script (or env.py) raised; its transaction was rolled back."""

    exit_code = ExitCode.MIGRATION_FAILED
    event = "upgrade.failed"

    def __init__(
        self,
        message: str,
        *,
        revision: str | None,
        applied: Sequence[str],
        hint: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.revision = revision
        self.applied = tuple(applied)
        #: The worker's traceback (printed with --debug).
        self.traceback = traceback


class ConnectionLostError(MigrationFailedError):
    """The connection to the database broke during a revision (server stopped or restarted,
    session terminated, network): the revision's transaction never committed."""

    exit_code = ExitCode.UNREACHABLE
    event = "deploy.connection_lost"


class ReplayFailedError(DeployError):
    """A migration failed while replaying into a scratch database (the real one untouched)."""

    exit_code = ExitCode.MIGRATION_FAILED
    event = "shadow.replay_failed"

    def __init__(self, message: str, *, revision: str | None, traceback: str | None = None):
        super().__init__(
            message + " (the real database was not touched)",
            hint="run the chain on an empty database (`alembic upgrade head`) to see the same "
            "error; fix the migration or build a snapshot where it works",
        )
        self.revision = revision
        self.traceback = traceback


class PostUpgradeDriftError(DriftError):
    """After the upgrade the database is still not at the script heads."""

    exit_code = ExitCode.POST_UPGRADE_DRIFT
    event = "verify.after_upgrade_failed"


class PendingRevisionsError(DeployError):
    """``check`` found revisions that are not applied yet."""

    exit_code = ExitCode.PENDING
    event = "check.pending"


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived while the runner was working.

    A ``BaseException``, like ``KeyboardInterrupt``: the ``except Exception`` of a step (a
    lock check, a retry, a repair) must not turn a signal into another failure.
    """

    exit_code = ExitCode.INTERRUPTED
    event = "deploy.interrupted"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
