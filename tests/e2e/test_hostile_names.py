"""Hostile names: spaces, mixed case, SQL keywords, quotes and unicode in table, column,
index, constraint, enum (label) and schema names are reflected, diffed and healed like any
other, on PostgreSQL and SQLite (the ``hostile_names`` sample project)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import ExitCode
from tests.e2e.helpers import db_revisions, execute, upgrade_to
from tests.e2e.test_heal_fidelity import definitions
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]

DAMAGE = {
    "table": ['DROP TABLE "Order Items" CASCADE'],
    "keyword-column-and-its-unique": ['ALTER TABLE "Order Items" DROP COLUMN "select"'],
    "unicode-column-and-its-index": ['ALTER TABLE "Order Items" DROP COLUMN "naïve"'],
    "quoted-column": ['ALTER TABLE "Order Items" DROP COLUMN "quo""te"'],
    "index": ['DROP INDEX "ix Order Items naïve"'],
    "check": ['ALTER TABLE "Order Items" DROP CONSTRAINT "ck: positive id"'],
    "foreign-key-in-a-spaced-schema": [
        'ALTER TABLE "Billing Dept"."group" DROP CONSTRAINT "fk group order\'s item"'
    ],
    "table-in-a-spaced-schema": ['DROP TABLE "Billing Dept"."group"'],
    "enum-label-with-a-quote": [
        'ALTER TABLE "Order Items" DROP COLUMN mood',
        'DROP TYPE "Mood Type"',
    ],
}
SQLITE_DAMAGE = {
    "table": ['DROP TABLE "Order Items"'],
    "unicode-column": ['ALTER TABLE "Order Items" DROP COLUMN "quo""te"'],
    "index": ['DROP INDEX "ix Order Items naïve"'],
    "table-named-by-a-keyword": ['DROP TABLE "group"'],
}


@pytest.mark.parametrize("damage", sorted(DAMAGE), ids=str)
def test_postgresql_hostile_names_are_found_and_healed(
    project: Project, make_db: Callable[[], str], damage: str
) -> None:
    ini = project("hostile_names")
    reference = make_db()
    upgrade_to(ini, reference, "head")
    url = make_db()
    upgrade_to(ini, url, "head")
    execute(url, *DAMAGE[damage])
    checked = run_cli("check", "--config", str(ini), env={"DATABASE_URL": url})
    assert checked.returncode == ExitCode.DRIFT, checked
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.OK, result
    assert result.named("heal.repair_applied"), result
    assert db_revisions(url) == ["ee0000000002"]
    assert definitions(url) == definitions(reference)


@pytest.mark.parametrize("damage", sorted(SQLITE_DAMAGE), ids=str)
def test_sqlite_hostile_names_are_found_and_healed(
    project: Project, tmp_path: Path, damage: str
) -> None:
    ini = project("hostile_names")
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade_to(ini, reference, "head")
    url = f"sqlite:///{tmp_path / 'target.db'}"
    upgrade_to(ini, url, "head")
    execute(url, *SQLITE_DAMAGE[damage])
    checked = run_cli("check", "--config", str(ini), env={"DATABASE_URL": url})
    assert checked.returncode == ExitCode.DRIFT, checked
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.OK, result
    assert definitions(url) == definitions(reference)
