"""Issue 5's "done when": any revision's schema minus healable objects ends at head, equal
to a clean upgrade. Each case removes objects found by reflection, through SQLAlchemy DDL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import DropConstraint, DropIndex, DropTable

from runner.errors import ExitCode
from tests.e2e.helpers import chain, clean_head, db_revisions, physical, upgrade_to
from tests.fixtures.cli import run_cli
from tests.projects import LINEAR_REVISIONS

Project = Callable[[str], Path]


def _remove(url: str, what: str) -> list[str]:
    """Drop objects of kind ``what`` from every user table; return what was dropped."""
    engine = sa.create_engine(url, poolclass=NullPool)
    dropped: list[str] = []
    kinds = {"constraints": (sa.ForeignKeyConstraint, sa.UniqueConstraint, sa.CheckConstraint)}
    with engine.begin() as conn:
        meta = sa.MetaData()
        names = [n for n in sa.inspect(conn).get_table_names() if n != "alembic_version"]
        tables = [sa.Table(name, meta, autoload_with=conn) for name in names]
        referenced = {fk.column.table.name for t in tables for fk in t.foreign_keys}
        for table in tables:
            if what == "indexes":
                for index in table.indexes:
                    conn.execute(DropIndex(index))
                    dropped.append(str(index.name))
            elif what == "constraints":
                for constraint in list(table.constraints):
                    if isinstance(constraint, kinds["constraints"]) and constraint.name:
                        conn.execute(DropConstraint(constraint))
                        dropped.append(str(constraint.name))
            elif what == "leaf_tables" and table.name not in referenced:
                conn.execute(DropTable(table))
                dropped.append(table.name)
    engine.dispose()
    return dropped


@pytest.mark.slow
@pytest.mark.parametrize("what", ["indexes", "constraints", "leaf_tables"])
@pytest.mark.parametrize("revision", LINEAR_REVISIONS[1:6])
def test_any_revision_minus_healable_objects_reaches_a_clean_head(
    pg_url: str, project: Project, make_db: Callable[[], str], revision: str, what: str
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, revision)
    dropped = _remove(pg_url, what)
    assert dropped, f"nothing to remove at {revision} for {what}"
    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    healed = {e["object"] for e in result.named("heal.repair_applied")}
    assert healed, result
    assert db_revisions(pg_url) == [chain(ini)[-1]]
    assert physical(pg_url) == clean_head(ini, make_db)
