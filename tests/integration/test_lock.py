"""The migration lock as another session sees it: the worker checks it before each commit
(``still_held``) instead of asking the runner, so what it sees must be exactly "the runner's
own session still holds it"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from runner.cli import parse_settings
from runner.lock import LockProof, PostgresAdvisoryLocker, still_held


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def locker(engine: sa.Engine, pg_url: str) -> PostgresAdvisoryLocker:
    settings = parse_settings(["migrate", "--lock-timeout", "0"], {"DATABASE_URL": pg_url})
    return PostgresAdvisoryLocker(engine, settings)


def acquired(engine: sa.Engine, pg_url: str) -> tuple[PostgresAdvisoryLocker, LockProof]:
    """A locker that holds the lock, and its proof."""
    held = locker(engine, pg_url)
    held.acquire()
    proof = held.proof()
    assert proof is not None
    return held, proof


def seen_held(engine: sa.Engine, proof: LockProof) -> bool:
    # As the worker asks: inside a transaction of its own session, which stays usable.
    with engine.begin() as conn:
        held = still_held(conn, proof)
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        return held


def test_the_lock_is_seen_held_only_while_its_own_session_holds_it(
    engine: sa.Engine, pg_url: str
) -> None:
    first = locker(engine, pg_url)
    assert first.proof() is None  # not acquired yet
    first.acquire()
    proof = first.proof()
    assert proof is not None and seen_held(engine, proof)
    # Another key (another run's witness) is not this lock.
    assert not seen_held(engine, {"witness": proof["witness"] ^ 1})

    first.release()
    assert first.proof() is None and not seen_held(engine, proof)


def test_checking_the_lock_leaves_nothing_held_and_a_failed_check_ends_with_its_transaction(
    engine: sa.Engine, pg_url: str
) -> None:
    first, proof = acquired(engine, pg_url)
    witness_locks = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    )
    try:
        with engine.begin() as conn:
            assert still_held(conn, proof)
            assert conn.execute(witness_locks).scalar() == 0
    finally:
        first.release()
    with engine.connect() as conn:
        assert not still_held(conn, proof)
        assert conn.execute(witness_locks).scalar() == 1  # the checker's, until it ends
        conn.rollback()
        assert conn.execute(witness_locks).scalar() == 0


def test_a_terminated_lock_session_is_not_seen_held_even_once_another_takes_the_lock(
    engine: sa.Engine, pg_url: str
) -> None:
    first, proof = acquired(engine, pg_url)
    with engine.connect() as conn:
        holder = first.holder(conn)
        assert holder is not None
        # With a timeout, pg_terminate_backend returns once the session has gone (and the
        # server has freed its locks).
        ended = conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), holder)
        assert ended.scalar() is True
    assert not seen_held(engine, proof)
    second, again = acquired(engine, pg_url)
    try:
        assert seen_held(engine, again)
        assert not seen_held(engine, proof)
    finally:
        second.release()
