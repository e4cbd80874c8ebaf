"""Heal step: additive repairs for objects the stamped revision says exist but are missing.

``plan_repairs`` is pure: healable findings plus the expected and actual schemas in, an ordered
list of :class:`Repair` out (enum types, missing enum values, tables, columns, indexes, unique
and check constraints, foreign keys last, so that tables that reference each other can be
re-created in any order). Each repair is a set of Alembic operations built from the expected
schema, so quoting and dialect quirks are Alembic's and SQLAlchemy's: ``render_repairs``
prints their SQL (Alembic offline mode), ``apply_repairs`` runs them in ONE transaction
together with a row per repair in the ``alembic_deploy_repairs`` ledger (a view over its
rows, so the user's autogenerate and ``alembic check``, which compare tables, never see it).

Never drops, never changes a type, never rewrites data: ``extra_*`` and ``changed_*``
findings are only reported. A missing NOT NULL column without a default on a table that has
rows cannot be added without inventing data: it is unhealable.

Raises :class:`DriftError` (exit 7) from :func:`require_healable` for unhealable drift.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer
from sqlalchemy.dialects.postgresql.named_types import CreateEnumType
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.types import UserDefinedType

from runner import __version__
from runner.drift import Finding, FindingKind, _label
from runner.errors import DriftError
from runner.logs import get_logger
from runner.schema import (
    SERIAL,
    CheckConstraint,
    Column,
    Enum,
    Exclusion,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)

log = get_logger(__name__)

LEDGER_TABLE = "alembic_deploy_repairs"

#: Repair order: every step only needs what earlier steps created.
_ORDER = {
    FindingKind.MISSING_ENUM: 0,
    FindingKind.MISSING_ENUM_VALUE: 1,
    FindingKind.MISSING_TABLE: 2,
    FindingKind.MISSING_COLUMN: 3,
    FindingKind.MISSING_INDEX: 4,
    FindingKind.MISSING_UNIQUE: 5,
    FindingKind.MISSING_CHECK: 6,
    FindingKind.MISSING_EXCLUSION: 7,
    FindingKind.MISSING_FOREIGN_KEY: 8,
}
_FOREIGN_KEYS_LAST = 9


@dataclass(frozen=True, slots=True)
class Repair:
    """One additive repair: what it heals and the operations that heal it."""

    kind: str
    table: str | None
    object: str | None
    operations: tuple[Callable[[Operations], None], ...] = field(compare=False)
    warning: str | None = None
    order: int = 0
    #: Why a repair has no operations of its own (another repair makes it).
    note: str | None = None

    def describe(self) -> str:
        target = (
            f"{self.table}.{self.object}"
            if self.table and self.object
            else (self.table or self.object or "")
        )
        return f"{self.kind} {target}"


@dataclass(frozen=True, slots=True)
class HealPlan:
    repairs: tuple[Repair, ...]
    unhealable: tuple[Finding, ...]


class _Verbatim(UserDefinedType[Any]):
    """A column type rendered exactly as reflected (it came from the database catalog)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **_: Any) -> str:
        return self.spec


_INTEGERS: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "INTEGER": sa.Integer,
    "BIGINT": sa.BigInteger,
    "SMALLINT": sa.SmallInteger,
}


def _column_type(column: Column, enums: dict[str, Enum]) -> sa.types.TypeEngine[Any]:
    spec = column.type
    if spec.startswith("ENUM(") and spec.endswith(")"):
        name = spec[5:-1]
        enum = enums.get(name)
        schema, _, bare = name.rpartition(".")
        return postgresql.ENUM(
            *(enum.values if enum else ()),
            name=bare,
            schema=schema or None,
            create_type=False,
        )
    if spec.upper() in _INTEGERS:
        return _INTEGERS[spec.upper()]()
    return _Verbatim(spec)


def _sa_column(
    column: Column, enums: dict[str, Enum], dialect: str, *, in_pk: bool = False
) -> sa.Column[Any]:
    if column.definition is not None and dialect == "postgresql":
        # The server's own text: type with collation, then default, generation or identity
        # (with the identity's sequence options), exactly as the migration left them.
        return sa.Column(
            column.name,
            _Verbatim(column.definition),
            nullable=column.nullable,
            autoincrement=False,
            comment=column.comment,
        )
    kwargs: dict[str, Any] = {"nullable": column.nullable, "comment": column.comment}
    args: list[Any] = []
    if column.default is not None:
        kwargs["server_default"] = sa.text(column.default)
    if column.identity in ("always", "by default"):
        args.append(sa.Identity(always=column.identity == "always"))
    kwargs["autoincrement"] = column.identity == SERIAL and in_pk
    return sa.Column(column.name, _column_type(column, enums), *args, **kwargs)


def _verbatim(sql: str) -> sa.TextClause:
    """SQL text the server wrote, executed as it is: no ``:name`` becomes a parameter."""
    return sa.text(sql.replace(":", "\\:"))


def _target(op: Operations, table: Table) -> str:
    preparer = op.get_context().dialect.identifier_preparer
    return preparer.format_table(cast(sa.Table, sa.table(table.name, schema=table.schema)))


def _add_constraint(table: Table, name: str, definition: str) -> Callable[[Operations], None]:
    """``ALTER TABLE .. ADD CONSTRAINT name <the server's definition>`` (PostgreSQL)."""

    def add(op: Operations) -> None:
        quote = op.get_context().dialect.identifier_preparer.quote
        op.execute(
            _verbatim(f"ALTER TABLE {_target(op, table)} ADD CONSTRAINT {quote(name)} {definition}")
        )

    return add


def _where(index: Index) -> dict[str, Any]:
    if index.predicate is None:
        return {}
    return {"postgresql_where": sa.text(index.predicate), "sqlite_where": sa.text(index.predicate)}


def _index_elements(index: Index, table: Table) -> list[Any]:
    names = {c.name for c in table.columns}
    # An expression must be parenthesised in CREATE INDEX (``(data ->> 'id')``), and a column
    # name must not be (it would become an expression).
    return [column if column in names else sa.text(f"({column})") for column in index.columns]


def _fk_op(table: Table, fk: ForeignKey, dialect: str) -> Callable[[Operations], None]:
    if fk.definition is not None and fk.name is not None and dialect == "postgresql":
        return _add_constraint(table, fk.name, fk.definition)

    def create(op: Operations) -> None:
        # Batch mode "auto": a plain ALTER where the database has one (PostgreSQL), Alembic's
        # copy-and-move where it has none (SQLite cannot ALTER constraints).
        with op.batch_alter_table(table.name, schema=table.schema) as batch:
            batch.create_foreign_key(
                fk.name,
                fk.referred_table,
                list(fk.columns),
                list(fk.referred_columns),
                referent_schema=fk.referred_schema,
                ondelete=fk.ondelete,
                onupdate=fk.onupdate,
            )

    return create


def _server_table(table: Table, dialect: str) -> bool:
    """Whether the table can be re-created from the server's own text alone."""
    if dialect == "sqlite":
        return table.definition is not None
    return dialect == "postgresql" and all(c.definition is not None for c in table.columns)


def _table_ops(
    table: Table, enums: dict[str, Enum], dialect: str
) -> list[Callable[[Operations], None]]:
    """CREATE TABLE, then its constraints and indexes (foreign keys are separate repairs,
    except on SQLite, where they are part of the table's text)."""
    if dialect == "sqlite" and table.definition is not None:
        sql = table.definition

        def create_sqlite(op: Operations) -> None:
            op.execute(_verbatim(sql))

        def create_triggers(op: Operations) -> None:
            for trigger in table.triggers:
                op.execute(_verbatim(trigger))

        indexes = [_index_op(table, index, dialect) for index in table.indexes]
        return [create_sqlite, *indexes, create_triggers]
    if _server_table(table, dialect):
        return _pg_table_ops(table, enums)
    pk_columns = set(table.primary_key.columns) if table.primary_key else set()

    def create(op: Operations) -> None:
        items: list[Any] = [
            _sa_column(c, enums, dialect, in_pk=c.name in pk_columns) for c in table.columns
        ]
        if table.primary_key:
            items.append(
                sa.PrimaryKeyConstraint(*table.primary_key.columns, name=table.primary_key.name)
            )
        items += [sa.UniqueConstraint(*u.columns, name=u.name) for u in table.uniques]
        items += [sa.CheckConstraint(sa.text(c.sqltext), name=c.name) for c in table.checks]
        op.create_table(table.name, *items, schema=table.schema, comment=table.comment)

    ops: list[Callable[[Operations], None]] = [create]
    ops += [_index_op(table, index, dialect) for index in table.indexes]
    return ops


def _pg_table_ops(table: Table, enums: dict[str, Enum]) -> list[Callable[[Operations], None]]:
    """The table's columns as the server wrote them, then every constraint from its
    ``pg_get_constraintdef`` (deferrability, NOT VALID, INCLUDE, exclusion) and every index
    from its ``pg_get_indexdef``: the catalog ends up as the migration left it."""

    def create(op: Operations) -> None:
        columns = [_sa_column(c, enums, "postgresql") for c in table.columns]
        op.create_table(table.name, *columns, schema=table.schema, comment=table.comment)

    ops: list[Callable[[Operations], None]] = [create]
    constraints: list[PrimaryKey | UniqueConstraint | CheckConstraint | Exclusion] = []
    if table.primary_key is not None:
        constraints.append(table.primary_key)
    constraints += [*table.uniques, *table.checks, *table.exclusions]
    for constraint in constraints:
        ops.append(_constraint_op(table, constraint))
    ops += [_index_op(table, index, "postgresql") for index in table.indexes]
    return ops


def _constraint_op(
    table: Table, constraint: PrimaryKey | UniqueConstraint | CheckConstraint | Exclusion
) -> Callable[[Operations], None]:
    if constraint.definition is not None and constraint.name is not None:
        return _add_constraint(table, constraint.name, constraint.definition)

    # Unnamed only on PostgreSQL (which names it); plan_repairs keeps them from SQLite.
    name = cast(str, constraint.name)

    def create(op: Operations) -> None:
        with op.batch_alter_table(table.name, schema=table.schema) as batch:
            match constraint:
                case PrimaryKey():
                    batch.create_primary_key(name, list(constraint.columns))
                case UniqueConstraint():
                    batch.create_unique_constraint(name, list(constraint.columns))
                case CheckConstraint():
                    batch.create_check_constraint(name, sa.text(constraint.sqltext))
                case Exclusion():
                    raise ValueError(f"exclusion constraint {constraint.name} has no definition")

    return create


def _index_op(table: Table, index: Index, dialect: str) -> Callable[[Operations], None]:
    definition = index.definition

    def create(op: Operations) -> None:
        if definition is not None and dialect == "sqlite":
            op.execute(_verbatim(definition))  # the CREATE INDEX statement as written
        elif definition is not None and dialect == "postgresql" and index.name is not None:
            quote = op.get_context().dialect.identifier_preparer.quote
            unique = "UNIQUE " if index.unique else ""
            op.execute(
                _verbatim(
                    f"CREATE {unique}INDEX {quote(index.name)} ON {_target(op, table)}"
                    f" USING {definition}"
                )
            )
        else:
            op.create_index(
                index.name,
                table.name,
                _index_elements(index, table),
                unique=index.unique,
                schema=table.schema,
                **_where(index),
            )

    return create


_REBUILT_KINDS = frozenset(
    {
        FindingKind.MISSING_COLUMN,
        FindingKind.MISSING_INDEX,
        FindingKind.MISSING_UNIQUE,
        FindingKind.MISSING_CHECK,
        FindingKind.MISSING_FOREIGN_KEY,
    }
)
_OLD_PREFIX = "_alembic_deploy_old_"


def _rebuild_op(expected: Table, actual: Table) -> Callable[[Operations], None]:
    """SQLite's own recipe for a change ALTER TABLE cannot make: the table is re-created
    from its expected CREATE TABLE text, every row copied over, and its indexes and triggers
    re-created, inside the heal's transaction. Only for a table whose columns are all
    expected (nothing of the live table is left behind)."""
    assert expected.definition is not None
    definition = expected.definition
    present = {column.name for column in actual.columns}
    copied = [column.name for column in expected.columns if column.name in present]
    expected_names = {index.name for index in expected.indexes}
    indexes = [index.definition for index in expected.indexes if index.definition]
    indexes += [
        index.definition
        for index in actual.indexes
        if index.definition and index.name not in expected_names
    ]

    def rebuild(op: Operations) -> None:
        context = op.get_context()
        quote = context.dialect.identifier_preparer.quote
        triggers: list[str] = []
        generated: set[str] = set()
        if not context.as_sql:
            bind = op.get_bind()
            master = sa.table(
                "sqlite_master",
                sa.column("type"),
                sa.column("tbl_name"),
                sa.column("sql"),
                schema=expected.schema,
            )
            triggers = list(
                bind.execute(
                    sa.select(master.c.sql).where(
                        master.c.type == "trigger", master.c.tbl_name == expected.name
                    )
                ).scalars()
            )
        name = _target(op, expected)
        old = quote(_OLD_PREFIX + expected.name)
        # The legacy rename leaves other tables' foreign keys, views and triggers naming
        # the table, so they refer to the re-created one.
        op.execute("PRAGMA legacy_alter_table = ON")
        op.execute(f"ALTER TABLE {name} RENAME TO {old}")
        op.execute(_verbatim(definition))
        if not context.as_sql:
            xinfo = op.get_bind().exec_driver_sql(f"PRAGMA table_xinfo({name})").all()
            generated = {row[1] for row in xinfo if row[6] in (2, 3)}  # hidden: generated
        columns = ", ".join(quote(column) for column in copied if column not in generated)
        old_table = _target(op, dataclasses.replace(expected, name=_OLD_PREFIX + expected.name))
        op.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {old_table}")
        op.execute(f"DROP TABLE {old_table}")
        op.execute("PRAGMA legacy_alter_table = OFF")
        for sql in [*indexes, *triggers]:
            op.execute(_verbatim(sql))

    return rebuild


def _find(items: Iterable[Any], label: str | None) -> Any:
    return next((item for item in items if _label(item) == label), None)


def plan_repairs(
    findings: Sequence[Finding],
    expected: Schema,
    actual: Schema,
    *,
    has_rows: Callable[[Table], bool],
    dialect: str,
) -> HealPlan:
    """Turn healable findings into ordered repairs; the rest is returned as unhealable.

    ``has_rows(table)`` tells whether an existing table holds rows (for NOT NULL columns);
    ``dialect`` is the target's (``postgresql``, ``sqlite``): where the expected schema
    carries the server's own definitions, repairs replay them.
    """
    tables = {t.qualified_name: t for t in expected.tables.values()}
    actual_tables = {t.qualified_name: t for t in actual.tables.values()}
    enums = {e.qualified_name: e for e in expected.enums.values()}
    actual_enums = {e.qualified_name: e for e in actual.enums.values()}
    repairs: list[Repair] = []
    unhealable: list[Finding] = []
    rebuilt: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.kind is FindingKind.MISSING_PRIMARY_KEY:
            unhealable.append(finding)
        if finding.kind not in _ORDER:
            continue  # extra_*, changed_*, invalid/unvalidated: reported, never "fixed"
        table = tables.get(finding.table or "")
        if (
            dialect == "sqlite"
            and finding.kind in _REBUILT_KINDS
            and table is not None
            and _rebuildable(table, actual_tables.get(table.qualified_name))
        ):
            if not _fills_not_null(finding, table, has_rows):
                unhealable.append(finding)
            else:
                rebuilt.setdefault(table.qualified_name, []).append(finding)
            continue
        repair = _repair_for(finding, tables, enums, actual_enums, has_rows, dialect)
        if repair is None:
            unhealable.append(finding)
        else:
            repairs.extend(repair)
    for qualified, table_findings in rebuilt.items():
        repairs.extend(
            _rebuild_repairs(tables[qualified], actual_tables[qualified], table_findings)
        )
    repairs.sort(key=lambda r: (r.order, r.table or "", r.object or ""))
    return HealPlan(tuple(repairs), tuple(unhealable))


def _rebuildable(expected: Table, actual: Table | None) -> bool:
    if actual is None or expected.definition is None:
        return False
    wanted = {column.name for column in expected.columns}
    return all(column.name in wanted for column in actual.columns)


def _rebuild_repairs(expected: Table, actual: Table, findings: list[Finding]) -> list[Repair]:
    """One rebuild for every finding on the table; the first repair carries it."""
    if all(f.kind is FindingKind.MISSING_INDEX for f in findings):
        repairs = []
        for finding in findings:
            index = _find(expected.indexes, finding.object)
            repairs.append(
                Repair(
                    finding.kind,
                    expected.qualified_name,
                    finding.object,
                    (_index_op(expected, index, "sqlite"),),
                    order=_ORDER[finding.kind],
                )
            )
        return repairs
    order = min(_ORDER[f.kind] for f in findings)
    return [
        Repair(
            finding.kind,
            expected.qualified_name,
            finding.object,
            (_rebuild_op(expected, actual),) if position == 0 else (),
            order=order,
            note=None if position == 0 else f"made by the rebuild of {expected.qualified_name}",
        )
        for position, finding in enumerate(findings)
    ]


def _fills_not_null(finding: Finding, table: Table, has_rows: Callable[[Table], bool]) -> bool:
    """False for a NOT NULL column without a default that existing rows would need."""
    if finding.kind is not FindingKind.MISSING_COLUMN:
        return True
    column = table.column(finding.object or "")
    return not (
        column is not None
        and not column.nullable
        and column.default is None
        and column.identity is None
        and has_rows(table)
    )


def _repair_for(
    finding: Finding,
    tables: dict[str, Table],
    enums: dict[str, Enum],
    actual_enums: dict[str, Enum],
    has_rows: Callable[[Table], bool],
    dialect: str,
) -> list[Repair] | None:
    kind = finding.kind
    order = _ORDER[kind]
    if kind is FindingKind.MISSING_ENUM:
        enum = enums.get(finding.object or "")
        if enum is None:
            return None

        def create_enum(op: Operations, enum: Enum = enum) -> None:
            op.execute(
                CreateEnumType(postgresql.ENUM(*enum.values, name=enum.name, schema=enum.schema))
            )

        return [Repair(kind, None, enum.qualified_name, (create_enum,), order=order)]
    if kind is FindingKind.MISSING_ENUM_VALUE:
        enum = enums.get(finding.object or "")
        have = actual_enums.get(finding.object or "")
        if enum is None or have is None:
            return None
        return [
            Repair(kind, None, enum.qualified_name, (_enum_values_op(enum, have),), order=order)
        ]
    table = tables.get(finding.table or "")
    if table is None:
        return None
    if kind is FindingKind.MISSING_TABLE:
        warning = (
            f"table {table.qualified_name} was re-created empty: data, if any, was lost "
            "before this deploy and is not restored"
        )
        repairs = [
            Repair(
                kind,
                table.qualified_name,
                table.name,
                tuple(_table_ops(table, enums, dialect)),
                warning=warning,
                order=order,
            )
        ]
        if dialect == "sqlite" and table.definition is not None:
            return repairs  # its foreign keys are part of its CREATE TABLE text
        for fk in table.foreign_keys:
            if fk.name is None and dialect == "sqlite":
                return None  # no text to replay, and batch mode needs a name
            repairs.append(
                Repair(
                    FindingKind.MISSING_FOREIGN_KEY,
                    table.qualified_name,
                    _label(fk),
                    (_fk_op(table, fk, dialect),),
                    order=_FOREIGN_KEYS_LAST,
                )
            )
        return repairs
    if kind is FindingKind.MISSING_COLUMN:
        column = table.column(finding.object or "")
        if column is None or not _fills_not_null(finding, table, has_rows):
            return None

        def add_column(op: Operations, column: Column = column) -> None:
            op.add_column(table.name, _sa_column(column, enums, dialect), schema=table.schema)

        return [Repair(kind, table.qualified_name, column.name, (add_column,), order=order)]
    if kind is FindingKind.MISSING_INDEX:
        index = _find(table.indexes, finding.object)
        if index is None:
            return None
        return [
            Repair(
                kind,
                table.qualified_name,
                _label(index),
                (_index_op(table, index, dialect),),
                order=order,
            )
        ]
    if kind in (
        FindingKind.MISSING_UNIQUE,
        FindingKind.MISSING_CHECK,
        FindingKind.MISSING_EXCLUSION,
    ):
        collection = {
            FindingKind.MISSING_UNIQUE: table.uniques,
            FindingKind.MISSING_CHECK: table.checks,
            FindingKind.MISSING_EXCLUSION: table.exclusions,
        }[kind]
        constraint = _find(collection, finding.object)
        if constraint is None or (constraint.name is None and dialect != "postgresql"):
            return None  # batch mode (SQLite) cannot add an unnamed constraint
        if constraint.definition is None and isinstance(constraint, Exclusion):
            return None
        return [
            Repair(
                kind,
                table.qualified_name,
                _label(constraint),
                (_constraint_op(table, constraint),),
                order=order,
            )
        ]
    if kind is FindingKind.MISSING_FOREIGN_KEY:
        fk = _find(table.foreign_keys, finding.object)
        if fk is None or (fk.name is None and dialect != "postgresql"):
            return None
        return [
            Repair(
                kind, table.qualified_name, _label(fk), (_fk_op(table, fk, dialect),), order=order
            )
        ]
    return None


def _enum_values_op(enum: Enum, have: Enum) -> Callable[[Operations], None]:
    """``ALTER TYPE ... ADD VALUE`` for each missing label, at its expected position."""

    def add_values(op: Operations) -> None:
        dialect = op.get_context().dialect
        preparer = cast(PGIdentifierPreparer, dialect.identifier_preparer)  # enums: PG only
        type_name = preparer.format_type(postgresql.ENUM(name=enum.name, schema=enum.schema))
        present = list(have.values)
        for position, value in enumerate(enum.values):
            if value in present:
                continue
            literal = sa.literal(value).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True}
            )
            anchor = next((v for v in enum.values[position + 1 :] if v in present), None)
            where = ""
            if anchor is not None:
                anchor_literal = sa.literal(anchor).compile(
                    dialect=dialect, compile_kwargs={"literal_binds": True}
                )
                where = f" BEFORE {anchor_literal}"
            # ALTER TYPE has no bind parameters: names quoted by the dialect, values as
            # literals compiled by it.
            op.execute(f"ALTER TYPE {type_name} ADD VALUE {literal}{where}")
            present.insert(present.index(anchor) if anchor else len(present), value)

    return add_values


#: The ledger's columns, in order, with their SQL types.
_LEDGER_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("id", sa.Integer()),
    ("applied_at", sa.Text()),
    ("stamped_revision", sa.Text()),
    ("kind", sa.Text()),
    ("table_name", sa.Text()),
    ("object_name", sa.Text()),
    ("ddl", sa.Text()),
    ("runner_version", sa.Text()),
)


def read_ledger(conn: Connection) -> list[dict[str, Any]]:
    """Every recorded repair, oldest first (an empty list when none was ever made)."""
    inspector = sa.inspect(conn)
    if LEDGER_TABLE not in inspector.get_view_names() and not inspector.has_table(LEDGER_TABLE):
        return []
    ledger = sa.table(LEDGER_TABLE, *(sa.column(name) for name, _ in _LEDGER_COLUMNS))
    rows = conn.execute(sa.select(ledger).order_by(ledger.c.id)).mappings().all()
    return [{name: row[name] for name, _ in _LEDGER_COLUMNS} for row in rows]


def _write_ledger(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """The ledger as a view over its own rows, literally.

    A view, not a table: Alembic's autogenerate and ``alembic check`` compare tables only, so
    the user's next migration never proposes to drop the runner's bookkeeping, on any dialect
    and without touching env.py. It is rewritten in the heal's transaction; an older
    runner's ledger table is folded into it.
    """
    preparer = conn.dialect.identifier_preparer
    name = preparer.quote(LEDGER_TABLE)
    inspector = sa.inspect(conn)
    if LEDGER_TABLE in inspector.get_view_names():
        conn.exec_driver_sql(f"DROP VIEW {name}")
    elif inspector.has_table(LEDGER_TABLE):
        conn.exec_driver_sql(f"DROP TABLE {name}")
    selects = [
        sa.select(
            *(
                sa.cast(sa.literal(row[column], type_), type_).label(column)
                for column, type_ in _LEDGER_COLUMNS
            )
        )
        for row in rows
    ]
    conn.execute(_CreateLedgerView(selects[0] if len(selects) == 1 else sa.union_all(*selects)))


class _CreateLedgerView(ExecutableDDLElement):
    """``CREATE VIEW alembic_deploy_repairs AS <rows as literals>``."""

    inherit_cache = False

    def __init__(self, rows: sa.Select[Any] | sa.CompoundSelect[Any]) -> None:
        self.rows = rows


@compiles(_CreateLedgerView)
def _compile_ledger_view(element: _CreateLedgerView, compiler: Any, **kw: Any) -> str:
    # The name quoted by the dialect, the values rendered as literals by it (escaped for the
    # driver's paramstyle like any other statement): no SQL is built from recorded text.
    rows = compiler.sql_compiler.process(element.rows, literal_binds=True)
    return f"CREATE VIEW {compiler.preparer.quote(LEDGER_TABLE)} AS {rows}"


def render_repairs(repairs: Sequence[Repair], dialect_name: str) -> list[str]:
    """The SQL of each repair, rendered by Alembic's offline mode (for ``plan``)."""
    rendered = []
    for repair in repairs:
        if repair.note is not None:
            rendered.append(f"-- {repair.describe()}: {repair.note}")
            continue
        buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name=dialect_name,
            dialect_opts={"paramstyle": "named"},
            opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
        )
        op = Operations(context)
        for operation in repair.operations:
            try:
                operation(op)
            except Exception as exc:  # e.g. an enum create that needs a live connection
                buffer.write(f"-- {repair.describe()}: {exc}\n")
        rendered.append(buffer.getvalue().strip())
    return rendered


def apply_repairs(conn: Connection, repairs: Sequence[Repair], *, stamped: Sequence[str]) -> None:
    """Run every repair and its ledger row in the caller's transaction (all or nothing).

    The ledger and the ``heal.repair_applied`` event record the statements that ran, as the
    driver received them. A repair the database refuses (rows that break a re-created
    constraint) raises :class:`DriftError`; the caller's transaction then rolls back.
    """
    if not repairs:
        return
    recorded = read_ledger(conn)
    context = MigrationContext.configure(conn)
    op = Operations(context)
    for repair in repairs:
        ran: list[str] = []

        def record(*args: Any, ran: list[str] = ran) -> None:
            ran.append(str(args[2]).strip())  # (conn, cursor, statement, ...)

        event.listen(conn, "before_cursor_execute", record)
        try:
            for operation in repair.operations:
                operation(op)
        except DBAPIError as exc:
            raise DriftError(
                f"repair {repair.describe()} failed: {exc.orig}",
                hint="the heal was rolled back and nothing changed; fix the rows or the "
                "object by hand (`alembic-deploy plan` prints the repair SQL)",
            ) from exc
        finally:
            event.remove(conn, "before_cursor_execute", record)
        ddl = ";\n".join(ran) + ";" if ran else f"-- {repair.note or 'nothing to run'}"
        recorded.append(
            {
                "id": len(recorded) + 1,
                "applied_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "stamped_revision": ",".join(stamped) or None,
                "kind": str(repair.kind),
                "table_name": repair.table,
                "object_name": repair.object,
                "ddl": ddl,
                "runner_version": __version__,
            }
        )
        log.info(
            "heal.repair_applied",
            kind=str(repair.kind),
            table=repair.table,
            object=repair.object,
            ddl=ddl,
        )
        if repair.warning:
            log.warning("heal.table_recreated", table=repair.table, message=repair.warning)
    _write_ledger(conn, recorded)


def require_healable(plan: HealPlan) -> None:
    """Raise DriftError naming every finding that no additive repair can heal."""
    if plan.unhealable:
        raise DriftError(
            "drift that cannot be healed additively",
            findings=plan.unhealable,
            hint="repair them by hand (a NOT NULL column without a default needs a value for "
            "existing rows), or pass --on-drift warn to upgrade anyway",
        )


def row_checker(conn: Connection) -> Callable[[Table], bool]:
    """``has_rows`` for :func:`plan_repairs`, reading the live database."""

    def has_rows(table: Table) -> bool:
        target = sa.table(table.name, schema=table.schema)
        query = sa.select(sa.literal(1)).select_from(target).limit(1)
        return conn.execute(query).first() is not None

    return has_rows
