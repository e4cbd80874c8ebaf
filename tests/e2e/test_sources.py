"""Where the expected schema comes from when the best sources are missing, and what that
means: privilege fallback, --require-verify, --strict-checksums, exit 9 after an upgrade."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from runner.errors import ExitCode
from tests.e2e.helpers import chain, db_revisions, execute, upgrade_to
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


def test_without_createdb_privilege_shadow_replay_falls_back(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    role = f"deployer_{uuid.uuid4().hex[:8]}"
    database = make_url(pg_url).database
    execute(
        pg_url,
        f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}' NOCREATEDB",
        f"GRANT ALL ON DATABASE {database} TO {role}",
        f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
    )
    url = make_url(pg_url).set(username=role, password=f"pw-{role}")
    result = run_cli(
        "status",
        "--json",
        "--config",
        str(ini),
        env={"DATABASE_URL": url.render_as_string(hide_password=False)},
    )
    assert result.returncode == ExitCode.OK, result
    assert "permission denied" in result.one("verify.shadow_unavailable")["reason"]
    assert '"expected_source": "models"' in result.stdout
    execute(
        pg_url,
        f"REASSIGN OWNED BY {role} TO postgres",
        f"DROP OWNED BY {role}",
        f"DROP ROLE {role}",
    )


def test_without_any_source_verification_is_skipped_loudly(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, chain(ini)[2])
    lax = run_cli(
        "migrate",
        "--config",
        str(ini),
        "--no-shadow",
        env={"DATABASE_URL": pg_url},
    )
    assert lax.returncode == ExitCode.OK, lax
    assert lax.named("verify.skipped")
    assert db_revisions(pg_url) == [chain(ini)[-1]]


def test_require_verify_refuses_before_touching_the_database(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, chain(ini)[2])
    strict = run_cli(
        "migrate",
        "--config",
        str(ini),
        "--no-shadow",
        "--require-verify",
        env={"DATABASE_URL": pg_url},
    )
    assert strict.returncode == ExitCode.DRIFT, strict
    assert "no expected schema" in strict.one("verify.failed")["error"]
    assert db_revisions(pg_url) == [chain(ini)[2]]


def test_strict_checksums_refuse_an_edited_revision_file(
    pg_url: str, project: Project, make_db: Callable[[], str]
) -> None:
    ini = project("linear")
    built = run_cli("snapshot", "--config", str(ini), "--shadow-url", make_db())
    assert built.returncode == ExitCode.OK, built
    edited = ini.parent / "migrations" / "versions" / f"{chain(ini)[1]}_create_files.py"
    edited.write_text(edited.read_text() + "\n# edited after the snapshot\n")
    upgrade_to(ini, pg_url, chain(ini)[2])
    lenient = run_cli("check", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert lenient.one("verify.checksum_mismatch")["revisions"] == [chain(ini)[1]]
    strict = run_cli(
        "migrate", "--config", str(ini), "--strict-checksums", env={"DATABASE_URL": pg_url}
    )
    assert strict.returncode == ExitCode.REVISION_GRAPH, strict
    assert chain(ini)[1] in strict.one("revisions.refused")["error"]
    assert db_revisions(pg_url) == [chain(ini)[2]]


def test_incomplete_schema_after_upgrade_exits_9_and_the_next_run_heals(
    pg_url: str, project: Project
) -> None:
    """A hand-made health_metrics makes revision 4's create_table skip defensively: the
    upgrade ends without the table's foreign key and unique constraint (exit 9); the next
    deploy, now stamped at head, heals them."""
    ini = project("linear")
    upgrade_to(ini, pg_url, chain(ini)[2])
    execute(
        pg_url,
        "CREATE TABLE health_metrics (id serial primary key, file_id integer, "
        "metric varchar(64) not null, value double precision, "
        "recorded_at timestamptz not null default now())",
    )
    first = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert first.returncode == ExitCode.POST_UPGRADE_DRIFT, first
    error = first.one("verify.after_upgrade_failed")["error"]
    assert "missing_foreign_key" in error and "missing_unique" in error
    assert db_revisions(pg_url) == [chain(ini)[-1]]
    second = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert second.returncode == ExitCode.OK, second
    healed = {e["kind"] for e in second.named("heal.repair_applied")}
    assert {"missing_foreign_key", "missing_unique"} <= healed


def test_missing_enum_value_is_added_back(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(
        pg_url,
        "ALTER TYPE file_status RENAME TO file_status_old",
        "CREATE TYPE file_status AS ENUM ('uploaded', 'processing', 'done')",
        "ALTER TABLE files ALTER COLUMN status TYPE file_status USING status::text::file_status",
        "DROP TYPE file_status_old",
    )
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    applied = result.one("heal.repair_applied")
    assert applied["kind"] == "missing_enum_value" and "ADD VALUE 'failed'" in applied["ddl"]
    check = run_cli("check", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert check.returncode == ExitCode.OK, check


def test_a_snapshot_built_for_another_dialect_is_named_not_silently_ignored(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    snapshot = ini.parent / "sqlite-snapshot.json"
    built = run_cli("snapshot", "--config", str(ini), "--output", str(snapshot))  # SQLite
    assert built.returncode == ExitCode.OK, built
    upgrade_to(ini, pg_url, "head")
    status = run_cli(
        "status", "--config", str(ini), "--snapshot", str(snapshot), env={"DATABASE_URL": pg_url}
    )
    assert status.returncode == ExitCode.OK, status
    warned = status.one("verify.snapshot_other_dialect")
    assert (warned["snapshot_dialect"], warned["database_dialect"]) == ("sqlite", "postgresql")
