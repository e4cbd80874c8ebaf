"""Wait step: which connection errors are retried (transient) and which fail at once.

Errors are real ``sqlalchemy.exc`` instances wrapping driver exceptions with the texts libpq,
psycopg and sqlite3 produce. ``wait_for_database`` is driven through its ``sleep`` seam, so
nothing here sleeps.
"""

from __future__ import annotations

import socket
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)

from runner.config import Settings
from runner.errors import (
    ConnectionRefusedPermanentlyError,
    DatabaseUnreachableError,
    ExitCode,
    Interrupted,
)
from runner.wait import describe, is_transient, wait_for_database

# An address where nothing listens: every connect is refused at once (a transient error).
REFUSED_URL = "postgresql+psycopg2://app:s3cret-pw@127.0.0.1:1/appdb"


def pg_error(message: str) -> OperationalError:
    """What SQLAlchemy raises when psycopg2's connect fails with ``message``."""
    return OperationalError("SELECT 1", None, psycopg2.OperationalError(message))


def sqlite_error(message: str) -> OperationalError:
    return OperationalError("SELECT 1", None, sqlite3.OperationalError(message))


class _DriverErrorWithState(Exception):
    """A DBAPI error carrying an SQLSTATE, as psycopg2 (``pgcode``) and psycopg (``sqlstate``)
    do for errors the server reports with a code."""

    def __init__(self, message: str, *, pgcode: str | None = None, sqlstate: str | None = None):
        super().__init__(message)
        self.pgcode = pgcode
        self.sqlstate = sqlstate


TRANSIENT_MESSAGES = {
    "connection refused": 'connection to server at "127.0.0.1", port 5432 failed: '
    "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
    "connections?",
    "starting up": 'connection to server at "db" (172.18.0.2), port 5432 failed: FATAL:  '
    "the database system is starting up",
    "shutting down": "FATAL:  the database system is shutting down",
    "recovery": "FATAL:  the database system is in recovery mode",
    "not yet accepting": "FATAL:  the database system is not yet accepting connections\n"
    "DETAIL:  Consistent recovery state has not been yet reached.",
    "too many connections for role": 'FATAL:  too many connections for role "app"',
    "reserved slots": "FATAL:  remaining connection slots are reserved for non-replication "
    "superuser connections",
    "dns not ready": 'could not translate host name "db" to address: Temporary failure in '
    "name resolution",
    "dns unknown": 'could not translate host name "db" to address: Name or service not known',
    "unix socket missing": 'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" '
    "failed: No such file or directory\n\tIs the server running locally and accepting "
    "connections on that socket?",
    "timeout": "timeout expired",
    "closed unexpectedly": "server closed the connection unexpectedly\n\tThis probably means "
    "the server terminated abnormally\n\tbefore or while processing the request.",
    "admin shutdown": "FATAL:  terminating connection due to administrator command",
    "no route": 'connection to server at "10.0.0.9", port 5432 failed: No route to host',
}

PERMANENT_MESSAGES = {
    "password": 'connection to server at "db" (172.18.0.2), port 5432 failed: FATAL:  '
    'password authentication failed for user "app"',
    "unknown database": 'connection to server at "db", port 5432 failed: FATAL:  '
    'database "x" does not exist',
    "unknown role": 'connection to server at "db", port 5432 failed: FATAL:  '
    'role "nobody" does not exist',
    "pg_hba": 'FATAL:  no pg_hba.conf entry for host "10.0.0.7", user "app", database '
    '"appdb", no encryption',
    "no password": "fe_sendauth: no password supplied",
    "permission": 'FATAL:  permission denied for database "appdb"\nDETAIL:  User does not '
    "have CONNECT privilege.",
    "bad dsn": 'invalid dsn: invalid connection option "sslmod"',
    "ssl off": "server does not support SSL, but SSL was required",
}


@pytest.mark.parametrize("message", TRANSIENT_MESSAGES.values(), ids=TRANSIENT_MESSAGES.keys())
def test_postgres_errors_that_waiting_can_fix_are_transient(message: str) -> None:
    assert is_transient(pg_error(message))


@pytest.mark.parametrize("message", PERMANENT_MESSAGES.values(), ids=PERMANENT_MESSAGES.keys())
def test_postgres_errors_that_retrying_cannot_fix_are_permanent(message: str) -> None:
    assert not is_transient(pg_error(message))


def test_a_permanent_marker_wins_over_a_transient_one_in_the_same_message() -> None:
    # "could not connect" alone would be retried; the unknown database must not be.
    message = 'could not connect to server: FATAL:  database "x" does not exist'
    assert not is_transient(pg_error(message))


def test_classification_reads_the_driver_message_not_the_wrapper_text() -> None:
    # SQLAlchemy's str() adds "[SQL: ...]" and a link; the statement must not sway the result.
    error = OperationalError(
        "SELECT 'connection refused'",
        None,
        psycopg2.OperationalError("password authentication failed"),
    )
    assert not is_transient(error)


@pytest.mark.parametrize(
    ("code_attribute", "code"),
    [
        ("pgcode", "57P03"),  # cannot_connect_now
        ("pgcode", "53300"),  # too_many_connections
        ("sqlstate", "08006"),  # connection_failure (psycopg 3 names it sqlstate)
        ("sqlstate", "57P01"),  # admin_shutdown
    ],
)
def test_a_transient_sqlstate_is_retried_whatever_the_text(code_attribute: str, code: str) -> None:
    orig = _DriverErrorWithState(
        "FATAL:  something the markers do not know", **{code_attribute: code}
    )
    assert is_transient(OperationalError("SELECT 1", None, orig))


def test_an_unknown_sqlstate_with_an_unknown_text_is_permanent() -> None:
    orig = _DriverErrorWithState("FATAL:  something the markers do not know", pgcode="28P01")
    assert not is_transient(OperationalError("SELECT 1", None, orig))


def test_a_permanent_text_wins_over_a_transient_sqlstate() -> None:
    orig = _DriverErrorWithState('FATAL:  role "x" does not exist', pgcode="08006")
    assert not is_transient(OperationalError("SELECT 1", None, orig))


def test_postgres_max_connections_text_is_transient() -> None:
    assert is_transient(pg_error("FATAL:  sorry, too many clients already"))


def test_sqlite_locked_is_transient_and_unopenable_file_is_permanent() -> None:
    assert is_transient(sqlite_error("database is locked"))
    assert not is_transient(sqlite_error("unable to open database file"))


def test_other_dbapi_error_classes_are_classified_by_text_too() -> None:
    refused = InterfaceError("SELECT 1", None, psycopg2.InterfaceError("connection refused"))
    closed = DBAPIError("SELECT 1", None, psycopg2.InterfaceError("connection already closed"))
    assert is_transient(refused)
    assert not is_transient(closed)


def test_missing_driver_and_bad_url_are_permanent() -> None:
    assert not is_transient(NoSuchModuleError("Can't load plugin: sqlalchemy.dialects:mysql"))
    assert not is_transient(ArgumentError("Could not parse SQLAlchemy URL from string 'x'"))
    assert not is_transient(ModuleNotFoundError("No module named 'psycopg2'"))


@pytest.mark.parametrize(
    "error",
    [
        OSError("network is down"),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        socket.gaierror(-3, "Temporary failure in name resolution"),
    ],
    ids=["OSError", "ConnectionRefusedError", "ConnectionResetError", "TimeoutError", "gaierror"],
)
def test_os_level_errors_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), RuntimeError("boom"), KeyError("k")],
    ids=lambda e: type(e).__name__,
)
def test_other_exceptions_are_permanent(error: BaseException) -> None:
    assert not is_transient(error)


def test_describe_gives_the_driver_message_on_one_line_with_the_password_masked() -> None:
    error = pg_error(
        "could not connect: postgresql://app:hunter2-pw@db:5432/appdb\n\tis the server running?"
    )
    text = describe(error)
    assert "\n" not in text
    assert "hunter2-pw" not in text
    assert "postgresql://app:***@db:5432/appdb" in text
    assert "[SQL:" not in text


# --- wait_for_database through its sleep seam ----------------------------------------------


@pytest.fixture
def refused_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine(REFUSED_URL)
    yield engine
    engine.dispose()


class NoSleep:
    """A ``sleep`` that records the delays it was asked for and never sleeps."""

    def __init__(self, raise_on_call: int | None = None) -> None:
        self.calls: list[float] = []
        self.raise_on_call = raise_on_call

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.raise_on_call is not None and len(self.calls) >= self.raise_on_call:
            raise Interrupted("received SIGTERM; stopping")


def test_interrupted_while_waiting_propagates_as_interrupted(refused_engine: sa.Engine) -> None:
    sleep = NoSleep(raise_on_call=1)
    with pytest.raises(Interrupted) as caught:
        wait_for_database(refused_engine, Settings(wait_timeout=60), sleep=sleep)
    assert caught.type is Interrupted  # not wrapped into a connection error
    assert caught.value.exit_code is ExitCode.INTERRUPTED
    assert len(sleep.calls) == 1  # the refused connect was retried: it is transient


def test_interrupted_after_several_retries_still_propagates(refused_engine: sa.Engine) -> None:
    sleep = NoSleep(raise_on_call=3)
    with pytest.raises(Interrupted):
        wait_for_database(
            refused_engine, Settings(wait_timeout=60, wait_initial=0.01, wait_max=0.02), sleep=sleep
        )
    assert len(sleep.calls) == 3
    assert all(0 <= delay <= 60 for delay in sleep.calls)


def test_transient_errors_until_the_deadline_are_unreachable(refused_engine: sa.Engine) -> None:
    sleep = NoSleep()
    # A deadline shorter than one connect attempt: the first failure is also the last.
    with pytest.raises(DatabaseUnreachableError) as caught:
        wait_for_database(refused_engine, Settings(wait_timeout=1e-6), sleep=sleep)
    error = caught.value
    assert error.exit_code is ExitCode.UNREACHABLE
    assert error.attempts == 1
    assert "Connection refused" in error.last_error
    assert "s3cret-pw" not in error.message
    assert isinstance(error.__cause__, OperationalError)
    assert sleep.calls == []


def test_a_permanent_error_fails_at_once_without_sleeping(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'app.db'}")
    sleep = NoSleep()
    try:
        with pytest.raises(ConnectionRefusedPermanentlyError) as caught:
            wait_for_database(engine, Settings(wait_timeout=60), sleep=sleep)
    finally:
        engine.dispose()
    assert caught.value.exit_code is ExitCode.CONNECTION_REFUSED
    assert "unable to open database file" in caught.value.message
    assert isinstance(caught.value.__cause__, OperationalError)
    assert sleep.calls == []


def test_a_reachable_database_connects_on_the_first_attempt(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    sleep = NoSleep()
    try:
        assert wait_for_database(engine, Settings(wait_timeout=60), sleep=sleep) == 1
    finally:
        engine.dispose()
    assert sleep.calls == []


def test_waiting_uses_no_deprecated_tenacity_argument(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            wait_for_database(engine, Settings(wait_timeout=60), sleep=NoSleep())
    finally:
        engine.dispose()
