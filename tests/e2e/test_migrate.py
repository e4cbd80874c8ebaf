"""End to end on real PostgreSQL: the CLI in a subprocess, exit codes and JSON events."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from runner.config import Settings
from runner.errors import ExitCode
from runner.lock import advisory_key, lock_name
from tests.e2e.helpers import (
    advisory_locks,
    chain,
    columns,
    db_revisions,
    indexes,
    tables,
    upgrade_to,
)
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


def test_migrates_an_empty_database_then_run_is_a_no_op(pg_url: str, project: Project) -> None:
    ini = project("linear")
    revisions = chain(ini)
    first = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert first.returncode == ExitCode.OK, first
    assert [e["revision"] for e in first.named("upgrade.revision_applied")] == revisions
    assert all(e["duration_ms"] >= 0 for e in first.named("upgrade.revision_applied"))
    assert db_revisions(pg_url) == [revisions[-1]]
    assert {"users", "files", "analyses", "health_metrics"} <= tables(pg_url)
    summary = first.one("deploy.summary")
    assert summary["applied"] == revisions and summary["exit_code"] == 0
    steps = {e["step"] for e in first.named("step.finished")}
    assert {"wait", "lock", "revisions", "upgrade", "verify_after"} <= steps

    second = run_cli("run", "--config", str(ini), "--", "true", env={"DATABASE_URL": pg_url})
    assert second.returncode == ExitCode.OK, second
    assert second.named("upgrade.revision_applied") == []
    assert second.one("launch.exec")["argv"] == ["true"]


def test_stock_env_py_file_config_does_not_silence_the_runner(
    pg_url: str, project: Project
) -> None:
    ini = project("linear_stock")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    # Every event after env.py's fileConfig() still arrives, as JSON.
    assert len(result.named("upgrade.revision_applied")) == len(chain(ini))
    assert result.one("upgrade.finished")["applied"] == len(chain(ini))
    assert result.one("deploy.summary")["outcome"] == "ok"
    plain = [line for line in result.stderr.splitlines() if line and not line.startswith("{")]
    assert plain == [], f"non-JSON log lines: {plain}"


def test_env_py_that_reads_database_url_migrates_the_given_database(
    pg_url: str, project: Project
) -> None:
    ini = project("linear_envurl")
    heroku = pg_url.replace("postgresql+psycopg2://", "postgres://")
    result = run_cli("migrate", "--config", str(ini), "--database-url", heroku)
    assert result.returncode == ExitCode.OK, result
    assert db_revisions(pg_url) == [chain(ini)[-1]]


def test_closed_port_exits_3_at_the_deadline_without_leaking_the_password(
    tmp_path: Path,
) -> None:
    result = run_cli(
        "migrate",
        "--wait-timeout",
        "3",
        env={"DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:1/x"},
        cwd=tmp_path,
        console_script=True,  # the acceptance command exactly: alembic-deploy, in an empty dir
    )
    assert result.returncode == ExitCode.UNREACHABLE, result
    assert 3 <= result.duration_s <= 6, result.duration_s
    assert "s3cret" not in result.stdout + result.stderr
    assert result.named("wait.retrying"), "transient errors must be retried"
    assert result.one("wait.gave_up")["hint"]


def test_wrong_password_and_unknown_database_fail_fast_with_4(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    wrong = pg_url.replace(":pg-test-pw@", ":n0t-the-pw@")
    assert wrong != pg_url
    result = run_cli(
        "migrate", "--config", str(ini), "--wait-timeout", "30", env={"DATABASE_URL": wrong}
    )
    assert result.returncode == ExitCode.CONNECTION_REFUSED, result
    assert result.named("wait.retrying") == []
    assert result.duration_s < 15
    assert "n0t-the-pw" not in result.stdout + result.stderr

    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database_here"
    result = run_cli(
        "migrate", "--config", str(ini), "--wait-timeout", "30", env={"DATABASE_URL": missing}
    )
    assert result.returncode == ExitCode.CONNECTION_REFUSED, result
    assert result.named("wait.retrying") == []
    assert "no_such_database_here" in result.one("wait.failed")["error"]


@pytest.mark.slow
def test_waits_for_a_cluster_that_starts_after_the_runner(
    own_cluster: object, project: Project, start_cli: Callable[..., object]
) -> None:
    cluster = own_cluster
    ini = project("linear")
    url = cluster.url("postgres")  # type: ignore[attr-defined]
    runner = start_cli(
        "migrate", "--config", str(ini), "--wait-timeout", "90", env={"DATABASE_URL": url}
    )
    runner.wait_for_event("wait.retrying")  # type: ignore[attr-defined]
    cluster.start()  # type: ignore[attr-defined]
    result = runner.finish()  # type: ignore[attr-defined]
    assert result.returncode == ExitCode.OK, result
    assert result.one("wait.connected")["attempts"] > 1
    assert db_revisions(url) == [chain(ini)[-1]]


@pytest.mark.slow
def test_ten_concurrent_runners_apply_every_revision_exactly_once(
    pg_url: str, project: Project, start_cli: Callable[..., object]
) -> None:
    ini = project("linear")
    runners = [
        start_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url}) for _ in range(10)
    ]
    results = [r.finish() for r in runners]  # type: ignore[attr-defined]
    for result in results:
        assert result.returncode == ExitCode.OK, result
    applied = Counter(e["revision"] for r in results for e in r.named("upgrade.revision_applied"))
    assert applied == Counter(chain(ini))
    assert db_revisions(pg_url) == [chain(ini)[-1]]
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as conn:
        # The data migration's bulk insert ran once: its three rows, none twice.
        rows = conn.execute(text("SELECT key FROM settings")).scalars().all()
        assert sorted(rows) == sorted(set(rows)) and len(rows) == 3
    engine.dispose()
    assert advisory_locks(pg_url) == 0


def test_lock_timeout_names_the_holder(pg_url: str, project: Project) -> None:
    ini = project("linear")
    key = advisory_key(lock_name(Settings()))
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as holder:
        holder.execute(select(func.pg_advisory_lock(key)))
        holder_pid = holder.execute(select(func.pg_backend_pid())).scalar()
        holder.commit()
        result = run_cli(
            "migrate", "--config", str(ini), "--lock-timeout", "1", env={"DATABASE_URL": pg_url}
        )
    engine.dispose()
    assert result.returncode == ExitCode.LOCK_TIMEOUT, result
    timed_out = result.one("lock.timed_out")
    assert str(holder_pid) in timed_out["error"]
    assert f"pg_terminate_backend({holder_pid})" in timed_out["hint"]
    assert db_revisions(pg_url) == []


def test_unknown_stamped_revision_exits_6_unless_allowed(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, chain(ini)[-1])
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    engine.dispose()
    refused = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert refused.returncode == ExitCode.REVISION_GRAPH, refused
    assert "database is ahead of this code" in refused.one("revisions.refused")["error"]
    allowed = run_cli(
        "run",
        "--config",
        str(ini),
        "--allow-unknown-revision",
        "--",
        "true",
        env={"DATABASE_URL": pg_url},
    )
    assert allowed.returncode == ExitCode.OK, allowed
    assert allowed.one("revisions.unknown_allowed")["unknown"] == ["f00dfeedbeef"]
    assert db_revisions(pg_url) == ["f00dfeedbeef"]


def test_tables_without_a_stamp_exit_6(pg_url: str, project: Project) -> None:
    ini = project("linear")
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE restored (id integer primary key)"))
    engine.dispose()
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.REVISION_GRAPH, result
    assert "restored" in result.one("revisions.refused")["error"]
    assert "alembic stamp" in result.one("revisions.refused")["hint"]


def test_run_execs_the_app_with_the_runner_pid(
    pg_url: str, project: Project, start_cli: Callable[..., object]
) -> None:
    ini = project("linear")
    process = start_cli(
        "run", "--config", str(ini), "--", "sh", "-c", "echo $$", env={"DATABASE_URL": pg_url}
    )
    result = process.finish()  # type: ignore[attr-defined]
    assert result.returncode == 0, result
    assert result.stdout.strip() == str(process.pid)  # type: ignore[attr-defined]


def test_sigterm_reaches_the_exec_d_app(
    pg_url: str, project: Project, start_cli: Callable[..., object]
) -> None:
    ini = project("linear")
    process = start_cli(
        "run", "--config", str(ini), "--", "sleep", "30", env={"DATABASE_URL": pg_url}
    )
    process.wait_for_event("launch.exec")  # type: ignore[attr-defined]
    # launch.exec is logged just before execvp: poll until the process image is sleep's.
    deadline = time.monotonic() + 10
    while not os.readlink(f"/proc/{process.pid}/exe").endswith("sleep"):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the runner never exec'd the app"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGTERM)  # type: ignore[attr-defined]
    result = process.finish(timeout=10)  # type: ignore[attr-defined]
    assert result.returncode == -signal.SIGTERM
    assert result.duration_s < 25


def test_existing_column_is_skipped_defensively_and_fails_without_it(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    before, adding = revisions[3], revisions[4]
    upgrade_to(ini, pg_url, before)
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE users ADD COLUMN last_login_at timestamptz"))
    engine.dispose()
    indexes_before = indexes(pg_url, "users")

    strict = run_cli(
        "migrate", "--config", str(ini), "--no-defensive", env={"DATABASE_URL": pg_url}
    )
    assert strict.returncode == ExitCode.MIGRATION_FAILED, strict
    failed = strict.one("upgrade.failed")
    assert adding in failed["error"] and "last_login_at" in failed["error"]
    assert db_revisions(pg_url) == [before]
    assert indexes(pg_url, "users") == indexes_before  # nothing half-applied

    healed = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert healed.returncode == ExitCode.OK, healed
    skipped = healed.one("upgrade.operation_skipped")
    assert (skipped["operation"], skipped["table"], skipped["object"]) == (
        "add_column",
        "users",
        "last_login_at",
    )
    assert skipped["revision"] == adding
    assert skipped["level"] == "warning"
    assert db_revisions(pg_url) == [revisions[-1]]
    assert "last_login_at" in columns(pg_url, "users")


def test_transaction_pooler_is_refused_and_direct_url_is_used(
    pg_url: str, pgbouncer_url: str, project: Project
) -> None:
    ini = project("linear")
    pooled = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pgbouncer_url})
    assert pooled.returncode == ExitCode.USAGE, pooled
    refused = pooled.one("config.invalid")
    assert "PgBouncer" in refused["error"] and "--direct-url" in refused["hint"]
    assert db_revisions(pg_url) == []

    direct = run_cli(
        "migrate",
        "--config",
        str(ini),
        env={"DATABASE_URL": pgbouncer_url, "DIRECT_DATABASE_URL": pg_url},
    )
    assert direct.returncode == ExitCode.OK, direct
    assert db_revisions(pg_url) == [chain(ini)[-1]]
