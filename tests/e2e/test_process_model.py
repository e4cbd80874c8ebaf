"""End to end: the user's code runs in worker interpreters, never in the runner's process.

What that buys, seen from outside: module-level state of a revision cannot leak from a shadow
replay into the real upgrade; an env.py that takes over stdout and logging cannot break the
runner's events or its stdout; ``sys.exit(0)`` in a revision is a failed migration; a lost lock
or a SIGTERM/SIGINT stops a running statement; and every command makes the same decision (revision
policy, dry-run, ``--no-shadow``, driver errors, no CREATEDB privilege).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import (
    add_revision,
    advisory_locks,
    db_revisions,
    execute,
    heads,
    tables,
    upgrade_to,
)
from tests.fixtures.cli import CliProcess, CliResult, run_cli
from tests.fixtures.postgres import PostgresServer
from tests.projects import LINEAR_HEAD

Project = Callable[[str], Path]
StartCli = Callable[..., CliProcess]

# The sample projects made for these tests (ids written out: loading their revision modules
# in the test process would import their module-level state here).
STATEFUL = ("ea0000000001", "ea0000000002")
NOISY = ("eb0000000001", "eb0000000002")
EXITS_EARLY = ("ec0000000001", "ec0000000002")
SLOW = ("ed0000000001", "ed0000000002", "ed0000000003")

UNKNOWN_REVISION = "f00dfeedbeef"


# --- helpers -------------------------------------------------------------------------------


def _rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds, failing with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"after {timeout}s: {what}"
        time.sleep(0.05)


def _sleeping(url: str, *, in_shadow: bool = False) -> list[int]:
    """Backends running the slow revision's ``pg_sleep(30)``: in this database, or with
    ``in_shadow`` in one of the runner's scratch databases."""
    where = (
        "datname LIKE 'alembic\\_deploy\\_shadow\\_%'"
        if in_shadow
        else "datname = current_database()"
    )
    return [
        row[0]
        for row in _rows(
            url,
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            f"AND {where} AND state = 'active' AND query LIKE '%pg_sleep(30)%'",
        )
    ]


def _advisory_lock_holders(url: str) -> list[tuple[int, str]]:
    """(pid, application_name) of the sessions holding an advisory lock in this database
    (the lock session holds two: the lock and its witness, ``runner.lock.LockProof``)."""
    return [
        (int(row[0]), str(row[1]))
        for row in _rows(
            url,
            "SELECT DISTINCT l.pid, a.application_name FROM pg_locks AS l "
            "JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    ]


def _wait_for_revision_started(process: CliProcess, revision: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(0.1, deadline - time.monotonic())
        event = process.wait_for_event("upgrade.revision_started", timeout=remaining)
        if event.get("revision") == revision:
            return


def _non_json_lines(text_: str) -> list[str]:
    bad = []
    for line in text_.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line)
            continue
        if not isinstance(parsed, dict) or "event" not in parsed:
            bad.append(line)
    return bad


def _never_crashed(*results: CliResult) -> None:
    for result in results:
        assert result.returncode != ExitCode.UNEXPECTED, result
        assert result.named("deploy.crashed") == [], result


# --- 1. module-level state ------------------------------------------------------------------


def test_revision_that_consumes_module_state_replays_then_upgrades(
    pg_url: str, project: Project
) -> None:
    """Its upgrade() pops a key from module-level state and raises when called twice in one
    interpreter: the shadow replay and the real upgrade must each get a fresh one."""
    ini = project("stateful_revision")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    # The replay ran upgrade() through head, then the real upgrade ran it again.
    assert result.named("shadow.created"), result
    assert result.one("shadow.replayed")["stages"][-1] == [STATEFUL[-1]]
    assert result.named("verify.replay_failed") == [], result
    assert [e["revision"] for e in result.named("upgrade.revision_applied")] == list(STATEFUL)
    assert db_revisions(pg_url) == [STATEFUL[-1]]
    assert {"counters", "gauges"} <= tables(pg_url)


# --- 2. an env.py that takes over stdout and logging ----------------------------------------


def test_env_py_that_takes_over_stdout_and_logging_cannot_reach_the_runners_output(
    pg_url: str, project: Project
) -> None:
    ini = project("noisy_env")
    env = {"DATABASE_URL": pg_url}
    planned = run_cli("plan", "--config", str(ini), env=env)
    assert planned.returncode == ExitCode.OK, planned
    assert "CREATE TABLE notes" in planned.stdout, planned
    assert "noisy" not in planned.stdout, "the app's output reached plan's stdout"
    assert _non_json_lines(planned.stderr) == [], planned

    migrated = run_cli("migrate", "--config", str(ini), env=env)
    assert migrated.returncode == ExitCode.OK, migrated
    assert migrated.stdout == "", "the app's output reached the runner's stdout"
    assert _non_json_lines(migrated.stderr) == [], migrated
    assert migrated.one("deploy.summary")["outcome"] == "ok"
    assert [e["revision"] for e in migrated.named("upgrade.revision_applied")] == list(NOISY)
    assert db_revisions(pg_url) == [NOISY[-1]]

    # What the app printed and logged is there, as the runner's events on stderr.
    printed = [(e["stream"], e["line"]) for e in migrated.named("worker.output")]
    stdout_lines = [line for stream, line in printed if stream == "stdout"]
    assert "noisy env.py: imported, printing on stdout" in stdout_lines, printed
    assert "noisy revision eb0000000001: hello from upgrade() on stdout" in stdout_lines
    assert any("structlog now prints on stdout" in line for line in stdout_lines), printed
    assert any("structlog info" in line for line in stdout_lines), printed
    assert any("partial line without newline" in line for line in stdout_lines), printed
    assert ("stderr", "noisy revision eb0000000002: on stderr") in printed
    logged = [e["message"] for e in migrated.named("worker.log")]
    assert "noisy revision eb0000000001: stdlib warning" in logged, logged

    status = run_cli("status", "--json", "--config", str(ini), env=env)
    assert status.returncode == ExitCode.OK, status
    document = json.loads(status.stdout)  # the whole of stdout is one JSON document
    assert document["db_revisions"] == [NOISY[-1]]
    assert document["at_head"] is True
    assert status.named("worker.output"), "env.py ran (and printed) for status too"
    assert _non_json_lines(status.stderr) == [], status


# --- 3. sys.exit(0) --------------------------------------------------------------------------


def test_sys_exit_0_in_a_revision_is_a_failed_migration(
    pg_url: str, project: Project, tmp_path: Path
) -> None:
    ini = project("exits_early")
    kept, exiting = EXITS_EARLY
    upgrade_to(ini, pg_url, kept)
    env = {"DATABASE_URL": pg_url}

    migrated = run_cli("migrate", "--config", str(ini), env=env)
    assert migrated.returncode == ExitCode.MIGRATION_FAILED, migrated
    failed = migrated.one("upgrade.failed")
    assert exiting in failed["error"] and "sys.exit(0)" in failed["error"], failed
    assert migrated.named("upgrade.revision_applied") == []
    assert db_revisions(pg_url) == [kept]
    assert "doomed" not in tables(pg_url), "the exiting revision was not rolled back"

    marker = tmp_path / "app-started"
    ran = run_cli("run", "--config", str(ini), "--", "sh", "-c", f"touch {marker}", env=env)
    assert ran.returncode == ExitCode.MIGRATION_FAILED, ran
    assert ran.named("launch.exec") == []
    assert not marker.exists(), "the app ran after a failed migration"
    assert db_revisions(pg_url) == [kept]
    assert "doomed" not in tables(pg_url)


def test_a_worker_killed_mid_revision_is_a_failed_migration_naming_it(
    pg_url: str, project: Project
) -> None:
    ini = project("exits_early")
    kept, dying = EXITS_EARLY
    upgrade_to(ini, pg_url, kept)
    env = {"DATABASE_URL": pg_url, "EXITS_EARLY_HOW": "sigkill"}
    migrated = run_cli("migrate", "--config", str(ini), env=env)
    assert migrated.returncode == ExitCode.MIGRATION_FAILED, migrated
    failed = migrated.one("upgrade.failed")
    assert f"revision {dying}" in failed["error"], failed
    assert "killed by signal SIGKILL" in failed["error"], failed
    assert db_revisions(pg_url) == [kept]
    assert "doomed" not in tables(pg_url)


def test_sys_exit_0_at_env_py_import_is_a_failed_migration(
    pg_url: str, project: Project, tmp_path: Path
) -> None:
    ini = project("exits_early")
    env = {"DATABASE_URL": pg_url, "EXITS_EARLY_AT_IMPORT": "1"}
    migrated = run_cli("migrate", "--config", str(ini), env=env)
    assert migrated.returncode == ExitCode.MIGRATION_FAILED, migrated
    assert "sys.exit(0)" in migrated.one("upgrade.failed")["error"]
    assert db_revisions(pg_url) == []
    assert tables(pg_url) == set()

    marker = tmp_path / "app-started"
    ran = run_cli("run", "--config", str(ini), "--", "sh", "-c", f"touch {marker}", env=env)
    assert ran.returncode == ExitCode.MIGRATION_FAILED, ran
    assert not marker.exists(), "the app ran after env.py exited"


# --- 4. the lock's session is terminated ----------------------------------------------------


def test_terminated_lock_session_stops_the_run_before_the_next_revision(
    pg_url: str, project: Project, start_cli: StartCli
) -> None:
    ini = project("slow_revision")
    first, slow, _ = SLOW
    runner = start_cli("migrate", "--config", str(ini), "--no-shadow", env={"DATABASE_URL": pg_url})
    acquired = runner.wait_for_event("lock.acquired")
    _wait_for_revision_started(runner, slow)
    _poll(lambda: bool(_sleeping(pg_url)), 10, "the slow revision never reached pg_sleep")

    holders = _advisory_lock_holders(pg_url)
    assert holders == [(acquired["backend_pid"], "alembic-deploy")], holders
    terminated = time.monotonic()
    execute(pg_url, f"SELECT pg_terminate_backend({holders[0][0]})")
    result = runner.finish(timeout=60)
    stopped_after = time.monotonic() - terminated

    assert result.returncode == ExitCode.LOCK_TIMEOUT, result
    assert result.one("lock.lost")["exit_code"] == ExitCode.LOCK_TIMEOUT
    # The lock is watched while the worker works, not only at the next commit (pg_sleep(30)).
    assert stopped_after < 10, f"the run went on for {stopped_after:.1f}s without its lock"
    assert [e["revision"] for e in result.named("upgrade.revision_applied")] == [first]
    assert db_revisions(pg_url) == [first]
    assert tables(pg_url).isdisjoint({"slow_step", "third_step"}), tables(pg_url)
    _poll(lambda: not _sleeping(pg_url), 5, "the slow statement still runs")
    _poll(lambda: advisory_locks(pg_url) == 0, 5, "an advisory lock remains")


@pytest.mark.slow
def test_lock_lost_during_adoption_replay_stamps_nothing(
    pg_url: str, project: Project, start_cli: StartCli
) -> None:
    """Adoption replays the graph (here: 30 s in the slow revision) under the lock, then
    stamps the real database. A lock lost during the replay must stop the run before the
    stamp is written, and the run must not report success."""
    ini = project("slow_revision")
    execute(
        pg_url,
        "CREATE TABLE first_step (id serial PRIMARY KEY)",
        "CREATE TABLE slow_step (id serial PRIMARY KEY)",
        "CREATE TABLE third_step (id serial PRIMARY KEY)",
    )
    runner = start_cli("migrate", "--config", str(ini), "--adopt", env={"DATABASE_URL": pg_url})
    acquired = runner.wait_for_event("lock.acquired")
    runner.wait_for_event("adopt.replaying")
    _poll(lambda: bool(_sleeping(pg_url, in_shadow=True)), 20, "the replay never slept")

    terminated = time.monotonic()
    execute(pg_url, f"SELECT pg_terminate_backend({acquired['backend_pid']})")
    result = runner.finish(timeout=90)
    stopped_after = time.monotonic() - terminated

    assert result.returncode == ExitCode.LOCK_TIMEOUT, result
    assert result.named("lock.lost"), result
    assert result.named("adopt.stamped") == [], "stamped the real database without the lock"
    assert db_revisions(pg_url) == []
    assert stopped_after < 10, f"the run went on for {stopped_after:.1f}s without its lock"
    _poll(lambda: not _sleeping(pg_url, in_shadow=True), 5, "the replay still runs")


# --- 5. SIGTERM / SIGINT during a long statement ---------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_a_long_statement_cancels_it_and_exits_130(
    signum: signal.Signals, pg_url: str, project: Project, start_cli: StartCli
) -> None:
    ini = project("slow_revision")
    first, slow, _ = SLOW
    runner = start_cli("migrate", "--config", str(ini), "--no-shadow", env={"DATABASE_URL": pg_url})
    _wait_for_revision_started(runner, slow)
    _poll(lambda: bool(_sleeping(pg_url)), 10, "the slow revision never reached pg_sleep")

    signalled = time.monotonic()
    os.kill(runner.pid, signum)
    try:
        runner.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the runner did not exit within 15s of {signum.name}")
    exited_after = time.monotonic() - signalled
    result = runner.finish()

    assert result.returncode == ExitCode.INTERRUPTED, result
    assert exited_after < 2.0, f"exited {exited_after:.2f}s after {signum.name}\n{result}"
    assert result.named("deploy.interrupted"), result
    _poll(lambda: not _sleeping(pg_url), 2, "the cancelled statement still runs")
    _poll(lambda: advisory_locks(pg_url) == 0, 2, "an advisory lock remains")
    assert db_revisions(pg_url) == [first]
    assert "slow_step" not in tables(pg_url)


def test_a_revision_still_in_python_when_the_runner_stops_does_not_commit(
    pg_url: str, project: Project, start_cli: StartCli, tmp_path: Path
) -> None:
    """No statement to cancel: the revision's own code is running when SIGTERM arrives, and
    returns while the runner stops. The lock is still held then, so only the closed control
    pipe tells the worker not to commit (it checks it before trusting the lock)."""
    ini = project("slow_revision")
    first, slow, _ = SLOW
    release = tmp_path / "release"
    runner = start_cli(
        "migrate",
        "--config",
        str(ini),
        "--no-shadow",
        env={"DATABASE_URL": pg_url, "SLOW_REVISION_RELEASE": str(release)},
    )
    _wait_for_revision_started(runner, slow)
    _poll(lambda: _waiting_after(pg_url, "\nCREATE TABLE slow_step"), 10, "slow_step never created")
    os.kill(runner.pid, signal.SIGTERM)
    release.touch()  # the revision returns 0.2 s later, inside the runner's stop
    result = runner.finish(timeout=30)

    assert result.returncode == ExitCode.INTERRUPTED, result
    assert [e["revision"] for e in result.named("upgrade.revision_applied")] == [first]
    assert db_revisions(pg_url) == [first]
    assert "slow_step" not in tables(pg_url)


def _waiting_after(url: str, statement: str) -> bool:
    """Whether a session sits idle in its transaction after ``statement`` (its latest)."""
    return bool(
        _rows(
            url,
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND state = 'idle in transaction' AND query LIKE :prefix",
            prefix=f"{statement}%",
        )
    )


# --- 6. one revision policy ------------------------------------------------------------------


def test_check_agrees_with_migrate_on_labelled_heads(pg_url: str, project: Project) -> None:
    ini = project("labeled")
    env = {"DATABASE_URL": pg_url}
    migrated = run_cli("migrate", "--config", str(ini), env=env)
    assert migrated.returncode == ExitCode.OK, migrated
    assert db_revisions(pg_url) == heads(ini)
    checked = run_cli("check", "--config", str(ini), env=env)
    assert checked.returncode == ExitCode.OK, checked
    assert checked.named("revisions.refused") == []


def test_check_agrees_with_migrate_on_allow_unknown_revision(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, f"UPDATE alembic_version SET version_num = '{UNKNOWN_REVISION}'")
    env = {"DATABASE_URL": pg_url}

    migrated = run_cli("migrate", "--config", str(ini), "--allow-unknown-revision", env=env)
    assert migrated.returncode == ExitCode.OK, migrated
    assert migrated.one("revisions.unknown_allowed")["unknown"] == [UNKNOWN_REVISION]
    checked = run_cli("check", "--config", str(ini), "--allow-unknown-revision", env=env)
    assert checked.returncode == ExitCode.OK, checked
    assert checked.one("revisions.unknown_allowed")["unknown"] == [UNKNOWN_REVISION]

    refused = run_cli("check", "--config", str(ini), env=env)
    assert refused.returncode == ExitCode.REVISION_GRAPH, refused
    assert "ahead of this code" in refused.one("revisions.refused")["error"]
    assert db_revisions(pg_url) == [UNKNOWN_REVISION]


# --- 7. dry-run ------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_never_execs_or_changes_the_database(
    pg_url: str, project: Project, tmp_path: Path
) -> None:
    ini = project("linear")
    marker = tmp_path / "app-started"
    app = ("sh", "-c", f"touch {marker}")
    env = {"DATABASE_URL": pg_url}
    runs = {
        "run --dry-run": run_cli("run", "--config", str(ini), "--dry-run", "--", *app, env=env),
        "ALEMBIC_DEPLOY_DRY_RUN=1 run": run_cli(
            "run", "--config", str(ini), "--", *app, env={**env, "ALEMBIC_DEPLOY_DRY_RUN": "1"}
        ),
        "migrate --dry-run": run_cli("migrate", "--config", str(ini), "--dry-run", env=env),
    }
    for how, result in runs.items():
        assert result.returncode == ExitCode.OK, f"{how}: {result}"
        assert "CREATE TABLE users" in result.stdout, f"{how}: {result}"
        assert "CREATE TABLE alembic_version" in result.stdout, f"{how}: {result}"
        assert result.named("launch.exec") == [], how
        assert result.named("upgrade.revision_applied") == [], how
        assert result.named("lock.acquired") == [], how
    assert not marker.exists(), "a dry run exec'd the app"
    assert tables(pg_url) == set()
    assert db_revisions(pg_url) == []


# --- 8. --no-shadow and adoption -------------------------------------------------------------


@pytest.mark.slow
def test_adoption_honours_no_shadow(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "DROP TABLE alembic_version")
    env = {"DATABASE_URL": pg_url}

    refusals = {
        "--no-shadow": run_cli("migrate", "--config", str(ini), "--adopt", "--no-shadow", env=env),
        "ALEMBIC_DEPLOY_SHADOW=0": run_cli(
            "migrate", "--config", str(ini), "--adopt", env={**env, "ALEMBIC_DEPLOY_SHADOW": "0"}
        ),
    }
    for how, refused in refusals.items():
        assert refused.returncode == ExitCode.REVISION_GRAPH, f"{how}: {refused}"
        assert refused.named("shadow.created") == [], f"{how} created a scratch database"
        assert refused.named("adopt.stamped") == [], how
        error = refused.one("revisions.refused")["error"]
        assert "no snapshot or shadow replay is available" in error, f"{how}: {error}"
    assert db_revisions(pg_url) == []

    adopted = run_cli("migrate", "--config", str(ini), "--adopt", env=env)
    assert adopted.returncode == ExitCode.OK, adopted
    assert adopted.named("shadow.created"), adopted
    assert adopted.one("adopt.stamped")["revision"] == LINEAR_HEAD
    assert db_revisions(pg_url) == [LINEAR_HEAD]


# --- 9. driver errors ------------------------------------------------------------------------

_COMMANDS = ("migrate", "run", "status", "check", "plan", "snapshot")


def _command_args(command: str, ini: Path, url: str) -> list[str]:
    args = [command, "--config", str(ini), "--wait-timeout", "5"]
    if command == "snapshot":
        args += ["--shadow-url", url]
    if command == "run":
        args += ["--", "true"]
    return args


@pytest.mark.parametrize("command", _COMMANDS)
def test_a_driver_that_cannot_load_exits_4_from_every_command(
    command: str, project: Project
) -> None:
    if importlib.util.find_spec("asyncpg") is not None:
        pytest.skip("asyncpg is installed: its URL would load")
    ini = project("linear")
    url = "postgresql+asyncpg://u:p@127.0.0.1:5432/db"
    result = run_cli(*_command_args(command, ini, url), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.CONNECTION_REFUSED, result
    assert "driver" in result.one("wait.failed")["error"], result
    assert result.named("wait.retrying") == []


@pytest.mark.parametrize("command", _COMMANDS)
def test_a_dialect_without_a_lock_exits_2_from_every_command(
    command: str, project: Project
) -> None:
    ini = project("linear")
    url = "mysql://u:p@127.0.0.1/db"
    result = run_cli(*_command_args(command, ini, url), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.USAGE, result
    assert "mysql" in result.one("config.invalid")["error"], result


# --- 10. no CREATEDB privilege ---------------------------------------------------------------


@pytest.fixture
def unprivileged_db(pg_cluster: PostgresServer) -> Iterator[Callable[[], str]]:
    """Make databases owned by a LOGIN NOCREATEDB role; returns that role's URL of each."""
    role = f"deployer_{uuid.uuid4().hex[:8]}"
    password = f"pw-{role}"
    admin = pg_cluster.url("postgres")
    execute(admin, f"CREATE ROLE {role} LOGIN PASSWORD '{password}' NOCREATEDB NOSUPERUSER")
    made: list[str] = []

    def make() -> str:
        name = f"nocreatedb_{uuid.uuid4().hex[:10]}"
        pg_cluster.create_database(name)
        made.append(name)
        execute(admin, f"ALTER DATABASE {name} OWNER TO {role}")
        execute(pg_cluster.url(name), f"ALTER SCHEMA public OWNER TO {role}")
        return pg_cluster.url(name, user=role, password=password)

    try:
        yield make
    finally:
        for name in made:
            pg_cluster.drop_database(name)
        execute(admin, f"DROP ROLE IF EXISTS {role}")


@pytest.mark.slow
def test_without_createdb_every_command_falls_back_cleanly(
    unprivileged_db: Callable[[], str], project: Project
) -> None:
    ini = project("linear")

    drifted = unprivileged_db()
    upgrade_to(ini, drifted, "head")
    execute(drifted, "DROP INDEX ix_users_last_login_at")
    status = run_cli("status", "--json", "--config", str(ini), env={"DATABASE_URL": drifted})
    check = run_cli("check", "--config", str(ini), env={"DATABASE_URL": drifted})
    plan = run_cli("plan", "--config", str(ini), env={"DATABASE_URL": drifted})

    empty = unprivileged_db()
    migrated = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": empty})

    unstamped = unprivileged_db()
    upgrade_to(ini, unstamped, "head")
    execute(unstamped, "DROP TABLE alembic_version")
    adopted = run_cli("migrate", "--config", str(ini), "--adopt", env={"DATABASE_URL": unstamped})

    _never_crashed(status, check, plan, migrated, adopted)
    for result in (status, check, plan, migrated, adopted):
        unavailable = result.named("verify.shadow_unavailable")
        assert unavailable, result
        assert all("permission denied" in e["reason"] for e in unavailable), unavailable
        assert result.named("shadow.created") == [], result

    assert status.returncode == ExitCode.OK, status
    document = json.loads(status.stdout)
    assert document["expected_source"] == "models"
    assert any(f["kind"] == "missing_index" for f in document["drift"]), document

    assert check.returncode == ExitCode.DRIFT, check
    assert "ix_users_last_login_at" in check.one("verify.failed")["error"]

    assert plan.returncode == ExitCode.OK, plan
    assert "ix_users_last_login_at" in plan.stdout

    assert migrated.returncode == ExitCode.OK, migrated
    assert db_revisions(empty) == [LINEAR_HEAD]

    assert adopted.returncode == ExitCode.REVISION_GRAPH, adopted
    error = adopted.one("revisions.refused")["error"]
    assert "no snapshot or shadow replay is available" in error, error
    assert db_revisions(unstamped) == []


@pytest.mark.skipif(importlib.util.find_spec("pygments") is None, reason="needs Pygments")
def test_a_worker_imports_lean_and_runs_the_users_code_as_usual(
    project: Project, tmp_path: Path
) -> None:
    """Alembic's Mako would load Pygments' lexers in every worker (30-50 ms); the worker
    loads Mako without them (runner.imports), and the user's code still imports them. The
    worker imports its libraries with the garbage collector paused; the user's code runs
    with it collecting."""
    ini = project("linear")
    add_revision(
        ini,
        "zz0000000001",
        LINEAR_HEAD,
        """
        import gc
        import sys

        before = "pygments" in sys.modules
        import mako.ext.pygmentplugin  # noqa: F401

        after = "pygments" in sys.modules
        collecting = gc.isenabled()
        op.execute(
            "CREATE TABLE probe AS SELECT "
            f"{int(before)} AS before, {int(after)} AS after, {int(collecting)} AS collecting"
        )
        """,
    )
    url = f"sqlite:///{tmp_path / 'app.db'}"
    migrated = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert migrated.returncode == ExitCode.OK, migrated
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT before, after, collecting FROM probe")).one()
    finally:
        engine.dispose()
    assert tuple(row) == (0, 1, 1), row
