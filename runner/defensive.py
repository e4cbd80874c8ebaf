"""Defensive operations: DDL that tolerates a database already in its end state.

Alembic's result is the reference. A defensive decision is made when a DDL statement is about
to *execute*, never when the operation is declared: inside ``batch_alter_table`` the
operations are declared first and executed at the end of the block, in order, so a migration
that drops a foreign key, index or primary key and re-creates it under the same name must see
the drop before the create is judged. At execution time a create finds its object already
there only where plain Alembic would fail (``DuplicateColumn``, "relation already exists"), and
a drop finds it gone only where Alembic would fail too: on a database that matches its stamped
revision nothing is ever skipped.

The seam is the migration's DDL implementation (``MigrationContext.impl``): its
``create_table``, ``add_column``, ``create_index``, ``add_constraint``, ``drop_table``,
``drop_column``, ``drop_index`` and ``drop_constraint`` are what Alembic calls to run each
statement, directly or from a batch's flush (non-recreate mode; a recreate batch, SQLite's
copy-and-move, rebuilds the table from its own model and is left as Alembic runs it).
:func:`guard` wraps those methods on one impl instance, inside a worker
(:mod:`runner.worker`) while :func:`defensive_operations` is active; each skip is reported to
the runner, which logs ``upgrade.operation_skipped``. Offline (``--sql``) contexts are never
guarded. Raises nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Connection,
    Constraint,
    ForeignKeyConstraint,
    Inspector,
    PrimaryKeyConstraint,
    TextClause,
    UniqueConstraint,
    inspect,
    text,
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
    """Make guarded impls defensive inside the block (``report`` is told of each skip).

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
    """Tell the skip events which revision is running (called by the worker)."""
    session = _session.get()
    if session is not None:
        session.revision = revision


def _skip(
    session: _Session, operation: str, table: str | None, obj: str | None, reason: str
) -> None:
    skipped = SkippedOperation(operation, table, obj, reason, session.revision)
    session.skipped.append(skipped)
    session.report(skipped)


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


def _final_name(obj: Any, dialect: Any) -> str | None:
    """The name the DDL will carry: a long naming-convention name is truncated by the
    compiler (63 characters on PostgreSQL), so the catalog holds the truncated one."""
    if _plain_name(obj.name) is None:
        return None
    try:
        # What Alembic itself uses to learn the compiled name of a constraint or index.
        return str(dialect.identifier_preparer.format_constraint(obj, _alembic_quote=False))
    except (TypeError, AttributeError):
        return _plain_name(obj.name)


#: Alembic's batch "move and copy" works on a temporary table of this prefix: never judged.
_BATCH_TEMP_PREFIX = "_alembic_tmp_"


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


_CONSTRAINT_OPERATION = {
    ForeignKeyConstraint: "create_foreign_key",
    UniqueConstraint: "create_unique_constraint",
    CheckConstraint: "create_check_constraint",
    PrimaryKeyConstraint: "create_primary_key",
}


# Each check receives the live inspector and the impl method's own arguments, and returns the
# skip (operation, table, object, reason) or None to run the statement.
_Skip = tuple[str, str | None, str | None, str] | None


def _create_table(insp: Inspector, table: Any, **_: Any) -> _Skip:
    if table.name.startswith(_BATCH_TEMP_PREFIX):
        return None
    if _proves(insp, "no_relation", name=table.name, schema=table.schema):
        return None
    if insp.has_table(table.name, schema=table.schema):
        return ("create_table", table.name, table.name, "already exists")
    return None


def _add_column(
    insp: Inspector, table_name: str, column: Any, *, schema: str | None = None, **_: Any
) -> _Skip:
    if _proves(insp, "no_column", table=table_name, name=column.name, schema=schema):
        return None
    if insp.has_table(table_name, schema=schema) and column.name in _columns(
        insp, table_name, schema
    ):
        return ("add_column", table_name, column.name, "already exists")
    return None


# Each lookup comes in two forms, for a name without a schema and for one in a schema: a
# statement of a single shape plans in a fraction of the time one with a CASE on the schema
# takes, and a revision runs hundreds of them.
_PG_SCHEMA_OID = "(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = :schema)"
# The table the Inspector would find: without a schema, the one the search_path shows (a
# relation of any kind earlier on the path hides it, as it does from the Inspector).
_PG_TABLE_KINDS = "c.relkind IN ('r', 'p', 'f', 'v', 'm')"
_PG_TABLE = {
    False: "(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = :table "
    f"AND {_PG_TABLE_KINDS} AND pg_catalog.pg_table_is_visible(c.oid))",
    True: "(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = :table "
    f"AND {_PG_TABLE_KINDS} AND c.relnamespace = {_PG_SCHEMA_OID})",
}
# The schema named, or without one any schema.
_PG_RELATION_IN_SCHEMA = {False: "", True: f"AND c.relnamespace = {_PG_SCHEMA_OID}"}
_PG_CONSTRAINT_IN_SCHEMA = {False: "", True: f"AND k.connamespace = {_PG_SCHEMA_OID}"}


def _pg_lookup(template: str) -> dict[bool, TextClause]:
    """``template`` for a name without a schema (False) and in a schema (True): ``{table}``
    is the oid of the table the Inspector would find, ``{relation_in_schema}`` and
    ``{constraint_in_schema}`` restrict pg_class ``c`` and pg_constraint ``k`` to the schema."""
    return {
        qualified: text(
            template.format(
                table=_PG_TABLE[qualified],
                relation_in_schema=_PG_RELATION_IN_SCHEMA[qualified],
                constraint_in_schema=_PG_CONSTRAINT_IN_SCHEMA[qualified],
            )
        )
        for qualified in (False, True)
    }


_PG_RELATION_NAMED = (
    "EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname = :name {relation_in_schema})"
)
# A live column of that name on the table.
_PG_COLUMN_ON_TABLE = (
    "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {table} "
    "AND a.attname = :name AND a.attnum > 0 AND NOT a.attisdropped)"
)
# An index of that name on the table; the Inspector's indexes leave out the primary key's.
_PG_INDEX_ON_TABLE = (
    "EXISTS (SELECT 1 FROM pg_catalog.pg_index x "
    "JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
    "WHERE x.indrelid = {table} AND i.relname = :name AND NOT x.indisprimary)"
)
# "Nothing of this name exists": one catalog lookup by bound name, where reading the table's
# indexes or columns through the Inspector costs several. Only a True answer is used (to run
# the statement without the full check); anything else falls through to the full check.
# Without a schema, a relation of that name in no schema at all: the Inspector would look
# through the search_path.
_PG_NO_RELATION = _pg_lookup(f"SELECT NOT {_PG_RELATION_NAMED}")
_PG_NO_COLUMN = _pg_lookup(f"SELECT NOT {_PG_COLUMN_ON_TABLE}")
# A constraint name is unique per table, an index name per schema: neither of that name
# anywhere in the schema (or, without one, in any schema) means the table has none.
_PG_NO_CONSTRAINT = _pg_lookup(
    "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k "
    f"WHERE k.conname = :name {{constraint_in_schema}}) AND NOT {_PG_RELATION_NAMED}"
)
_SQLITE_NO_RELATION = text("SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = :name)")


# "It is there", on the table the Inspector would find: the drop runs without reading the
# table. Only a True answer is used.
_PG_HAS_COLUMN = _pg_lookup(f"SELECT {_PG_COLUMN_ON_TABLE}")
_PG_HAS_INDEX = _pg_lookup(f"SELECT {_PG_INDEX_ON_TABLE}")
# What _named_objects reads: indexes, and primary key, unique, foreign key, check constraints.
_PG_HAS_NAMED = _pg_lookup(
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = {table} "
    "AND k.conname = :name AND k.contype IN ('p', 'u', 'f', 'c')) "
    f"OR {_PG_INDEX_ON_TABLE}"
)


def _proves(insp: Inspector, fact: str, **params: Any) -> bool:
    """Whether one cheap catalog lookup proves ``fact`` (PostgreSQL, SQLite): an object
    absent (``no_*``) or present (``has_*``). False also means "cannot tell here"."""
    bind = insp.bind
    if not isinstance(bind, Connection):
        return False
    if insp.dialect.name == "sqlite":
        # With a schema (an attached database) sqlite_master is not where it would be.
        if fact != "no_relation" or params.get("schema"):
            return False
        return bool(bind.execute(_SQLITE_NO_RELATION, params).scalar())
    forms = {
        "no_relation": _PG_NO_RELATION,
        "no_column": _PG_NO_COLUMN,
        "no_constraint": _PG_NO_CONSTRAINT,
        "has_column": _PG_HAS_COLUMN,
        "has_index": _PG_HAS_INDEX,
        "has_named": _PG_HAS_NAMED,
    }.get(fact)
    if insp.dialect.name != "postgresql" or forms is None:
        return False
    return bool(bind.execute(forms[params.get("schema") is not None], params).scalar())


def _create_index(insp: Inspector, index: Any, **_: Any) -> _Skip:
    name = _final_name(index, insp.dialect)
    table = index.table
    if (
        name
        and table is not None
        and not table.name.startswith(_BATCH_TEMP_PREFIX)
        and not _proves(insp, "no_relation", name=name, schema=table.schema)
        and insp.has_table(table.name, schema=table.schema)
        and insp.has_index(table.name, name, schema=table.schema)
    ):
        return ("create_index", table.name, name, "already exists")
    return None


def _add_constraint(insp: Inspector, const: Any, **_: Any) -> _Skip:
    table = const.table
    name = _final_name(const, insp.dialect)
    if table is None or (name and _proves(insp, "no_constraint", name=name, schema=table.schema)):
        return None
    if not insp.has_table(table.name, schema=table.schema):
        return None
    kind = next(
        (n for c, n in _CONSTRAINT_OPERATION.items() if isinstance(const, c)), "create_constraint"
    )
    if name:
        exists = name in _named_objects(insp, table.name, table.schema)
    else:
        # PostgreSQL accepts a second unnamed FK or unique constraint on the same columns
        # (t_c_fkey1): only a second primary key fails, so only that is judged.
        exists = isinstance(const, PrimaryKeyConstraint) and _equivalent_constraint_exists(
            insp, const, table.name, table.schema
        )
    return (kind, table.name, name, "already exists") if exists else None


def _drop_table(insp: Inspector, table: Any, **_: Any) -> _Skip:
    if table.name.startswith(_BATCH_TEMP_PREFIX):
        return None
    if not insp.has_table(table.name, schema=table.schema):
        return ("drop_table", table.name, table.name, "already gone")
    return None


def _drop_column(
    insp: Inspector, table_name: str, column: Any, *, schema: str | None = None, **_: Any
) -> _Skip:
    name = getattr(column, "name", column)
    if _proves(insp, "has_column", table=table_name, name=name, schema=schema):
        return None
    if not insp.has_table(table_name, schema=schema) or name not in _columns(
        insp, table_name, schema
    ):
        return ("drop_column", table_name, name, "already gone")
    return None


def _drop_index(insp: Inspector, index: Any, **_: Any) -> _Skip:
    name = _final_name(index, insp.dialect)
    table = index.table
    # op.drop_index("ix") without a table gives Alembic's placeholder table "no_table": the
    # index could be anywhere on the search_path, so the statement runs as written.
    if (
        not name
        or table is None
        or table.name in ("no_table", "")
        or table.name.startswith(_BATCH_TEMP_PREFIX)
    ):
        return None
    if _proves(insp, "has_index", table=table.name, name=name, schema=table.schema):
        return None
    gone = not insp.has_table(table.name, schema=table.schema) or not insp.has_index(
        table.name, name, schema=table.schema
    )
    return ("drop_index", table.name, name, "already gone") if gone else None


def _drop_constraint(insp: Inspector, const: Any, **_: Any) -> _Skip:
    name = _final_name(const, insp.dialect)
    table = const.table
    if not name or table is None:
        return None
    if _proves(insp, "has_named", table=table.name, name=name, schema=table.schema):
        return None
    if not insp.has_table(table.name, schema=table.schema) or name not in _named_objects(
        insp, table.name, table.schema
    ):
        return ("drop_constraint", table.name, name, "already gone")
    return None


_CHECKS: dict[str, Callable[..., _Skip]] = {
    "create_table": _create_table,
    "add_column": _add_column,
    "create_index": _create_index,
    "add_constraint": _add_constraint,
    "drop_table": _drop_table,
    "drop_column": _drop_column,
    "drop_index": _drop_index,
    "drop_constraint": _drop_constraint,
}


def guard(impl: Any) -> None:
    """Make one migration impl's DDL methods defensive, if a defensive session is active.

    Each wrapped method looks at the live schema through a fresh ``Inspector`` on the
    migration's own connection (it sees this transaction's earlier DDL) right before the
    statement would run.
    """
    session = _session.get()
    if session is None or getattr(impl, "as_sql", False) or impl.connection is None:
        return
    if getattr(impl, "_alembic_deploy_guarded", False):
        return
    for name, check in _CHECKS.items():
        original = getattr(impl, name)

        def guarded(
            *args: Any,
            __original: Callable[..., Any] = original,
            __check: Callable[..., _Skip] = check,
            **kw: Any,
        ) -> Any:
            skip = __check(inspect(impl.connection), *args, **kw)
            if skip is not None:
                _skip(session, *skip)
                return None
            return __original(*args, **kw)

        setattr(impl, name, guarded)
    impl._alembic_deploy_guarded = True
