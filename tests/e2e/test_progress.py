"""Progress: a long revision is never silent. Every few seconds ``upgrade.still_running``
says how long it has run and what the server says its statement is doing: running, or
waiting for a lock and on which session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import db_revisions, upgrade_to
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


def test_a_12_second_statement_yields_heartbeats_saying_what_it_runs(
    pg_url: str, project: Project
) -> None:
    ini = project("slow_revision")
    result = run_cli(
        "migrate",
        "--no-shadow",
        "--config",
        str(ini),
        env={"DATABASE_URL": pg_url, "SLOW_REVISION_SECONDS": "12"},
    )
    assert result.returncode == ExitCode.OK, result
    beats = [e for e in result.named("upgrade.still_running") if e["revision"] == "ed0000000002"]
    assert len(beats) >= 2, result
    assert beats[-1]["elapsed_s"] > beats[0]["elapsed_s"] >= 4
    assert beats[0]["state"] == "active" and "pg_sleep" in beats[0]["statement"], beats[0]


def test_a_revision_waiting_for_a_lock_names_the_session_that_holds_it(
    pg_url: str, project: Project, start_cli: Callable[..., Any]
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "aa0000000004")  # the next revision alters users
    engine = create_engine(pg_url, poolclass=NullPool)
    blocker = engine.connect()
    try:
        blocker.execute(text("LOCK TABLE users IN ACCESS SHARE MODE"))
        blocker_pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar()
        runner = start_cli(
            "migrate",
            "--no-shadow",
            "--ddl-lock-timeout",
            "0",
            "--config",
            str(ini),
            env={"DATABASE_URL": pg_url},
        )
        beat = runner.wait_for_event("upgrade.still_running", timeout=60)
        assert beat["revision"] == "aa0000000005", beat
        assert beat["waiting_for"].startswith("Lock:"), beat
        assert str(blocker_pid) in beat["blocked_by"], beat
        assert "idle in transaction" in beat["blocked_by"], beat
    finally:
        blocker.rollback()
        blocker.close()
        engine.dispose()
    result = runner.finish(timeout=120)
    assert result.returncode == ExitCode.OK, result
    assert db_revisions(pg_url) == ["aa0000000007"]
