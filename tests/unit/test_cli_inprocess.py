"""``cli.main`` run in-process with its own argv, environment and streams, on SQLite.

The user's code (env.py, models, revision files) must only ever run in worker processes: after
every command the test process has imported nothing from the project and its ``sys.path`` is
untouched. Logs are JSON lines on the given stderr; stdout carries only command output.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import shutil
import signal
import sqlite3
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner.cli import main
from runner.errors import ExitCode

PROJECT = Path(__file__).resolve().parents[1] / "projects" / "linear"
REVISIONS = [f"aa000000000{n}" for n in range(1, 8)]
HEAD = REVISIONS[-1]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def one(self, event: str) -> dict[str, Any]:
        found = self.named(event)
        assert len(found) == 1, f"expected one {event!r} event, got {found}\n{self}"
        return found[0]

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() points structlog and the root logger at its StringIO; undo that afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = {
        name: (logging.getLogger(name).level, logging.getLogger(name).propagate)
        for name in ("alembic", "alembic.runtime.migration", "sqlalchemy", "sqlalchemy.engine")
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (old_level, propagate) in named.items():
        logging.getLogger(name).setLevel(old_level)
        logging.getLogger(name).propagate = propagate
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return target


def environ(**extra: str) -> dict[str, str]:
    return {"ALEMBIC_DEPLOY_LOG_FORMAT": "json", "PATH": os.environ["PATH"], **extra}


def cli(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--config", str(project / "alembic.ini"), *args],
        environ=env if env is not None else environ(),
        stdout=out,
        stderr=err,
    )
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"stderr line is not JSON: {line!r}\n{err.getvalue()}")
    return Result(code, out.getvalue(), err.getvalue(), events)


def stamped(project: Path) -> list[str]:
    """The revisions in the project's SQLite database (none when it has no version table)."""
    db = project / "app.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in tables:
            return []
        return sorted(row[0] for row in conn.execute("SELECT version_num FROM alembic_version"))


def user_tables(project: Path) -> set[str]:
    db = project / "app.db"
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows if name != "alembic_version"}


def project_modules(project: Path) -> list[str]:
    root = str(project.resolve())
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and str(Path(path).resolve()).startswith(root):
            found.append(name)
    return found


# --- migrate, status, check ----------------------------------------------------------------


def test_migrate_upgrades_to_head_and_logs_one_summary(project: Path) -> None:
    result = cli(project, "migrate")
    assert result.code == ExitCode.OK, result
    assert result.stdout == ""
    summary = result.one("deploy.summary")
    assert summary["outcome"] == "ok"
    assert summary["exit_code"] == ExitCode.OK
    assert summary["command"] == "migrate"
    assert summary["db_heads_before"] == []
    assert summary["db_heads_after"] == [HEAD]
    assert summary["applied"] == REVISIONS
    assert result.events[-1]["event"] == "deploy.summary"
    assert stamped(project) == [HEAD]
    assert "users" in user_tables(project)


def test_migrate_again_applies_nothing(project: Path) -> None:
    assert cli(project, "migrate").code == ExitCode.OK
    again = cli(project, "migrate")
    assert again.code == ExitCode.OK, again
    summary = again.one("deploy.summary")
    assert summary["applied"] == []
    assert summary["db_heads_before"] == summary["db_heads_after"] == [HEAD]


def test_status_json_before_and_after_migrate(project: Path) -> None:
    before = cli(project, "status", "--json")
    assert before.code == ExitCode.OK, before
    document = json.loads(before.stdout)
    assert document["at_head"] is False
    assert document["db_revisions"] == []
    assert document["pending"] == REVISIONS
    assert document["script_heads"] == [HEAD]

    assert cli(project, "migrate").code == ExitCode.OK
    after = cli(project, "status", "--json")
    assert after.code == ExitCode.OK, after
    document = json.loads(after.stdout)
    assert document["at_head"] is True
    assert document["db_revisions"] == [HEAD]
    assert document["pending"] == []
    assert document["unknown_revisions"] == []
    assert document["drift"] == []
    assert document["refused"] is None
    # status writes its document on stdout only; stderr stays JSON log lines
    assert all(event["event"] != "status" for event in after.events)


def test_check_is_ok_at_head_and_pending_before(project: Path) -> None:
    before = cli(project, "check")
    assert before.code == ExitCode.PENDING, before
    error = before.one("check.pending")
    assert error["exit_code"] == ExitCode.PENDING
    assert "7 revision(s) pending" in error["error"]
    assert stamped(project) == []  # check is read-only

    assert cli(project, "migrate").code == ExitCode.OK
    after = cli(project, "check")
    assert after.code == ExitCode.OK, after
    assert after.stdout == ""
    assert after.named("check.pending") == []


# --- configuration errors ------------------------------------------------------------------


def test_a_bad_flag_value_is_a_usage_error_with_one_event(project: Path) -> None:
    result = cli(project, "migrate", "--wait-timeout", "abc")
    assert result.code == ExitCode.USAGE, result
    assert result.stdout == ""
    event = result.one("config.invalid")
    assert event["exit_code"] == ExitCode.USAGE
    assert "--wait-timeout" in event["error"]
    assert "'abc'" in event["error"]
    assert event["hint"]
    assert result.named("deploy.failed") == []
    assert not (project / "app.db").exists()


def test_a_bad_environment_value_names_the_variable(project: Path) -> None:
    result = cli(project, "migrate", env=environ(ALEMBIC_DEPLOY_LOCK_TIMEOUT="-1"))
    assert result.code == ExitCode.USAGE, result
    assert "ALEMBIC_DEPLOY_LOCK_TIMEOUT" in result.one("config.invalid")["error"]


def test_a_usage_error_does_not_carry_the_previous_runs_context(project: Path) -> None:
    assert cli(project, "status").code == ExitCode.OK
    result = cli(project, "migrate", "--wait-timeout", "abc")
    assert result.code == ExitCode.USAGE
    event = result.one("config.invalid")
    assert "database" not in event
    assert event.get("command") in (None, "migrate")


def test_an_unknown_flag_is_a_usage_error_returned_not_raised(project: Path) -> None:
    err = io.StringIO()
    try:
        code = main(
            ["--config", str(project / "alembic.ini"), "migrate", "--no-such-flag"],
            environ=environ(),
            stdout=io.StringIO(),
            stderr=err,
        )
    except SystemExit as exc:
        pytest.fail(f"main raised SystemExit({exc.code}) instead of returning")
    assert code == ExitCode.USAGE
    events = [json.loads(line) for line in err.getvalue().splitlines() if line.strip()]
    assert [e["event"] for e in events if e["event"] == "config.invalid"] == ["config.invalid"]


def test_an_unsupported_database_is_a_usage_error(project: Path) -> None:
    result = cli(project, "migrate", "--database-url", "mysql://u:pw-secret@h/db")
    assert result.code == ExitCode.USAGE, result
    event = result.one("config.invalid")
    assert "mysql" in event["error"]
    assert "pw-secret" not in result.stderr
    assert result.one("deploy.summary")["outcome"] == "failed"
    assert not (project / "app.db").exists()  # the configured SQLite URL was not used


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(tmp_path / "nowhere", "status")
    assert result.code == ExitCode.USAGE, result
    assert "not found" in result.one("config.invalid")["error"]


# --- run: dry-run prints, never execs ------------------------------------------------------


class _ExecIntercepted(BaseException):
    """Raised instead of exec; a BaseException so that main's ``except Exception`` lets it
    through."""


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Turn an exec of the app into a recorded call that raises instead of replacing pytest.

    exec_app also resets SIGPIPE/SIGXFSZ/SIGTERM/SIGINT to their defaults; they are put back.
    """
    calls: list[list[str]] = []
    saved = {s: signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGXFSZ)}

    def fake_execvp(program: str, argv: list[str]) -> None:
        calls.append(list(argv))
        raise _ExecIntercepted(program)

    monkeypatch.setattr(os, "execvp", fake_execvp)
    yield calls
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_run_dry_run_prints_the_sql_and_does_not_exec(
    project: Path, no_exec: list[list[str]]
) -> None:
    result = cli(project, "run", "--dry-run", "--", "true")
    assert result.code == ExitCode.OK, result
    assert no_exec == []
    assert "-- pending revisions" in result.stdout
    assert "CREATE TABLE users" in result.stdout
    assert "CREATE TABLE alembic_version" in result.stdout
    assert result.named("launch.exec") == []
    assert result.one("deploy.summary")["applied"] == []
    assert stamped(project) == []  # read-only
    assert user_tables(project) == set()


def test_run_without_dry_run_migrates_then_execs_the_app(
    project: Path, no_exec: list[list[str]]
) -> None:
    err = io.StringIO()
    with pytest.raises(_ExecIntercepted):
        main(
            ["--config", str(project / "alembic.ini"), "run", "--", "true", "--flag"],
            environ=environ(),
            stdout=io.StringIO(),
            stderr=err,
        )
    assert no_exec == [["true", "--flag"]]
    assert stamped(project) == [HEAD]  # migrated before the exec
    events = [json.loads(line) for line in err.getvalue().splitlines() if line.strip()]
    names = [event["event"] for event in events]
    assert names.index("deploy.summary") < names.index("launch.exec")


def test_run_with_an_unknown_program_fails_before_touching_the_database(
    project: Path, no_exec: list[list[str]]
) -> None:
    result = cli(project, "run", "--", "no-such-program-alembic-deploy-test")
    assert result.code == ExitCode.USAGE, result
    assert no_exec == []
    assert "no-such-program-alembic-deploy-test" in result.one("config.invalid")["error"]
    assert stamped(project) == []


# --- the user's code never runs in this process --------------------------------------------


def test_no_project_module_is_ever_imported_in_process(
    project: Path, no_exec: list[list[str]]
) -> None:
    path_before = list(sys.path)
    assert cli(project, "status", "--json").code == ExitCode.OK
    assert cli(project, "run", "--dry-run", "--", "true").code == ExitCode.OK
    assert cli(project, "migrate").code == ExitCode.OK
    assert cli(project, "check").code == ExitCode.OK
    assert cli(project, "plan").code == ExitCode.OK
    assert stamped(project) == [HEAD]  # the commands did run the project's migrations
    assert project_modules(project) == []
    assert sys.path == path_before
    assert str(project) not in sys.path


def test_worker_pipes_are_closed(project: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert cli(project, "status").code == ExitCode.OK
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_read_only_commands_log_no_deploy_summary(project: Path) -> None:
    assert cli(project, "migrate").code == ExitCode.OK
    for command in ("status", "check", "plan"):
        result = cli(project, command)
        assert result.code == ExitCode.OK, result
        assert result.named("deploy.summary") == [], (command, result)


def test_the_error_is_the_last_line(project: Path) -> None:
    assert cli(project, "migrate").code == ExitCode.OK
    with sqlite3.connect(project / "app.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'zzzz'")
    for command in ("migrate", "check"):
        result = cli(project, command)
        assert result.code == ExitCode.REVISION_GRAPH, result
        last = result.events[-1]
        assert last["level"] == "error" and "zzzz" in last["error"] and last["hint"], result


def test_status_names_the_database_and_where_its_url_came_from(project: Path) -> None:
    from_ini = cli(project, "status")
    assert from_ini.code == ExitCode.OK, from_ini
    assert f"database:             sqlite:///{project}/app.db" in from_ini.stdout
    assert f"(from sqlalchemy.url of {project}/alembic.ini)" in from_ini.stdout
    url = f"sqlite:///{project}/other.db"
    from_env = cli(project, "status", "--json", env=environ(DATABASE_URL=url))
    document = json.loads(from_env.stdout)
    assert (document["database"], document["url_source"]) == (
        url,
        "--database-url / DATABASE_URL",
    )


@pytest.mark.parametrize("command", ["migrate", "run", "status", "check", "plan", "snapshot"])
def test_each_commands_help_is_short_and_global_options_still_work_after_it(
    project: Path, command: str
) -> None:
    import subprocess

    shown = subprocess.run(
        [sys.executable, "-m", "runner", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(shown.stdout.splitlines()) < 20, shown.stdout
    assert "--database-url" in shown.stdout  # named in the epilog, not repeated
    if command in ("status", "check", "plan"):
        result = cli(project, command, "--wait-timeout", "5")
        assert result.code in (ExitCode.OK, ExitCode.PENDING), result  # parsed, not refused
