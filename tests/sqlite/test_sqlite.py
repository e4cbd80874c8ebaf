"""The whole pipeline on SQLite, the embedded default: real files, real OS file locks."""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from runner.errors import ExitCode
from tests.e2e.helpers import chain
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


def _db(ini: Path) -> Path:
    return ini.parent / "app.db"  # the linear project's sqlalchemy.url


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def _revision(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def test_fresh_then_no_op_using_the_config_url(project: Project) -> None:
    ini = project("linear")
    first = run_cli("migrate", "--config", str(ini))
    assert first.returncode == ExitCode.OK, first
    assert "sqlite" in first.one("wait.connected")["database"]
    assert _revision(_db(ini)) == [chain(ini)[-1]]
    assert len(first.named("upgrade.revision_applied")) == len(chain(ini))
    second = run_cli("run", "--config", str(ini), "--", "true")
    assert second.returncode == ExitCode.OK, second
    assert second.named("upgrade.revision_applied") == []
    assert [e["findings"] for e in second.named("verify.checked")] == [0]


def test_dropped_table_is_healed_on_sqlite(project: Project) -> None:
    ini = project("linear")
    assert run_cli("migrate", "--config", str(ini)).returncode == ExitCode.OK
    with sqlite3.connect(_db(ini)) as conn:
        conn.execute("DROP TABLE health_metrics")
    healed = run_cli("migrate", "--config", str(ini))
    assert healed.returncode == ExitCode.OK, healed
    assert healed.one("heal.table_recreated")["table"] == "health_metrics"
    assert "health_metrics" in _tables(_db(ini))
    check = run_cli("check", "--config", str(ini))
    assert check.returncode == ExitCode.OK, check


def test_dropped_index_and_column_are_healed_on_sqlite(project: Project) -> None:
    ini = project("linear")
    assert run_cli("migrate", "--config", str(ini)).returncode == ExitCode.OK
    with sqlite3.connect(_db(ini)) as conn:
        conn.execute("DROP INDEX ix_health_metrics_file_id")
        conn.execute("DROP INDEX ix_users_last_login_at")
        conn.execute("ALTER TABLE users DROP COLUMN last_login_at")
    healed = run_cli("migrate", "--config", str(ini))
    assert healed.returncode == ExitCode.OK, healed
    kinds = {(e["kind"], e["object"]) for e in healed.named("heal.repair_applied")}
    assert ("missing_index", "ix_health_metrics_file_id") in kinds
    assert ("missing_column", "last_login_at") in kinds
    assert ("missing_index", "ix_users_last_login_at") in kinds
    assert run_cli("check", "--config", str(ini)).returncode == ExitCode.OK


def test_two_concurrent_processes_serialize_on_the_file_lock(
    project: Project, start_cli: Callable[..., object]
) -> None:
    ini = project("linear")
    runners = [start_cli("migrate", "--config", str(ini)) for _ in range(2)]
    results = [r.finish() for r in runners]  # type: ignore[attr-defined]
    for result in results:
        assert result.returncode == ExitCode.OK, result
    applied = Counter(e["revision"] for r in results for e in r.named("upgrade.revision_applied"))
    assert applied == Counter(chain(ini))


def test_a_killed_runner_releases_the_file_lock(
    project: Project, start_cli: Callable[..., object]
) -> None:
    ini = project("linear")
    assert run_cli("migrate", "--config", str(ini)).returncode == ExitCode.OK
    # A runner that holds the lock and then waits forever: its app is `sleep`, but we kill it
    # while it still holds the lock, right after lock.acquired.
    holder = start_cli("migrate", "--config", str(ini), env={"ALEMBIC_DEPLOY_DEBUG": "0"})
    holder.wait_for_event("lock.acquired")  # type: ignore[attr-defined]
    holder.proc.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
    holder.finish()  # type: ignore[attr-defined]
    after = run_cli("migrate", "--config", str(ini), "--lock-timeout", "5")
    assert after.returncode == ExitCode.OK, after


def test_lock_timeout_on_sqlite_while_another_process_holds_the_file(project: Project) -> None:
    from filelock import FileLock

    ini = project("linear")
    lock = FileLock(f"{_db(ini).resolve()}.alembic-deploy.lock")
    with lock:
        result = run_cli("migrate", "--config", str(ini), "--lock-timeout", "0.5")
    assert result.returncode == ExitCode.LOCK_TIMEOUT, result


def test_missing_directory_is_a_usage_error_naming_it(tmp_path: Path, project: Project) -> None:
    """SQLite creates the file, not its folder: a wrong path, refused before any wait."""
    ini = project("linear")
    url = f"sqlite:///{tmp_path}/no/such/dir/app.db"
    result = run_cli(
        "migrate", "--config", str(ini), "--wait-timeout", "30", env={"DATABASE_URL": url}
    )
    assert result.returncode == ExitCode.USAGE, result
    assert f"{tmp_path}/no/such/dir" in result.one("config.invalid")["error"]
    assert result.named("wait.retrying") == []


def test_defensive_operations_on_sqlite(project: Project) -> None:
    """A column a later revision adds already exists: skipped, not DuplicateColumn."""
    from tests.e2e.helpers import upgrade_to

    ini = project("linear")
    url = f"sqlite:///{_db(ini)}"
    upgrade_to(ini, url, chain(ini)[3])
    with sqlite3.connect(_db(ini)) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN last_login_at DATETIME")
    result = run_cli("migrate", "--config", str(ini))
    assert result.returncode == ExitCode.OK, result
    skipped = result.one("upgrade.operation_skipped")
    assert (skipped["operation"], skipped["object"]) == ("add_column", "last_login_at")
    assert _revision(_db(ini)) == [chain(ini)[-1]]
