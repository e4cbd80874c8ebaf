"""Alembic's result is the reference: defensive operations act only where Alembic would fail.

A defensive skip is decided when a statement executes, inside ``batch_alter_table`` too, so
migrations that drop an object and re-create it under the same name in one batch deploy
exactly as ``alembic upgrade`` does (they used to lose the re-created FK, index, check and
primary key). The seed's own incident, a repair revision early in the chain that creates a
table with columns later revisions add again (``DuplicateColumn``), converges on a fresh
database, at a stamp before the repair, and at the repair itself, to one schema, on
PostgreSQL and on SQLite; the shadow replay uses the same rules, so the chain also replays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from runner.snapshot import load_snapshot
from tests.e2e.helpers import chain, columns, db_revisions, execute, indexes, physical, upgrade_to
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


def _database(backend: str, make_db: Callable[[], str], folder: Path, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / f'{name}.db'}"
    return make_db()


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_batch_drop_and_recreate_under_the_same_name_deploys_as_alembic_does(
    backend: str, project: Project, make_db: Callable[[], str], tmp_path: Path
) -> None:
    ini = project("batch_recreate")
    reference = _database(backend, make_db, tmp_path, "reference")
    upgrade_to(ini, reference, "head")
    target = _database(backend, make_db, tmp_path, "target")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": target})
    assert result.returncode == ExitCode.OK, result
    assert result.named("upgrade.operation_skipped") == []
    assert physical(target) == physical(reference)
    assert db_revisions(target) == [chain(ini)[-1]]


def test_batch_recreate_keeps_the_new_definitions_on_postgresql(
    project: Project, pg_url: str
) -> None:
    ini = project("batch_recreate")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    engine = create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            definitions = dict(
                conn.execute(
                    text(
                        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                        "WHERE conname IN ('fk_child_parent', 'ck_child_positive', 'pk_tag')"
                    )
                ).all()
            )
            index = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_child_parent'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert "ON DELETE CASCADE" in definitions["fk_child_parent"]
    assert "id > 1" in definitions["ck_child_positive"]
    assert definitions["pk_tag"] == "PRIMARY KEY (id, name)"
    assert "(parent_id, id)" in index


def _converged(url: str) -> None:
    assert columns(url, "audit") == {"id", "user_id", "action", "note", "source"}
    assert "ix_audit_user_id" in indexes(url, "audit")


def test_repair_revision_with_duplicate_columns_converges_everywhere(
    backend: str, project: Project, make_db: Callable[[], str], tmp_path: Path
) -> None:
    ini = project("repair_chain")
    revisions = chain(ini)
    fresh = _database(backend, make_db, tmp_path, "fresh")
    before_repair = _database(backend, make_db, tmp_path, "before_repair")
    upgrade_to(ini, before_repair, revisions[0])
    at_repair = _database(backend, make_db, tmp_path, "at_repair")
    upgrade_to(ini, at_repair, revisions[1])
    execute(at_repair, "INSERT INTO users (id, email) VALUES (1, 'a@example.com')")
    execute(at_repair, "INSERT INTO audit (user_id, action, note) VALUES (1, 'login', 'kept')")

    for url in (fresh, before_repair, at_repair):
        result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
        assert result.returncode == ExitCode.OK, result
        skipped = {(e["operation"], e["object"]) for e in result.named("upgrade.operation_skipped")}
        assert skipped == {
            ("add_column", "action"),
            ("add_column", "note"),
            ("create_index", "ix_audit_user_id"),
        }
        assert db_revisions(url) == [revisions[-1]]
        _converged(url)
    # Three environments at different revisions end with one schema, and no row was lost.
    assert physical(fresh) == physical(before_repair) == physical(at_repair)
    engine = create_engine(at_repair, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT note FROM audit")).scalar_one() == "kept"
    finally:
        engine.dispose()


def test_without_defensive_operations_the_repair_chain_fails_as_alembic_does(
    project: Project, pg_url: str
) -> None:
    ini = project("repair_chain")
    result = run_cli(
        "migrate", "--config", str(ini), "--no-defensive", env={"DATABASE_URL": pg_url}
    )
    assert result.returncode == ExitCode.MIGRATION_FAILED, result
    assert "already exists" in result.one("upgrade.failed")["error"]
    assert db_revisions(pg_url) == [chain(ini)[1]]


def _snapshot(ini: Path, backend: str, make_db: Callable[[], str], url: str) -> None:
    shadow = [] if backend == "sqlite" else ["--shadow-url", make_db()]
    built = run_cli("snapshot", "--config", str(ini), *shadow, env={"DATABASE_URL": url})
    assert built.returncode == ExitCode.OK, built


def test_defensive_lookups_are_left_out_only_where_the_snapshot_proves_them_useless(
    backend: str, project: Project, make_db: Callable[[], str], tmp_path: Path
) -> None:
    """From a database identical to the clean replay's, the pending revisions do what they did
    there: the snapshot recorded that they skipped nothing, so the upgrade needs no lookups."""
    ini = project("linear")
    revisions = chain(ini)
    _snapshot(ini, backend, make_db, _database(backend, make_db, tmp_path, "scratch"))
    fresh = _database(backend, make_db, tmp_path, "fresh")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": fresh})
    assert result.returncode == ExitCode.OK, result
    started = result.one("upgrade.started")
    assert started["defensive"] is False and "clean replay" in started["why"], started

    # A column added by hand that revision 5 adds too: the database is not the clean replay's
    # (an extra column), so the lookups are on and the add_column is skipped, not failed.
    drifted = _database(backend, make_db, tmp_path, "drifted")
    upgrade_to(ini, drifted, revisions[3])
    execute(drifted, "ALTER TABLE users ADD COLUMN last_login_at TIMESTAMP")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": drifted})
    assert result.returncode == ExitCode.OK, result
    assert result.one("upgrade.started")["defensive"] is True
    skipped = {(e["operation"], e["object"]) for e in result.named("upgrade.operation_skipped")}
    assert skipped == {("add_column", "last_login_at")}, result
    assert db_revisions(drifted) == [revisions[-1]]

    # --no-defensive stays off, with no reason to give.
    plain = _database(backend, make_db, tmp_path, "plain")
    result = run_cli("migrate", "--config", str(ini), "--no-defensive", env={"DATABASE_URL": plain})
    assert result.returncode == ExitCode.OK, result
    assert "why" not in result.one("upgrade.started")


def test_a_chain_whose_replay_skips_keeps_its_defensive_lookups(
    backend: str, project: Project, make_db: Callable[[], str], tmp_path: Path
) -> None:
    ini = project("repair_chain")
    revisions = chain(ini)
    _snapshot(ini, backend, make_db, _database(backend, make_db, tmp_path, "scratch"))
    recorded = load_snapshot(ini.parent / "alembic-deploy-snapshot.json")
    assert recorded is not None and recorded.replay_skips == (revisions[2],), recorded
    fresh = _database(backend, make_db, tmp_path, "fresh")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": fresh})
    assert result.returncode == ExitCode.OK, result
    assert result.one("upgrade.started")["defensive"] is True
    assert len(result.named("upgrade.operation_skipped")) == 3
    _converged(fresh)
