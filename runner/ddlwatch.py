"""Which tables a revision's DDL touched, told by PostgreSQL's event triggers.

The snapshot build records the schema every revision leaves. Finding what changed by
digesting every table after every revision (:func:`runner.schema.table_digests`) costs a
catalog-wide query per revision, more than a typical revision's own DDL. Where the replay's
role may create event triggers (a superuser: the embedded server, a throwaway test cluster),
:meth:`DdlWatch.install` has the server report each DDL command's objects into a temporary
table of the replay's session instead, and :meth:`DdlWatch.changes` turns them into tables:

* a reported table, index, constraint, trigger or column default is its table's change;
* so is every partition and child below a reported table, and the table a reported sequence
  belongs to;
* so is whatever refers to a reported object that may have a new name (``pg_depend``),
  because its text names it: a foreign key naming a renamed table or column, a default naming
  a renamed sequence or type. A plain table still named as when it was last read was altered,
  not renamed, and what names it reads the same; a partitioned table or a partition always
  counts as renamed (attaching a partition copies the foreign keys naming its parent);
* a dropped column, constraint, trigger or default names its table; a dropped index is looked
  up among the indexes reflected so far.

Anything it cannot place returns ``None``, and the caller digests every table instead: a
renamed or dropped schema, a dropped index it never saw, a changed ``search_path`` (which
changes how expressions are spelled), DDL run by another session (which marks the trigger),
catalog rows written without DDL (a revision's own ``UPDATE pg_attribute``), a log that a
``DISCARD TEMP`` took away. Everything lives in the session's temporary schema, so it
disappears with the session (the event triggers depend on their functions, which PostgreSQL
drops with the temporary schema) and never shows in the recorded schema.

The watch also keeps the reflection that follows each revision cheap: the runner's catalog
statements (:meth:`DdlWatch.execute`), and SQLAlchemy's inside :meth:`DdlWatch.preparing`, run
as statements prepared once in the session instead of parsed and planned after every revision.

Nothing here raises for a server that refuses: :meth:`DdlWatch.install` returns ``None``, and
a statement the server will not prepare runs as it is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from runner.schema import TableKey

_LOG = "alembic_deploy_ddl"

_CREATE_LOG = text(
    f"""
    CREATE TEMPORARY TABLE {_LOG} (
        classid oid, objid oid, object_type text, command_tag text,
        dropped boolean, address text[]
    )
    """
)

# Fired in every session of the database. The session that has the log writes to it; any
# other session (a revision that opened a connection of its own) marks the trigger with its
# transaction id, so that the watching session knows to digest everything instead.
_FUNCTION = """
    CREATE FUNCTION pg_temp.{name}() RETURNS event_trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF pg_catalog.to_regclass('pg_temp.{log}') IS NOT NULL THEN
            INSERT INTO pg_temp.{log} SELECT {columns} FROM pg_catalog.{source}();
        ELSE
            BEGIN
                EXECUTE 'COMMENT ON EVENT TRIGGER {marked} IS '
                        || pg_catalog.quote_literal(pg_catalog.txid_current()::text);
            EXCEPTION WHEN OTHERS THEN
                NULL;  -- never fail another session's DDL
            END;
        END IF;
    END $$
"""
# kind: (event, set-returning function, its columns as the log's)
_KINDS = {
    "end": (
        "ddl_command_end",
        "pg_event_trigger_ddl_commands",
        "classid, objid, object_type, command_tag, false, NULL",
    ),
    "drop": (
        "sql_drop",
        "pg_event_trigger_dropped_objects",
        "classid, objid, object_type, NULL, true, address_names",
    ),
}

# Before taking the log: is it still there (a revision may run DISCARD TEMP), what spells
# expressions, whether another session marked the trigger, how many catalog rows were ever
# written here (DDL, or a revision's own UPDATE of pg_attribute, which no event reports: the
# flushed counts plus this session's pending ones, which a flush moves, not loses), and which
# of our prepared statements the session still has (a revision may DEALLOCATE them; behind a
# pooler, each transaction may get another session). pg_statistic is left out: ANALYZE
# writes it, and reflection does not read it. The counts are read by function, not through
# pg_stat_sys_tables, whose other columns cost ten times as much.
_STATE = text(
    f"""
    SELECT pg_catalog.to_regclass('pg_temp.{_LOG}') IS NOT NULL AS alive,
           pg_catalog.current_setting('search_path') AS search_path,
           (SELECT d.description FROM pg_catalog.pg_description d
            JOIN pg_catalog.pg_event_trigger e ON e.oid = d.objoid
            WHERE d.classoid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
              AND e.evtname = :trigger) AS others,
           CASE WHEN pg_catalog.current_setting('track_counts')::boolean THEN
           (SELECT coalesce(sum(pg_catalog.pg_stat_get_tuples_inserted(c.oid)
                                + pg_catalog.pg_stat_get_tuples_updated(c.oid)
                                + pg_catalog.pg_stat_get_tuples_deleted(c.oid)
                                + pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid)
                                + pg_catalog.pg_stat_get_xact_tuples_updated(c.oid)
                                + pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid)), 0)
            FROM pg_catalog.pg_class c
            WHERE c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace AND c.relkind = 'r'
              AND c.oid <> 'pg_catalog.pg_statistic'::pg_catalog.regclass) END
           AS catalog_writes,
           ARRAY(SELECT p.name FROM pg_catalog.pg_prepared_statements p
                 WHERE p.name LIKE '{_LOG}\\_%') AS prepared
    """
)
_TAKE = text(
    f"""
    WITH taken AS (DELETE FROM pg_temp.{_LOG} RETURNING *)
    SELECT pg_catalog.json_agg(json_build_object(
               'classid', classid, 'objid', objid, 'type', object_type, 'tag', command_tag,
               'dropped', dropped, 'address', address)) AS taken
    FROM taken
    """
)

# The tables the reported objects touch: their own tables; a reported table's children and
# partitions (their columns and constraints follow the parent's); and, for an object whose
# name may have changed, what names it (pg_depend): a foreign key naming a renamed table or
# column, a default naming a renamed sequence or type, a column of a renamed row type. A
# reported plain table still named as when it was last read (``namespaces``/``names``, NULL
# when not a table or not known) was altered, not renamed: what refers to it reads the same
# (an altered table's ~5 referencing tables, re-read for nothing, were half the snapshot
# build's reflection on a real chain). A partitioned table or a partition always takes the
# full path: a partition attached to it gets a copy of each foreign key naming it.
_TOUCHED = text(
    """
    WITH RECURSIVE reported(classid, objid, namespace, name) AS (
        SELECT * FROM unnest(CAST(:classids AS oid[]), CAST(:objids AS oid[]),
                             CAST(:namespaces AS text[]), CAST(:names AS text[]))
    ), renamed AS (
        SELECT r.classid, r.objid FROM reported r
        WHERE r.name IS NULL OR NOT EXISTS (
            SELECT FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = r.objid AND n.nspname = r.namespace AND c.relname = r.name
              -- A partitioned table or a partition: attaching a partition gives every
              -- foreign key naming the parent a copy naming the partition, on its own table.
              AND c.relkind <> 'p' AND NOT c.relispartition)
    ), named AS (
        SELECT classid, objid FROM renamed
        UNION
        -- A relation's row type: a column of that type names the relation.
        SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, c.reltype
        FROM renamed r JOIN pg_catalog.pg_class c ON c.oid = r.objid
        WHERE r.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.reltype <> 0
    ), descendant(oid) AS (
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        JOIN reported r ON r.objid = i.inhparent
        WHERE r.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN descendant d ON d.oid = i.inhparent
    ), related AS (
        SELECT classid, objid FROM reported
        UNION
        SELECT classid, objid FROM named
        UNION
        SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, oid FROM descendant
        UNION
        -- What refers to an object whose name may have changed: its text may name it.
        SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
        JOIN named o ON d.refclassid = o.classid AND d.refobjid = o.objid
        UNION
        -- What a reported relation belongs to: a sequence's column, an index's table.
        SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d
        JOIN reported o ON d.classid = o.classid AND d.objid = o.objid
        WHERE d.deptype IN ('a', 'i')
    ), owner AS (
        SELECT r.objid AS oid FROM related r
        WHERE r.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        UNION
        SELECT x.indrelid FROM related r JOIN pg_catalog.pg_index x ON x.indexrelid = r.objid
        WHERE r.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
        UNION
        SELECT k.conrelid FROM related r JOIN pg_catalog.pg_constraint k ON k.oid = r.objid
        WHERE r.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
        UNION
        SELECT g.tgrelid FROM related r JOIN pg_catalog.pg_trigger g ON g.oid = r.objid
        WHERE r.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
        UNION
        SELECT a.adrelid FROM related r JOIN pg_catalog.pg_attrdef a ON a.oid = r.objid
        WHERE r.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
    )
    SELECT c.oid, n.nspname AS namespace, c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid IN (SELECT oid FROM owner) AND c.relkind IN ('r', 'p')
      AND NOT n.nspname LIKE 'pg\\_%'
    """
)

# Every table: where the watch starts, and after a revision it could not follow.
_TABLES = text(
    """
    SELECT c.oid, n.nspname AS namespace, c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT n.nspname LIKE 'pg\\_%'
    """
)

# Dropped objects whose address is (schema, table, name): the table changed.
_DROPPED_UNDER_A_TABLE = frozenset(
    {"table column", "table constraint", "trigger", "default value", "rule", "policy"}
)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One statement's PREPARE, and the EXECUTE that runs it with its parameters."""

    name: str
    body: str
    #: The EXECUTE in the driver's own form (``%(name)s`` parameters).
    execute: str
    params: tuple[str, ...]

    def prepare(self, types: Sequence[str] = ()) -> str:
        """The PREPARE, with its parameters' types where given (else the server infers them)."""
        declared = f" ({', '.join(types)})" if types else ""
        return f"PREPARE {self.name}{declared} AS {self.body}"


_PREPARED: dict[int, tuple[TextClause, _Prepared]] = {}


def _driver_form(statement: str) -> _Prepared:
    """The PREPARE and EXECUTE forms of a statement in the driver's own form (``%(name)s``
    parameters, ``%%`` for ``%``); the parameters' types are inferred by the server, as for
    the statement itself."""
    params: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1) not in params:
            params.append(match.group(1))
        return f"${params.index(match.group(1)) + 1}"

    body = re.sub(r"%\((\w+)\)s", placeholder, statement).replace("%%", "%")
    # Named after the text: a session behind a pooler may hold another process's statements.
    name = f"{_LOG}_{hashlib.sha256(body.encode()).hexdigest()[:16]}"
    arguments = f"({', '.join(f'%({p})s' for p in params)})" if params else ""
    return _Prepared(
        name=name, body=body, execute=f"EXECUTE {name}{arguments}", params=tuple(params)
    )


def _prepared(statement: TextClause, conn: Connection) -> _Prepared:
    """The PREPARE and EXECUTE forms of one of the runner's ``text()`` statements."""
    known = _PREPARED.get(id(statement))
    if known is not None and known[0] is statement:
        return known[1]
    form = _driver_form(str(statement.compile(dialect=conn.dialect)))
    _PREPARED[id(statement)] = (statement, form)
    return form


# The queries reflection sends (SQLAlchemy's, and the planner settings around them), in a
# driver whose parameters are ``%(name)s`` and interpolated by the client (psycopg2): only
# those run prepared.
_A_READ = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)
_SAVEPOINT = "alembic_deploy_prepare"
_PARAMETER_TYPES = {str: "text", bool: "boolean", int: "bigint", float: "double precision"}
# An IN list of parameters, as PREPARE's body has it: ($3, $4, $5).
_IN_LIST = re.compile(r"\(\$\d+(?:, \$\d+)*\)")


# Reported objects that cannot create, alter or drop an enum.
_NOT_TYPES = frozenset(
    {
        "table",
        "index",
        "table column",
        "table constraint",
        "trigger",
        "default value",
        "toast table",
        "sequence",
        "view",
        "materialized view",
        "rule",
        "policy",
    }
)


class _NotFiring(Exception):
    """The event triggers were created but reported nothing: put them back."""


@dataclass(frozen=True, slots=True)
class Changes:
    """What one revision did to the tables of the recorded schemas."""

    #: The tables there now whose reflection may differ from the previous revision's.
    touched: frozenset[TableKey]
    #: The tables no longer there under their previous name (dropped, renamed, moved).
    removed: frozenset[TableKey]
    #: False when the revision ran no DDL at all (nothing to reflect, enums included).
    ddl: bool
    #: False when no type, nor anything that may create or alter one, was reported: the
    #: enums are as the previous revision left them.
    types: bool = True
    #: Whether a schema was created: the caller lists the schemas it records again.
    schemas: bool = False


@dataclass(slots=True)
class DdlWatch:
    """The event triggers of one session, and what they reported so far."""

    conn: Connection
    #: The trigger that other sessions' DDL marks (its comment: their transaction id).
    trigger: str
    default_schema: str
    search_path: str
    others: str | None = None
    #: False once the log is gone (the session discarded its temporary objects).
    alive: bool = True
    #: Catalog rows ever written in the database, at the previous look.
    catalog_writes: int = 0
    #: Every table, by oid: (namespace, name).
    tables: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: (namespace, index or constraint name) -> (namespace, table), from reflected tables.
    indexes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    #: The statements the session has prepared, as of the last :meth:`changes`.
    prepared: set[str] = field(default_factory=set)
    #: SQLAlchemy's statements seen by :meth:`preparing`, and those the server would not
    #: prepare (by name).
    forms: dict[str, _Prepared] = field(default_factory=dict)
    unpreparable: set[str] = field(default_factory=set)
    #: The types given to parameters the server could not type: by statement (its IN lists
    #: collapsed), then by parameter name.
    declared: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def install(cls, conn: Connection) -> DdlWatch | None:
        """Report this session's DDL from now on, or None where the server will not.

        Needs PostgreSQL through psycopg2 (the statements are prepared in its ``%(name)s``
        form; env.py may have chosen another driver) and a role that may create event
        triggers (a superuser). Runs in a savepoint when the connection is already in a
        transaction (env.py began one), in a transaction of its own, committed, otherwise.
        """
        if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg2":
            return None
        began = not conn.in_transaction()
        try:
            with conn.begin() if began else conn.begin_nested():
                superuser = conn.execute(text("SELECT pg_catalog.current_setting('is_superuser')"))
                if superuser.scalar_one() != "on":
                    return None
                watch = cls._create(conn)
                if watch is None:
                    raise _NotFiring
        except _NotFiring:
            return None
        except DBAPIError:
            return None  # an older server, a privilege missing: the caller digests
        return watch

    @classmethod
    def _create(cls, conn: Connection) -> DdlWatch | None:
        pid, default_schema, search_path = conn.execute(
            text(
                "SELECT pg_catalog.pg_backend_pid(), current_schema(), "
                "pg_catalog.current_setting('search_path')"
            )
        ).one()
        conn.execute(_CREATE_LOG)
        quote = conn.dialect.identifier_preparer.quote
        triggers = {kind: f"{_LOG}_{kind}_{pid}" for kind in _KINDS}
        # The functions first: the first trigger would report creating the second function.
        for kind, (_, source, columns) in _KINDS.items():
            body = _FUNCTION.format(
                name=f"{_LOG}_{kind}",
                log=_LOG,
                columns=columns,
                source=source,
                marked=quote(triggers["end"]).replace("'", "''"),
            )
            conn.execute(text(body))
        for kind, (event, _, _) in _KINDS.items():
            trigger = quote(triggers[kind])
            conn.execute(
                text(
                    f"CREATE EVENT TRIGGER {trigger} ON {event} "
                    f"EXECUTE FUNCTION pg_temp.{_LOG}_{kind}()"
                )
            )
            # Also where session_replication_role is "replica".
            conn.execute(text(f"ALTER EVENT TRIGGER {trigger} ENABLE ALWAYS"))
        # Proof that the triggers fire here (a server may have them turned off).
        conn.execute(text(f"COMMENT ON TABLE pg_temp.{_LOG} IS 'alembic-deploy'"))
        taken = conn.execute(_TAKE).scalar_one() or []
        if [row["tag"] for row in taken] != ["COMMENT"]:
            return None  # event triggers turned off on this server
        watch = cls(conn, triggers["end"], str(default_schema or "public"), str(search_path))
        watch.resync(conn)
        state = conn.execute(_STATE, {"trigger": watch.trigger}).one()
        watch.catalog_writes = state.catalog_writes or 0
        return watch

    def resync(self, conn: Connection) -> None:
        """Read every table again (after a revision the caller digested instead)."""
        self.tables = {int(r.oid): (r.namespace, r.name) for r in conn.execute(_TABLES)}

    def remember(self, tables: Iterable[Mapping[str, Any]]) -> None:
        """Note the index and constraint names of reflected tables (``Table.to_dict()``)."""
        for table in tables:
            namespace = table["schema"] or self.default_schema
            key = (namespace, table["name"])
            named = [
                *(item.get("name") for item in table.get("indexes") or ()),
                *(item.get("name") for item in table.get("uniques") or ()),
                *(item.get("name") for item in table.get("exclusions") or ()),
                (table.get("primary_key") or {}).get("name"),
            ]
            for name in named:
                if name:
                    self.indexes[(namespace, name)] = key

    def execute(self, statement: TextClause, params: Mapping[str, Any]) -> Iterable[Any]:
        """Run one of the runner's catalog statements, prepared once in this session.

        Parsing and planning a catalog query cost more than running it for a few tables
        (the columns of two tables: 3.4 ms as text, 1.1 ms prepared with a generic plan).
        Only right after :meth:`changes`, which read what the session has prepared, and
        before the revision's commit: no revision code runs in between.
        """
        form = _prepared(statement, self.conn)
        if form.name not in self.prepared:
            self.conn.exec_driver_sql(form.prepare(), execution_options={"no_parameters": True})
            self.prepared.add(form.name)
        return self.conn.exec_driver_sql(form.execute, {key: params[key] for key in form.params})

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Within the block, run SQLAlchemy's catalog queries on the watched connection as
        statements prepared once in the session, as :meth:`execute` runs the runner's own.

        Reflection sends the same statements after every revision of a snapshot build, and
        the server plans each anew (~0.5 ms each, a dozen per revision). A statement the
        server will not prepare (a parameter whose type it cannot infer) runs as it is; its
        PREPARE runs in a savepoint, so that the failure leaves the revision's transaction
        usable. Same conditions as :meth:`execute`: right after :meth:`changes`.
        """

        def prepare(
            conn: Connection, cursor: Any, statement: str, parameters: Any, *rest: Any
        ) -> tuple[str, Any]:
            if not (isinstance(parameters, Mapping) and _A_READ.match(statement)):
                return statement, parameters
            form = self.forms.get(statement)
            if form is None:
                form = self.forms[statement] = _driver_form(statement)
            if form.name in self.unpreparable:
                return statement, parameters
            if form.name not in self.prepared and not self._prepare(cursor, form, parameters):
                return statement, parameters
            return form.execute, parameters

        sa_event.listen(self.conn, "before_cursor_execute", prepare, retval=True)
        try:
            yield
        finally:
            sa_event.remove(self.conn, "before_cursor_execute", prepare)

    def _prepare(self, cursor: Any, form: _Prepared, parameters: Mapping[str, Any]) -> bool:
        """PREPARE ``form`` in a savepoint; False: the server will not, and it runs as text.

        A parameter the server cannot type from its context (a key of json_build_object in
        SQLAlchemy's column query: SQLSTATE 42P18) is declared with its value's type and the
        PREPARE tried again, the others left to the server ("unknown"): a text parameter
        compared with a name column keeps its index. Another refusal of the statement (class
        42, or 0A000) leaves it unprepared; anything else (a cancel, a lost connection) is
        raised, after the savepoint is rolled back.
        """
        # The same statement with IN lists of other lengths (SQLAlchemy names their
        # parameters apart) gets at once what its first form needed declared.
        family = _IN_LIST.sub("(...)", form.body)
        known = self.declared.setdefault(family, {})
        declared = {i: known[name] for i, name in enumerate(form.params, 1) if name in known}
        guarded = not cursor.connection.autocommit
        while True:
            types = [declared.get(i, "unknown") for i in range(1, len(form.params) + 1)]
            try:
                if guarded:
                    cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
                cursor.execute(form.prepare(types if declared else ()))
                break
            except self.conn.dialect.loaded_dbapi.Error as exc:
                if guarded:
                    cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                    cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
                code = getattr(exc, "pgcode", None) or ""
                if not (code.startswith("42") or code == "0A000"):
                    raise
                untyped = re.search(r"\$(\d+)", str(exc)) if code == "42P18" else None
                position = int(untyped.group(1)) if untyped is not None else 0
                kind = None
                if 0 < position <= len(form.params) and position not in declared:
                    kind = _PARAMETER_TYPES.get(type(parameters.get(form.params[position - 1])))
                if kind is None:
                    self.unpreparable.add(form.name)
                    return False
                declared[position] = known[form.params[position - 1]] = kind
        if guarded:
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        self.prepared.add(form.name)
        return True

    def changes(self, conn: Connection, schemas: Sequence[str | None]) -> Changes | None:
        """What the DDL since the previous call did to ``schemas``; None: digest instead
        (and :meth:`resync` after)."""
        state = conn.execute(_STATE, {"trigger": self.trigger}).one()
        self.prepared = set(state.prepared)
        if not (self.alive and state.alive):
            self.alive = False
            return None
        taken: list[dict[str, Any]] = conn.execute(_TAKE).scalar_one() or []
        # Without counts (track_counts off), a revision without DDL is digested.
        wrote = state.catalog_writes is None or state.catalog_writes != self.catalog_writes
        self.catalog_writes = state.catalog_writes or 0
        if state.search_path != self.search_path or state.others != self.others:
            # Expressions are spelled anew, or another session ran DDL: digest everything.
            self.search_path, self.others = state.search_path, state.others
            return None
        if not taken:
            # No DDL; catalog rows written all the same are a revision's own catalog surgery.
            return None if wrote else Changes(frozenset(), frozenset(), ddl=False)
        touched: set[tuple[str, str]] = set()
        removed: set[tuple[str, str]] = set()
        reported: list[tuple[int, int, str | None, str | None]] = []
        # An index created and dropped within the revision (a data migration's helper) left
        # nothing behind.
        created = {int(item["objid"]) for item in taken if not item["dropped"]}
        for item in taken:
            if item["tag"] == "ALTER SCHEMA" or (item["dropped"] and item["type"] == "schema"):
                return None  # everything in it, and everything naming it, is spelled anew
            address = item["address"] or []
            if not item["dropped"]:
                if item["classid"]:
                    objid = int(item["objid"])
                    # A table's name as last read: the statement tells whether it changed.
                    known = self.tables.get(objid) if item["type"] == "table" else None
                    reported.append((int(item["classid"]), objid, *(known or (None, None))))
            elif item["type"] == "table":
                gone = self.tables.pop(int(item["objid"]), None)
                if gone is not None:
                    removed.add(gone)
            elif item["type"] in _DROPPED_UNDER_A_TABLE and len(address) >= 2:
                touched.add((address[0], address[1]))
            elif item["type"] == "index" and len(address) >= 2:
                if address[0].startswith("pg_") or int(item["objid"]) in created:
                    continue  # a TOAST table's index, a temporary table's, a passing one
                owner = self.indexes.get((address[0], address[1]))
                if owner is None:
                    return None  # an index never reflected: whose table was it?
                touched.add(owner)
        if reported:
            found = self.execute(
                _TOUCHED,
                {
                    "classids": [r[0] for r in reported],
                    "objids": [r[1] for r in reported],
                    "namespaces": [r[2] for r in reported],
                    "names": [r[3] for r in reported],
                },
            )
            for oid, namespace, name in found:
                before = self.tables.get(int(oid))
                if before is not None and before != (namespace, name):
                    removed.add(before)  # renamed, or moved to another schema
                self.tables[int(oid)] = (namespace, name)
                touched.add((namespace, name))
        present = set(self.tables.values())
        keys = {(s or self.default_schema): s for s in dict.fromkeys(schemas)}
        return Changes(
            touched=frozenset((keys[n], t) for n, t in touched & present if n in keys),
            removed=frozenset((keys[n], t) for n, t in removed - present if n in keys),
            ddl=True,
            types=any(item["type"] not in _NOT_TYPES for item in taken),
            schemas=any(item["type"] == "schema" for item in taken),
        )


__all__ = ["Changes", "DdlWatch"]
