"""The PostgreSQL harness itself: per-test databases, private clusters, real authentication."""

from __future__ import annotations

import contextlib

import psycopg2
import pytest
import sqlalchemy as sa

from tests.fixtures.postgres import PASSWORD, PostgresCluster, PostgresServer


def _connect(url: str) -> psycopg2.extensions.connection:
    params = sa.make_url(url).translate_connect_args(username="user", database="dbname")
    return psycopg2.connect(connect_timeout=5, **params)


def _can_connect(url: str) -> bool:
    try:
        with contextlib.closing(_connect(url)):
            return True
    except psycopg2.OperationalError:
        return False


def test_pg_url_is_connectable_and_empty(pg_url: str, pg_engine: sa.Engine) -> None:
    url = sa.make_url(pg_url)
    assert url.drivername == "postgresql+psycopg2"
    assert url.password == PASSWORD
    assert url.host == "127.0.0.1"
    with pg_engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_database()")) == url.database
        assert sa.inspect(conn).get_table_names() == []
        assert conn.scalar(sa.text("SHOW server_encoding")) == "UTF8"


@pytest.mark.parametrize("which", ["first", "second"])
def test_each_test_gets_its_own_database(pg_engine: sa.Engine, which: str) -> None:
    # Whichever runs second would see the marker table if the database were shared.
    with pg_engine.begin() as conn:
        assert not sa.inspect(conn).has_table("marker")
        conn.execute(sa.text("CREATE TABLE marker (which text)"))
        conn.execute(sa.text("INSERT INTO marker VALUES (:which)"), {"which": which})


def test_drop_database_terminates_open_connections(pg_cluster: PostgresServer) -> None:
    name = 'Odd "name" with spaces'
    pg_cluster.create_database(name)
    try:
        conn = _connect(pg_cluster.url(name))
        with conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone() == (name,)
    finally:
        pg_cluster.drop_database(name)
    with pytest.raises(psycopg2.OperationalError):
        conn.cursor().execute("SELECT 1")
    conn.close()
    assert not _can_connect(pg_cluster.url(name))


def test_wrong_password_is_rejected(pg_cluster: PostgresServer) -> None:
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _connect(pg_cluster.url(password="wrong-pw")).close()


def test_session_cluster_reports_version(pg_cluster: PostgresServer) -> None:
    assert pg_cluster.version.split(".")[0].isdigit()


def test_own_cluster_starts_stops_is_killed_and_recovers(own_cluster: PostgresCluster) -> None:
    url = own_cluster.url()
    assert not own_cluster.is_running()
    assert not _can_connect(url)

    own_cluster.start()
    assert own_cluster.is_running()
    with contextlib.closing(_connect(url)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE survivor (id int)")
        conn.commit()

    own_cluster.stop()
    assert not own_cluster.is_running()
    assert not _can_connect(url)

    own_cluster.start()
    held = _connect(url)
    own_cluster.kill()
    assert not own_cluster.is_running()
    with pytest.raises(psycopg2.OperationalError):
        held.cursor().execute("SELECT 1")
    held.close()
    assert not _can_connect(url)

    # Crash recovery over the stale postmaster.pid, and committed work survives it.
    own_cluster.start()
    own_cluster.restart()
    with contextlib.closing(_connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM survivor")
        assert cur.fetchone() == (0,)
    assert "database system was interrupted" in own_cluster.log_file.read_text()
