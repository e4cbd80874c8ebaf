"""A normalised, comparable, JSON-serialisable model of a database schema.

Two sources give the same model: :func:`reflect_schema` (a live database, reflected in bulk:
one ``Inspector.get_multi_*`` call per kind per schema plus two catalog queries on PostgreSQL,
whatever the number of tables) and :func:`schema_from_metadata` (SQLAlchemy ``MetaData``, such
as an env.py's ``target_metadata``). Both normalise the same way, so the schema a chain of
migrations builds and the one ``metadata.create_all`` builds compare equal with ``==``:

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

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.types import TypeEngine

from runner.sqltext import normalize_default, normalize_sql

TableKey = tuple[str | None, str]
"""``(schema, table name)``; schema ``None`` is the connection's default schema."""

SERIAL = "serial"
IDENTITY_ALWAYS = "always"
IDENTITY_BY_DEFAULT = "by default"


# --------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, slots=True)
class Column:
    """A column. ``identity``: None, ``"serial"`` (a sequence default), ``"always"`` or
    ``"by default"`` (an identity column). ``default`` is normalised SQL or None."""

    name: str
    type: str
    nullable: bool
    default: str | None = None
    identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "default": self.default,
            "identity": self.identity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        return cls(data["name"], data["type"], data["nullable"], data["default"], data["identity"])


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "unique": self.unique,
            "predicate": self.predicate,
            "valid": self.valid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Index:
        return cls(
            data["name"], tuple(data["columns"]), data["unique"], data["predicate"], data["valid"]
        )


@dataclass(frozen=True, slots=True)
class UniqueConstraint:
    name: str | None
    columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UniqueConstraint:
        return cls(data["name"], tuple(data["columns"]))


@dataclass(frozen=True, slots=True)
class CheckConstraint:
    """A CHECK constraint; ``valid`` is False when it was added ``NOT VALID``."""

    name: str | None
    sqltext: str
    valid: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sqltext": self.sqltext, "valid": self.valid}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckConstraint:
        return cls(data["name"], data["sqltext"], data["valid"])


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "referred_schema": self.referred_schema,
            "referred_table": self.referred_table,
            "referred_columns": list(self.referred_columns),
            "ondelete": self.ondelete,
            "onupdate": self.onupdate,
            "valid": self.valid,
        }

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
        )


@dataclass(frozen=True, slots=True)
class PrimaryKey:
    name: str | None
    columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrimaryKey:
        return cls(data["name"], tuple(data["columns"]))


_N = TypeVar("_N", Index, UniqueConstraint, CheckConstraint, ForeignKey)


def _sorted_by_name(items: Iterable[_N]) -> tuple[_N, ...]:
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "indexes", _sorted_by_name(self.indexes))
        object.__setattr__(self, "uniques", _sorted_by_name(self.uniques))
        object.__setattr__(self, "checks", _sorted_by_name(self.checks))
        object.__setattr__(self, "foreign_keys", _sorted_by_name(self.foreign_keys))

    @property
    def key(self) -> TableKey:
        return (self.schema, self.name)

    @property
    def qualified_name(self) -> str:
        return qualified_name(self.schema, self.name)

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "columns": [column.to_dict() for column in self.columns],
            "primary_key": None if self.primary_key is None else self.primary_key.to_dict(),
            "indexes": [index.to_dict() for index in self.indexes],
            "uniques": [unique.to_dict() for unique in self.uniques],
            "checks": [check.to_dict() for check in self.checks],
            "foreign_keys": [fk.to_dict() for fk in self.foreign_keys],
        }

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
    """sha256 (hex) of the table's canonical JSON: equal tables, equal digests."""
    return hashlib.sha256(canonical_json(table.to_dict()).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Types


def render_type(type_: TypeEngine[Any], dialect: Dialect) -> str:
    """The canonical text of a column type on ``dialect`` (``ENUM(name)`` for native enums)."""
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
    """What a dialect reads beyond the ``get_multi_*`` calls, for one schema."""

    enums: tuple[Enum, ...] = ()
    invalid_indexes: frozenset[tuple[str, str]] = frozenset()
    unvalidated_constraints: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class _DialectRules:
    """Everything reflection and metadata conversion do differently per dialect."""

    read_catalog: Callable[[Connection, Inspector, str | None], _Catalog]
    # (kind, table, columns) -> the name the database gives an unnamed constraint;
    # kind is "pkey", "key" (unique), "fkey" or "check".
    default_name: Callable[[str, str, tuple[str, ...]], str | None]
    # True when the database gives the column a sequence default (SERIAL).
    is_serial: Callable[[sa.Column[Any], Dialect], bool]
    type_alias: Callable[[str], str]


def _no_catalog(conn: Connection, inspector: Inspector, schema: str | None) -> _Catalog:
    return _Catalog()


def _no_default_name(kind: str, table: str, columns: tuple[str, ...]) -> str | None:
    return None


def _never_serial(column: sa.Column[Any], dialect: Dialect) -> bool:
    return False


def _same_type(rendered: str) -> str:
    return rendered


_PG_CATALOG = text(
    """
    SELECT 'index' AS kind, t.relname AS table_name, i.relname AS name
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE NOT x.indisvalid AND n.nspname = :schema
    UNION ALL
    SELECT 'constraint', t.relname, c.conname
    FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    WHERE NOT c.convalidated AND n.nspname = :schema
    """
)


def _pg_catalog(conn: Connection, inspector: Inspector, schema: str | None) -> _Catalog:
    # Enum labels in enumsortorder, plus the two flags a failed or deliberately deferred
    # migration leaves behind: pg_index.indisvalid (CREATE INDEX CONCURRENTLY that failed)
    # and pg_constraint.convalidated (ADD CONSTRAINT .. NOT VALID). SQLAlchemy 2.1 reflects
    # some of these as dialect options, 2.0 does not: read them here for both.
    namespace = schema if schema is not None else inspector.default_schema_name
    enums = tuple(
        Enum(schema, item["name"], tuple(item["labels"]))
        for item in cast(Any, inspector).get_enums(schema=namespace)
    )
    invalid: set[tuple[str, str]] = set()
    unvalidated: set[tuple[str, str]] = set()
    for kind, table_name, name in conn.execute(_PG_CATALOG, {"schema": namespace}):
        (invalid if kind == "index" else unvalidated).add((table_name, name))
    return _Catalog(enums, frozenset(invalid), frozenset(unvalidated))


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
    "sqlite": _GENERIC,
}


def _rules_for(dialect: Dialect) -> _DialectRules:
    return _RULES.get(dialect.name, _GENERIC)


# --------------------------------------------------------------------------------------------
# Reflection


def reflect_schema(
    conn: Connection,
    *,
    schemas: Sequence[str | None] = (None,),
    exclude_tables: Collection[str] = ("alembic_version",),
) -> Schema:
    """Reflect the tables and enums of ``schemas`` (None: the default schema) in bulk.

    Issues a fixed number of statements per schema whatever the number of tables: 10 on
    PostgreSQL, after a few lookups SQLAlchemy caches once per dialect (its index query
    goes in batches of 3,000 tables). SQLite's dialect has no bulk queries and loops per
    table. Tables named in ``exclude_tables`` are skipped in every schema; views are not
    reflected. With ``schemas=(None,)`` the result's keys have schema None.
    """
    inspector = sa.inspect(conn)
    rules = _rules_for(conn.dialect)
    excluded = frozenset(exclude_tables)
    tables: dict[TableKey, Table] = {}
    enums: dict[TableKey, Enum] = {}
    wanted = tuple(dict.fromkeys(schemas))
    for schema in wanted:
        catalog = rules.read_catalog(conn, inspector, schema)
        enums.update((enum.key, enum) for enum in catalog.enums)
        for table in _reflect_tables(inspector, conn.dialect, schema, excluded, catalog):
            tables[table.key] = table
    return Schema(tables=tables, enums=enums, schemas=wanted)


def _reflect_tables(
    inspector: Inspector,
    dialect: Dialect,
    schema: str | None,
    excluded: frozenset[str],
    catalog: _Catalog,
) -> Iterator[Table]:
    columns = dict(inspector.get_multi_columns(schema=schema))
    pks = dict(inspector.get_multi_pk_constraint(schema=schema))
    indexes = dict(inspector.get_multi_indexes(schema=schema))
    uniques = dict(inspector.get_multi_unique_constraints(schema=schema))
    checks = dict(inspector.get_multi_check_constraints(schema=schema))
    fks = dict(inspector.get_multi_foreign_keys(schema=schema))
    for key in sorted(columns, key=_key_order):
        name = key[1]
        if name in excluded:
            continue
        pk = pks.get(key) or {}
        yield Table(
            schema=schema,
            name=name,
            columns=tuple(_reflected_column(item, dialect) for item in columns[key]),
            primary_key=(
                PrimaryKey(pk.get("name"), tuple(pk["constrained_columns"]))
                if pk.get("constrained_columns")
                else None
            ),
            indexes=tuple(
                _reflected_index(item, dialect, name, catalog)
                for item in indexes.get(key, ())
                # The index behind a UNIQUE constraint is the constraint, not an index.
                if not item.get("duplicates_constraint")
            ),
            uniques=tuple(
                UniqueConstraint(item.get("name"), tuple(item["column_names"]))
                for item in uniques.get(key, ())
            ),
            checks=tuple(
                CheckConstraint(
                    item.get("name"),
                    normalize_sql(item["sqltext"]),
                    valid=(name, item.get("name")) not in catalog.unvalidated_constraints
                    and not (item.get("dialect_options") or {}).get("not_valid", False),
                )
                for item in checks.get(key, ())
            ),
            foreign_keys=tuple(
                _reflected_foreign_key(item, name, catalog) for item in fks.get(key, ())
            ),
        )


def _reflected_column(item: Mapping[str, Any], dialect: Dialect) -> Column:
    default = normalize_default(item.get("default"))
    identity: str | None = None
    if item.get("identity"):
        identity = IDENTITY_ALWAYS if item["identity"].get("always") else IDENTITY_BY_DEFAULT
    elif default is not None and re.fullmatch(r"nextval\('[^']*'\)", default):
        identity, default = SERIAL, None
    return Column(
        name=item["name"],
        type=render_type(item["type"], dialect),
        nullable=bool(item["nullable"]),
        default=default,
        identity=identity,
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
