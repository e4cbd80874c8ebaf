"""Independent looks at a database: raw catalog text, and hand-made drift.

``catalog()`` reads the server's own catalog (PostgreSQL: ``format_type``, ``pg_get_expr``,
``pg_indexes.indexdef``, ``pg_get_constraintdef``, enum labels, functions, extensions;
SQLite: ``PRAGMA`` table_info / index_list / index_info / foreign_key_list) into sets, so two
databases compare without going through ``runner.schema``. ``sqlite_master_sql()`` is the
stricter SQLite text, for databases that were built by the same statements.

``pick()`` chooses one object of a kind (table, column, index, fk, unique) from a database,
preferring the ones that make a repair hard to get exactly right (a table with indexes and
foreign keys, a column with a server default, a partial or expression or multi-column index, a
foreign key with an ON DELETE rule, a multi-column unique constraint); ``drop()`` removes it
by hand, as a DBA or a restore would. SQLite cannot drop a constraint: the table is rebuilt from
its own ``CREATE TABLE`` text minus that clause (the procedure of the SQLite documentation).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

IGNORED_TABLES = ("alembic_version", "alembic_deploy_repairs")
KINDS = ("table", "column", "index", "fk", "unique")

_USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
    " AND n.nspname NOT LIKE 'pg_temp%%'"
)
_NOT_IGNORED = "c.relname NOT IN ('alembic_version', 'alembic_deploy_repairs')"
_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.objid = {oid} AND dep.deptype = 'e')"
)

_PG_QUERIES = {
    "columns": f"""
        SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE {_USER_SCHEMAS} AND {_NOT_IGNORED} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND a.attnum > 0 AND NOT a.attisdropped
          AND {_NOT_EXTENSION.format(oid="c.oid")}
    """,
    "indexes": f"""
        SELECT n.nspname, c.relname, i.relname, pg_get_indexdef(x.indexrelid),
               x.indisvalid
        FROM pg_index x
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS} AND {_NOT_IGNORED}
    """,
    "constraints": f"""
        SELECT n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
               k.convalidated, k.condeferrable, k.condeferred
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS} AND {_NOT_IGNORED}
    """,
    "enums": f"""
        SELECT n.nspname, t.typname,
               string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
        FROM pg_type t
        JOIN pg_enum e ON e.enumtypid = t.oid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_USER_SCHEMAS}
        GROUP BY n.nspname, t.typname
    """,
    "functions": f"""
        SELECT n.nspname, p.proname, pg_get_functiondef(p.oid)
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_SCHEMAS} AND {_NOT_EXTENSION.format(oid="p.oid")}
    """,
    "sequences": f"""
        SELECT n.nspname, c.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS} AND c.relkind = 'S'
          AND c.relname NOT LIKE 'alembic_deploy_repairs%%'
    """,
    "views": f"""
        SELECT n.nspname, c.relname, pg_get_viewdef(c.oid)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS} AND c.relkind IN ('v', 'm') AND {_NOT_IGNORED}
          AND {_NOT_EXTENSION.format(oid="c.oid")}
    """,
    "triggers": f"""
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS} AND NOT t.tgisinternal
    """,
    "extensions": "SELECT extname FROM pg_extension",
}


@contextmanager
def quiet_sqlite_reflection() -> Iterator[None]:
    """SQLAlchemy's SQLite reflection skips expression-based indexes with an SAWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index", sa.exc.SAWarning
        )
        yield


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool)


def catalog(url: str) -> dict[str, frozenset[tuple[Any, ...]]]:
    """The database's catalog as sets of rows, per kind of object (see the module doc)."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return {
                    kind: frozenset(tuple(row) for row in conn.exec_driver_sql(query))
                    for kind, query in _PG_QUERIES.items()
                }
            return _sqlite_catalog(conn)
    finally:
        engine.dispose()


def _sqlite_catalog(conn: Connection) -> dict[str, frozenset[tuple[Any, ...]]]:
    tables = [
        row[0]
        for row in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        if row[0] not in IGNORED_TABLES
    ]
    columns, indexes, fks = set(), set(), set()
    for table in tables:
        for _cid, name, type_, notnull, default, pk in conn.exec_driver_sql(
            f"PRAGMA table_info({_q(table)})"
        ):
            columns.add((table, name, type_.upper(), notnull, _default_text(default), pk))
        for _seq, name, unique, origin, partial in conn.exec_driver_sql(
            f"PRAGMA index_list({_q(table)})"
        ):
            cols = tuple(row[2] for row in conn.exec_driver_sql(f"PRAGMA index_info({_q(name)})"))
            # sqlite_autoindex_T_N numbers follow the order of the constraints in the text.
            label = None if name.startswith("sqlite_autoindex_") else name
            indexes.add((table, label, unique, origin, partial, cols))
        by_id: dict[int, list[Any]] = {}
        for fk_id, _seq, other, source, target, on_update, on_delete, match in conn.exec_driver_sql(
            f"PRAGMA foreign_key_list({_q(table)})"
        ):
            entry = by_id.setdefault(fk_id, [other, [], [], on_update, on_delete, match])
            entry[1].append(source)
            entry[2].append(target)
        for other, sources, targets, on_update, on_delete, match in by_id.values():
            fks.add((table, other, tuple(sources), tuple(targets), on_update, on_delete, match))
    return {
        "tables": frozenset((table,) for table in tables),
        "columns": frozenset(columns),
        "indexes": frozenset(indexes),
        "foreign_keys": frozenset(fks),
    }


def _default_text(default: str | None) -> str | None:
    """A SQLite default's text up to spelling: case and spaces outside quotes, outer parentheses.

    SQLite keeps a default as written; a repair writes the same expression in its own
    spelling (``CURRENT_TIMESTAMP`` as ``current_timestamp``, no line breaks).
    """
    if default is None:
        return None
    parts = re.split(r"('(?:[^']|'')*')", default)
    text = "".join(p if i % 2 else re.sub(r"\s+", "", p).lower() for i, p in enumerate(parts))
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in re.sub(r"'(?:[^']|'')*'", "", text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def sqlite_master_sql(url: str) -> frozenset[tuple[str, str, str, object]]:
    """``sqlite_master`` rows of the user's objects: type, name, table and the SQL text.

    A table's text is the set of its normalised clauses: plain Alembic's batch "move and copy"
    writes a rebuilt table's constraints in set order, which changes from run to run.
    """
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).all()
    finally:
        engine.dispose()
    result: set[tuple[str, str, str, object]] = set()
    for kind, name, table, sql in rows:
        if table in IGNORED_TABLES:
            continue
        text: object = None
        if sql and kind == "table":
            start, end = sql.index("("), sql.rindex(")")
            clauses = _top_level_split(sql[start + 1 : end])
            text = frozenset(" ".join(clause.split()) for clause in clauses)
        elif sql:
            text = " ".join(sql.split())
        result.add((kind, name, table, text))
    return frozenset(result)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Target:
    """One object to drop: its kind, table, name and the reflected detail used to choose it."""

    kind: str
    table: str
    name: str | None
    detail: str
    columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind} {self.table}.{self.name}" if self.kind != "table" else self.table


def pick(url: str, kind: str) -> Target | None:
    """The object of ``kind`` whose repair is hardest to get exactly right, or None."""
    engine = _engine(url)
    try:
        with engine.connect() as conn, quiet_sqlite_reflection():
            return _pick(conn, kind)
    finally:
        engine.dispose()


def _pick(conn: Connection, kind: str) -> Target | None:
    inspector = sa.inspect(conn)
    tables = sorted(t for t in inspector.get_table_names() if t not in IGNORED_TABLES)
    fks = {t: inspector.get_foreign_keys(t) for t in tables}
    referenced = {
        (fk["referred_table"], tuple(fk["referred_columns"])) for t in tables for fk in fks[t]
    }
    referenced_tables = {table for table, _ in referenced}
    indexes = {
        t: [ix for ix in inspector.get_indexes(t) if not ix.get("duplicates_constraint")]
        for t in tables
    }
    uniques = {t: inspector.get_unique_constraints(t) for t in tables}
    candidates: list[tuple[tuple[Any, ...], Target]] = []
    if kind == "table":
        for t in tables:
            if t in referenced_tables:
                continue
            columns = inspector.get_columns(t)
            score = (bool(fks[t]), len(indexes[t]) + len(uniques[t]), len(columns), t)
            candidates.append((score, Target("table", t, t, f"{len(columns)} columns")))
    elif kind == "column":
        for t in tables:
            pk = set(inspector.get_pk_constraint(t).get("constrained_columns") or [])
            used = set(pk)
            for fk in fks[t]:
                used.update(fk["constrained_columns"])
            for ix in indexes[t]:
                used.update(c for c in ix["column_names"] if c)
                used.update(_expression_columns(ix))
            for uq in uniques[t]:
                used.update(uq["column_names"])
            for ck in inspector.get_check_constraints(t):
                used.update(re.findall(r"\w+", ck["sqltext"]))
            for column in inspector.get_columns(t):
                name = column["name"]
                if name in used or column.get("computed") or column.get("identity"):
                    continue
                has_default = column.get("default") is not None
                if not column["nullable"] and not has_default:
                    continue  # NOT NULL without a default: unhealable once the table has rows
                score = (has_default, column["nullable"], t, name)
                detail = f"{column['type']} default={column.get('default')}"
                candidates.append((score, Target("column", t, name, detail)))
    elif kind == "index":
        for t in tables:
            for ix in indexes[t]:
                options = ix.get("dialect_options") or {}
                partial = any(k.endswith("_where") for k in options)
                expression = None in ix["column_names"] or bool(ix.get("expressions"))
                score = (partial, expression, len(ix["column_names"]), t, ix["name"])
                candidates.append((score, Target("index", t, ix["name"], str(ix))))
    elif kind == "fk":
        for t in tables:
            for fk in fks[t]:
                rule = (fk.get("options") or {}).get("ondelete")
                score = (bool(rule), len(fk["constrained_columns"]), bool(fk["name"]), t)
                detail = f"{fk['constrained_columns']} -> {fk['referred_table']} {rule or ''}"
                target = Target("fk", t, fk["name"], detail, tuple(fk["constrained_columns"]))
                candidates.append((score, target))
    elif kind == "unique":
        for t in tables:
            for uq in uniques[t]:
                if (t, tuple(uq["column_names"])) in referenced:
                    continue  # a foreign key depends on it
                if _declared_twice(conn, t, uq["column_names"]):
                    continue  # aim's tag.name: reflection shows one of two identical clauses
                score = (len(uq["column_names"]), bool(uq["name"]), t, uq["name"] or "")
                target = Target("unique", t, uq["name"], "", tuple(uq["column_names"]))
                candidates.append((score, target))
    else:
        raise ValueError(kind)
    if not candidates:
        return None
    return max(candidates, key=lambda entry: entry[0])[1]


def _declared_twice(conn: Connection, table: str, columns: list[str]) -> bool:
    if conn.dialect.name != "sqlite":
        return False
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    clauses = _top_level_split(sql[sql.index("(") + 1 : sql.rindex(")")])
    probe = Target("unique", table, None, "", tuple(columns))
    return sum(_is_clause(clause, "UNIQUE", probe) for clause in clauses) > 1


def expression_index(url: str) -> Target | None:
    """An index on an expression, read from the catalog (SQLAlchemy's SQLite reflection skips
    them); the first by table and name, or None."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                row = conn.exec_driver_sql(
                    "SELECT c.relname, i.relname FROM pg_index x "
                    "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    f"WHERE x.indexprs IS NOT NULL AND {_USER_SCHEMAS} ORDER BY 1, 2 LIMIT 1"
                ).first()
                return None if row is None else Target("index", row[0], row[1], "expression")
            found = []
            for name, table in conn.exec_driver_sql(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            ):
                if any(
                    row[1] == -2 for row in conn.exec_driver_sql(f"PRAGMA index_xinfo({_q(name)})")
                ):
                    found.append(Target("index", table, name, "expression"))
            return min(found, key=lambda t: (t.table, str(t.name)), default=None)
    finally:
        engine.dispose()


def _expression_columns(index: dict[str, Any]) -> set[str]:
    return {word for text in index.get("expressions") or [] for word in re.findall(r"\w+", text)}


def drop(url: str, target: Target) -> None:
    """Remove ``target`` by hand (raw DDL; SQLite constraints by a table rebuild)."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            _drop(conn, target)
    finally:
        engine.dispose()


def _drop(conn: Connection, target: Target) -> None:
    table = _q(target.table)
    if target.kind == "table":
        conn.exec_driver_sql(f"DROP TABLE {table}")
    elif target.kind == "column":
        conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {_q(str(target.name))}")
    elif target.kind == "index":
        conn.exec_driver_sql(f"DROP INDEX {_q(str(target.name))}")
    elif conn.dialect.name == "sqlite":  # SQLite cannot drop a constraint: rebuild the table
        _rebuild_without(conn, target)
    else:
        conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {_q(str(target.name))}")


def _rebuild_without(conn: Connection, target: Target) -> None:
    """Rebuild a SQLite table from its CREATE TABLE text minus one constraint clause."""
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (target.table,)
    ).scalar_one()
    start, end = sql.index("("), sql.rindex(")")
    clauses = _top_level_split(sql[start + 1 : end])
    keyword = "FOREIGN KEY" if target.kind == "fk" else "UNIQUE"
    matching = [c for c in clauses if _is_clause(c, keyword, target)]
    assert len(matching) == 1, f"cannot find {target} in {sql!r}: {matching}"
    clauses.remove(matching[0])
    body = ", ".join(clause.strip() for clause in clauses)
    others = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = ? "
        "AND sql IS NOT NULL",
        (target.table,),
    ).all()
    conn.exec_driver_sql(f'CREATE TABLE "_corpus_rebuild" ({body}){sql[end + 1 :]}')
    conn.exec_driver_sql(f'INSERT INTO "_corpus_rebuild" SELECT * FROM {_q(target.table)}')
    conn.exec_driver_sql(f"DROP TABLE {_q(target.table)}")
    conn.exec_driver_sql(f'ALTER TABLE "_corpus_rebuild" RENAME TO {_q(target.table)}')
    for (statement,) in others:
        conn.exec_driver_sql(statement)


def _top_level_split(body: str) -> list[str]:
    """Split a CREATE TABLE body at the commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in body:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`[":
            quote = "]" if char == "[" else char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _is_clause(clause: str, keyword: str, target: Target) -> bool:
    text = " ".join(clause.split())
    if target.name:
        return text.startswith(
            (f"CONSTRAINT {target.name} {keyword}", f'CONSTRAINT "{target.name}" {keyword}')
        )
    if not text.startswith(keyword):
        return False
    inside = text[len(keyword) :].strip()
    columns = inside[inside.index("(") + 1 : inside.index(")")]
    return [c.strip().strip('"') for c in columns.split(",")] == list(target.columns)
