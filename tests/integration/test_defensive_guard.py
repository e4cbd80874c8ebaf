"""Defensive DDL skips only where Alembic itself would fail, judged when a statement executes.

Driven in-process through Alembic's own ``MigrationContext`` and ``Operations`` on real
databases, with :func:`runner.defensive.guard` installed the way the worker installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.pool import NullPool

from runner import defensive
from runner.defensive import SkippedOperation


@contextmanager
def guarded_ops(
    url: str, metadata: sa.MetaData | None = None
) -> Iterator[tuple[Operations, list[SkippedOperation]]]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn, defensive.defensive_operations(lambda _: None) as skipped:
            opts = {"target_metadata": metadata} if metadata is not None else {}
            context = MigrationContext.configure(conn, opts=opts)
            defensive.guard(context.impl)
            yield Operations(context), skipped
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {ix["name"] for ix in sa.inspect(conn).get_indexes(table)}
    finally:
        engine.dispose()


def test_a_drop_index_without_its_table_runs_as_written(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/guard.db"
    with guarded_ops(url) as (op, skipped):
        op.create_table(
            "t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("c", sa.Integer)
        )
        op.create_index("ix_t_c", "t", ["c"])
        op.drop_index("ix_t_c")  # no table_name: Alembic's placeholder table "no_table"
    assert skipped == []
    assert _indexes(url, "t") == set()


def test_long_names_are_judged_by_the_name_the_server_keeps(pg_url: str) -> None:
    # A naming convention makes names longer than PostgreSQL's 63 characters; the compiler
    # truncates them (with a hash), and that is the name the catalog holds.
    convention = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
    parent, child = "parent_" + "p" * 30, "child_" + "c" * 30
    with guarded_ops(pg_url, sa.MetaData(naming_convention=convention)) as (op, skipped):
        op.create_table(parent, sa.Column("id", sa.Integer, primary_key=True))
        op.create_table(
            child,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("parent_id", sa.Integer),
        )
        op.create_foreign_key(None, child, parent, ["parent_id"], ["id"])
        op.create_foreign_key(None, child, parent, ["parent_id"], ["id"])  # already there
        name = f"fk_{child}_parent_id_{parent}"
        assert len(name) > 63
        op.drop_constraint(op.f(name), child, type_="foreignkey")  # present: must run
    assert [(s.operation, s.reason) for s in skipped] == [("create_foreign_key", "already exists")]
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_foreign_keys(child) == []
    finally:
        engine.dispose()


def test_a_second_unnamed_foreign_key_is_created_as_postgresql_allows(pg_url: str) -> None:
    with guarded_ops(pg_url) as (op, skipped):
        op.create_table("r", sa.Column("id", sa.Integer, primary_key=True))
        op.create_table(
            "t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("r_id", sa.Integer)
        )
        op.create_foreign_key(None, "t", "r", ["r_id"], ["id"])
        op.create_foreign_key(None, "t", "r", ["r_id"], ["id"], ondelete="CASCADE")
        op.drop_constraint("t_r_id_fkey", "t", type_="foreignkey")
    assert skipped == []
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            fks = sa.inspect(conn).get_foreign_keys("t")
    finally:
        engine.dispose()
    assert [fk["options"].get("ondelete") for fk in fks] == ["CASCADE"]


def test_outside_a_defensive_session_nothing_is_guarded(tmp_path: object) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/plain.db", poolclass=NullPool)
    try:
        with engine.begin() as conn:
            context = MigrationContext.configure(conn)
            original = context.impl.add_column
            defensive.guard(context.impl)
            assert context.impl.add_column == original
    finally:
        engine.dispose()


def test_lookups_by_name_judge_the_table_the_search_path_shows(pg_url: str) -> None:
    """Unqualified operations act on the table the search_path shows, which need not be in
    the current schema; the cheap lookups by name must judge that table, as the Inspector
    does, and say nothing of a same-named object elsewhere."""
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE SCHEMA later")
            conn.exec_driver_sql("CREATE TABLE later.t (id integer PRIMARY KEY, c integer)")
            conn.exec_driver_sql("CREATE INDEX ix_t_c ON later.t (c)")
            conn.exec_driver_sql("CREATE SCHEMA elsewhere")  # not on the search_path
            conn.exec_driver_sql("CREATE TABLE elsewhere.u (id integer, gone integer)")
            conn.exec_driver_sql("CREATE INDEX ix_u_gone ON elsewhere.u (gone)")
            conn.exec_driver_sql("CREATE TABLE public.u (id integer)")
    finally:
        engine.dispose()
    url = sa.make_url(pg_url).update_query_dict({"options": "-csearch_path=public,later"})
    with guarded_ops(url.render_as_string(hide_password=False)) as (op, skipped):
        op.add_column("t", sa.Column("c", sa.Integer))  # in later.t: already there
        op.create_table("t", sa.Column("id", sa.Integer))  # later.t is visible
        op.create_index("ix_t_c", "t", ["c"])  # already on later.t
        op.create_unique_constraint("uq_t_c", "t", ["c"])  # new: runs
        op.create_unique_constraint("uq_t_c", "t", ["c"])  # now there
        op.drop_column("u", "gone")  # public.u has none: elsewhere.u's does not count
        op.drop_index("ix_u_gone", table_name="u")  # nor its index
        op.drop_constraint("uq_t_c", "t", type_="unique")  # there: runs
        op.drop_column("t", "c")  # there: runs
    assert [(s.operation, s.object) for s in skipped] == [
        ("add_column", "c"),
        ("create_table", "t"),
        ("create_index", "ix_t_c"),
        ("create_unique_constraint", "uq_t_c"),
        ("drop_column", "gone"),
        ("drop_index", "ix_u_gone"),
    ]
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            assert {c["name"] for c in insp.get_columns("t", schema="later")} == {"id"}
            assert insp.get_unique_constraints("t", schema="later") == []
            assert {c["name"] for c in insp.get_columns("u", schema="elsewhere")} == {
                "id",
                "gone",
            }
    finally:
        engine.dispose()
