"""Defensive operations: schema operations that tolerate a database already in their end state.

While :func:`defensive_operations` is active (in the worker, :mod:`runner.worker`),
``create_table``, ``add_column``, ``create_index`` and ``create_*_constraint`` are skipped
(reported to the runner, which logs ``upgrade.operation_skipped``) when their object already
exists, and ``drop_table``, ``drop_column``, ``drop_index`` and ``drop_constraint`` are
skipped when their object is already gone: a repair migration that added a column a later
revision adds again no longer fails with ``DuplicateColumn``, and no migration file needs
editing.

This uses Alembic's public extension point for built-in operations,
``Operations.implementation_for(..., replace=True)`` (Alembic >= 1.17.2): each replacement
looks at the live schema through a fresh ``Inspector`` on the migration's own connection (so
it sees this transaction's earlier DDL) and otherwise calls Alembic's own implementation.
Outside the context manager (the app's own use of Alembic, offline ``--sql`` mode) every
operation behaves exactly as Alembic's. Raises nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from alembic.operations import Operations, ops, toimpl
from sqlalchemy import (
    CheckConstraint,
    Constraint,
    ForeignKeyConstraint,
    Inspector,
    PrimaryKeyConstraint,
    UniqueConstraint,
    inspect,
)


@dataclass(frozen=True, slots=True)
class SkippedOperation:
    """An operation that was not run because the database already had its result."""

    operation: str
    table: str | None
    object: str | None
    reason: str
    revision: str | None


@dataclass(slots=True)
class _Session:
    report: Callable[[SkippedOperation], None]
    revision: str | None = None
    skipped: list[SkippedOperation] = field(default_factory=list)


_session: ContextVar[_Session | None] = ContextVar("alembic_deploy_defensive", default=None)


@contextmanager
def defensive_operations(
    report: Callable[[SkippedOperation], None] | None,
) -> Iterator[list[SkippedOperation]]:
    """Make operations defensive inside the block (``report`` is told of each skip).

    With ``report=None`` operations run as written. Yields the list of skipped operations.
    """
    if report is None:
        yield []
        return
    session = _Session(report=report)
    token = _session.set(session)
    try:
        yield session.skipped
    finally:
        _session.reset(token)


def set_current_revision(revision: str | None) -> None:
    """Tell the skip events which revision is running (called by the upgrade step)."""
    session = _session.get()
    if session is not None:
        session.revision = revision


def _active(operations: Operations) -> _Session | None:
    session = _session.get()
    if session is None or operations.migration_context.as_sql:
        return None
    return session


def _skip(
    session: _Session, operation: str, table: str | None, obj: str | None, reason: str
) -> None:
    skipped = SkippedOperation(operation, table, obj, reason, session.revision)
    session.skipped.append(skipped)
    session.report(skipped)


def _inspector(operations: Operations) -> Inspector:
    return inspect(operations.get_bind())


def _columns(insp: Inspector, table: str, schema: str | None) -> set[str]:
    return {column["name"] for column in insp.get_columns(table, schema=schema)}


def _named_objects(insp: Inspector, table: str, schema: str | None) -> set[str]:
    """Names of every index and constraint on a table."""
    names: set[str | None] = {ix["name"] for ix in insp.get_indexes(table, schema=schema)}
    names |= {uq["name"] for uq in insp.get_unique_constraints(table, schema=schema)}
    names |= {fk["name"] for fk in insp.get_foreign_keys(table, schema=schema)}
    names |= {ck["name"] for ck in insp.get_check_constraints(table, schema=schema)}
    names.add(insp.get_pk_constraint(table, schema=schema).get("name"))
    return {name for name in names if name}


def _plain_name(name: Any) -> str | None:
    # A naming-convention placeholder (_NONE_NAME / _defer_name) is not a real name yet.
    if name is None or type(name).__name__ in {"_NoneName", "_defer_none_name"}:
        return None
    return str(name)


def _equivalent_constraint_exists(
    insp: Inspector, constraint: Constraint, table: str, schema: str | None
) -> bool:
    """An unnamed constraint: is one with the same definition already there?"""
    columns = [c.name for c in constraint.columns]  # type: ignore[attr-defined]
    if isinstance(constraint, ForeignKeyConstraint):
        referred = constraint.elements[0].column.table.name if constraint.elements else None
        return any(
            fk["constrained_columns"] == columns and fk["referred_table"] == referred
            for fk in insp.get_foreign_keys(table, schema=schema)
        )
    if isinstance(constraint, UniqueConstraint):
        return any(
            uq["column_names"] == columns
            for uq in insp.get_unique_constraints(table, schema=schema)
        )
    if isinstance(constraint, PrimaryKeyConstraint):
        return bool(insp.get_pk_constraint(table, schema=schema).get("constrained_columns"))
    return False


def _replace(op_cls: type, original: Callable[..., Any]) -> Callable[..., Any]:
    def decorate(check: Callable[[Operations, Any, _Session], bool]) -> Callable[..., Any]:
        @Operations.implementation_for(op_cls, replace=True)
        def implementation(operations: Operations, operation: Any) -> Any:
            session = _active(operations)
            if session is not None and check(operations, operation, session):
                return None
            return original(operations, operation)

        return implementation

    return decorate


@_replace(ops.CreateTableOp, toimpl.create_table)
def _create_table(operations: Operations, op: ops.CreateTableOp, session: _Session) -> bool:
    if _inspector(operations).has_table(op.table_name, schema=op.schema):
        _skip(session, "create_table", op.table_name, op.table_name, "already exists")
        return True
    return False


@_replace(ops.AddColumnOp, toimpl.add_column)
def _add_column(operations: Operations, op: ops.AddColumnOp, session: _Session) -> bool:
    insp = _inspector(operations)
    if insp.has_table(op.table_name, schema=op.schema) and op.column.name in _columns(
        insp, op.table_name, op.schema
    ):
        _skip(session, "add_column", op.table_name, op.column.name, "already exists")
        return True
    return False


@_replace(ops.CreateIndexOp, toimpl.create_index)
def _create_index(operations: Operations, op: ops.CreateIndexOp, session: _Session) -> bool:
    name = _plain_name(op.index_name)
    insp = _inspector(operations)
    # has_index is one catalog query; this runs for every index of every revision applied.
    if (
        name
        and insp.has_table(op.table_name, schema=op.schema)
        and insp.has_index(op.table_name, name, schema=op.schema)
    ):
        _skip(session, "create_index", op.table_name, name, "already exists")
        return True
    return False


_CONSTRAINT_OPERATION = {
    ForeignKeyConstraint: "create_foreign_key",
    UniqueConstraint: "create_unique_constraint",
    CheckConstraint: "create_check_constraint",
    PrimaryKeyConstraint: "create_primary_key",
}


@_replace(ops.AddConstraintOp, toimpl.create_constraint)
def _create_constraint(operations: Operations, op: ops.AddConstraintOp, session: _Session) -> bool:
    constraint = op.to_constraint(operations.migration_context)
    table = constraint.table.name
    schema = constraint.table.schema
    kind = next(
        (n for c, n in _CONSTRAINT_OPERATION.items() if isinstance(constraint, c)),
        "create_constraint",
    )
    insp = _inspector(operations)
    if not insp.has_table(table, schema=schema):
        return False
    name = _plain_name(constraint.name)
    exists = (
        name in _named_objects(insp, table, schema)
        if name
        else _equivalent_constraint_exists(insp, constraint, table, schema)
    )
    if exists:
        _skip(session, kind, table, name, "already exists")
    return exists


@_replace(ops.DropTableOp, toimpl.drop_table)
def _drop_table(operations: Operations, op: ops.DropTableOp, session: _Session) -> bool:
    if not _inspector(operations).has_table(op.table_name, schema=op.schema):
        _skip(session, "drop_table", op.table_name, op.table_name, "already gone")
        return True
    return False


@_replace(ops.DropColumnOp, toimpl.drop_column)
def _drop_column(operations: Operations, op: ops.DropColumnOp, session: _Session) -> bool:
    insp = _inspector(operations)
    if not insp.has_table(op.table_name, schema=op.schema) or op.column_name not in _columns(
        insp, op.table_name, op.schema
    ):
        _skip(session, "drop_column", op.table_name, op.column_name, "already gone")
        return True
    return False


@_replace(ops.DropIndexOp, toimpl.drop_index)
def _drop_index(operations: Operations, op: ops.DropIndexOp, session: _Session) -> bool:
    name = _plain_name(op.index_name)
    if not name:
        return False
    insp = _inspector(operations)
    if op.table_name:
        gone = not insp.has_table(op.table_name, schema=op.schema) or name not in {
            ix["name"] for ix in insp.get_indexes(op.table_name, schema=op.schema)
        }
    else:
        # No table given (allowed on PostgreSQL): look through the schema's indexes at once.
        every = insp.get_multi_indexes(schema=op.schema)
        gone = not any(ix["name"] == name for indexes in every.values() for ix in indexes)
    if gone:
        _skip(session, "drop_index", op.table_name, name, "already gone")
    return gone


@_replace(ops.DropConstraintOp, toimpl.drop_constraint)
def _drop_constraint(operations: Operations, op: ops.DropConstraintOp, session: _Session) -> bool:
    name = _plain_name(op.constraint_name)
    if not name:
        return False
    insp = _inspector(operations)
    gone = not insp.has_table(op.table_name, schema=op.schema) or name not in _named_objects(
        insp, op.table_name, op.schema
    )
    if gone:
        _skip(session, "drop_constraint", op.table_name, name, "already gone")
    return gone
