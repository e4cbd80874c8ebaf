"""Wait step: connect with retries until the database answers or the deadline passes.

Only *transient* failures are retried (connection refused, DNS not resolvable yet, "the
database system is starting up", too many connections, time-outs); a *permanent* one
(authentication, unknown database or role, missing driver) fails at once, because retrying a
wrong password until the deadline only delays the page (HikariCP#2106).

Like dbmate's ``Wait``, this proves the server accepts our connection; it does not check the
schema. Raises :class:`DatabaseUnreachableError` (exit 3) at the deadline and
:class:`ConnectionRefusedPermanentlyError` (exit 4) on a permanent error.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from runner.config import Settings, mask_text
from runner.errors import (
    ConnectionRefusedPermanentlyError,
    DatabaseUnreachableError,
    DeployError,
)
from runner.logs import get_logger

log = get_logger(__name__)

# libpq/psycopg and sqlite3 report connection failures as text, without an SQLSTATE, so the
# classification reads the message. Permanent markers win over transient ones.
_PERMANENT = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",  # database "x" / role "x"
    "no pg_hba.conf entry",
    "permission denied",
    "invalid dsn",
    "invalid connection option",
    "unable to open database file",
    "ssl is not enabled",
    "certificate",
)
_TRANSIENT = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "starting up",
    "shutting down",
    "in recovery mode",
    "not accepting connections",
    "not yet accepting connections",
    "too many connections",
    "too many clients",  # PostgreSQL's max_connections: "sorry, too many clients already"
    "remaining connection slots",
    "timeout expired",
    "timed out",
    "server closed the connection unexpectedly",
    "connection reset",
    "could not receive data",
    "terminating connection due to administrator command",
    "network is unreachable",
    "no route to host",
    "no such file or directory",  # unix socket not there yet
    "database is locked",
)
_TRANSIENT_SQLSTATES = {"57P03", "53300", "53400", "08001", "08006", "57P01", "57P02"}


def is_transient(exc: BaseException) -> bool:
    """True when waiting and retrying can make this connection error go away."""
    if isinstance(exc, NoSuchModuleError | ArgumentError | ImportError):
        return False
    if not isinstance(exc, DBAPIError):
        return isinstance(exc, OSError | TimeoutError)
    message = str(exc.orig if exc.orig is not None else exc).lower()
    if any(marker in message for marker in _PERMANENT):
        return False
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    if code in _TRANSIENT_SQLSTATES:
        return True
    return any(marker in message for marker in _TRANSIENT)


def describe(exc: BaseException) -> str:
    """One masked line for an exception: the driver's message, not SQLAlchemy's wrapper."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = " ".join(str(inner).split())
    return mask_text(first or type(inner).__name__)


def wait_for_database(
    engine: Engine, settings: Settings, *, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Block until ``engine`` connects and answers ``SELECT 1``; return the attempts it took."""
    deadline = time.monotonic() + settings.wait_timeout
    backoff = wait_exponential(
        multiplier=settings.wait_initial, max=settings.wait_max
    ) + wait_random(0, settings.wait_initial)

    def wait_within_deadline(state: RetryCallState) -> float:
        return max(0.0, min(backoff(state), deadline - time.monotonic()))

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "wait.retrying",
            attempt=state.attempt_number,
            error_class=type(error).__name__ if error else None,
            error=describe(error) if error else None,
            sleep_s=round(state.upcoming_sleep, 3),
            remaining_s=round(max(0.0, deadline - time.monotonic()), 3),
        )

    retrying = Retrying(
        stop=stop_after_delay(settings.wait_timeout),
        wait=wait_within_deadline,
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                    version = connection.dialect.server_version_info
    except DeployError:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise ConnectionRefusedPermanentlyError(
                f"cannot connect to the database: {describe(exc)}",
                hint="check the user, password, database name and driver in DATABASE_URL "
                "(retrying will not help)",
            ) from exc
        raise DatabaseUnreachableError(
            f"database unreachable after {attempts} attempt(s) in "
            f"{settings.wait_timeout:g}s: {describe(exc)}",
            attempts=attempts,
            last_error=describe(exc),
            hint="check that the server is running and reachable from here, or raise "
            "--wait-timeout / ALEMBIC_DEPLOY_WAIT_TIMEOUT",
        ) from exc
    log.info(
        "wait.connected",
        attempts=attempts,
        server_version=".".join(str(part) for part in version or ()),
    )
    return attempts
