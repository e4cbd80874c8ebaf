"""End to end: graph shapes, DDL lock time-outs, CREATE INDEX CONCURRENTLY under the lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import add_revision, chain, db_revisions, heads, indexes, upgrade_to
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


def test_multiple_unlabelled_heads_exit_6_naming_both(pg_url: str, project: Project) -> None:
    ini = project("branched")
    both = heads(ini)
    assert len(both) == 2
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.REVISION_GRAPH, result
    refused = result.one("revisions.refused")
    assert all(head in refused["error"] for head in both)
    assert refused["hint"].startswith("merge them with: alembic merge")
    assert all(head in refused["hint"] for head in both)
    assert db_revisions(pg_url) == []


def test_allow_multiple_heads_upgrades_every_head(pg_url: str, project: Project) -> None:
    ini = project("branched")
    result = run_cli(
        "migrate", "--config", str(ini), "--allow-multiple-heads", env={"DATABASE_URL": pg_url}
    )
    assert result.returncode == ExitCode.OK, result
    assert db_revisions(pg_url) == heads(ini)
    again = run_cli(
        "check", "--config", str(ini), "--allow-multiple-heads", env={"DATABASE_URL": pg_url}
    )
    assert again.returncode == ExitCode.OK, again


def test_labelled_heads_are_intentional_and_all_upgraded(
    pg_url: str, project: Project, make_db: Callable[[], str]
) -> None:
    ini = project("labeled")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    labelled = result.one("revisions.branches_labelled")["heads"]
    assert sorted(labelled) == heads(ini)
    assert db_revisions(pg_url) == heads(ini)
    # check agrees with migrate: labelled heads are not a graph error
    check = run_cli("check", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert check.returncode == ExitCode.OK, check
    unlabelled = project("branched")
    refused = run_cli("check", "--config", str(unlabelled), env={"DATABASE_URL": make_db()})
    assert refused.returncode == ExitCode.REVISION_GRAPH, refused
    assert "heads" in refused.one("revisions.refused")["error"]


def test_merged_graph_upgrades_through_the_merge(pg_url: str, project: Project) -> None:
    ini = project("merged")
    assert len(heads(ini)) == 1
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    assert db_revisions(pg_url) == heads(ini)


def test_database_on_two_branches_continues_both(pg_url: str, project: Project) -> None:
    """Several rows in alembic_version are branches: each continues to the merge."""
    ini = project("merged")
    # Stamp the database at both branch tips (the merge's parents).
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(str(ini)))
    merge = script.get_revision(heads(ini)[0])
    parents = list(merge.down_revision)  # type: ignore[arg-type]
    upgrade_to(ini, pg_url, parents[0])
    upgrade_to(ini, pg_url, parents[1])
    assert db_revisions(pg_url) == sorted(parents)
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    assert [e["revision"] for e in result.named("upgrade.revision_applied")] == [merge.revision]
    assert db_revisions(pg_url) == heads(ini)


def test_a_revision_file_that_does_not_import_is_a_graph_error(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    (ini.parent / "migrations" / "versions" / "ff_broken.py").write_text("  broken = (\n")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.REVISION_GRAPH, result
    assert "ff_broken.py" in result.one("revisions.refused")["error"]
    assert "Traceback" not in result.stderr


def test_create_index_concurrently_does_not_deadlock_against_the_lock(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    add_revision(
        ini,
        "ee0000000008",
        chain(ini)[-1],
        """
        with op.get_context().autocommit_block():
            op.create_index("ix_files_filename_cc", "files", ["filename"],
                            postgresql_concurrently=True)
    """,
    )
    result = run_cli(
        "migrate",
        "--config",
        str(ini),
        "--ddl-lock-timeout",
        "5",
        env={"DATABASE_URL": pg_url},
        timeout=120,
    )
    assert result.returncode == ExitCode.OK, result
    assert "ix_files_filename_cc" in indexes(pg_url, "files")
    assert db_revisions(pg_url) == ["ee0000000008"]


def test_ddl_lock_timeout_is_retried_then_succeeds(
    pg_url: str, project: Project, start_cli: Callable[..., object]
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[3])
    engine = create_engine(pg_url, poolclass=NullPool)
    blocker = engine.connect()
    try:
        # A long read transaction: readers pass, but ALTER TABLE users must wait.
        blocker.execute(text("SELECT count(*) FROM users"))
        runner = start_cli(
            "migrate",
            "--config",
            str(ini),
            "--ddl-lock-timeout",
            "0.3",
            "--ddl-retries",
            "5",
            env={"DATABASE_URL": pg_url},
        )
        retry = runner.wait_for_event("upgrade.lock_retry")  # type: ignore[attr-defined]
        assert retry["revision"] == revisions[4]
        assert "lock timeout" in retry["error"]
    finally:
        blocker.rollback()
        blocker.close()
        engine.dispose()
    result = runner.finish()  # type: ignore[attr-defined]
    assert result.returncode == ExitCode.OK, result
    assert db_revisions(pg_url) == [revisions[-1]]


def test_ddl_lock_timeout_exhausting_retries_exits_8_at_the_last_good_revision(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[3])
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as blocker:
        # A long read transaction: readers pass, but ALTER TABLE users must wait.
        blocker.execute(text("SELECT count(*) FROM users"))
        result = run_cli(
            "migrate",
            "--config",
            str(ini),
            "--ddl-lock-timeout",
            "0.2",
            "--ddl-retries",
            "1",
            env={"DATABASE_URL": pg_url},
        )
        blocker.rollback()
    engine.dispose()
    assert result.returncode == ExitCode.MIGRATION_FAILED, result
    assert len(result.named("upgrade.lock_retry")) == 1
    assert result.one("upgrade.failed")["error"].startswith(
        f"migration failed in revision {revisions[4]}"
    )
    assert db_revisions(pg_url) == [revisions[3]]


def test_check_and_status_report_pending_revisions(pg_url: str, project: Project) -> None:
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[1])
    check = run_cli("check", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert check.returncode == ExitCode.PENDING, check
    status = run_cli("status", "--json", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert status.returncode == ExitCode.OK, status
    import json

    document = json.loads(status.stdout)
    assert document["db_revisions"] == [revisions[1]]
    assert document["script_heads"] == [revisions[-1]]
    assert document["pending"] == revisions[2:]
    assert db_revisions(pg_url) == [revisions[1]]  # read-only


def test_a_table_lock_cannot_hang_verification(pg_url: str, project: Project) -> None:
    """Reflection needs a share lock per table (pg_get_expr): an ACCESS EXCLUSIVE holder makes
    it wait at most the DDL lock timeout per attempt, then exit 5 naming the cause."""
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        result = run_cli(
            "migrate",
            "--config",
            str(ini),
            "--ddl-lock-timeout",
            "0.2",
            "--ddl-retries",
            "1",
            "--no-shadow",
            env={"DATABASE_URL": pg_url},
        )
        blocker.rollback()
    engine.dispose()
    assert result.returncode == ExitCode.LOCK_TIMEOUT, result
    assert len(result.named("verify.lock_retry")) == 1
    assert "table lock" in result.one("lock.timed_out")["error"]
