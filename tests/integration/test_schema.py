"""``reflect_schema`` and ``schema_from_metadata`` on real PostgreSQL (and SQLite), checked by
``drift.diff``: the linear project at every revision, hand-made damage, bulk reflection."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from runner.drift import Finding, FindingKind, diff, summarize
from runner.schema import (
    FOR_DIFF,
    Reading,
    Schema,
    reflect_schema,
    schema_from_metadata,
    table_digest,
)
from runner.sqltext import normalize_default, normalize_sql
from tests.projects import LINEAR_HEAD, LINEAR_REVISIONS, copy_project

# Tables of the linear project after each revision.
TABLES_AT = {
    "aa0000000001": {"users"},
    "aa0000000002": {"users", "files"},
    "aa0000000003": {"users", "files", "analyses"},
    "aa0000000004": {"users", "files", "analyses", "health_metrics"},
    "aa0000000005": {"users", "files", "analyses", "health_metrics"},
    "aa0000000006": {"users", "files", "analyses", "health_metrics"},
    "aa0000000007": {"users", "files", "analyses", "health_metrics", "settings"},
}


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Undo what env.py's ``fileConfig()`` does to logging (it disables existing loggers)."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger(), *manager.loggerDict.values()]
    saved = [
        (logger, logger.disabled, logger.level, logger.handlers[:], logger.propagate)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    ]
    try:
        yield
    finally:
        for logger, disabled, level, handlers, propagate in saved:
            logger.disabled, logger.propagate = disabled, propagate
            logger.setLevel(level)
            logger.handlers[:] = handlers


def upgrade(project: Path, url: str, revision: str) -> None:
    """``alembic upgrade <revision>`` in-process, through the project's own env.py."""
    config = Config(str(project / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with logging_kept():
        command.upgrade(config, revision)


def load_models(project: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the copied project's ``models.py`` under a name of its own."""
    name = f"linear_models_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, project / "models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Declarative resolves Mapped[...] annotations through sys.modules[cls.__module__].
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def reflect(engine: Engine, **kwargs: Any) -> Schema:
    with engine.connect() as conn:
        return reflect_schema(conn, **kwargs)


def execute(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def kinds(findings: list[Finding]) -> list[FindingKind]:
    return [finding.kind for finding in findings]


@pytest.fixture
def linear(tmp_path: Path) -> Path:
    return copy_project("linear", tmp_path)


@pytest.fixture
def expected_head(
    linear: Path, pg_url: str, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Schema:
    """The linear project upgraded to head on ``pg_url``; returns the models' schema."""
    upgrade(linear, pg_url, "head")
    models = load_models(linear, monkeypatch)
    return schema_from_metadata(models.Base.metadata, pg_engine.dialect)


def test_every_revision_reflects_the_same_twice(
    linear: Path, pg_url: str, pg_engine: Engine
) -> None:
    digests: dict[str, dict[str, str]] = {}
    for revision in LINEAR_REVISIONS:
        upgrade(linear, pg_url, revision)
        first, second = reflect(pg_engine), reflect(pg_engine)
        assert first == second, revision
        assert {name for _, name in first.tables} == TABLES_AT[revision]
        assert Schema.from_dict(json.loads(json.dumps(first.to_dict()))) == first
        digests[revision] = {table.name: table_digest(table) for table in first.tables.values()}
    # Content addressing: a table nobody touched keeps its digest from revision to revision.
    assert digests["aa0000000002"]["users"] == digests["aa0000000004"]["users"]
    assert digests["aa0000000004"]["users"] != digests["aa0000000005"]["users"]


def test_head_matches_the_models(expected_head: Schema, pg_engine: Engine) -> None:
    """Migrations and models describe one schema: no drift at head, equal models."""
    actual = reflect(pg_engine)
    assert diff(expected_head, actual) == [], summarize(diff(expected_head, actual))
    assert actual == expected_head
    assert actual.enums[(None, "file_status")].values == (
        "uploaded",
        "processing",
        "done",
        "failed",
    )
    assert actual.tables[(None, "files")].column("status").type == "ENUM(file_status)"  # type: ignore[union-attr]


def test_to_dict_round_trips_and_digests_are_stable(
    expected_head: Schema, pg_engine: Engine
) -> None:
    actual = reflect(pg_engine)
    data = actual.to_dict()
    assert Schema.from_dict(json.loads(json.dumps(data))) == actual
    assert json.dumps(data) == json.dumps(reflect(pg_engine).to_dict())
    assert {key: table_digest(t) for key, t in actual.tables.items()} == {
        key: table_digest(t) for key, t in expected_head.tables.items()
    }


@pytest.mark.parametrize(
    ("statement", "kind", "table", "name"),
    [
        ("DROP TABLE health_metrics", FindingKind.MISSING_TABLE, "health_metrics", None),
        ("ALTER TABLE users DROP COLUMN name", FindingKind.MISSING_COLUMN, "users", "name"),
        ("DROP INDEX ix_files_user_id", FindingKind.MISSING_INDEX, "files", "ix_files_user_id"),
        (
            "ALTER TABLE users DROP CONSTRAINT uq_users_email",
            FindingKind.MISSING_UNIQUE,
            "users",
            "uq_users_email",
        ),
        (
            "ALTER TABLE analyses DROP CONSTRAINT ck_analyses_score_range",
            FindingKind.MISSING_CHECK,
            "analyses",
            "ck_analyses_score_range",
        ),
        (
            "ALTER TABLE files DROP CONSTRAINT fk_files_user_id_users",
            FindingKind.MISSING_FOREIGN_KEY,
            "files",
            "fk_files_user_id_users",
        ),
        (
            "ALTER TABLE settings DROP CONSTRAINT settings_pkey",
            FindingKind.MISSING_PRIMARY_KEY,
            "settings",
            "settings_pkey",
        ),
    ],
    ids=lambda value: value if isinstance(value, FindingKind) else None,
)
def test_a_removed_object_is_one_finding(
    expected_head: Schema,
    pg_engine: Engine,
    statement: str,
    kind: FindingKind,
    table: str,
    name: str | None,
) -> None:
    execute(pg_engine, statement)
    findings = diff(expected_head, reflect(pg_engine))
    assert [(f.kind, f.table, f.object) for f in findings] == [(kind, table, name)], summarize(
        findings
    )


def test_extra_and_changed_objects_are_not_missing(
    expected_head: Schema, pg_engine: Engine
) -> None:
    execute(
        pg_engine,
        "ALTER TABLE users ADD COLUMN nickname text",
        "CREATE TABLE audit_log (id serial PRIMARY KEY, note text)",
        "ALTER TABLE analyses ALTER COLUMN kind TYPE varchar(64)",
        "CREATE INDEX ix_users_nickname ON users (nickname)",
    )
    findings = diff(expected_head, reflect(pg_engine))
    assert [(f.kind, f.table, f.object) for f in findings] == [
        (FindingKind.CHANGED_TYPE, "analyses", "kind"),
        (FindingKind.EXTRA_TABLE, "audit_log", None),
        (FindingKind.EXTRA_COLUMN, "users", "nickname"),
        (FindingKind.EXTRA_INDEX, "users", "ix_users_nickname"),
    ], summarize(findings)
    assert "VARCHAR(32)" in findings[0].detail and "VARCHAR(64)" in findings[0].detail


def test_failed_create_index_concurrently_is_an_invalid_index(
    expected_head: Schema, pg_engine: Engine
) -> None:
    """CREATE INDEX CONCURRENTLY that fails leaves an invalid index behind, under its name."""
    execute(pg_engine, "CREATE UNIQUE INDEX ix_users_name ON users (name)")
    expected = reflect(pg_engine)
    execute(
        pg_engine,
        "DROP INDEX ix_users_name",
        "INSERT INTO users (email, name)"
        " VALUES ('a@example.org', 'same'), ('b@example.org', 'same')",
    )
    with (
        pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(sa.exc.IntegrityError),
    ):
        conn.execute(sa.text("CREATE UNIQUE INDEX CONCURRENTLY ix_users_name ON users (name)"))
    actual = reflect(pg_engine)
    assert [(f.kind, f.table, f.object) for f in diff(expected, actual)] == [
        (FindingKind.INVALID_INDEX, "users", "ix_users_name")
    ]
    # Unexpected at head too, and still reported as invalid rather than merely extra.
    assert kinds(diff(expected_head, actual)) == [FindingKind.INVALID_INDEX]


@pytest.mark.parametrize(
    ("statements", "table", "name"),
    [
        (
            (
                "ALTER TABLE analyses DROP CONSTRAINT ck_analyses_score_range",
                "ALTER TABLE analyses ADD CONSTRAINT ck_analyses_score_range"
                " CHECK (score >= 0 AND score <= 100) NOT VALID",
            ),
            "analyses",
            "ck_analyses_score_range",
        ),
        (
            (
                "ALTER TABLE files DROP CONSTRAINT fk_files_user_id_users",
                "ALTER TABLE files ADD CONSTRAINT fk_files_user_id_users FOREIGN KEY (user_id)"
                " REFERENCES users (id) ON DELETE CASCADE NOT VALID",
            ),
            "files",
            "fk_files_user_id_users",
        ),
    ],
    ids=["check", "foreign_key"],
)
def test_not_valid_constraint_is_unvalidated(
    expected_head: Schema, pg_engine: Engine, statements: tuple[str, ...], table: str, name: str
) -> None:
    execute(pg_engine, *statements)
    findings = diff(expected_head, reflect(pg_engine))
    assert [(f.kind, f.table, f.object) for f in findings] == [
        (FindingKind.UNVALIDATED_CONSTRAINT, table, name)
    ], summarize(findings)


def test_enum_without_a_label_is_a_missing_enum_value(
    expected_head: Schema, pg_engine: Engine
) -> None:
    # How downgrade of aa0000000006 rebuilds the type: PostgreSQL cannot drop a label.
    execute(
        pg_engine,
        "ALTER TYPE file_status RENAME TO file_status_old",
        "CREATE TYPE file_status AS ENUM ('uploaded', 'processing', 'done')",
        "ALTER TABLE files ALTER COLUMN status TYPE file_status USING status::text::file_status",
        "DROP TYPE file_status_old",
    )
    findings = diff(expected_head, reflect(pg_engine))
    assert [(f.kind, f.object) for f in findings] == [
        (FindingKind.MISSING_ENUM_VALUE, "file_status")
    ], summarize(findings)
    assert "'failed'" in findings[0].detail


def rich_metadata(dialect_name: str) -> sa.MetaData:
    """Features the linear project lacks: conventions, unnamed constraints, identity,
    composite keys, partial and expression indexes, many kinds of server default."""
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        }
    )
    parent = sa.Table(
        "parent",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("code", sa.String(8), nullable=False, unique=True),
        sa.Column("label", sa.Unicode(40), server_default="none"),
        sa.Column("ratio", sa.Float, server_default=sa.text("0.5")),
        sa.Column("amount", sa.Numeric(10, 2), server_default="0"),
        sa.Column("flag", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("at", sa.DateTime, server_default=sa.text("CURRENT_TIMESTAMP")),
        sa.Column("mood", sa.Enum("happy", "sad", name="mood")),
        sa.Column("notes", sa.Text),
        sa.CheckConstraint("amount >= 0 AND (ratio < 1 OR ratio IS NULL)", name="ck_parent_amount"),
        sa.CheckConstraint("code <> ''"),  # unnamed: PostgreSQL calls it parent_code_check
    )
    child = sa.Table(
        "child",
        metadata,
        sa.Column(
            "parent_id",
            sa.BigInteger,
            sa.ForeignKey("parent.id", ondelete="SET NULL", onupdate="CASCADE"),
        ),
        sa.Column("pos", sa.SmallInteger, nullable=False),
        sa.Column("name", sa.String(20), index=True),
        sa.PrimaryKeyConstraint("pos", "name", name="pk_child"),
        sa.UniqueConstraint("parent_id", "pos"),
    )
    sa.Index("ix_parent_code_label", parent.c.code, parent.c.label, unique=True)
    if dialect_name == "postgresql":
        parent.append_column(sa.Column("tags", postgresql.ARRAY(sa.Text), server_default="{}"))
        parent.append_column(sa.Column("seq", sa.Integer, sa.Identity(always=True)))
        parent.append_column(sa.Column("kind", sa.String(10)))
        parent.append_constraint(sa.CheckConstraint("kind IN ('a', 'b')", name="ck_parent_kind"))
        # SQLAlchemy's SQLite reflection skips expression indexes (with a warning).
        sa.Index(
            "ix_child_lower_name", sa.func.lower(child.c.name), postgresql_where=child.c.pos > 0
        )
    return metadata


@pytest.fixture(params=["postgresql", "sqlite"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_engine")
        return
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        yield engine
    finally:
        engine.dispose()


def test_create_all_reflects_as_the_metadata_says(any_engine: Engine) -> None:
    """The same schema made by create_all instead of migrations compares equal too."""
    metadata = rich_metadata(any_engine.dialect.name)
    with any_engine.begin() as conn:
        metadata.create_all(conn)
    expected = schema_from_metadata(metadata, any_engine.dialect)
    actual = reflect(any_engine)
    assert diff(expected, actual) == [], summarize(diff(expected, actual))
    assert actual == expected
    assert reflect(any_engine) == actual


def test_the_reading_for_diff_finds_what_the_full_reading_finds(pg_engine: Engine) -> None:
    """Verify reads a live database without the server's definitions: the same schema by
    ``==`` (and so by diff), invalid and unvalidated objects included, none of the costly
    definition functions asked for."""
    metadata = rich_metadata("postgresql")
    with pg_engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(sa.text("CREATE TABLE pairs (a int, b int, note text DEFAULT 'x')"))
        conn.execute(sa.text("ALTER TABLE pairs ADD CONSTRAINT ck_pairs_a CHECK (a > 0) NOT VALID"))
        conn.execute(sa.text("INSERT INTO pairs VALUES (1, 1), (1, 1)"))
    with (
        pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(sa.exc.IntegrityError),
    ):
        conn.execute(sa.text("CREATE UNIQUE INDEX CONCURRENTLY ix_pairs_a ON pairs (a)"))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    full = reflect(pg_engine)
    with pg_engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", record)
        compared = reflect_schema(conn, reading=FOR_DIFF)

    assert compared == full and diff(full, compared) == []
    pairs = compared.tables[(None, "pairs")]
    assert [(i.name, i.valid) for i in pairs.indexes] == [("ix_pairs_a", False)]
    assert [(c.name, c.valid) for c in pairs.checks] == [("ck_pairs_a", False)]
    # The full reading carries the definitions heal replays; the reading for diff none.
    everything = [
        item
        for table in full.tables.values()
        for item in (*table.columns, *table.indexes, *table.checks, *table.foreign_keys)
    ]
    assert all(item.definition for item in everything)
    assert not any(
        item.definition
        for table in compared.tables.values()
        for item in (*table.columns, *table.indexes, *table.checks, *table.foreign_keys)
    )
    # The runner's own definition reads (SQLAlchemy's statements call some of the same
    # functions for what it reflects).
    sent = "\n".join(statements)
    assert "x.indisvalid" in sent and "c.convalidated" in sent
    for own in ("pg_get_indexdef(x.indexrelid)", "pg_get_constraintdef(c.oid)", "AS seqcycle"):
        assert own not in sent, own


def test_sqlite_head_matches_the_models(
    linear: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(linear, url, LINEAR_HEAD)
    engine = sa.create_engine(url)
    try:
        expected = schema_from_metadata(
            load_models(linear, monkeypatch).Base.metadata, engine.dialect
        )
        actual = reflect(engine)
        assert actual == reflect(engine)
        assert actual == expected
        assert actual.enums == {}
        execute(engine, "DROP TABLE health_metrics")
        findings = diff(expected, reflect(engine))
        assert [(f.kind, f.table) for f in findings] == [
            (FindingKind.MISSING_TABLE, "health_metrics")
        ]
    finally:
        engine.dispose()


def make_tables(metadata: sa.MetaData, schema: str, count: int) -> None:
    """``count`` small tables, each with a foreign key to the first and an index."""
    sa.Table("t0000", metadata, sa.Column("id", sa.Integer, primary_key=True), schema=schema)
    for number in range(1, count):
        sa.Table(
            f"t{number:04d}",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("parent_id", sa.ForeignKey(f"{schema}.t0000.id"), index=True),
            sa.Column("name", sa.String(20), nullable=False, server_default="x"),
            schema=schema,
        )


@pytest.mark.slow
def test_reflection_issues_a_constant_number_of_statements(pg_engine: Engine) -> None:
    """Reflection per table would take minutes on a large schema; bulk is flat."""
    metadata = sa.MetaData()
    make_tables(metadata, "small", 5)
    make_tables(metadata, "big", 500)
    with pg_engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema("small"))
        conn.execute(sa.schema.CreateSchema("big"))
        metadata.create_all(conn)

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with pg_engine.connect() as conn:
        # Warm up: the dialect caches a few lookups (pg_am's btree oid) once per process.
        reflect_schema(conn, schemas=("small",))
        sa.event.listen(conn, "before_cursor_execute", count)
        small = reflect_schema(conn, schemas=("small",))
        small_count = len(statements)
        statements.clear()
        started = time.perf_counter()
        big = reflect_schema(conn, schemas=("big",))
        elapsed = time.perf_counter() - started
        big_count = len(statements)

    assert len(small.tables) == 5 and len(big.tables) == 500
    assert all(len(t.foreign_keys) == len(t.indexes) == 1 for t in list(big.tables.values())[1:])
    assert small_count == big_count, (small_count, big_count)
    print(f"\nreflect 500 tables: {big_count} statements, {elapsed:.2f}s")
    expected = schema_from_metadata(metadata, pg_engine.dialect)
    assert big.tables == {key: t for key, t in expected.tables.items() if key[0] == "big"}


JOIN_SETTINGS = "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')"


def test_a_few_tables_are_reflected_with_index_lookups_and_the_settings_put_back(
    pg_engine: Engine,
) -> None:
    """Reflecting a few tables (the snapshot build's per-revision step) turns hash and merge
    joins off for its own statements only: the caller's settings, one of them already
    changed, are as before afterwards, in the same transaction; a full reflection keeps them."""
    metadata = sa.MetaData()
    make_tables(metadata, "few", 3)
    with pg_engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema("few"))
        metadata.create_all(conn)

    seen: list[tuple[str, str]] = []

    def settings(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "set_config" in statement or "current_setting" in statement:
            return
        probe = cursor.connection.cursor()
        probe.execute(JOIN_SETTINGS)
        seen.append(probe.fetchone())

    with pg_engine.connect() as conn:
        conn.execute(sa.text("SET LOCAL enable_mergejoin = off"))
        full = reflect_schema(conn, schemas=("few",))
        sa.event.listen(conn, "before_cursor_execute", settings)
        whole = reflect_schema(conn, schemas=("few",))
        assert set(seen) == {("on", "off")}, seen
        seen.clear()
        some = reflect_schema(conn, schemas=("few",), only=[("few", "t0001"), ("few", "t0002")])
        assert set(seen) == {("off", "off")}, seen
        sa.event.remove(conn, "before_cursor_execute", settings)
        after = conn.exec_driver_sql(JOIN_SETTINGS).one()
        assert tuple(after) == ("on", "off")
        # The last reading of a transaction (the snapshot build's, before the revision's
        # commit) leaves them to the transaction's end instead of sending a statement more.
        last = reflect_schema(
            conn,
            schemas=("few",),
            only=[("few", "t0001"), ("few", "t0002")],
            reading=Reading(last_in_transaction=True),
        )
        assert tuple(conn.exec_driver_sql(JOIN_SETTINGS).one()) == ("off", "off")
        conn.rollback()
        assert tuple(conn.exec_driver_sql(JOIN_SETTINGS).one()) == ("on", "on")
    assert full == whole
    assert some.tables == {key: full.tables[key] for key in [("few", "t0001"), ("few", "t0002")]}
    assert last == some


# Normalisation of SQL text (pure): what PostgreSQL deparses vs what SQLAlchemy compiles.
@pytest.mark.parametrize(
    ("reflected", "written"),
    [
        ("((score >= (0)::numeric) AND (score <= (100)::numeric))", "score >= 0 AND score <= 100"),
        ("score >= 0::numeric AND score <= 100::numeric", "(score >= 0) AND (score <= 100)"),
        (
            "kind::text = ANY (ARRAY['a'::character varying, 'b'::character varying]::text[])",
            "kind IN ('a', 'b')",
        ),
        ("((a)::text <> ALL ((ARRAY['x'::character varying])::text[]))", "a NOT IN ('x')"),
        ("lower((email)::text)", "lower(email)"),
        ("(is_active AND (name IS NOT NULL))", "is_active AND name IS NOT NULL"),
        ("((name)::text ~~ 'a%'::text)", "name LIKE 'a%'"),
        ("CAST(x AS INTEGER) > 5", "x > 5"),
        ("(a = 1) OR ((b = 2) AND (c = 3))", "a = 1 OR b = 2 AND c = 3"),
        ("'x'::character varying", "'x'"),
        ("'{}'::text[]", "'{}'"),
        ("(CURRENT_TIMESTAMP)", "current_timestamp"),
    ],
)
def test_normalize_sql_merges_spellings(reflected: str, written: str) -> None:
    assert normalize_sql(reflected) == normalize_sql(written)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("a AND (b OR c)", "a AND b OR c"),
        ("a - (b - c)", "a - b - c"),
        ("(a + b) * c", "a + b * c"),
        ("NOT (a AND b)", "NOT a AND b"),
        ("'A'", "'a'"),
        ('"Name" = 1', "name = 1"),
    ],
)
def test_normalize_sql_keeps_meaning(left: str, right: str) -> None:
    assert normalize_sql(left) != normalize_sql(right)


def test_normalize_default() -> None:
    assert normalize_default("'true'::boolean") == normalize_default("true") == "true"
    assert normalize_default(None) is None
    assert normalize_default("nextval('users_id_seq'::regclass)") == "nextval('users_id_seq')"
