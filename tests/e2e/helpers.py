"""Small helpers shared by the end-to-end tests: revision ids, schema and lock queries."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from runner.schema import Schema, reflect_schema


def chain(ini: Path) -> list[str]:
    """Revision ids of a linear project, oldest first."""
    script = ScriptDirectory.from_config(Config(str(ini)))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def heads(ini: Path) -> list[str]:
    return sorted(ScriptDirectory.from_config(Config(str(ini))).get_heads())


def db_revisions(url: str, table: str = "alembic_version") -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(table):
                return []
            rows = conn.execute(text("SELECT version_num FROM alembic_version"))
            return sorted(row[0] for row in rows)
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in inspect(conn).get_columns(table)}
    finally:
        engine.dispose()


def indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {ix["name"] for ix in inspect(conn).get_indexes(table)}
    finally:
        engine.dispose()


def advisory_locks(url: str) -> int:
    """How many advisory locks are held or awaited on the server right now."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def upgrade_to(ini: Path, url: str, revision: str) -> None:
    """Bring a database to ``revision`` with plain Alembic (test set-up)."""
    from alembic import command

    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)


def physical(url: str) -> Schema:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return reflect_schema(
                conn, exclude_tables=("alembic_version", "alembic_deploy_repairs")
            )
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def ledger(url: str) -> list[tuple[str, str | None, str | None]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT kind, table_name, object_name FROM alembic_deploy_repairs ORDER BY id")
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


def clean_head(ini: Path, make_db: Callable[[], str]) -> Schema:
    reference = make_db()
    upgrade_to(ini, reference, "head")
    return physical(reference)


def add_revision(ini: Path, revision: str, down: str, body: str) -> None:
    """Write a revision after ``down`` whose ``upgrade()`` runs ``body`` (``op`` and ``sa``
    imported)."""
    versions = ini.parent / "migrations" / "versions"
    header = (
        '"""extra revision for a test"""\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {revision!r}\n"
        f"down_revision = {down!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
    )
    code = header + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    (versions / f"{revision}_extra.py").write_text(code)
