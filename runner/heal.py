"""Heal step: additive repairs for objects the stamped revision says exist but are missing.

``plan_repairs`` is pure: healable findings plus the expected and actual schemas in, an ordered
list of :class:`Repair` out (enum types, missing enum values, tables, columns, indexes, unique
and check constraints, foreign keys last, so that tables that reference each other can be
re-created in any order). Each repair is a set of Alembic operations built from the expected
schema, so quoting and dialect quirks are Alembic's and SQLAlchemy's: ``render_repairs``
prints their SQL (Alembic offline mode), ``apply_repairs`` runs them in ONE transaction
together with a row per repair in the ``alembic_deploy_repairs`` ledger.

Never drops, never changes a type, never rewrites data: ``extra_*`` and ``changed_*``
findings are only reported. A missing NOT NULL column without a default on a table that has
rows cannot be added without inventing data: it is unhealable.

Raises :class:`DriftError` (exit 7) from :func:`require_healable` for unhealable drift.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer
from sqlalchemy.dialects.postgresql.named_types import CreateEnumType
from sqlalchemy.types import UserDefinedType

from runner import __version__
from runner.drift import Finding, FindingKind, _label
from runner.errors import DriftError
from runner.logs import get_logger
from runner.schema import SERIAL, Column, Enum, ForeignKey, Index, Schema, Table

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
    FindingKind.MISSING_FOREIGN_KEY: 7,
}
_FOREIGN_KEYS_LAST = 8


@dataclass(frozen=True, slots=True)
class Repair:
    """One additive repair: what it heals and the operations that heal it."""

    kind: str
    table: str | None
    object: str | None
    operations: tuple[Callable[[Operations], None], ...] = field(compare=False)
    warning: str | None = None
    order: int = 0

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


def _sa_column(column: Column, enums: dict[str, Enum], *, in_pk: bool = False) -> sa.Column[Any]:
    kwargs: dict[str, Any] = {"nullable": column.nullable}
    args: list[Any] = []
    if column.default is not None:
        kwargs["server_default"] = sa.text(column.default)
    if column.identity in ("always", "by default"):
        args.append(sa.Identity(always=column.identity == "always"))
    kwargs["autoincrement"] = column.identity == SERIAL and in_pk
    return sa.Column(column.name, _column_type(column, enums), *args, **kwargs)


def _where(index: Index) -> dict[str, Any]:
    if index.predicate is None:
        return {}
    return {"postgresql_where": sa.text(index.predicate), "sqlite_where": sa.text(index.predicate)}


def _index_elements(index: Index, table: Table) -> list[Any]:
    names = {c.name for c in table.columns}
    # An expression must be parenthesised in CREATE INDEX (``(data ->> 'id')``), and a column
    # name must not be (it would become an expression).
    return [column if column in names else sa.text(f"({column})") for column in index.columns]


def _fk_op(table: Table, fk: ForeignKey) -> Callable[[Operations], None]:
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


def _table_ops(table: Table, enums: dict[str, Enum]) -> list[Callable[[Operations], None]]:
    """CREATE TABLE with columns, primary key, uniques and checks; indexes after it."""
    pk_columns = set(table.primary_key.columns) if table.primary_key else set()

    def create(op: Operations) -> None:
        items: list[Any] = [_sa_column(c, enums, in_pk=c.name in pk_columns) for c in table.columns]
        if table.primary_key:
            items.append(
                sa.PrimaryKeyConstraint(*table.primary_key.columns, name=table.primary_key.name)
            )
        items += [sa.UniqueConstraint(*u.columns, name=u.name) for u in table.uniques]
        items += [sa.CheckConstraint(sa.text(c.sqltext), name=c.name) for c in table.checks]
        op.create_table(table.name, *items, schema=table.schema)

    ops: list[Callable[[Operations], None]] = [create]
    ops += [_index_op(table, index) for index in table.indexes]
    return ops


def _index_op(table: Table, index: Index) -> Callable[[Operations], None]:
    def create(op: Operations) -> None:
        op.create_index(
            index.name,
            table.name,
            _index_elements(index, table),
            unique=index.unique,
            schema=table.schema,
            **_where(index),
        )

    return create


def _find(items: Iterable[Any], label: str | None) -> Any:
    return next((item for item in items if _label(item) == label), None)


def plan_repairs(
    findings: Sequence[Finding],
    expected: Schema,
    actual: Schema,
    *,
    has_rows: Callable[[Table], bool],
) -> HealPlan:
    """Turn healable findings into ordered repairs; the rest is returned as unhealable.

    ``has_rows(table)`` tells whether an existing table holds rows (for NOT NULL columns).
    """
    tables = {t.qualified_name: t for t in expected.tables.values()}
    enums = {e.qualified_name: e for e in expected.enums.values()}
    actual_enums = {e.qualified_name: e for e in actual.enums.values()}
    repairs: list[Repair] = []
    unhealable: list[Finding] = []
    for finding in findings:
        if finding.kind is FindingKind.MISSING_PRIMARY_KEY:
            unhealable.append(finding)
        if finding.kind not in _ORDER:
            continue  # extra_*, changed_*, invalid/unvalidated: reported, never "fixed"
        repair = _repair_for(finding, tables, enums, actual_enums, has_rows)
        if repair is None:
            unhealable.append(finding)
        else:
            repairs.extend(repair)
    repairs.sort(key=lambda r: (r.order, r.table or "", r.object or ""))
    return HealPlan(tuple(repairs), tuple(unhealable))


def _repair_for(
    finding: Finding,
    tables: dict[str, Table],
    enums: dict[str, Enum],
    actual_enums: dict[str, Enum],
    has_rows: Callable[[Table], bool],
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
                tuple(_table_ops(table, enums)),
                warning=warning,
                order=order,
            )
        ]
        repairs += [
            Repair(
                FindingKind.MISSING_FOREIGN_KEY,
                table.qualified_name,
                _label(fk),
                (_fk_op(table, fk),),
                order=_FOREIGN_KEYS_LAST,
            )
            for fk in table.foreign_keys
        ]
        return repairs
    if kind is FindingKind.MISSING_COLUMN:
        column = table.column(finding.object or "")
        if column is None:
            return None
        if (
            not column.nullable
            and column.default is None
            and column.identity is None
            and has_rows(table)
        ):
            return None

        def add_column(op: Operations, column: Column = column) -> None:
            op.add_column(table.name, _sa_column(column, enums), schema=table.schema)

        return [Repair(kind, table.qualified_name, column.name, (add_column,), order=order)]
    if kind is FindingKind.MISSING_INDEX:
        index = _find(table.indexes, finding.object)
        if index is None:
            return None
        return [
            Repair(
                kind, table.qualified_name, _label(index), (_index_op(table, index),), order=order
            )
        ]
    if kind is FindingKind.MISSING_UNIQUE:
        unique = _find(table.uniques, finding.object)
        if unique is None:
            return None

        def add_unique(op: Operations) -> None:
            with op.batch_alter_table(table.name, schema=table.schema) as batch:
                batch.create_unique_constraint(unique.name, list(unique.columns))

        return [Repair(kind, table.qualified_name, _label(unique), (add_unique,), order=order)]
    if kind is FindingKind.MISSING_CHECK:
        check = _find(table.checks, finding.object)
        if check is None:
            return None

        def add_check(op: Operations) -> None:
            with op.batch_alter_table(table.name, schema=table.schema) as batch:
                batch.create_check_constraint(check.name, sa.text(check.sqltext))

        return [Repair(kind, table.qualified_name, _label(check), (add_check,), order=order)]
    if kind is FindingKind.MISSING_FOREIGN_KEY:
        fk = _find(table.foreign_keys, finding.object)
        if fk is None:
            return None
        return [Repair(kind, table.qualified_name, _label(fk), (_fk_op(table, fk),), order=order)]
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


def _ledger() -> sa.Table:
    return sa.Table(
        LEDGER_TABLE,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.Column("stamped_revision", sa.String(255)),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("table_name", sa.String(255)),
        sa.Column("object_name", sa.String(255)),
        sa.Column("ddl", sa.Text, nullable=False),
        sa.Column("runner_version", sa.String(32), nullable=False),
    )


def render_repairs(repairs: Sequence[Repair], dialect_name: str) -> list[str]:
    """The SQL of each repair, rendered by Alembic's offline mode."""
    rendered = []
    for repair in repairs:
        buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name=dialect_name,
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
    """Run every repair and its ledger row in the caller's transaction (all or nothing)."""
    if not repairs:
        return
    ledger = _ledger()
    ledger.create(conn, checkfirst=True)
    texts = render_repairs(repairs, conn.dialect.name)
    context = MigrationContext.configure(conn)
    op = Operations(context)
    for repair, ddl in zip(repairs, texts, strict=True):
        for operation in repair.operations:
            operation(op)
        conn.execute(
            ledger.insert().values(
                stamped_revision=",".join(stamped) or None,
                kind=str(repair.kind),
                table_name=repair.table,
                object_name=repair.object,
                ddl=ddl,
                runner_version=__version__,
            )
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
