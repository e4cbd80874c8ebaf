"""Heals reproduce the object exactly as a clean upgrade made it, compared by the server's
own definitions (``pg_get_indexdef``, ``pg_get_constraintdef``, ``format_type``, generation,
identity and its sequence, collations, comments on PostgreSQL; ``sqlite_master`` text on
SQLite), on the ``fidelity`` sample project, which creates one object of every kind that a
model-rendered heal used to get wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import db_revisions, execute, ledger, upgrade_to
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]

_PG_DEFINITIONS = """
SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname,
       concat_ws(' | ', format_type(a.atttypid, a.atttypmod), co.collname, a.attnotnull::text,
                 a.attgenerated, a.attidentity, pg_get_expr(d.adbin, d.adrelid),
                 col_description(c.oid, a.attnum))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'table', n.nspname || '.' || c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind = 'r'
UNION ALL
SELECT 'constraint', n.nspname || '.' || t.relname || '.' || x.conname, pg_get_constraintdef(x.oid)
FROM pg_constraint x JOIN pg_class t ON t.oid = x.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'index', n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'sequence', s.seqrelid::regclass::text,
       concat_ws(' ', s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'enum', t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid GROUP BY t.typname
"""

_SQLITE_DEFINITIONS = """
SELECT type, name, sql FROM sqlite_master
WHERE sql IS NOT NULL AND name NOT IN ('alembic_version', 'alembic_deploy_repairs')
"""

_BOOKKEEPING = ("alembic_version", "alembic_deploy_repairs")


def definitions(url: str) -> set[tuple[Any, ...]]:
    """Every object's definition as the server prints it (the runner's tables left out)."""
    query = _PG_DEFINITIONS if url.startswith("postgresql") else _SQLITE_DEFINITIONS
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = {tuple(row) for row in conn.execute(text(query))}
    finally:
        engine.dispose()
    return {row for row in rows if not any(name in str(row[1]) for name in _BOOKKEEPING)}


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


PG_DAMAGE = {
    "table-with-identity-generated-collation-comments": "DROP TABLE documents CASCADE",
    "generated-column": "ALTER TABLE documents DROP COLUMN total",
    "collated-column-and-what-is-on-it": "ALTER TABLE documents DROP COLUMN code CASCADE",
    "commented-column": "ALTER TABLE documents DROP COLUMN note",
    "exclusion-constraint": "ALTER TABLE documents DROP CONSTRAINT ex_documents_valid_during",
    "deferrable-unique": "ALTER TABLE documents DROP CONSTRAINT uq_documents_code",
    "check": "ALTER TABLE documents DROP CONSTRAINT ck_documents_qty",
    "covering-index": "DROP INDEX ix_documents_code_incl",
    "partial-index": "DROP INDEX ix_documents_open",
    "expression-index": "DROP INDEX ix_documents_key",
    "collated-sorted-opclass-index": "DROP INDEX ix_documents_title_desc",
    "deferrable-match-full-fk": "ALTER TABLE lines DROP CONSTRAINT fk_lines_document",
    "serial-key-in-a-quoted-name": 'DROP TABLE "o\'rders"',
    "everything-at-once": 'DROP TABLE documents CASCADE; DROP TABLE "o\'rders"; '
    "DROP TYPE doc_state",
}


@pytest.mark.parametrize("damage", sorted(PG_DAMAGE), ids=str)
@pytest.mark.parametrize("stamp", ["head", "fd0000000001"])
def test_postgresql_heal_equals_a_clean_upgrade(
    project: Project, make_db: Callable[[], str], damage: str, stamp: str
) -> None:
    ini = project("fidelity")
    reference = make_db()
    upgrade_to(ini, reference, "head")
    url = make_db()
    upgrade_to(ini, url, stamp)
    statement = PG_DAMAGE[damage]
    if stamp != "head" and "note" in statement:
        pytest.skip("documents.note comes with the head revision")
    execute(url, *statement.split("; "))
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.OK, result
    assert result.named("heal.repair_applied"), result
    assert db_revisions(url) == ["fd0000000002"]
    assert definitions(url) == definitions(reference)


def test_postgresql_heal_records_the_sql_that_ran(
    project: Project, make_db: Callable[[], str]
) -> None:
    ini = project("fidelity")
    url = make_db()
    upgrade_to(ini, url, "head")
    execute(url, "DROP INDEX ix_documents_code_incl")
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.OK, result
    ddl = result.one("heal.repair_applied")["ddl"]
    assert ddl == (
        "CREATE INDEX ix_documents_code_incl ON documents USING btree (code) INCLUDE (title);"
    )
    assert [row[0] for row in ledger(url)] == ["missing_index"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Callable[[str], str]:
    def make(name: str) -> str:
        return f"sqlite:///{tmp_path / name}.db"

    return make


SQLITE_DAMAGE = {
    # Unnamed inline foreign key and unique constraint, generated column, trigger.
    "table-with-unnamed-constraints": ["DROP TABLE lines"],
    "column": ["ALTER TABLE lines DROP COLUMN amount"],
    "expression-index": ["DROP INDEX ix_documents_key"],
    "unnamed-foreign-key": [
        "CREATE TABLE lines_new (id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL,"
        " code VARCHAR(20) NOT NULL, amount INTEGER DEFAULT '0' NOT NULL)",
        "INSERT INTO lines_new SELECT * FROM lines",
        "DROP TABLE lines",
        "ALTER TABLE lines_new RENAME TO lines",
        "CREATE INDEX ix_lines_document ON lines (document_id)",
        "CREATE TRIGGER lines_touch AFTER INSERT ON lines BEGIN "
        "UPDATE documents SET qty = qty WHERE id = NEW.document_id; END",
    ],
}


@pytest.mark.parametrize("damage", sorted(SQLITE_DAMAGE), ids=str)
def test_sqlite_heal_equals_a_clean_upgrade_and_keeps_rows(
    project: Project, sqlite_url: Callable[[str], str], damage: str
) -> None:
    ini = project("fidelity")
    reference = sqlite_url("reference")
    upgrade_to(ini, reference, "head")
    url = sqlite_url("target")
    upgrade_to(ini, url, "head")
    execute(
        url,
        "INSERT INTO documents (id, code, price, qty) VALUES (1, 'a', 2, 3), (2, 'b', 5, 7)",
        "INSERT INTO lines (id, document_id, code) VALUES (10, 1, 'x'), (11, 2, 'y')",
    )
    before = rows(url, "documents")
    execute(url, *SQLITE_DAMAGE[damage])
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.OK, result
    assert result.named("heal.repair_applied"), result
    assert definitions(url) == definitions(reference)
    assert rows(url, "documents") == before
    if damage != "table-with-unnamed-constraints":
        assert [row[:2] for row in rows(url, "lines")] == [(10, 1), (11, 2)]
    for applied in result.named("heal.repair_applied"):
        assert "cannot proceed" not in applied["ddl"] and applied["ddl"].strip(), applied


def test_sqlite_heal_that_fails_changes_nothing(
    project: Project, sqlite_url: Callable[[str], str]
) -> None:
    """A rebuild whose rows break the re-created constraint rolls back whole (exit 7)."""
    ini = project("fidelity")
    url = sqlite_url("target")
    upgrade_to(ini, url, "head")
    execute(
        url,
        "PRAGMA legacy_alter_table = ON",
        "CREATE TABLE documents_new (id INTEGER PRIMARY KEY, code VARCHAR(20) NOT NULL,"
        " title TEXT, price NUMERIC NOT NULL DEFAULT 0, qty INTEGER NOT NULL DEFAULT 1"
        " CHECK (qty >= 0), total NUMERIC GENERATED ALWAYS AS (price * qty) VIRTUAL,"
        " data JSON, note TEXT)",
        "DROP TABLE documents",
        "ALTER TABLE documents_new RENAME TO documents",
        "INSERT INTO documents (id, code) VALUES (1, 'same'), (2, 'same')",
        "DROP INDEX IF EXISTS ix_lines_document",
    )
    before = definitions(url)
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": url})
    assert result.returncode == ExitCode.DRIFT, result
    assert "UNIQUE" in result.stderr or "unique" in result.stderr.lower(), result
    assert definitions(url) == before
    assert len(rows(url, "documents")) == 2
