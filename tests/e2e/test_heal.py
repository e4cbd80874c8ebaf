"""Self-heal end to end: the failure stories of a real drift incident, on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import (
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

Project = Callable[[str], Path]


def test_missing_early_table_is_recreated_then_upgraded(
    pg_url: str, project: Project, make_db: Callable[[], str]
) -> None:
    """Incident 1: stamped late, health_metrics (FK + index + unique) lost in a restore."""
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[5])
    execute(pg_url, "DROP TABLE health_metrics")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    found = [e for e in result.named("verify.drift_found") if e["stage"] == "before"]
    assert [(e["kind"], e["table"]) for e in found] == [("missing_table", "health_metrics")]
    recreated = result.one("heal.table_recreated")
    assert recreated["table"] == "health_metrics" and "data" in recreated["message"]
    assert db_revisions(pg_url) == [revisions[-1]]
    assert physical(pg_url) == clean_head(ini, make_db)
    kinds = [row[0] for row in ledger(pg_url)]
    assert kinds.count("missing_table") == 1 and "missing_foreign_key" in kinds


def test_dropped_foreign_key_is_healed(
    pg_url: str, project: Project, make_db: Callable[[], str]
) -> None:
    """Incident 3: the stamped revision's foreign key was dropped by hand."""
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "ALTER TABLE health_metrics DROP CONSTRAINT fk_health_metrics_file_id_files")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    applied = result.one("heal.repair_applied")
    assert (applied["kind"], applied["object"]) == (
        "missing_foreign_key",
        "fk_health_metrics_file_id_files",
    )
    assert "FOREIGN KEY" in applied["ddl"]
    assert physical(pg_url) == clean_head(ini, make_db)


def test_duplicate_column_from_a_repair_migration_is_skipped(
    pg_url: str, project: Project, make_db: Callable[[], str]
) -> None:
    """Incident 2: a repair migration added a column that a later revision adds again."""
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[3])
    execute(pg_url, "ALTER TABLE users ADD COLUMN last_login_at TIMESTAMP WITH TIME ZONE")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    skipped = result.one("upgrade.operation_skipped")
    assert (skipped["operation"], skipped["object"]) == ("add_column", "last_login_at")
    assert physical(pg_url) == clean_head(ini, make_db)


def test_three_environments_converge_with_one_command(
    project: Project, make_db: Callable[[], str]
) -> None:
    """Incident 4: dev up to date, stage missing a constraint, prod missing a table."""
    ini = project("linear")
    revisions = chain(ini)
    dev, stage, prod = make_db(), make_db(), make_db()
    upgrade_to(ini, dev, "head")
    upgrade_to(ini, stage, revisions[4])
    execute(stage, "ALTER TABLE analyses DROP CONSTRAINT ck_analyses_score_range")
    upgrade_to(ini, prod, revisions[5])
    execute(prod, "DROP TABLE health_metrics")
    for url in (dev, stage, prod):
        result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
        assert result.returncode == ExitCode.OK, result
    assert physical(dev) == physical(stage) == physical(prod) == clean_head(ini, make_db)


def test_not_null_column_without_default_on_rows_is_unhealable_and_changes_nothing(
    pg_url: str, project: Project
) -> None:
    """Incident 6: refusing to invent data."""
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(
        pg_url,
        "INSERT INTO users (email, name) VALUES ('a@example.com', 'A')",
        "INSERT INTO files (user_id, filename, size, status) "
        "SELECT id, 'f.csv', 1, 'uploaded' FROM users",
        "INSERT INTO health_metrics (file_id, metric) SELECT id, 'hr' FROM files",
        "ALTER TABLE health_metrics DROP COLUMN metric",
        "DROP INDEX ix_health_metrics_file_id",
    )
    before = physical(pg_url)
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.DRIFT, result
    error = result.one("verify.failed")["error"]
    assert "health_metrics" in error and "metric" in error
    assert physical(pg_url) == before
    assert "alembic_deploy_repairs" not in tables(pg_url)


def test_on_drift_fail_and_warn(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "DROP INDEX ix_health_metrics_file_id")
    failed = run_cli(
        "migrate", "--config", str(ini), "--on-drift", "fail", env={"DATABASE_URL": pg_url}
    )
    assert failed.returncode == ExitCode.DRIFT, failed
    assert "ix_health_metrics_file_id" in failed.one("verify.failed")["error"]
    warned = run_cli(
        "migrate",
        "--config",
        str(ini),
        env={"DATABASE_URL": pg_url, "ALEMBIC_DEPLOY_ON_DRIFT": "warn"},
    )
    assert warned.returncode == ExitCode.OK, warned
    assert warned.one("heal.skipped")["findings"] == 1
    assert "alembic_deploy_repairs" not in tables(pg_url)


def test_plan_and_dry_run_print_repairs_without_touching_the_database(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "DROP TABLE health_metrics")
    before = physical(pg_url)
    plan = run_cli("plan", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert plan.returncode == ExitCode.OK, plan
    assert "CREATE TABLE health_metrics" in plan.stdout
    assert "FOREIGN KEY" in plan.stdout
    dry = run_cli("migrate", "--dry-run", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert dry.returncode == ExitCode.OK, dry
    assert "CREATE TABLE health_metrics" in dry.stdout
    assert physical(pg_url) == before


def test_unstamped_restored_database_is_adopted_at_the_matching_revision(
    pg_url: str, project: Project, make_db: Callable[[], str]
) -> None:
    """Incident 5: a dump/restore lost alembic_version; the schema is revision 4's."""
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[3])
    execute(pg_url, "DROP TABLE alembic_version")
    refused = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert refused.returncode == ExitCode.REVISION_GRAPH, refused
    error = refused.one("revisions.refused")
    assert f"matches revision {revisions[3]} (exactly)" in error["error"]
    assert "--adopt" in error["hint"] and revisions[3] in error["hint"]
    assert db_revisions(pg_url) == []

    adopted = run_cli("migrate", "--config", str(ini), "--adopt", env={"DATABASE_URL": pg_url})
    assert adopted.returncode == ExitCode.OK, adopted
    assert adopted.one("adopt.stamped")["revision"] == revisions[3]
    assert [e["revision"] for e in adopted.named("upgrade.revision_applied")] == revisions[4:]
    assert physical(pg_url) == clean_head(ini, make_db)


def test_status_names_the_revision_a_drifted_database_physically_matches(
    pg_url: str, project: Project
) -> None:
    """Stamped at head, but the schema is revision 4's: status explains the wrong stamp."""
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[3])
    execute(pg_url, f"UPDATE alembic_version SET version_num = '{revisions[-1]}'")
    import json

    status = run_cli("status", "--json", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert status.returncode == ExitCode.OK, status
    document = json.loads(status.stdout)
    assert document["closest_revision"] == revisions[3]
    assert {f["kind"] for f in document["drift"]} >= {"missing_table", "missing_column"}
    human = run_cli("status", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert f"stamped {revisions[-1]}, physically closest to {revisions[3]}" in human.stdout


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_the_ledger_is_invisible_to_alembic_check_and_keeps_every_repair(
    pg_url: str, project: Project, tmp_path: Path, backend: str
) -> None:
    """After heals the user's own `alembic check` still passes (the ledger is a view, and
    autogenerate compares tables only); rows accumulate and keep their text exactly."""
    from alembic import command
    from alembic.config import Config

    ini = project("linear")
    url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade_to(ini, url, "head")
    for index in ("ix_health_metrics_file_id", "ix_files_user_id"):
        execute(url, f"DROP INDEX {index}")
        healed = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
        assert healed.returncode == ExitCode.OK, healed
    assert [row[2] for row in ledger(url)] == ["ix_health_metrics_file_id", "ix_files_user_id"]
    assert "alembic_deploy_repairs" not in tables(url)
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.check(config)  # raises AutogenerateDiffsDetected on "removed table"


def test_an_older_ledger_table_is_folded_into_the_view(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(
        pg_url,
        "CREATE TABLE alembic_deploy_repairs (id serial PRIMARY KEY, applied_at timestamptz,"
        " stamped_revision varchar(255), kind varchar(64) NOT NULL, table_name varchar(255),"
        " object_name varchar(255), ddl text NOT NULL, runner_version varchar(32) NOT NULL)",
        "INSERT INTO alembic_deploy_repairs (kind, table_name, object_name, ddl,"
        " runner_version) VALUES ('missing_index', 'users', 'old''one', 'x \\:y 100%', '0.0')",
        "DROP INDEX ix_files_user_id",
    )
    healed = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert healed.returncode == ExitCode.OK, healed
    assert [row[2] for row in ledger(pg_url)] == ["old'one", "ix_files_user_id"]
    assert "alembic_deploy_repairs" not in tables(pg_url)
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as conn:
        ddl = conn.execute(text("SELECT ddl FROM alembic_deploy_repairs ORDER BY id")).scalar()
        assert ddl == "x :y 100%"
    engine.dispose()


def test_status_offers_no_other_revision_for_objects_dropped_by_hand(
    pg_url: str, project: Project
) -> None:
    """Two objects of later revisions missing is drift, not a wrong stamp: no revision matches
    exactly, so none is offered (it would invite a wrong `alembic stamp`)."""
    import json

    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "DROP TABLE health_metrics", "DROP INDEX ix_users_last_login_at")
    status = run_cli("status", "--json", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert status.returncode == ExitCode.OK, status
    document = json.loads(status.stdout)
    assert document["closest_revision"] is None
    assert {f["kind"] for f in document["drift"]} == {"missing_table", "missing_index"}
    assert status.named("verify.closest_revision") == []
