"""The sessions a replay's env.py opens: libpq applies the runner's ``PGOPTIONS`` to every
connection, whoever builds the engine. A scratch database commits without waiting for the disk;
the deploy's own sessions keep the server's durability."""

from __future__ import annotations

import os

import psycopg2
import pytest
import sqlalchemy as sa

from runner.backends import backend_for
from runner.cli import parse_settings


def session_setting(pg_url: str, options: str, name: str) -> str:
    # As an env.py that builds its own engine connects: libpq reads PGOPTIONS itself.
    dsn = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    saved = os.environ.get("PGOPTIONS")
    os.environ["PGOPTIONS"] = options
    try:
        conn = psycopg2.connect(dsn)
    finally:
        if saved is None:
            del os.environ["PGOPTIONS"]
        else:
            os.environ["PGOPTIONS"] = saved
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.current_setting(%s)", (name,))
            row = cur.fetchone()
            assert row is not None
            return str(row[0])
    finally:
        conn.close()


@pytest.fixture
def durable_url(pg_url: str) -> str:
    """The test's database with synchronous commits, whatever the test cluster's default."""
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            name = conn.dialect.identifier_preparer.quote(conn.engine.url.database or "")
            conn.execute(sa.text(f"ALTER DATABASE {name} SET synchronous_commit = on"))
    finally:
        engine.dispose()
    return pg_url


@pytest.mark.parametrize("mirror", [{}, {"search_path": "app, public"}], ids=["plain", "mirror"])
def test_a_replay_session_commits_without_waiting_for_the_disk(
    durable_url: str, mirror: dict[str, str]
) -> None:
    pg_url = durable_url
    assert session_setting(pg_url, "", "synchronous_commit") == "on"
    backend = backend_for(sa.make_url(pg_url))
    settings = parse_settings(["migrate"], {"DATABASE_URL": pg_url})
    # What worker_environ gives a replay's worker (deployment.worker_environ).
    options = backend.migration_environ(settings, backend.shadow_options(mirror))["PGOPTIONS"]
    assert session_setting(pg_url, options, "synchronous_commit") == "off"
    if mirror:
        assert session_setting(pg_url, options, "search_path") == "app, public"


def test_the_deploys_own_sessions_keep_the_servers_durability(durable_url: str) -> None:
    pg_url = durable_url
    backend = backend_for(sa.make_url(pg_url))
    settings = parse_settings(["migrate"], {"DATABASE_URL": pg_url})
    options = backend.migration_environ(settings).get("PGOPTIONS", "")
    assert session_setting(pg_url, options, "synchronous_commit") == "on"
