"""Faults: replicas racing, SIGKILLs at random moments, a server that stops mid-upgrade, a
runner killed during a shadow replay. Each test owns what it breaks (its databases, or its own
cluster) and proves the promise it names; marked ``slow`` (CI runs them).

The random kill moments come from a seed (``FAULT_SEED``, default 20261130) printed with
every failure, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import (
    advisory_locks,
    chain,
    clean_head,
    db_revisions,
    execute,
    ledger,
    physical,
    tables,
    upgrade_to,
)
from tests.fixtures.cli import run_cli

pytestmark = pytest.mark.slow

Project = Callable[[str], Path]
SEED = int(os.environ.get("FAULT_SEED", "20261130"))

# The app the replicas start: it records the revision the database is at when it starts.
_APP = """
import sys, psycopg2
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
cur.execute("SELECT version_num FROM alembic_version")
with open(sys.argv[2], "a") as out:
    out.write(",".join(sorted(row[0] for row in cur.fetchall())) + "\\n")
"""


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


def _scratch_databases(url: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT datname FROM pg_database "
                        "WHERE datname LIKE 'alembic\\_deploy\\_shadow\\_%'"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


def _await(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait for server-side state that has no event to await (a session ending)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _replicas(
    start_cli: Callable[..., Any], ini: Path, url: str, tmp_path: Path, count: int = 20
) -> tuple[list[Any], Path]:
    app = tmp_path / "app.py"
    app.write_text(_APP)
    started = tmp_path / "started.txt"
    runners = [
        start_cli(
            "run",
            "--config",
            str(ini),
            "--",
            sys.executable,
            str(app),
            _libpq(url),
            str(started),
            env={"DATABASE_URL": url},
        )
        for _ in range(count)
    ]
    return [runner.finish(timeout=300) for runner in runners], started


def test_twenty_replicas_on_an_empty_database(
    pg_url: str, project: Project, start_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """All exit 0, each revision applied exactly once, every app started at head."""
    ini = project("linear")
    results, started = _replicas(start_cli, ini, pg_url, tmp_path)
    for result in results:
        assert result.returncode == ExitCode.OK, result
    applied = Counter(e["revision"] for r in results for e in r.named("upgrade.revision_applied"))
    assert applied == Counter(chain(ini))
    head = chain(ini)[-1]
    assert started.read_text().splitlines() == [head] * 20
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as conn:  # the data migration's three rows, inserted once
        rows = list(conn.execute(text("SELECT key FROM settings")).scalars())
        assert len(rows) == 3 and len(set(rows)) == 3, rows
    engine.dispose()
    assert advisory_locks(pg_url) == 0


def test_twenty_replicas_on_a_drifted_database_repair_once(
    pg_url: str,
    project: Project,
    start_cli: Callable[..., Any],
    tmp_path: Path,
    make_db: Callable[[], str],
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[4])
    execute(pg_url, "DROP TABLE health_metrics")
    results, started = _replicas(start_cli, ini, pg_url, tmp_path)
    for result in results:
        assert result.returncode == ExitCode.OK, result
    repairs = [e for r in results for e in r.named("heal.repair_applied")]
    assert Counter(e["kind"] for e in repairs)["missing_table"] == 1
    assert [row[0] for row in ledger(pg_url)].count("missing_table") == 1
    applied = Counter(e["revision"] for r in results for e in r.named("upgrade.revision_applied"))
    assert applied == Counter(revisions[5:])
    assert started.read_text().splitlines() == [revisions[-1]] * 20
    assert physical(pg_url) == clean_head(ini, make_db)


def test_twenty_seeded_sigkills_never_leave_a_half_state(
    pg_url: str,
    project: Project,
    start_cli: Callable[..., Any],
    make_db: Callable[[], str],
) -> None:
    """SIGKILL at random moments of runs that wait, lock, replay, heal and upgrade: after
    each kill the database is at a revision of the chain with either all or none of the heal
    done; the next run reaches a clean head, removes leftover scratch databases and frees
    the lock."""
    rng = random.Random(SEED)
    ini = project("linear")
    revisions = chain(ini)
    reference = clean_head(ini, make_db)
    kills: list[str] = []
    for round_ in range(20):
        url = make_db()
        start = rng.randrange(3, 6)  # health_metrics exists from revisions[3] on
        upgrade_to(ini, url, revisions[start])
        drifted = rng.random() < 0.5
        if drifted:
            execute(url, "DROP TABLE health_metrics")
        # In some rounds a second replica races the victim, so the kill may land while the
        # victim waits for the lock (or while it holds it and the other one waits).
        rival = (
            start_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
            if rng.random() < 0.3
            else None
        )
        runner = start_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
        delay = rng.uniform(0.05, 4.0)
        time.sleep(delay)  # the kill moment itself is what is random; nothing is awaited
        os.kill(runner.pid, signal.SIGKILL)
        killed = runner.finish(timeout=60)
        phase = ([e["event"] for e in killed.events] or ["(start)"])[-1]
        kills.append(
            f"round {round_}: start {revisions[start]} drifted={drifted} rival={bool(rival)} "
            f"kill after {delay:.2f}s, last event {phase}"
        )
        context = f"seed {SEED}\n" + "\n".join(kills)
        if rival is not None:
            survived = rival.finish(timeout=120)
            assert survived.returncode == ExitCode.OK, f"{context}\n{survived}"
        stamped = db_revisions(url)
        assert len(stamped) == 1 and stamped[0] in revisions, context
        status = run_cli("status", "--json", "--config", str(ini), env={"DATABASE_URL": url})
        findings = {(f["kind"], f["table"]) for f in _json(status)["drift"]}
        assert findings in (set(), {("missing_table", "health_metrics")}), (
            f"{context}\nhalf-way state: {findings}"
        )
        _await(lambda u=url: advisory_locks(u) == 0, "the killed runner's locks to go")
        again = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
        assert again.returncode == ExitCode.OK, f"{context}\n{again}"
        assert physical(url) == reference, context
        assert _scratch_databases(url) == [], context  # the killed runs' leftovers too
    assert advisory_locks(pg_url) == 0


def _json(result: Any) -> dict[str, Any]:
    import json

    assert result.returncode in (ExitCode.OK, ExitCode.PENDING, ExitCode.DRIFT), result
    return json.loads(result.stdout)


def _slow_replay(url: str, project: Project, start_cli: Callable[..., Any]) -> tuple[Any, str]:
    """A ``migrate`` whose shadow replay is inside a 30 s revision; and its scratch database."""
    slow = project("slow_revision")
    upgrade_to(slow, url, "ed0000000001")
    runner = start_cli("migrate", "--debug", "--config", str(slow), env={"DATABASE_URL": url})
    created = runner.wait_for_event("shadow.created", timeout=60)
    event = runner.wait_for_event("shadow.revision_started", timeout=60)
    while event.get("revision") != "ed0000000002":
        event = runner.wait_for_event("shadow.revision_started", timeout=60)
    return runner, created["shadow_database"]


def _check_another_database(project: Project, make_db: Callable[[], str]) -> Any:
    """``check`` of another database on the same server (it replays, so it looks for leftovers)."""
    other = make_db()
    linear = project("linear")
    upgrade_to(linear, other, "aa0000000003")
    result = run_cli("check", "--config", str(linear), env={"DATABASE_URL": other})
    assert result.returncode == ExitCode.PENDING, result
    return result


def test_a_runner_killed_during_a_replay_leaves_a_scratch_database_the_next_run_removes(
    pg_url: str,
    project: Project,
    start_cli: Callable[..., Any],
    make_db: Callable[[], str],
) -> None:
    runner, scratch = _slow_replay(pg_url, project, start_cli)
    os.kill(runner.pid, signal.SIGKILL)
    runner.finish(timeout=60)
    # What a crash-looping container would leak once per start:
    assert scratch in _scratch_databases(pg_url)
    _await(lambda: advisory_locks(pg_url) == 0, "the killed runner's session to end")
    result = _check_another_database(project, make_db)
    assert scratch in [e["shadow_database"] for e in result.named("shadow.stale_removed")]
    assert scratch not in _scratch_databases(pg_url)


def test_a_live_replay_is_never_taken_for_a_leftover(
    pg_url: str,
    project: Project,
    start_cli: Callable[..., Any],
    make_db: Callable[[], str],
) -> None:
    runner, scratch = _slow_replay(pg_url, project, start_cli)
    result = _check_another_database(project, make_db)
    assert result.named("shadow.stale_removed") == [], result
    assert scratch in _scratch_databases(pg_url)
    runner.kill()


def test_a_check_during_another_replicas_migration_reports_no_leak(
    pg_url: str,
    project: Project,
    start_cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The version table moving under a read-only command is another replica, not a leak."""
    monkeypatch.setenv("SLOW_REVISION_SECONDS", "4")
    slow = project("slow_revision")
    upgrade_to(slow, pg_url, "ed0000000002")
    env = {"DATABASE_URL": pg_url, "SLOW_REVISION_SECONDS": "4"}
    checking = start_cli("check", "--debug", "--config", str(slow), env=env)
    event = checking.wait_for_event("shadow.revision_started", timeout=60)
    while event.get("revision") != "ed0000000002":
        event = checking.wait_for_event("shadow.revision_started", timeout=60)
    migrated = run_cli("migrate", "--no-shadow", "--config", str(slow), env=env)
    assert migrated.returncode == ExitCode.OK, migrated
    checked = checking.finish(timeout=60)
    assert checked.named("shadow.leaked") == [], checked
    assert checked.returncode == ExitCode.PENDING, checked  # it was stamped ed2 when it looked


def test_a_heal_behind_an_idle_transaction_gives_up_at_the_ddl_lock_timeout(
    pg_url: str, project: Project
) -> None:
    """The repair's ALTER queues behind a session idle in transaction: it must give up at
    --ddl-lock-timeout (nothing changed, the lock released) instead of waiting for ever and
    queueing the application's own queries behind it."""
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "ALTER TABLE health_metrics DROP CONSTRAINT fk_health_metrics_file_id_files")
    engine = create_engine(pg_url, poolclass=NullPool)
    blocker = engine.connect()
    try:
        blocker.execute(text("LOCK TABLE files IN ROW EXCLUSIVE MODE"))  # and stays idle
        started = time.monotonic()
        result = run_cli(
            "migrate",
            "--ddl-lock-timeout",
            "1",
            "--config",
            str(ini),
            env={"DATABASE_URL": pg_url},
            timeout=120,
        )
        elapsed = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
        engine.dispose()
    assert result.returncode == ExitCode.DRIFT, result
    failure = [e for e in result.events if e.get("level") == "error" and "error" in e][-1]
    assert "lock timeout" in failure["error"] and "nothing was changed" in failure["hint"]
    assert elapsed < 60, elapsed
    assert "alembic_deploy_repairs" not in tables(pg_url)  # the heal rolled back whole
    assert advisory_locks(pg_url) == 0
    healed = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert healed.returncode == ExitCode.OK, healed


def test_server_stopped_mid_upgrade_is_exit_3_no_app_and_the_next_run_succeeds(
    own_cluster: Any, project: Project, start_cli: Callable[..., Any], tmp_path: Path
) -> None:
    own_cluster.start()
    url = own_cluster.url("postgres")
    # The test clusters trade durability for speed; a server stop must not lose a commit here.
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET synchronous_commit = on"))
        conn.execute(text("SELECT pg_reload_conf()"))
    engine.dispose()
    ini = project("slow_revision")
    marker = tmp_path / "app-started"
    runner = start_cli(
        "run",
        "--debug",
        "--config",
        str(ini),
        "--",
        "touch",
        str(marker),
        env={"DATABASE_URL": url},
    )
    event = runner.wait_for_event("upgrade.revision_started", timeout=120)
    while event.get("revision") != "ed0000000002":
        event = runner.wait_for_event("upgrade.revision_started", timeout=120)
    own_cluster.stop("immediate")
    result = runner.finish(timeout=120)
    assert result.returncode == ExitCode.UNREACHABLE, result
    lost = result.one("deploy.connection_lost")
    assert "ed0000000002" in lost["error"] and "connection was lost" in lost["error"], lost
    assert "server is up" in lost["hint"], lost
    assert "fix the migration" not in lost["hint"]
    assert not marker.exists()
    own_cluster.start()
    assert db_revisions(url) == ["ed0000000001"]  # the revision rolled back with the server
    again = run_cli(
        "migrate", "--no-shadow", "--config", str(ini), env={"DATABASE_URL": url}, timeout=240
    )
    assert again.returncode == ExitCode.OK, again
    assert db_revisions(url) == ["ed0000000003"]
