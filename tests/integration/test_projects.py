"""Each sample project upgrades and downgrades with the real ``alembic`` CLI.

Against a fresh PostgreSQL database per test, and against SQLite; a test per project directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.projects import (
    LABELED_HEADS,
    LINEAR_HEAD,
    LINEAR_TABLES,
    MERGED_HEAD,
    PROJECTS,
    SampleProject,
    copy_project,
)

pytestmark = pytest.mark.slow

ALEMBIC = Path(sys.executable).with_name("alembic")


def alembic(
    project_dir: Path,
    *args: str,
    database_url: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the ``alembic`` CLI on a copied project, as a deploy would."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    result = subprocess.run(
        [str(ALEMBIC), "-c", str(project_dir / "alembic.ini"), *args],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, (
            f"alembic {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def heads(project_dir: Path, database_url: str | None = None) -> set[str]:
    output = alembic(project_dir, "heads", database_url=database_url).stdout
    return {line.split()[0] for line in output.splitlines() if line.strip()}


def tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def versions(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return set()
        return set(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))


def enum_values(engine: sa.Engine, name: str) -> list[str]:
    query = sa.text(
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
        " WHERE t.typname = :name ORDER BY e.enumsortorder"
    )
    with engine.connect() as conn:
        return list(conn.scalars(query, {"name": name}))


def _round_trip(project: SampleProject, project_dir: Path, engine: sa.Engine, url: str) -> None:
    """heads, upgrade heads, check the schema, downgrade base, upgrade again."""
    database_url = url if project.url_source == "DATABASE_URL" else None
    assert heads(project_dir, database_url) == project.heads
    alembic(project_dir, "upgrade", "heads", database_url=database_url)
    assert versions(engine) == project.heads
    assert tables(engine) == project.tables
    alembic(project_dir, "downgrade", "base", database_url=database_url)
    assert versions(engine) == set()
    assert tables(engine) == set()
    alembic(project_dir, "upgrade", "heads", database_url=database_url)
    assert versions(engine) == project.heads


def _check_linear_at_head(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert {uc["name"] for uc in inspector.get_unique_constraints("users")} == {
            "uq_users_email"
        }
        assert {fk["name"] for fk in inspector.get_foreign_keys("health_metrics")} == {
            "fk_health_metrics_file_id_files"
        }
        assert "ix_users_last_login_at" in {ix["name"] for ix in inspector.get_indexes("users")}
        assert conn.scalar(sa.text("SELECT count(*) FROM settings")) == 3


def test_linear(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> None:
    project = PROJECTS["linear"]
    project_dir = copy_project("linear", tmp_path, url=pg_url)
    alembic(project_dir, "upgrade", "head")
    assert versions(pg_engine) == {LINEAR_HEAD}
    assert tables(pg_engine) == LINEAR_TABLES
    assert enum_values(pg_engine, "file_status") == ["uploaded", "processing", "done", "failed"]
    _check_linear_at_head(pg_engine)
    # models.py matches the migrated schema: autogenerate finds nothing to do.
    assert "No new upgrade operations detected" in alembic(project_dir, "check").stdout
    alembic(project_dir, "downgrade", "base")
    assert enum_values(pg_engine, "file_status") == []
    _round_trip(project, project_dir, pg_engine, pg_url)


def test_linear_enum_downgrade_keeps_rows(
    pg_url: str, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    project_dir = copy_project("linear", tmp_path, url=pg_url)
    alembic(project_dir, "upgrade", "head")
    with pg_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (email) VALUES ('a@example.org')"))
        conn.execute(
            sa.text(
                "INSERT INTO files (user_id, filename, size, status)"
                " SELECT id, 'x.csv', 10, 'failed' FROM users"
            )
        )
    alembic(project_dir, "downgrade", "aa0000000005")
    assert enum_values(pg_engine, "file_status") == ["uploaded", "processing", "done"]
    with pg_engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT status::text FROM files")) == "done"


def test_linear_stock(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> None:
    project_dir = copy_project("linear_stock", tmp_path, url=pg_url)
    _round_trip(PROJECTS["linear_stock"], project_dir, pg_engine, pg_url)
    _check_linear_at_head(pg_engine)


def test_linear_envurl(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> None:
    # The ini keeps its placeholder URL: only DATABASE_URL reaches the database.
    project_dir = copy_project("linear_envurl", tmp_path)
    failed = alembic(project_dir, "upgrade", "head", check=False)
    assert failed.returncode != 0
    assert "DATABASE_URL" in failed.stderr
    _round_trip(PROJECTS["linear_envurl"], project_dir, pg_engine, pg_url)
    _check_linear_at_head(pg_engine)


def test_branched(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> None:
    project_dir = copy_project("branched", tmp_path, url=pg_url)
    failed = alembic(project_dir, "upgrade", "head", check=False)
    assert failed.returncode != 0
    assert "Multiple head revisions" in failed.stderr
    assert versions(pg_engine) == set()
    _round_trip(PROJECTS["branched"], project_dir, pg_engine, pg_url)


def test_labeled(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> None:
    project_dir = copy_project("labeled", tmp_path, url=pg_url)
    output = alembic(project_dir, "heads").stdout
    for label, head in LABELED_HEADS.items():
        assert f"{head} ({label}) (head)" in output
    alembic(project_dir, "upgrade", "expand@head")
    assert versions(pg_engine) == {LABELED_HEADS["expand"]}
    with pg_engine.connect() as conn:
        assert "legacy_plan" in {c["name"] for c in sa.inspect(conn).get_columns("tenants")}
    _round_trip(PROJECTS["labeled"], project_dir, pg_engine, pg_url)
    with pg_engine.connect() as conn:
        assert "legacy_plan" not in {c["name"] for c in sa.inspect(conn).get_columns("tenants")}


def test_merged(pg_url: str, pg_engine: sa.Engine, tmp_path: Path) -> None:
    project_dir = copy_project("merged", tmp_path, url=pg_url)
    alembic(project_dir, "upgrade", "head")
    assert versions(pg_engine) == {MERGED_HEAD}
    _round_trip(PROJECTS["merged"], project_dir, pg_engine, pg_url)


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_sqlite(name: str, tmp_path: Path) -> None:
    project = PROJECTS[name]
    url = f"sqlite:///{tmp_path / 'app.db'}"
    project_dir = copy_project(name, tmp_path, url=url)
    engine = sa.create_engine(url)
    try:
        _round_trip(project, project_dir, engine, url)
    finally:
        engine.dispose()


def test_offline_sql_renders(tmp_path: Path) -> None:
    project_dir = copy_project("linear", tmp_path, url="postgresql+psycopg2://u:p@localhost/db")
    sql = alembic(project_dir, "upgrade", "head", "--sql").stdout
    assert "CREATE TYPE file_status AS ENUM" in sql
    assert "ALTER TYPE file_status ADD VALUE IF NOT EXISTS 'failed'" in sql
