"""A normalised, comparable, JSON-serialisable model of a database schema.

Two sources give the same model: :func:`reflect_schema` (a live database, reflected in bulk:
one ``Inspector.get_multi_*`` call per kind per schema plus three catalog queries on
PostgreSQL, two when only what diff compares is read, whatever the number of tables) and
:func:`schema_from_metadata` (SQLAlchemy ``MetaData``, such as an env.py's
``target_metadata``). Both normalise the same way, so the schema a chain of migrations
builds and the one ``metadata.create_all`` builds compare equal with ``==``:

- types are rendered by the dialect's type compiler, upper-cased, spaces canonical
  (``VARCHAR(64)``, ``NUMERIC(5, 2)``, ``TIMESTAMP WITH TIME ZONE``); a native enum column is
  ``ENUM(name)`` and the enum's ordered labels live in :attr:`Schema.enums`;
- SQL text (server defaults, CHECK text, index expressions and predicates) goes through
  :func:`runner.sqltext.normalize_sql` (casts dropped, redundant parentheses removed,
  PostgreSQL's deparsed forms mapped back);
- a ``nextval('..')`` default is a ``serial`` column (``Column.identity``), as SQLAlchemy's
  SERIAL rule predicts for metadata; ``'true'`` and ``true`` are the same default;
- unnamed constraints in metadata get the name the database would give them (PostgreSQL's
  ``<table>_pkey``, ``<table>_<cols>_key`` ...), none on SQLite where reflection has none.

Dialect differences live in :data:`_RULES`, one :class:`_DialectRules` per dialect.
Nothing here raises on its own; SQLAlchemy errors from reflection propagate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import Connection, MetaData, TextClause, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.types import TypeEngine

from runner.sqltext import normalize_default, normalize_sql, parse_create_index

TableKey = tuple[str | None, str]
"""``(schema, table name)``; schema ``None`` is the connection's default schema."""

SERIAL = "serial"
IDENTITY_ALWAYS = "always"
IDENTITY_BY_DEFAULT = "by default"


# --------------------------------------------------------------------------------------------
# The model


def _with_server_text(
    data: dict[str, Any], definition: str | None, comment: str | None = None
) -> dict[str, Any]:
    # The server's own text is kept only where it was read, so a model without it (from
    # metadata, or an older snapshot) serialises as before.
    if definition is not None:
        data["definition"] = definition
    if comment is not None:
        data["comment"] = comment
    return data


@dataclass(frozen=True, slots=True)
class Column:
    """A column. ``identity``: None, ``"serial"`` (a sequence default), ``"always"`` or
    ``"by default"`` (an identity column). ``default`` is normalised SQL or None."""

    name: str
    type: str
    nullable: bool
    default: str | None = None
    identity: str | None = None
    definition: str | None = field(default=None, compare=False)
    comment: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text(
            {
                "name": self.name,
                "type": self.type,
                "nullable": self.nullable,
                "default": self.default,
                "identity": self.identity,
            },
            self.definition,
            self.comment,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        return cls(
            data["name"],
            data["type"],
            data["nullable"],
            data["default"],
            data["identity"],
            data.get("definition"),
            data.get("comment"),
        )


@dataclass(frozen=True, slots=True)
class Index:
    """An index; ``columns`` holds column names or normalised expression text, in order.

    ``valid`` is False for an index PostgreSQL marks invalid (a failed
    ``CREATE INDEX CONCURRENTLY``): it exists, is maintained, and is never used.
    """

    name: str | None
    columns: tuple[str, ...]
    unique: bool = False
    predicate: str | None = None
    valid: bool = True
    definition: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text(
            {
                "name": self.name,
                "columns": list(self.columns),
                "unique": self.unique,
                "predicate": self.predicate,
                "valid": self.valid,
            },
            self.definition,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Index:
        return cls(
            data["name"],
            tuple(data["columns"]),
            data["unique"],
            data["predicate"],
            data["valid"],
            data.get("definition"),
        )


@dataclass(frozen=True, slots=True)
class UniqueConstraint:
    name: str | None
    columns: tuple[str, ...]
    definition: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text(
            {"name": self.name, "columns": list(self.columns)}, self.definition
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UniqueConstraint:
        return cls(data["name"], tuple(data["columns"]), data.get("definition"))


@dataclass(frozen=True, slots=True)
class CheckConstraint:
    """A CHECK constraint; ``valid`` is False when it was added ``NOT VALID``."""

    name: str | None
    sqltext: str
    valid: bool = True
    definition: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text(
            {"name": self.name, "sqltext": self.sqltext, "valid": self.valid}, self.definition
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckConstraint:
        return cls(data["name"], data["sqltext"], data["valid"], data.get("definition"))


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """A foreign key; ``ondelete``/``onupdate`` upper-case, None for NO ACTION."""

    name: str | None
    columns: tuple[str, ...]
    referred_schema: str | None
    referred_table: str
    referred_columns: tuple[str, ...]
    ondelete: str | None = None
    onupdate: str | None = None
    valid: bool = True
    definition: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text(
            {
                "name": self.name,
                "columns": list(self.columns),
                "referred_schema": self.referred_schema,
                "referred_table": self.referred_table,
                "referred_columns": list(self.referred_columns),
                "ondelete": self.ondelete,
                "onupdate": self.onupdate,
                "valid": self.valid,
            },
            self.definition,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ForeignKey:
        return cls(
            data["name"],
            tuple(data["columns"]),
            data["referred_schema"],
            data["referred_table"],
            tuple(data["referred_columns"]),
            data["ondelete"],
            data["onupdate"],
            data["valid"],
            data.get("definition"),
        )


@dataclass(frozen=True, slots=True)
class PrimaryKey:
    name: str | None
    columns: tuple[str, ...]
    definition: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text(
            {"name": self.name, "columns": list(self.columns)}, self.definition
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrimaryKey:
        return cls(data["name"], tuple(data["columns"]), data.get("definition"))


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A PostgreSQL exclusion constraint, compared by name (its definition is the server's)."""

    name: str | None
    definition: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _with_server_text({"name": self.name}, self.definition)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exclusion:
        return cls(data["name"], data.get("definition"))


_N = TypeVar("_N", Index, UniqueConstraint, CheckConstraint, ForeignKey, Exclusion)


def _sorted_by_name(items: Iterable[_N]) -> tuple[_N, ...]:
    items = tuple(items)
    names = [item.name for item in items]
    if None not in names and len(set(names)) == len(names):
        return tuple(sorted(items, key=lambda item: item.name or ""))  # the common case
    # Unnamed constraints (SQLite) sort after named ones, by their definition.
    return tuple(
        sorted(
            items,
            key=lambda item: (
                item.name is None,
                item.name or "",
                json.dumps(item.to_dict(), sort_keys=True),
            ),
        )
    )


@dataclass(frozen=True, slots=True)
class Table:
    """A table. Columns keep their order; the other collections are sorted by name."""

    schema: str | None
    name: str
    columns: tuple[Column, ...]
    primary_key: PrimaryKey | None = None
    indexes: tuple[Index, ...] = ()
    uniques: tuple[UniqueConstraint, ...] = ()
    checks: tuple[CheckConstraint, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    definition: str | None = field(default=None, compare=False)
    comment: str | None = field(default=None, compare=False)
    #: SQLite's CREATE TRIGGER statements on the table, re-created with it.
    triggers: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "indexes", _sorted_by_name(self.indexes))
        object.__setattr__(self, "uniques", _sorted_by_name(self.uniques))
        object.__setattr__(self, "checks", _sorted_by_name(self.checks))
        object.__setattr__(self, "foreign_keys", _sorted_by_name(self.foreign_keys))
        object.__setattr__(self, "exclusions", _sorted_by_name(self.exclusions))

    @property
    def key(self) -> TableKey:
        return (self.schema, self.name)

    @property
    def qualified_name(self) -> str:
        return qualified_name(self.schema, self.name)

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": self.schema,
            "name": self.name,
            "columns": [column.to_dict() for column in self.columns],
            "primary_key": None if self.primary_key is None else self.primary_key.to_dict(),
            "indexes": [index.to_dict() for index in self.indexes],
            "uniques": [unique.to_dict() for unique in self.uniques],
            "checks": [check.to_dict() for check in self.checks],
            "foreign_keys": [fk.to_dict() for fk in self.foreign_keys],
        }
        if self.exclusions:
            data["exclusions"] = [exclusion.to_dict() for exclusion in self.exclusions]
        if self.triggers:
            data["triggers"] = list(self.triggers)
        return _with_server_text(data, self.definition, self.comment)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        pk = data["primary_key"]
        return cls(
            schema=data["schema"],
            name=data["name"],
            columns=tuple(Column.from_dict(item) for item in data["columns"]),
            primary_key=None if pk is None else PrimaryKey.from_dict(pk),
            indexes=tuple(Index.from_dict(item) for item in data["indexes"]),
            uniques=tuple(UniqueConstraint.from_dict(item) for item in data["uniques"]),
            checks=tuple(CheckConstraint.from_dict(item) for item in data["checks"]),
            foreign_keys=tuple(ForeignKey.from_dict(item) for item in data["foreign_keys"]),
            exclusions=tuple(Exclusion.from_dict(item) for item in data.get("exclusions", ())),
            definition=data.get("definition"),
            comment=data.get("comment"),
            triggers=tuple(data.get("triggers", ())),
        )


@dataclass(frozen=True, slots=True)
class Enum:
    """A native enum type and its labels in sort order."""

    schema: str | None
    name: str
    values: tuple[str, ...]

    @property
    def key(self) -> TableKey:
        return (self.schema, self.name)

    @property
    def qualified_name(self) -> str:
        return qualified_name(self.schema, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "name": self.name, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Enum:
        return cls(data["schema"], data["name"], tuple(data["values"]))


def _key_order(key: TableKey) -> tuple[bool, str, str]:
    return (key[0] is not None, key[0] or "", key[1])


def _schema_order(schema: str | None) -> tuple[bool, str]:
    return (schema is not None, schema or "")


@dataclass(frozen=True, slots=True)
class Schema:
    """Tables and enums keyed by ``(schema, name)``, and the schemas they were read from.

    The mappings are read-only and ordered by key; ``==`` compares contents. Not hashable.
    """

    tables: Mapping[TableKey, Table] = field(default_factory=dict)
    enums: Mapping[TableKey, Enum] = field(default_factory=dict)
    schemas: tuple[str | None, ...] = (None,)

    def __post_init__(self) -> None:
        tables = {key: self.tables[key] for key in sorted(self.tables, key=_key_order)}
        enums = {key: self.enums[key] for key in sorted(self.enums, key=_key_order)}
        schemas = tuple(sorted(set(self.schemas), key=_schema_order))
        object.__setattr__(self, "tables", MappingProxyType(tables))
        object.__setattr__(self, "enums", MappingProxyType(enums))
        object.__setattr__(self, "schemas", schemas)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schemas": list(self.schemas),
            "enums": [enum.to_dict() for enum in self.enums.values()],
            "tables": [table.to_dict() for table in self.tables.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        tables = (Table.from_dict(item) for item in data["tables"])
        enums = (Enum.from_dict(item) for item in data["enums"])
        return cls(
            tables={table.key: table for table in tables},
            enums={enum.key: enum for enum in enums},
            schemas=tuple(data["schemas"]),
        )


def qualified_name(schema: str | None, name: str) -> str:
    """``schema.name``, or ``name`` in the default schema."""
    return name if schema is None else f"{schema}.{name}"


def canonical_json(data: Any) -> str:
    """Compact JSON with sorted keys: the same value always gives the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def table_digest(table: Table) -> str:
    """sha256 (hex) of the table's canonical JSON without the server's text (which ``==``
    ignores too): equal tables, equal digests."""
    return hashlib.sha256(canonical_json(without_server_text(table.to_dict())).encode()).hexdigest()


_SERVER_TEXT = frozenset({"definition", "comment", "triggers"})


def without_server_text(data: Any) -> Any:
    """A ``to_dict()`` value without the server's own text: what ``==`` compares."""
    if isinstance(data, dict):
        return {k: without_server_text(v) for k, v in data.items() if k not in _SERVER_TEXT}
    if isinstance(data, list):
        return [without_server_text(item) for item in data]
    return data


# --------------------------------------------------------------------------------------------
# Types


#: render_type's answers for SQLAlchemy's own types, by class, repr and dialect: a reflected
#: schema repeats a handful of types thousands of times, and compiling each is most of the
#: Python time of a reflection.
_RENDERED: dict[tuple[Any, ...], str] = {}


def render_type(type_: TypeEngine[Any], dialect: Dialect) -> str:
    """The canonical text of a column type on ``dialect`` (``ENUM(name)`` for native enums)."""
    key = None
    if type(type_).__module__.startswith("sqlalchemy.") and not isinstance(type_, sa.Enum):
        key = _type_key(type_, dialect)
        cached = _RENDERED.get(key)
        if cached is not None:
            return cached
    rendered = _render_type(type_, dialect)
    if key is not None:
        _RENDERED[key] = rendered
    return rendered


def _type_key(type_: TypeEngine[Any], dialect: Dialect) -> tuple[Any, ...]:
    """What a type's text depends on: its class and attributes (length, timezone, ...), and
    the dialect. SQLAlchemy's ``repr`` says the same, at a tenth of reflection's Python time."""
    try:
        attributes: Any = frozenset(vars(type_).items())
        hash(attributes)
    except TypeError:  # an unhashable attribute: the repr it is
        attributes = repr(type_)
    return (type(type_), attributes, dialect.name, dialect.server_version_info)


def _render_type(type_: TypeEngine[Any], dialect: Dialect) -> str:
    impl: TypeEngine[Any] = type_.dialect_impl(dialect)
    while isinstance(impl, sa.TypeDecorator):
        impl = impl.impl_instance
    if isinstance(impl, sa.Enum) and impl.native_enum and dialect.supports_native_enum:
        return f"ENUM({qualified_name(impl.schema, impl.name or '')})"
    try:
        rendered = type_.compile(dialect=dialect)
    except CompileError:
        rendered = type(impl).__name__
    canonical = re.sub(r"\s+", " ", rendered.upper()).strip()
    canonical = re.sub(r"\s*\(\s*", "(", canonical)
    canonical = re.sub(r"\s*\)", ")", canonical)
    canonical = re.sub(r"\s*,\s*", ", ", canonical)
    return _rules_for(dialect).type_alias(canonical)


# --------------------------------------------------------------------------------------------
# The dialect seam


@dataclass(frozen=True, slots=True)
class _Catalog:
    """What a dialect reads beyond the ``get_multi_*`` calls, for one schema.

    The ``*_text`` mappings hold the server's own definitions, keyed by ``(table, name)``:
    what heal replays to re-create an object exactly as the migration made it.
    """

    enums: tuple[Enum, ...] = ()
    invalid_indexes: frozenset[tuple[str, str]] = frozenset()
    unvalidated_constraints: frozenset[tuple[str, str]] = frozenset()
    table_text: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    column_text: Mapping[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    index_text: Mapping[tuple[str, str], str] = field(default_factory=dict)
    constraint_text: Mapping[tuple[str, str], str] = field(default_factory=dict)
    exclusions: Mapping[str, tuple[Exclusion, ...]] = field(default_factory=dict)
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Columns of every UNIQUE constraint, where SQLAlchemy's reflection misses some.
    uniques: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    #: Whether ``index_text`` holds whole CREATE INDEX statements, read for the indexes
    #: SQLAlchemy skips (SQLite's indexes on expressions). PostgreSQL's hold the part after
    #: ``USING`` (access method, elements, INCLUDE, WHERE), so they do not name a schema.
    indexes_from_text: bool = False
    #: The kinds of object the tables read have: ``p``, ``u``, ``c``, ``f`` (constraints) and
    #: ``i`` (an index behind no constraint). None: not known, every kind is asked for.
    kinds: frozenset[str] | None = None


#: Runs one of the runner's own catalog statements with its parameters.
Execute = Callable[[TextClause, Mapping[str, Any]], Iterable[Any]]


@dataclass(frozen=True, slots=True)
class Reading:
    """How :func:`reflect_schema` reads what SQLAlchemy's Inspector does not.

    The snapshot build reads a few tables after each revision of a chain, on one session;
    it passes its own way to run the runner's catalog statements (prepared once,
    :meth:`runner.ddlwatch.DdlWatch.execute`), and skips the enums where it knows no type
    changed.
    """

    #: None: ``conn.execute``.
    execute: Execute | None = None
    #: False: the enums are not read (the result has none).
    enums: bool = True
    #: False: PostgreSQL's own definitions of columns, indexes and constraints, and table
    #: comments, are not read (what heal replays; :func:`runner.drift.diff` never compares
    #: them; column comments still come with SQLAlchemy's columns): verify's reading of a
    #: live database. SQLite's reader parses its CREATE text, so it reads it either way.
    server_text: bool = True
    #: True: the transaction ends right after the reading (the snapshot build reads at the
    #: end of each revision's): the planner settings it changes for a few tables go with it
    #: instead of being put back.
    last_in_transaction: bool = False


_PLAIN = Reading()
#: A live database read to be diffed (verify): what :func:`runner.drift.diff` compares, not
#: the server's definitions that only an expected schema's repairs replay.
FOR_DIFF = Reading(server_text=False)


@dataclass(frozen=True, slots=True)
class _DialectRules:
    """Everything reflection and metadata conversion do differently per dialect."""

    #: (conn, inspector, schema, table names or None for all, reading) -> their catalog
    read_catalog: Callable[
        [Connection, Inspector, str | None, Sequence[str] | None, Reading], _Catalog
    ]
    # (kind, table, columns) -> the name the database gives an unnamed constraint;
    # kind is "pkey", "key" (unique), "fkey" or "check".
    default_name: Callable[[str, str, tuple[str, ...]], str | None]
    # True when the database gives the column a sequence default (SERIAL).
    is_serial: Callable[[sa.Column[Any], Dialect], bool]
    type_alias: Callable[[str], str]


def _no_catalog(
    conn: Connection,
    inspector: Inspector,
    schema: str | None,
    names: Sequence[str] | None,
    reading: Reading,
) -> _Catalog:
    return _Catalog()


def _no_default_name(kind: str, table: str, columns: tuple[str, ...]) -> str | None:
    return None


def _never_serial(column: sa.Column[Any], dialect: Dialect) -> bool:
    return False


def _same_type(rendered: str) -> str:
    return rendered


# An index behind a PRIMARY KEY, UNIQUE or EXCLUDE constraint (``x``: its pg_index row) is
# read as the constraint: reflection and the table digest leave out the same indexes, and
# pg_get_indexdef, which is costly, is not asked for them.
_NOT_BEHIND_A_CONSTRAINT = """NOT x.indisprimary
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k
                      WHERE k.conrelid = x.indrelid AND k.conindid = x.indexrelid
                        AND k.contype IN ('p', 'u', 'x'))"""
# The server's own reading of the tables, in one statement (one round trip a reflection):
# each index not behind a constraint (``part`` 'i'), each constraint ('k'), and, with the
# server's definitions, each table's comment ('t') and each column ('c'). An index's or
# constraint's validity, and a constraint's kind, are always read; its definition
# (``pg_get_indexdef``, costly, of which the part after ``USING`` is kept, and
# ``pg_get_constraintdef``) only with the server's definitions. A column row has its type as
# format_type prints it, a collation other than the type's, the default or generation
# expression, identity and its sequence, and whether the default is a serial's.
_PG_CATALOG_COLUMNS = """part, table_name, name, valid, definition, prefix, kind, type,
           collated, generated, identity, expression, serial, seqstart, seqincrement, seqmin,
           seqmax, seqcache, seqcycle, comment"""
_NO_COLUMN = """NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean,
           NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
           NULL::boolean, NULL::text"""
_PG_INDEXES_SQL = f"""
    SELECT 'i'::text, t.relname::text, i.relname::text, x.indisvalid, {{definition}},
           NULL::text, {_NO_COLUMN}
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname = :schema AND t.relkind IN ('r', 'p')
      AND {{tables}}
      AND {_NOT_BEHIND_A_CONSTRAINT}
    """
_PG_INDEX_DEFINITION = """pg_catalog.pg_get_indexdef(x.indexrelid),
           'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
             || pg_catalog.quote_ident(i.relname) || ' ON '
             || CASE WHEN t.relkind = 'p' THEN 'ONLY ' ELSE '' END
             || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.relname)
             || ' USING '"""
_PG_CONSTRAINTS_SQL = f"""
    SELECT 'k', t.relname, c.conname, c.convalidated, {{definition}}, NULL,
           c.contype::text, {_NO_COLUMN}
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname = :schema AND c.contype IN ('p', 'u', 'c', 'f', 'x')
      AND {{tables}}
    """
_PG_COLUMNS_SQL = """
    SELECT part, table_name, name, NULL::boolean, NULL::text, NULL::text, NULL::text, type,
           collated, generated, identity, expression, serial, seqstart, seqincrement,
           seqmin, seqmax, seqcache, seqcycle, comment
    FROM (
    SELECT 't', t.relname, NULL::text, NULL::text, NULL::text, '', '', NULL::text, false,
           NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
           NULL::boolean, td.description
    FROM pg_catalog.pg_class t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    LEFT JOIN pg_catalog.pg_description td
           ON td.objoid = t.oid AND td.objsubid = 0
          AND td.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
    WHERE n.nspname = :schema AND t.relkind IN ('r', 'p')
      AND {tables}
    UNION ALL
    SELECT 'c', t.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
           CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                THEN pg_catalog.quote_ident(cn.nspname) || '.'
                     || pg_catalog.quote_ident(co.collname) END,
           a.attgenerated::text, a.attidentity::text,
           -- A serial's default is its own sequence's nextval(), not read (it is costly).
           CASE WHEN NOT (a.attidentity = '' AND s.seqrelid IS NOT NULL
                          AND a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype,
                                             'pg_catalog.int4'::pg_catalog.regtype,
                                             'pg_catalog.int8'::pg_catalog.regtype))
                THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
           a.attidentity = '' AND s.seqrelid IS NOT NULL,
           s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
           cd.description
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class t ON t.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_catalog.pg_description cd
           ON cd.objoid = t.oid AND cd.objsubid = a.attnum
          AND cd.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
    LEFT JOIN (
        -- The sequence a column owns (serial) or is (identity), read once for the schema:
        -- a join the planner can hash, not one pg_depend lookup per column.
        SELECT DISTINCT ON (dep.refobjid, dep.refobjsubid)
               dep.refobjid, dep.refobjsubid, q.*
        FROM pg_catalog.pg_depend dep
        JOIN pg_catalog.pg_sequence q ON q.seqrelid = dep.objid
        WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND dep.deptype IN ('a', 'i')
          -- A few tables (the snapshot build's): index lookups, not a pass over pg_depend.
          AND dep.refobjid IN (
              SELECT t.oid FROM pg_catalog.pg_class t
              JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = :schema AND {tables})
        ORDER BY dep.refobjid, dep.refobjsubid, q.seqrelid
    ) s ON s.refobjid = t.oid AND s.refobjsubid = a.attnum
    WHERE n.nspname = :schema AND t.relkind IN ('r', 'p') AND a.attnum > 0
      AND NOT a.attisdropped AND {tables}
    ) AS columns (part, table_name, name, type, collated, generated, identity,
                  expression, serial, seqstart, seqincrement, seqmin, seqmax, seqcache,
                  seqcycle, comment)
    """
# A few tables by name (the snapshot build's, after each revision: a generic plan that looks
# them up by index), or every table of the schema (verify's).
_NAMED_TABLES = "t.relname = ANY(:names)"
_EVERY_TABLE = "true"


def _pg_catalog_statement(server_text: bool, tables: str) -> TextClause:
    if server_text:
        parts = [
            _PG_INDEXES_SQL.format(definition=_PG_INDEX_DEFINITION, tables=tables),
            _PG_CONSTRAINTS_SQL.format(
                definition="pg_catalog.pg_get_constraintdef(c.oid)", tables=tables
            ),
            _PG_COLUMNS_SQL.format(tables=tables),
        ]
    else:
        parts = [
            _PG_INDEXES_SQL.format(definition="NULL::text, NULL::text", tables=tables),
            _PG_CONSTRAINTS_SQL.format(definition="NULL::text", tables=tables),
        ]
    union = "UNION ALL".join(parts)
    return text(f"SELECT {_PG_CATALOG_COLUMNS} FROM ({union}) AS catalog ({_PG_CATALOG_COLUMNS})")


#: The statement by whether it reads the server's definitions and whether tables are named.
_PG_CATALOG = {
    (server_text, named): _pg_catalog_statement(
        server_text, _NAMED_TABLES if named else _EVERY_TABLE
    )
    for server_text in (True, False)
    for named in (True, False)
}
_SERIALS = {"integer": "serial", "bigint": "bigserial", "smallint": "smallserial"}


def _pg_column_text(row: Any) -> str:
    """The column's definition after its name, as the server would re-create it."""
    if row.serial and row.type in _SERIALS:
        # The sequence is the column's own (a SERIAL): re-creating it creates a new one,
        # named by the server as the original was.
        return _SERIALS[row.type]
    text_ = row.type
    if row.collated:
        text_ += f" COLLATE {row.collated}"
    if row.generated in ("s", "v"):
        kind = "STORED" if row.generated == "s" else "VIRTUAL"
        text_ += f" GENERATED ALWAYS AS ({row.expression}) {kind}"
    elif row.identity in ("a", "d"):
        kind = "ALWAYS" if row.identity == "a" else "BY DEFAULT"
        options = (
            f"START WITH {row.seqstart} INCREMENT BY {row.seqincrement}"
            f" MINVALUE {row.seqmin} MAXVALUE {row.seqmax} CACHE {row.seqcache}"
            f"{' CYCLE' if row.seqcycle else ' NO CYCLE'}"
        )
        text_ += f" GENERATED {kind} AS IDENTITY ({options})"
    elif row.expression is not None:
        text_ += f" DEFAULT {row.expression}"
    return text_


def _pg_catalog(
    conn: Connection,
    inspector: Inspector,
    schema: str | None,
    names: Sequence[str] | None,
    reading: Reading,
) -> _Catalog:
    # Enum labels in enumsortorder; pg_index.indisvalid (a CREATE INDEX CONCURRENTLY that
    # failed) and pg_constraint.convalidated (ADD CONSTRAINT .. NOT VALID), which SQLAlchemy
    # 2.0 does not reflect; and, unless ``reading`` says not to, the server's own
    # definitions of every column, index and constraint. Two queries whatever the number of
    # tables (one when the enums are not read).
    namespace = schema if schema is not None else inspector.default_schema_name
    params = {"schema": namespace, "names": list(names or ())}
    execute = reading.execute or conn.execute
    enums = tuple(
        Enum(schema, item["name"], tuple(item["labels"]))
        for item in (cast(Any, inspector).get_enums(schema=namespace) if reading.enums else ())
    )
    if names == []:
        return _Catalog(enums)  # the enums only
    invalid: set[tuple[str, str]] = set()
    index_text: dict[tuple[str, str], str] = {}
    kinds: set[str] = set()
    unvalidated: set[tuple[str, str]] = set()
    constraint_text: dict[tuple[str, str], str] = {}
    exclusions: dict[str, list[Exclusion]] = {}
    table_text: dict[str, tuple[str | None, str | None]] = {}
    column_text: dict[tuple[str, str], tuple[str, str | None]] = {}
    server_text = reading.server_text
    for row in execute(_PG_CATALOG[(server_text, names is not None)], params):
        part, table_name, name, definition = row.part, row.table_name, row.name, row.definition
        if part == "i":
            kinds.add("i")
            if not row.valid:
                invalid.add((table_name, name))
            if server_text and definition.startswith(row.prefix):
                index_text[(table_name, name)] = definition[len(row.prefix) :]
        elif part == "k":
            kinds.add(row.kind)
            if not row.valid:
                unvalidated.add((table_name, name))
            if server_text:
                constraint_text[(table_name, name)] = definition
            if row.kind == "x":
                exclusions.setdefault(table_name, []).append(Exclusion(name, definition))
        elif part == "t":
            table_text[table_name] = (None, row.comment)
        else:
            column_text[(table_name, name)] = (_pg_column_text(row), row.comment)
    return _Catalog(
        enums,
        frozenset(invalid),
        frozenset(unvalidated),
        table_text=table_text,
        column_text=column_text,
        index_text=index_text,
        constraint_text=constraint_text,
        exclusions={table: tuple(items) for table, items in exclusions.items()},
        kinds=frozenset(kinds),
    )


def _sqlite_uniques(
    conn: Connection, schema: str | None, tables: list[str]
) -> Mapping[str, tuple[tuple[str, ...], ...]]:
    """Every UNIQUE constraint's columns, per table, from SQLite's own index list.

    SQLAlchemy parses only the table-level ``UNIQUE (..)`` form out of CREATE TABLE; a
    column's inline ``UNIQUE`` shows only as the automatic index whose origin is ``u``.
    """
    preparer = conn.dialect.identifier_preparer
    prefix = "" if schema is None else f"{preparer.quote_schema(schema)}."
    found: dict[str, tuple[tuple[str, ...], ...]] = {}
    for table in tables:
        listed = conn.exec_driver_sql(f"PRAGMA {prefix}index_list({preparer.quote(table)})")
        uniques = []
        for row in listed.mappings().all():
            if row["origin"] != "u":
                continue
            info = conn.exec_driver_sql(f"PRAGMA {prefix}index_info({preparer.quote(row['name'])})")
            uniques.append(tuple(item["name"] for item in info.mappings().all()))
        if uniques:
            found[table] = tuple(uniques)
    return found


def _sqlite_catalog(
    conn: Connection,
    inspector: Inspector,
    schema: str | None,
    names: Sequence[str] | None,
    reading: Reading,
) -> _Catalog:
    # sqlite_master keeps every table's and index's CREATE statement as written: heal
    # replays them, and indexes on expressions (which SQLAlchemy skips) are read from them.
    master = sa.table(
        "sqlite_master",
        sa.column("type"),
        sa.column("name"),
        sa.column("tbl_name"),
        sa.column("sql"),
        schema=schema,
    )
    rows = conn.execute(
        sa.select(master.c.type, master.c.name, master.c.tbl_name, master.c.sql).where(
            master.c.type.in_(("table", "index", "trigger")), master.c.sql.is_not(None)
        )
    ).all()
    if names is not None:
        wanted = set(names)
        rows = [row for row in rows if row.tbl_name in wanted]
    triggers: dict[str, list[str]] = {}
    for row in rows:
        if row.type == "trigger":
            triggers.setdefault(row.tbl_name, []).append(row.sql)
    return _Catalog(
        triggers={table: tuple(sorted(items)) for table, items in triggers.items()},
        uniques=_sqlite_uniques(conn, schema, [row.name for row in rows if row.type == "table"]),
        table_text={row.name: (row.sql, None) for row in rows if row.type == "table"},
        index_text={(row.tbl_name, row.name): row.sql for row in rows if row.type == "index"},
        indexes_from_text=True,
    )


_PG_NAME_MAX = 63  # NAMEDATALEN - 1


def _pg_default_name(kind: str, table: str, columns: tuple[str, ...]) -> str:
    """PostgreSQL's makeObjectName(): ``table_cols_label``, the longer part truncated first.

    Collisions (PostgreSQL then appends a number) are not predicted.
    """
    name1, name2 = table, "_".join(columns)
    overhead = len(kind) + 1 + (1 if name2 else 0)
    available = _PG_NAME_MAX - overhead
    len1, len2 = len(name1), len(name2)
    while len1 + len2 > available:
        if len1 > len2:
            len1 -= 1
        else:
            len2 -= 1
    parts = [name1[:len1], name2[:len2], kind] if name2 else [name1[:len1], kind]
    return "_".join(parts)


def _pg_is_serial(column: sa.Column[Any], dialect: Dialect) -> bool:
    # Mirrors PGDDLCompiler.get_column_specification's choice of SERIAL.
    impl: TypeEngine[Any] = column.type.dialect_impl(dialect)
    if isinstance(impl, sa.TypeDecorator):
        impl = impl.impl_instance
    table = cast(sa.Table, column.table)
    return (
        column.primary_key
        and column is table.autoincrement_column
        and (
            getattr(dialect, "supports_smallserial", False) or not isinstance(impl, sa.SmallInteger)
        )
        and column.identity is None
        and (
            column.default is None
            or (isinstance(column.default, sa.Sequence) and bool(column.default.optional))
        )
    )


_PG_TYPE_ALIASES = {"FLOAT": "DOUBLE PRECISION", "DOUBLE": "DOUBLE PRECISION", "REAL": "REAL"}


def _pg_type_alias(rendered: str) -> str:
    # SQLAlchemy compiles Float() as FLOAT; PostgreSQL stores float8 and reflects it back as
    # DOUBLE PRECISION (FLOAT(p) is real for p <= 24).
    if match := re.fullmatch(r"FLOAT\((\d+)\)", rendered):
        return "REAL" if int(match.group(1)) <= 24 else "DOUBLE PRECISION"
    if match := re.fullmatch(r"DECIMAL(\(.*\))?", rendered):
        return f"NUMERIC{match.group(1) or ''}"
    return _PG_TYPE_ALIASES.get(rendered, rendered)


_GENERIC = _DialectRules(_no_catalog, _no_default_name, _never_serial, _same_type)
_RULES: Mapping[str, _DialectRules] = {
    "postgresql": _DialectRules(_pg_catalog, _pg_default_name, _pg_is_serial, _pg_type_alias),
    # SQLite: no enum types, no invalid indexes, no NOT VALID; reflection only has the
    # constraint names written in CREATE TABLE, and INTEGER PRIMARY KEY is the rowid.
    "sqlite": _DialectRules(_sqlite_catalog, _no_default_name, _never_serial, _same_type),
}


def _rules_for(dialect: Dialect) -> _DialectRules:
    return _RULES.get(dialect.name, _GENERIC)


# --------------------------------------------------------------------------------------------
# Reflection


# Up to this many tables, reflection is planned for a few tables (:func:`_plans_for_few_tables`).
_FEW_TABLES = 64
# One round trip each way, fixed text (compiled once): the CTE (materialized) reads the
# settings before the same statement sets them.
_JOINS_OFF = text(
    """
    WITH before AS MATERIALIZED (
        SELECT pg_catalog.current_setting('enable_hashjoin') AS hashjoin,
               pg_catalog.current_setting('enable_mergejoin') AS mergejoin,
               pg_catalog.current_setting('plan_cache_mode') AS plan_cache_mode
    )
    SELECT hashjoin, mergejoin, plan_cache_mode,
           pg_catalog.set_config('enable_hashjoin', 'off', true),
           pg_catalog.set_config('enable_mergejoin', 'off', true),
           pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true)
    FROM before
    """
)
_JOINS_BACK = text(
    "SELECT pg_catalog.set_config('enable_hashjoin', :hashjoin, true), "
    "pg_catalog.set_config('enable_mergejoin', :mergejoin, true), "
    "pg_catalog.set_config('plan_cache_mode', :plan_cache_mode, true)"
)


@contextlib.contextmanager
def _plans_for_few_tables(conn: Connection, restore: bool = True) -> Iterator[None]:
    """Within the current transaction, have PostgreSQL look a few tables up by index.

    For a handful of tables (the snapshot build reflects what each revision changed), hash and
    merge joins read whole catalogs: SQLAlchemy's primary-key and index queries scan every
    table's columns (~5 ms each for 5 of 500 tables, 1 ms as nested loops over the catalogs'
    indexes). Statements the caller prepared (:class:`Reading`) take a generic plan, made
    once per session instead of at each run. The settings are transaction-local and put back
    once reflection has read what it needs (unless ``restore`` is False: the transaction ends
    next, and they with it); a reflection that raises leaves them to its transaction's
    rollback.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    before = conn.execute(_JOINS_OFF).one()
    yield
    if not restore:
        return
    conn.execute(
        _JOINS_BACK,
        {
            "hashjoin": before.hashjoin,
            "mergejoin": before.mergejoin,
            "plan_cache_mode": before.plan_cache_mode,
        },
    )


def reflect_schema(
    conn: Connection,
    *,
    schemas: Sequence[str | None] = (None,),
    exclude_tables: Collection[str] = ("alembic_version",),
    only: Collection[TableKey] | None = None,
    reading: Reading = _PLAIN,
) -> Schema:
    """Reflect the tables and enums of ``schemas`` (None: the default schema) in bulk.

    ``only`` restricts the tables to those keys (the enums are all read unless ``reading``
    says not to): the snapshot build reflects only what a revision changed
    (:func:`table_digests`, :mod:`runner.ddlwatch`).

    Issues a fixed number of statements per schema whatever the number of tables: 8 on
    PostgreSQL (with the server's definitions or without them, as verify's :data:`FOR_DIFF`
    reads), after a few lookups SQLAlchemy caches once per dialect (its index
    query goes in batches of 3,000 tables); two more set and restore the planner's join methods
    when ``only`` names a few tables (:func:`_plans_for_few_tables`; one when ``reading`` is
    the last of its transaction). SQLite's dialect has
    no bulk queries and loops per table. Tables named in ``exclude_tables`` are skipped in
    every schema; views are not reflected. With ``schemas=(None,)`` the result's keys have
    schema None.
    """
    inspector = sa.inspect(conn)
    rules = _rules_for(conn.dialect)
    excluded = frozenset(exclude_tables)
    tables: dict[TableKey, Table] = {}
    enums: dict[TableKey, Enum] = {}
    wanted = tuple(dict.fromkeys(schemas))
    few = only is not None and len(only) <= _FEW_TABLES
    with (
        warnings.catch_warnings(),
        _plans_for_few_tables(conn, not reading.last_in_transaction)
        if few
        else contextlib.nullcontext(),
    ):
        # SQLite's indexes on expressions are read from their CREATE INDEX text instead.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        for schema in wanted:
            names = None if only is None else sorted(n for s, n in only if s == schema)
            if names == [] and not reading.enums:
                continue
            catalog = rules.read_catalog(conn, inspector, schema, names, reading)
            enums.update((enum.key, enum) for enum in catalog.enums)
            if names == []:
                continue
            found = _reflect_tables(inspector, conn.dialect, schema, excluded, catalog, names)
            for table in found:
                tables[table.key] = table
    return Schema(tables=tables, enums=enums, schemas=wanted)


# One digest per table over everything reflection reads about it, in the server's words:
# columns (type, nullability, default, identity and its sequence, generation, collation,
# comment), constraints, indexes, triggers, the table's kind and comment. The snapshot build
# re-reflects only the tables whose digest a revision changed.
_PG_TABLE_DIGESTS = text(
    f"""
    WITH rel AS (
        SELECT c.oid, c.relname, c.relkind FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
    ), line AS (
        SELECT r.relname, format('t %L %L', r.relkind, td.description) AS text
        FROM rel r
        LEFT JOIN pg_catalog.pg_description td
               ON td.objoid = r.oid AND td.objsubid = 0
              AND td.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
        UNION ALL
        SELECT r.relname, format('c %L %L %L %L %L %L %L %L %L', a.attname,
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               a.attcollation, cd.description, s.sequence)
        FROM rel r
        JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0
                                       AND NOT a.attisdropped
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_catalog.pg_description cd
               ON cd.objoid = r.oid AND cd.objsubid = a.attnum
              AND cd.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
        LEFT JOIN (
            -- The sequence a column owns (serial) or is (identity), joined by hash: a lookup
            -- per column was a third of the query.
            SELECT DISTINCT ON (dep.refobjid, dep.refobjsubid)
                   dep.refobjid, dep.refobjsubid, row(q.*)::text AS sequence
            FROM pg_catalog.pg_depend dep
            JOIN pg_catalog.pg_sequence q ON q.seqrelid = dep.objid
            WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND dep.deptype IN ('a', 'i')
            ORDER BY dep.refobjid, dep.refobjsubid, q.seqrelid
        ) s ON s.refobjid = r.oid AND s.refobjsubid = a.attnum
        UNION ALL
        -- A NOT NULL constraint (PostgreSQL 18 lists one per column) is its column and
        -- flags: deparsing it would only spell them out.
        SELECT r.relname, format('k %L %L %L', k.conname, k.convalidated,
                                 CASE WHEN k.contype = 'n'
                                      THEN format('n %s %s', k.conkey, k.connoinherit)
                                      ELSE pg_catalog.pg_get_constraintdef(k.oid) END)
        FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid
        UNION ALL
        SELECT r.relname, format('i %L %L', x.indisvalid, pg_catalog.pg_get_indexdef(x.indexrelid))
        FROM rel r JOIN pg_catalog.pg_index x ON x.indrelid = r.oid
        WHERE {_NOT_BEHIND_A_CONSTRAINT}
        UNION ALL
        SELECT r.relname, format('g %L', pg_catalog.pg_get_triggerdef(g.oid))
        FROM rel r JOIN pg_catalog.pg_trigger g ON g.tgrelid = r.oid AND NOT g.tgisinternal
    )
    SELECT relname, encode(sha256(convert_to(
               string_agg(text, E'\n' ORDER BY text COLLATE "C"), 'UTF8')), 'hex') AS digest
    FROM line GROUP BY relname
    """
)


def table_digests(
    conn: Connection,
    *,
    schemas: Sequence[str | None] = (None,),
    exclude_tables: Collection[str] = ("alembic_version",),
) -> dict[TableKey, str]:
    """A digest of each table's catalog entry: one query per schema on PostgreSQL.

    Two equal digests mean :func:`reflect_schema` would read the table the same way; other
    dialects digest each table's ``sqlite_master`` rows (its CREATE TABLE, indexes, triggers).
    """
    excluded = frozenset(exclude_tables)
    found: dict[TableKey, str] = {}
    for schema in dict.fromkeys(schemas):
        if conn.dialect.name == "postgresql":
            namespace = schema if schema is not None else sa.inspect(conn).default_schema_name
            rows = conn.execute(_PG_TABLE_DIGESTS, {"schema": namespace}).all()
            found.update(
                ((schema, row.relname), row.digest) for row in rows if row.relname not in excluded
            )
            continue
        master = sa.table(
            "sqlite_master",
            sa.column("type"),
            sa.column("tbl_name"),
            sa.column("sql"),
            schema=schema,
        )
        texts: dict[str, list[str]] = {}
        listed = sa.select(master.c.type, master.c.tbl_name, master.c.sql).where(
            master.c.type.in_(("table", "index", "trigger"))
        )
        for row in conn.execute(listed):
            if row.tbl_name not in excluded and not row.tbl_name.startswith("sqlite_"):
                texts.setdefault(row.tbl_name, []).append(f"{row.type} {row.sql}")
        found.update(
            ((schema, name), hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest())
            for name, items in texts.items()
        )
    return found


def _reflect_tables(
    inspector: Inspector,
    dialect: Dialect,
    schema: str | None,
    excluded: frozenset[str],
    catalog: _Catalog,
    names: Sequence[str] | None = None,
) -> Iterator[Table]:
    columns = dict(inspector.get_multi_columns(schema=schema, filter_names=names))

    def having(kind: str, read: Callable[..., Any]) -> dict[TableKey, Any]:
        # A kind of object no table has (per the catalog) costs no query. The same filter
        # for every call: SQLAlchemy looks the tables' oids up once per filter.
        if catalog.kinds is not None and kind not in catalog.kinds:
            return {}
        return dict(read(schema=schema, filter_names=names))

    pks = having("p", inspector.get_multi_pk_constraint)
    indexes = having("i", inspector.get_multi_indexes)
    uniques = having("u", inspector.get_multi_unique_constraints)
    checks = having("c", inspector.get_multi_check_constraints)
    fks = having("f", inspector.get_multi_foreign_keys)
    constraint_text = catalog.constraint_text
    for key in sorted(columns, key=_key_order):
        name = key[1]
        if name in excluded:
            continue
        pk = pks.get(key) or {}
        reflected = [
            _reflected_index(item, dialect, name, catalog)
            for item in indexes.get(key, ())
            # The index behind a UNIQUE constraint is the constraint, not an index.
            if not item.get("duplicates_constraint")
        ]
        table_text, table_comment = catalog.table_text.get(name, (None, None))
        yield Table(
            schema=schema,
            name=name,
            columns=tuple(
                _reflected_column(item, dialect, catalog.column_text.get((name, item["name"])))
                for item in columns[key]
            ),
            primary_key=(
                PrimaryKey(
                    pk.get("name"),
                    tuple(pk["constrained_columns"]),
                    constraint_text.get((name, pk.get("name") or "")),
                )
                if pk.get("constrained_columns")
                else None
            ),
            indexes=(*reflected, *_unreflected_indexes(name, reflected, catalog)),
            uniques=_with_unreflected_uniques(
                [
                    UniqueConstraint(
                        item.get("name"),
                        tuple(item["column_names"]),
                        constraint_text.get((name, item.get("name") or "")),
                    )
                    for item in uniques.get(key, ())
                ],
                catalog.uniques.get(name, ()),
            ),
            checks=tuple(
                CheckConstraint(
                    item.get("name"),
                    normalize_sql(item["sqltext"]),
                    valid=(name, item.get("name")) not in catalog.unvalidated_constraints
                    and not (item.get("dialect_options") or {}).get("not_valid", False),
                    definition=constraint_text.get((name, item.get("name") or "")),
                )
                for item in checks.get(key, ())
            ),
            foreign_keys=tuple(
                _reflected_foreign_key(item, name, catalog) for item in fks.get(key, ())
            ),
            exclusions=catalog.exclusions.get(name, ()),
            definition=table_text,
            comment=table_comment,
            triggers=catalog.triggers.get(name, ()),
        )


def _with_unreflected_uniques(
    reflected: list[UniqueConstraint], listed: Sequence[tuple[str, ...]]
) -> tuple[UniqueConstraint, ...]:
    """Reflected uniques plus the catalog's that reflection missed (unnamed, inline)."""
    have = [unique.columns for unique in reflected]
    more = []
    for columns in listed:
        if columns in have:
            have.remove(columns)
        else:
            more.append(UniqueConstraint(None, columns))
    return (*reflected, *more)


def _unreflected_indexes(table: str, reflected: list[Index], catalog: _Catalog) -> list[Index]:
    """Indexes only the catalog's CREATE INDEX text shows (SQLite, on expressions)."""
    if not catalog.indexes_from_text:
        return []
    names = {index.name for index in reflected}
    found = []
    for (table_name, name), sql in catalog.index_text.items():
        if table_name != table or name in names:
            continue
        parsed = parse_create_index(sql)
        if parsed is not None:
            elements, unique, predicate = parsed
            found.append(Index(name, elements, unique, predicate, definition=sql))
    return found


#: A sequence's ``nextval()`` as a default: a serial column (as PostgreSQL prints it, with
#: the ``::regclass`` cast, or normalised, without).
_SERIAL_DEFAULT = re.compile(r"nextval\('(?:[^']|'')*'(?:::regclass)?\)")


def _reflected_column(
    item: Mapping[str, Any], dialect: Dialect, server: tuple[str, str | None] | None
) -> Column:
    raw = item.get("default")
    identity: str | None = None
    default: str | None = None
    if item.get("identity"):
        identity = IDENTITY_ALWAYS if item["identity"].get("always") else IDENTITY_BY_DEFAULT
        default = normalize_default(raw)
    elif raw is not None and _SERIAL_DEFAULT.fullmatch(raw):
        identity = SERIAL  # not normalised first: one per table, each its own text
    else:
        default = normalize_default(raw)
        if default is not None and _SERIAL_DEFAULT.fullmatch(default):
            identity, default = SERIAL, None
    definition, comment = server if server is not None else (None, item.get("comment"))
    return Column(
        name=item["name"],
        type=render_type(item["type"], dialect),
        nullable=bool(item["nullable"]),
        default=default,
        identity=identity,
        definition=definition,
        comment=comment,
    )


def _reflected_index(
    item: Mapping[str, Any], dialect: Dialect, table: str, catalog: _Catalog
) -> Index:
    names: list[str | None] = list(item["column_names"])
    expressions: list[str] = [str(e) for e in item.get("expressions") or names]
    options = item.get("dialect_options") or {}
    predicate = options.get(f"{dialect.name}_where")
    return Index(
        name=item.get("name"),
        columns=tuple(
            normalize_sql(expression) if column is None else column
            for column, expression in zip(names, expressions, strict=True)
        ),
        unique=bool(item.get("unique")),
        predicate=None if predicate is None else normalize_sql(str(predicate)),
        valid=(table, item.get("name")) not in catalog.invalid_indexes
        and not options.get("postgresql_invalid", False),
        definition=catalog.index_text.get((table, item.get("name") or "")),
    )


def _referential_action(value: str | None) -> str | None:
    action = None if value is None else " ".join(value.upper().split())
    return None if action in (None, "", "NO ACTION") else action


def _reflected_foreign_key(item: Mapping[str, Any], table: str, catalog: _Catalog) -> ForeignKey:
    options = item.get("options") or {}
    return ForeignKey(
        name=item.get("name"),
        columns=tuple(item["constrained_columns"]),
        referred_schema=item.get("referred_schema"),
        referred_table=item["referred_table"],
        referred_columns=tuple(item["referred_columns"]),
        ondelete=_referential_action(options.get("ondelete")),
        onupdate=_referential_action(options.get("onupdate")),
        valid=(table, item.get("name")) not in catalog.unvalidated_constraints
        and not options.get("not_valid", False),
        definition=catalog.constraint_text.get((table, item.get("name") or "")),
    )


# --------------------------------------------------------------------------------------------
# From MetaData


def schema_from_metadata(metadata: MetaData, dialect: Dialect) -> Schema:
    """The schema ``metadata.create_all`` would build on ``dialect``, normalised like
    :func:`reflect_schema`. Enums are those used by columns (native enums only)."""
    rules = _rules_for(dialect)
    ddl = dialect.ddl_compiler(dialect, None)  # type: ignore[arg-type]  # renders fragments only
    tables: dict[TableKey, Table] = {}
    enums: dict[TableKey, Enum] = {}
    for table in metadata.tables.values():
        converted = _metadata_table(table, dialect, ddl, rules)
        tables[converted.key] = converted
        for column in table.columns:
            enum = _native_enum(column.type, dialect)
            if enum is not None:
                enums[enum.key] = enum
    schemas = {None, *(table.schema for table in metadata.tables.values())}
    return Schema(tables=tables, enums=enums, schemas=tuple(schemas))


def _native_enum(type_: TypeEngine[Any], dialect: Dialect) -> Enum | None:
    impl: TypeEngine[Any] = type_.dialect_impl(dialect)
    while isinstance(impl, sa.TypeDecorator):
        impl = impl.impl_instance
    if not (isinstance(impl, sa.Enum) and impl.native_enum and dialect.supports_native_enum):
        return None
    return Enum(impl.schema, impl.name or "", tuple(impl.enums))


def _final_name(constraint: sa.Constraint | sa.Index, dialect: Dialect) -> str | None:
    # The name DDL would use: naming conventions applied, truncated for the dialect. The
    # private flag turns off quoting; alembic's autogenerate calls it the same way
    # (alembic.util.sqla_compat._get_constraint_final_name).
    if constraint.name is None:
        return None
    return dialect.identifier_preparer.format_constraint(constraint, _alembic_quote=False)


def _compile_sql(ddl: DDLCompiler, clause: Any) -> str:
    if isinstance(clause, str):
        return normalize_sql(clause)
    return normalize_sql(ddl.sql_compiler.process(clause, include_table=False, literal_binds=True))


def _should_create(constraint: sa.Constraint, ddl: DDLCompiler) -> bool:
    # Type-bound CHECKs (Boolean/Enum create_constraint) carry a rule: a native enum on
    # PostgreSQL gets no CHECK. CreateTable consults the same private hook.
    rule = getattr(constraint, "_create_rule", None)
    return rule is None or bool(rule(ddl))


def _metadata_table(
    table: sa.Table, dialect: Dialect, ddl: DDLCompiler, rules: _DialectRules
) -> Table:
    def named(constraint: sa.Constraint, kind: str, columns: tuple[str, ...]) -> str | None:
        return _final_name(constraint, dialect) or rules.default_name(kind, table.name, columns)

    column_names = {column.name for column in table.columns}
    pk_columns = tuple(column.name for column in table.primary_key.columns)
    checks: dict[int, sa.CheckConstraint] = {}
    for constraint in [*table.constraints, *(c for col in table.columns for c in col.constraints)]:
        if isinstance(constraint, sa.CheckConstraint) and _should_create(constraint, ddl):
            checks[id(constraint)] = constraint
    return Table(
        schema=table.schema,
        name=table.name,
        columns=tuple(_metadata_column(column, dialect, ddl, rules) for column in table.columns),
        primary_key=(
            PrimaryKey(named(table.primary_key, "pkey", ()), pk_columns) if pk_columns else None
        ),
        indexes=tuple(_metadata_index(index, dialect, ddl) for index in table.indexes),
        uniques=tuple(
            UniqueConstraint(
                named(constraint, "key", tuple(column.name for column in constraint.columns)),
                tuple(column.name for column in constraint.columns),
            )
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        ),
        checks=tuple(
            _metadata_check(constraint, ddl, named, column_names) for constraint in checks.values()
        ),
        foreign_keys=tuple(
            _metadata_foreign_key(constraint, named) for constraint in table.foreign_key_constraints
        ),
        exclusions=tuple(
            Exclusion(named(constraint, "excl", tuple(c.name for c in constraint.columns)))
            for constraint in table.constraints
            if isinstance(constraint, ExcludeConstraint) and dialect.name == "postgresql"
        ),
    )


def _metadata_column(
    column: sa.Column[Any], dialect: Dialect, ddl: DDLCompiler, rules: _DialectRules
) -> Column:
    identity: str | None = None
    default: str | None = None
    if column.identity is not None and dialect.supports_identity_columns:
        identity = IDENTITY_ALWAYS if column.identity.always else IDENTITY_BY_DEFAULT
    elif rules.is_serial(column, dialect):
        identity = SERIAL
    else:
        default = normalize_default(ddl.get_column_default_string(column))
    return Column(
        name=column.name,
        type=render_type(column.type, dialect),
        nullable=bool(column.nullable),
        default=default,
        identity=identity,
    )


def _metadata_index(index: sa.Index, dialect: Dialect, ddl: DDLCompiler) -> Index:
    elements = tuple(
        expression.name if isinstance(expression, sa.Column) else _compile_sql(ddl, expression)
        for expression in index.expressions
    )
    where = index.dialect_kwargs.get(f"{dialect.name}_where")
    return Index(
        name=_final_name(index, dialect),
        columns=elements,
        unique=bool(index.unique),
        predicate=None if where is None else _compile_sql(ddl, where),
    )


def _metadata_check(
    constraint: sa.CheckConstraint,
    ddl: DDLCompiler,
    named: Callable[[sa.Constraint, str, tuple[str, ...]], str | None],
    column_names: set[str],
) -> CheckConstraint:
    sqltext = _compile_sql(ddl, constraint.sqltext)
    # PostgreSQL names an unnamed CHECK after its column when it references exactly one
    # (heap.c, AddRelationNewConstraints), else after the table alone.
    referenced = sorted(column_names.intersection(re.findall(r"[a-z_][a-z0-9_$]*", sqltext)))
    return CheckConstraint(
        named(constraint, "check", tuple(referenced) if len(referenced) == 1 else ()), sqltext
    )


def _metadata_foreign_key(
    constraint: sa.ForeignKeyConstraint,
    named: Callable[[sa.Constraint, str, tuple[str, ...]], str | None],
) -> ForeignKey:
    columns = tuple(column.name for column in constraint.columns)
    referred = constraint.referred_table
    return ForeignKey(
        name=named(constraint, "fkey", columns),
        columns=columns,
        referred_schema=referred.schema,
        referred_table=referred.name,
        referred_columns=tuple(element.column.name for element in constraint.elements),
        ondelete=_referential_action(constraint.ondelete),
        onupdate=_referential_action(constraint.onupdate),
    )
