"""runner.ddlwatch against a real PostgreSQL: which tables a revision's DDL touched."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from runner.ddlwatch import Changes, DdlWatch
from runner.schema import reflect_schema


@pytest.fixture
def conn(pg_engine: Engine) -> Iterator[Connection]:
    with pg_engine.connect() as connection:
        if connection.exec_driver_sql("SHOW is_superuser").scalar_one() != "on":
            pytest.skip("event triggers need a superuser (TEST_DATABASE_URL is not one)")
        connection.rollback()
        yield connection


def _watch(conn: Connection) -> DdlWatch:
    watch = DdlWatch.install(conn)
    assert watch is not None
    # Installing leaves no transaction open (Alembic would take it for env.py's own).
    assert not conn.in_transaction()
    return watch


def _revision(conn: Connection, watch: DdlWatch, *statements: str) -> Changes | None:
    """Run ``statements`` as one revision's transaction and ask what they changed."""
    with conn.begin():
        for statement in statements:
            conn.exec_driver_sql(statement)
        return watch.changes(conn, [None, "side"])


def test_a_revision_touches_its_tables_and_those_whose_text_names_what_it_changed(
    conn: Connection,
) -> None:
    watch = _watch(conn)
    made = _revision(
        conn,
        watch,
        "CREATE SCHEMA side",
        "CREATE TABLE a (id serial PRIMARY KEY, code text UNIQUE)",
        "CREATE TABLE b (id integer PRIMARY KEY, a_id integer REFERENCES a (id))",
        "CREATE INDEX ix_b ON b (a_id)",
        "CREATE TABLE side.c (a_code text REFERENCES a (code))",
        "CREATE TABLE bystander (id integer)",
    )
    assert made == Changes(
        touched=frozenset({(None, "a"), (None, "b"), ("side", "c"), (None, "bystander")}),
        removed=frozenset(),
        ddl=True,
        types=True,  # a schema was made: its enums are read
        schemas=True,  # and the schemas are listed again
    )
    # An altered table keeps its name: the foreign keys naming it read the same.
    altered = _revision(conn, watch, "ALTER TABLE a ADD COLUMN extra integer")
    assert altered == Changes(
        touched=frozenset({(None, "a")}), removed=frozenset(), ddl=True, types=False
    )
    # A renamed table: its foreign keys elsewhere read anew, the bystander does not.
    renamed = _revision(conn, watch, "ALTER TABLE a RENAME TO a2")
    assert renamed == Changes(
        touched=frozenset({(None, "a2"), (None, "b"), ("side", "c")}),
        removed=frozenset({(None, "a")}),
        ddl=True,
        types=False,
    )
    # A renamed sequence: the default that names it.
    assert _revision(conn, watch, "ALTER SEQUENCE a_id_seq RENAME TO a_serial") == Changes(
        touched=frozenset({(None, "a2")}), removed=frozenset(), ddl=True, types=False
    )
    # Rows only: nothing to reflect.
    assert _revision(conn, watch, "INSERT INTO bystander VALUES (1)") == Changes(
        touched=frozenset(), removed=frozenset(), ddl=False
    )
    # A dropped index is placed by the names of the tables reflected so far.
    watch.remember([{"schema": None, "name": "b", "indexes": [{"name": "ix_b"}]}])
    assert _revision(conn, watch, "DROP INDEX ix_b") == Changes(
        touched=frozenset({(None, "b")}), removed=frozenset(), ddl=True, types=False
    )
    # An index made and dropped within the revision (a data migration's helper) leaves the
    # table as it was.
    assert _revision(
        conn, watch, "CREATE INDEX passing ON b (id)", "DROP INDEX passing"
    ) == Changes(touched=frozenset(), removed=frozenset(), ddl=True, types=False)
    moved = _revision(conn, watch, "ALTER TABLE bystander SET SCHEMA side")
    assert moved == Changes(
        touched=frozenset({("side", "bystander")}),
        removed=frozenset({(None, "bystander")}),
        ddl=True,
        types=False,
    )
    watch.remember([{"schema": None, "name": "a2", "primary_key": {"name": "a_pkey"}}])
    watch.remember([{"schema": None, "name": "a2", "uniques": [{"name": "a_code_key"}]}])
    dropped = _revision(conn, watch, "DROP TABLE a2 CASCADE")
    assert dropped == Changes(
        touched=frozenset({(None, "b"), ("side", "c")}),  # their foreign keys went with it
        removed=frozenset({(None, "a2")}),
        ddl=True,
        types=True,  # the table's row type went with it
    )


def test_an_altered_parent_touches_every_partition_and_child_below_it(conn: Connection) -> None:
    watch = _watch(conn)
    made = _revision(
        conn,
        watch,
        "CREATE TABLE pt (id integer, k integer) PARTITION BY RANGE (k)",
        "CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM (0) TO (10)",
        "CREATE TABLE pt_2 PARTITION OF pt FOR VALUES FROM (10) TO (20) PARTITION BY RANGE (k)",
        "CREATE TABLE pt_2a PARTITION OF pt_2 FOR VALUES FROM (10) TO (15)",
        "CREATE TABLE parent (id integer)",
        "CREATE TABLE heir (extra text) INHERITS (parent)",
    )
    assert made is not None
    # A column added to the root reaches every level of partitions; one added to an
    # inherited table reaches its heir. Neither name changed, so nothing else is read.
    added = _revision(conn, watch, "ALTER TABLE pt ADD COLUMN v integer")
    assert added == Changes(
        touched=frozenset({(None, "pt"), (None, "pt_1"), (None, "pt_2"), (None, "pt_2a")}),
        removed=frozenset(),
        ddl=True,
        types=False,
    )
    # A partition attached: each foreign key naming the parent gets a copy naming the
    # partition, on the referencing table, which is read again too.
    _revision(
        conn,
        watch,
        "CREATE TABLE keyed (id integer, k integer, PRIMARY KEY (id, k)) PARTITION BY RANGE (k)",
        "CREATE TABLE keyed_1 PARTITION OF keyed FOR VALUES FROM (0) TO (10)",
        "CREATE TABLE user_of (kid integer, kk integer, FOREIGN KEY (kid, kk) REFERENCES keyed)",
        "CREATE TABLE keyed_2 (id integer NOT NULL, k integer NOT NULL)",
    )
    attached = _revision(
        conn, watch, "ALTER TABLE keyed ATTACH PARTITION keyed_2 FOR VALUES FROM (10) TO (20)"
    )
    assert attached is not None
    assert {(None, "keyed"), (None, "keyed_2"), (None, "user_of")} <= attached.touched
    inherited = _revision(conn, watch, "ALTER TABLE parent ADD CONSTRAINT positive CHECK (id > 0)")
    assert inherited == Changes(
        touched=frozenset({(None, "parent"), (None, "heir")}),
        removed=frozenset(),
        ddl=True,
        types=False,
    )


def test_the_watch_tells_type_changes_and_keeps_its_statements_prepared(
    conn: Connection,
) -> None:
    watch = _watch(conn)
    made = _revision(conn, watch, "CREATE TYPE mood AS ENUM ('calm')", "CREATE TABLE a (m mood)")
    assert made is not None and made.types and made.touched == {(None, "a")}
    indexed = _revision(conn, watch, "CREATE INDEX ix_a ON a (m)")
    assert indexed is not None and not indexed.types
    assert watch.prepared  # the touched tables were found by a prepared statement
    # A value added to the enum: the enum, and the table whose column has that type.
    added = _revision(conn, watch, "ALTER TYPE mood ADD VALUE 'angry'")
    assert added == Changes(frozenset({(None, "a")}), frozenset(), ddl=True, types=True)
    # A revision that deallocates every prepared statement: the watch prepares again.
    dropped = _revision(conn, watch, "DEALLOCATE ALL", "ALTER TABLE a ADD COLUMN n integer")
    assert dropped == Changes(frozenset({(None, "a")}), frozenset(), ddl=True, types=False)
    with conn.begin():
        count = "SELECT count(*) FROM pg_prepared_statements WHERE name = ANY(%(names)s)"
        names = list(watch.prepared)
        assert conn.exec_driver_sql(count, {"names": names}).scalar_one() == len(names) > 0


def test_sqlalchemys_catalog_queries_run_prepared_inside_the_block(conn: Connection) -> None:
    watch = _watch(conn)
    _revision(
        conn,
        watch,
        "CREATE TABLE a (id serial PRIMARY KEY, code text UNIQUE DEFAULT 'x')",
        "CREATE TABLE b (id bigint GENERATED ALWAYS AS IDENTITY, a_id integer REFERENCES a)",
        "CREATE INDEX ix_b ON b (lower(a_id::text))",
    )
    only = {(None, "a"), (None, "b")}
    with conn.begin():
        plain = reflect_schema(conn, only=only)
    sent: list[str] = []
    sa.event.listen(conn, "after_cursor_execute", lambda *args: sent.append(args[2]))
    for _ in range(2):  # prepared on first sight, then only executed
        with conn.begin():
            assert watch.changes(conn, [None]) is not None
            with watch.preparing():
                assert reflect_schema(conn, only=only) == plain
    reads = [s for s in sent if s.lstrip().upper().startswith("SELECT")]
    assert not [s for s in reads if "pg_catalog.pg_attribute" in s], reads  # none as text
    executed = [s for s in sent if s.startswith("EXECUTE alembic_deploy_ddl_")]
    assert len(executed) >= 2 * 5, sent  # columns, keys, indexes, foreign keys, oids
    prepared = [s for s in sent if s.startswith("PREPARE alembic_deploy_ddl_")]
    assert len({p.split()[1] for p in prepared}) == len(prepared)  # each once
    # SQLAlchemy's column query has parameters the server cannot type (json_build_object's
    # keys): they were declared, and the statement prepared all the same.
    assert watch.declared and not watch.unpreparable


def test_a_statement_the_server_will_not_prepare_runs_as_it_is(conn: Connection) -> None:
    watch = _watch(conn)
    with conn.begin():
        watch.changes(conn, [None])
        with watch.preparing():
            # A NULL parameter whose type nothing tells: not prepared, run as text, and the
            # transaction is still usable.
            assert conn.exec_driver_sql("SELECT %(x)s IS NULL", {"x": None}).scalar_one()
            # One typed by its value once the server asks: prepared.
            found = conn.exec_driver_sql("SELECT json_build_object(%(k)s, 1)", {"k": "one"})
            assert found.scalar_one() == {"one": 1}
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    assert len(watch.unpreparable) == 1
    assert list(watch.declared.values()) == [{}, {"k": "text"}]


def test_the_watch_gives_up_where_it_cannot_follow(conn: Connection, pg_engine: Engine) -> None:
    watch = _watch(conn)
    assert _revision(conn, watch, "CREATE TABLE a (id integer)") is not None
    # Expressions are spelled against the search_path.
    assert _revision(conn, watch, "SET search_path TO pg_catalog, public") is None
    assert _revision(conn, watch, "ALTER TABLE a ADD COLUMN b integer") is not None
    # Another session's DDL never reaches this session's log.
    with pg_engine.connect() as other:
        other.exec_driver_sql("CREATE TABLE elsewhere (id integer)")
        other.commit()
    assert _revision(conn, watch) is None
    assert _revision(conn, watch) == Changes(frozenset(), frozenset(), ddl=False)
    # A renamed schema renames everything in it.
    _revision(conn, watch, "CREATE SCHEMA side")
    assert _revision(conn, watch, "ALTER SCHEMA side RENAME TO far") is None
    # An index dropped that no reflection saw: whose table was it?
    _revision(conn, watch, "CREATE INDEX ix_a ON a (b)")
    assert _revision(conn, watch, "DROP INDEX ix_a") is None
    # Catalog surgery runs no DDL: only the catalog rows it wrote tell.
    surgery = (
        "UPDATE pg_catalog.pg_attribute SET attnotnull = true "
        "WHERE attrelid = 'public.a'::regclass AND attname = 'b'"
    )
    assert _revision(conn, watch, "INSERT INTO a VALUES (1, 2)", surgery) is None
    assert _revision(conn, watch, "INSERT INTO a VALUES (3, 4)") == Changes(
        frozenset(), frozenset(), ddl=False
    )
    # A revision that discards the session's temporary objects takes the log with them.
    assert _revision(conn, watch, "DISCARD TEMP") is None
    assert _revision(conn, watch, "CREATE TABLE public.later (id integer)") is None


def test_the_triggers_go_with_the_session(pg_url: str) -> None:
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if conn.exec_driver_sql("SHOW is_superuser").scalar_one() != "on":
                pytest.skip("event triggers need a superuser (TEST_DATABASE_URL is not one)")
            conn.rollback()
            watch = _watch(conn)
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            conn.rollback()
            assert watch.trigger.endswith(f"_{pid}")
        listed = sa.text("SELECT evtname FROM pg_event_trigger WHERE evtname LIKE '%_' || :pid")
        deadline = time.monotonic() + 30
        with engine.connect() as conn:
            # The backend cleans its temporary schema up as it exits, after the disconnect.
            while conn.execute(listed, {"pid": str(pid)}).all():
                assert time.monotonic() < deadline, "the event triggers outlived their session"
                conn.rollback()
                time.sleep(0.05)
    finally:
        engine.dispose()


def test_a_role_that_may_not_create_event_triggers_gets_no_watch(pg_url: str) -> None:
    role = f"plain_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with admin.begin() as conn:
            if conn.exec_driver_sql("SHOW is_superuser").scalar_one() != "on":
                pytest.skip("needs a superuser to create a role")
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER")
        url = sa.make_url(pg_url).set(username=role, password="pw")
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                assert DdlWatch.install(conn) is None
                assert not conn.in_transaction()
        finally:
            engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()
