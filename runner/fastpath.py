"""The no-op fast path: "at head, no drift" answered from the snapshot and one catalog query.

Most starts have nothing to do. When all of these hold, ``migrate``, ``run`` and ``check``
answer without loading the script directory, env.py, the application or a revision module
(nothing of Alembic is imported):

1. the snapshot has a fast-path record (:func:`record`, written by ``alembic-deploy snapshot``);
2. the project's sources hash as they did then (:func:`sources_digest`: the Alembic config
   without its URL, ``[tool.alembic]`` of pyproject.toml, and every ``.py`` file under the
   script folder and the version locations: hashed, never imported);
3. the version table names exactly the snapshot's single head;
4. the server is one whose catalog text the fingerprint is known to be faithful for
   (:func:`untrusted`);
5. the catalog fingerprint of the verified schemas (:func:`fingerprint`: one query listing
   every table, column, constraint, index and enum as the server itself prints them) equals
   the one recorded on the clean replay at head.

Anything else is a miss: ``fastpath.skipped`` names the reason and the full pipeline runs
(reflection, diff, heal, upgrade), so the fast path can only be slower to say "drift", never
wrong. Raises nothing for a miss; a database error during the attempt is a miss too (the full
path then waits, retries and reports it properly).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config import (
    Settings,
    installed_postgres_driver,
    mask_text,
    masked_url,
    refuse_unencoded_password,
    register_url_secret,
    resolve_url,
    snapshot_path,
)
from runner.errors import ConfigError
from runner.logs import get_logger

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from runner.graph import Graph

log = get_logger(__name__)

#: Bumped whenever :func:`fingerprint` or :func:`sources_digest` hash differently: an older
#: record is then a miss, never a false match.
FORMAT = 1

#: Tables of the runner itself (its ledger, the scratch marker), never fingerprinted.
_OWN_TABLES = ("alembic_deploy_repairs", "alembic_deploy_shadow")

#: PostgreSQL majors whose catalog text the suite checks the fingerprint against.
TRUSTED_POSTGRES_MAJORS = range(13, 19)


# --- what the snapshot records ------------------------------------------------------------


def sources_digest(config_path: Path, locations: Sequence[str]) -> str:
    """sha256 of everything that decides what the migrations do, without importing any of it.

    ``locations`` are the script folder and the version locations, relative to the config's
    folder (or absolute). Every ``.py``/``.pyc`` file under them counts, recursively, by its
    relative path and bytes, so an edited, added, removed or moved revision file (or env.py,
    or a helper module beside them) changes the digest.
    """
    digest = hashlib.sha256()
    digest.update(_config_text(config_path).encode())
    base = config_path.resolve().parent
    seen: set[Path] = set()
    for location in sorted(set(locations)):
        root = base / location
        digest.update(f"\0location {location}\0".encode())
        for path in sorted(_source_files(root)):
            if path in seen:
                continue
            seen.add(path)
            digest.update(f"\0{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _source_files(root: Path) -> Iterable[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith((".py", ".pyc")):
                yield Path(folder) / name


def _config_text(config_path: Path) -> str:
    """The Alembic config as a canonical text, less ``sqlalchemy.url`` (it differs per place)."""
    parser = configparser.RawConfigParser()
    parser.read(config_path)
    items = {
        section: {k: v for k, v in parser.items(section) if k != "sqlalchemy.url"}
        for section in parser.sections()
    }
    pyproject = config_path.resolve().parent / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as handle:
            items["pyproject [tool.alembic]"] = (
                tomllib.load(handle).get("tool", {}).get("alembic", {})
            )
    return json.dumps(items, sort_keys=True, default=str)


def relative_locations(config_path: Path, locations: Sequence[str]) -> list[str]:
    """The graph worker's absolute locations, relative to the config's folder when inside it."""
    base = config_path.resolve().parent
    found = []
    for location in locations:
        path = Path(location).resolve()
        found.append(path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path))
    return sorted(set(found))


def record(
    settings: Settings,
    conn: Connection,
    graph: Graph,
    schemas: Sequence[str | None],
) -> dict[str, Any]:
    """The fast-path record of a snapshot, from ``conn``: a clean replay at the graph's head.

    It also keeps the revision graph (ids, parents, dependencies, labels, file paths relative
    to the config), so a run whose sources are unchanged needs no worker to learn it
    (:func:`cached_graph`).
    """
    config_path = Path(settings.config_path)
    base = config_path.resolve().parent
    relative = relative_locations(config_path, graph.locations)
    digest, objects = fingerprint(conn, settings, schemas)
    revisions = []
    for file in graph.files.values():
        path = Path(file.path).resolve()
        revisions.append(
            {
                "revision": file.revision,
                "down_revision": list(file.down_revisions),
                "dependencies": list(file.dependencies),
                "branch_labels": list(file.branch_labels),
                "path": path.relative_to(base).as_posix()
                if path.is_relative_to(base)
                else str(path),
            }
        )
    return {
        "format": FORMAT,
        "dialect": conn.dialect.name,
        "heads": sorted(graph.heads),
        "graph": sorted(revisions, key=lambda r: r["revision"]),
        "locations": relative,
        "sources": sources_digest(config_path, relative),
        "version_table": settings.version_table,
        "version_table_schema": settings.version_table_schema,
        "schemas": list(schemas),
        "fingerprint": digest,
        "objects": objects,
    }


# --- the catalog fingerprint --------------------------------------------------------------

# One row per object, in the server's own words, hashed on the server: constant cost in
# queries at any size. In the driver's own parameter style (pyformat, so % is doubled): the
# deploy-time check runs it on a bare psycopg2 connection, the build through SQLAlchemy.
# Names are sorted byte-wise (COLLATE "C"), so the database's collation does not change the
# digest; columns are listed by name, not position. NOT NULL constraints
# (pg_constraint rows of type 'n' since PostgreSQL 18) are left out: attnotnull says it on
# every version.
_PG_FINGERPRINT = """
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname = ANY(%(schemas)s) OR (%(with_default)s AND nspname = current_schema())
), rel AS (
    SELECT c.oid, c.relname, c.relkind, ns.nspname FROM pg_class c
    JOIN ns ON ns.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT (c.relname = ANY(%(excluded)s))
), line AS (
    SELECT format('t %%L %%L %%L', nspname, relname, relkind) AS text FROM rel
    UNION ALL
    SELECT format('c %%L %%L %%L %%L %%L %%L %%L %%L %%L', r.nspname, r.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, co.collname)
    FROM rel r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> ty.typcollation
    UNION ALL
    SELECT format('k %%L %%L %%L %%L', r.nspname, r.relname, k.conname, pg_get_constraintdef(k.oid))
    FROM rel r JOIN pg_constraint k ON k.conrelid = r.oid
    WHERE k.contype <> 'n'
    UNION ALL
    SELECT format('i %%L %%L %%L %%L', r.nspname, r.relname, i.relname,
                  pg_get_indexdef(x.indexrelid))
    FROM rel r JOIN pg_index x ON x.indrelid = r.oid JOIN pg_class i ON i.oid = x.indexrelid
    UNION ALL
    SELECT format('e %%L %%L %%L', ns.nspname, t.typname,
                  string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder))
    FROM pg_type t JOIN ns ON ns.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
    GROUP BY ns.nspname, t.typname
)
SELECT encode(sha256(convert_to(coalesce(string_agg(text, E'\\n' ORDER BY text COLLATE "C"),
                                         ''), 'UTF8')), 'hex'),
       count(*)
FROM line
"""

_SQLITE_MASTER = (
    "SELECT type, name, tbl_name, sql FROM sqlite_master "
    "WHERE type IN ('table', 'index', 'trigger') AND name NOT LIKE 'sqlite_%'"
)


def _excluded(settings: Settings) -> list[str]:
    return [settings.version_table, *_OWN_TABLES]


def _pg_params(settings: Settings, schemas: Sequence[str | None]) -> dict[str, Any]:
    return {
        "schemas": [s for s in schemas if s is not None],
        "with_default": None in schemas,
        "excluded": _excluded(settings),
    }


def fingerprint(
    conn: Connection, settings: Settings, schemas: Sequence[str | None]
) -> tuple[str, int]:
    """(digest, number of objects) of the verified schemas' catalog, the runner's own excluded."""
    excluded = _excluded(settings)
    if conn.dialect.name == "postgresql":
        row = conn.exec_driver_sql(_PG_FINGERPRINT, _pg_params(settings, schemas)).one()
        return str(row[0]), int(row[1])
    if conn.dialect.name == "sqlite":
        rows = sorted(
            "\0".join(str(part) for part in row)
            for row in conn.exec_driver_sql(_SQLITE_MASTER)
            if row.tbl_name not in excluded
        )
        return hashlib.sha256("\n".join(rows).encode()).hexdigest(), len(rows)
    raise ValueError(f"no catalog fingerprint for {conn.dialect.name}")


def untrusted(conn: Connection) -> str | None:
    """Why this server's catalog text cannot be trusted for the fingerprint; None when it can.

    PostgreSQL proper, of a major version the suite runs, prints definitions the way the
    fingerprint expects; look-alikes (CockroachDB, Redshift, YugabyteDB, ...) and versions
    nobody checked send the runner down the full path.
    """
    if conn.dialect.name == "sqlite":
        return None
    if conn.dialect.name != "postgresql":
        return f"no fingerprint for {conn.dialect.name}"
    banner = str(conn.exec_driver_sql("SELECT version()").scalar())
    return server_refusal(banner, conn.dialect.server_version_info or ())


def server_refusal(banner: str, version: tuple[Any, ...]) -> str | None:
    """The decision behind :func:`untrusted`, from ``version()`` and the version tuple."""
    forks = ("cockroach", "redshift", "yugabyte", "greenplum", "aurora dsql")
    if not banner.startswith("PostgreSQL ") or any(f in banner.lower() for f in forks):
        return f"server {banner.split(' on ')[0]!r} is not PostgreSQL proper"
    major = version[0] if version else None
    if major not in TRUSTED_POSTGRES_MAJORS:
        return f"PostgreSQL {major} is outside the versions the fingerprint is checked on"
    return None


# --- the attempt --------------------------------------------------------------------------


def read_record(path: Path) -> Mapping[str, Any] | None:
    """The snapshot's fast-path line, read without parsing (or loading) the rest of the file."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith('"fastpath":'):
                    value = json.loads(line[len('"fastpath":') :].rstrip().rstrip(","))
                    return value if isinstance(value, dict) else None
                if line.startswith(('"states":', '"tables":')):
                    break
    except (OSError, ValueError):
        return None
    return None


def _fresh_record(settings: Settings) -> Mapping[str, Any] | None:
    """The snapshot's fast-path record when it is of this format and the sources still hash
    as they did when it was written; None otherwise."""
    saved = read_record(snapshot_path(settings))
    if not saved or saved.get("format") != FORMAT:
        return None
    try:
        sources = sources_digest(Path(settings.config_path), saved.get("locations") or [])
    except OSError:
        return None
    return saved if sources == saved.get("sources") else None


def cached_graph(settings: Settings) -> tuple[list[dict[str, Any]], list[str]] | None:
    """The snapshot's revision graph and locations when the sources still hash the same.

    (The records have absolute paths, as the ``graph`` worker reports them.) None otherwise.
    """
    saved = _fresh_record(settings)
    if saved is None or not saved.get("graph"):
        return None
    base = Path(settings.config_path).resolve().parent
    records = [{**r, "path": str(base / r["path"])} for r in saved["graph"]]
    return records, [str(base / location) for location in saved.get("locations") or []]


def fingerprint_matches(settings: Settings, conn: Connection, heads: Sequence[str]) -> int | None:
    """The number of objects fingerprinted when ``conn``'s catalog is the snapshot's clean
    head (same sources, same heads, a trusted server, equal fingerprint); None otherwise."""
    saved = _fresh_record(settings)
    if saved is None or not _at_head(heads, saved.get("heads")) or untrusted(conn) is not None:
        return None
    digest, objects = fingerprint(conn, settings, saved.get("schemas") or [None])
    return objects if digest == saved.get("fingerprint") else None


class Outcome(StrEnum):
    TAKEN = "taken"  # nothing to do, verified
    BEHIND = "behind"  # the database is not at head (fresh, or revisions pending)
    MISSED = "missed"  # anything else: the full path decides


def _miss(reason: str, outcome: Outcome = Outcome.MISSED) -> Outcome:
    log.info("fastpath.skipped", reason=reason)
    return outcome


def attempt(settings: Settings, report: Any) -> Outcome:
    """Take the fast path when it is safe (TAKEN: nothing to do, verified); else say why not."""
    path = snapshot_path(settings)
    if not path.is_file():
        return _miss(f"no snapshot at {path}")
    saved = read_record(path)
    if saved is None:
        return _miss("the snapshot has no fast-path record (rebuild it with this version)")
    if saved.get("format") != FORMAT:
        return _miss("the snapshot's fast-path record is of another format")
    if len(saved.get("heads") or ()) != 1:
        return _miss("the scripts have several heads")
    if (saved.get("version_table"), saved.get("version_table_schema")) != (
        settings.version_table,
        settings.version_table_schema,
    ):
        return _miss("the snapshot was built for another version table")
    try:
        sources = sources_digest(Path(settings.config_path), saved.get("locations") or [])
    except OSError as exc:
        return _miss(f"cannot hash the migration scripts: {exc.strerror}")
    if sources != saved.get("sources"):
        return _miss("the migration scripts or the Alembic config changed since the snapshot")
    raw = settings.effective_url
    try:
        if raw is None:
            # Imported here: alembic.ini's URL needs Alembic's config parser; DATABASE_URL not.
            from runner.project import database_url, load_config

            raw = database_url(settings, load_config(settings))
        register_url_secret(raw)
        libpq = libpq_params(raw)
        if libpq is None:
            url = resolve_url(raw)  # imports SQLAlchemy: only for SQLite and unusual URLs
            dialect, masked = url.get_backend_name(), masked_url(url)
        else:
            dialect, masked = "postgresql", mask_text(libpq.pop("url"))
    except ConfigError:
        return _miss("the database URL is not usable; the full path reports why")
    if dialect != saved.get("dialect"):
        return _miss(f"the snapshot was built on {saved.get('dialect')}, not {dialect}")
    schemas = saved.get("schemas") or [None]
    try:
        if libpq is not None:
            seen = _observe_postgres(libpq, settings, schemas, saved["heads"])
        else:
            seen = _observe(raw, settings, schemas, saved["heads"])
    except Exception as exc:  # any failure is a miss: the full path waits, retries, reports
        return _miss(f"{type(exc).__name__} while checking; the full path reports it")
    if isinstance(seen, str):
        behind = seen in (_NO_VERSION_TABLE, _NOT_AT_HEAD)
        return _miss(seen, Outcome.BEHIND if behind else Outcome.MISSED)
    heads, digest, objects = seen
    if digest != saved.get("fingerprint"):
        return _miss("the catalog differs from the snapshot's head (drift or extra objects)")
    report.database = masked
    report.db_heads_before = report.db_heads_after = report.script_heads = tuple(heads)
    report.expected_source = "snapshot fingerprint"
    log.info("fastpath.taken", heads=list(heads), objects=objects, database=masked)
    return Outcome.TAKEN


def _at_head(heads: Sequence[str], recorded: Sequence[str] | None) -> bool:
    """Whether the version table's rows are the snapshot's recorded heads, in any order."""
    return recorded is not None and sorted(heads) == list(recorded)


_NO_VERSION_TABLE = "the database has no version table"
# Known from the version table: the catalog is not fingerprinted (0.2 s at 2,000 tables).
_NOT_AT_HEAD = "the database is not at the snapshot's head"
#: What the database says: (version table rows, fingerprint, objects), or why it cannot say.
_Seen = tuple[list[str], str, int] | str


#: Schemes SQLAlchemy connects through psycopg2 (a bare one when psycopg2 is installed).
_PSYCOPG2_SCHEMES = ("postgresql+psycopg2", "postgresql", "postgres")


def libpq_params(raw: str) -> dict[str, str] | None:
    """libpq's keywords for a URL that SQLAlchemy's psycopg2 dialect would connect with in
    exactly the same way, parsed by libpq itself (``parse_dsn``) so that the fast path needs
    no SQLAlchemy (a fifth of a no-op start). ``"url"`` holds the URL as SQLAlchemy names it.

    None when unsure, and the caller takes SQLAlchemy's parse: another driver, a URL the
    runner refuses, or anything where the two parsers could differ (an escape or a comma in the
    host or database, ``+`` anywhere after the credentials, a repeated or blank query key).

    Raises ConfigError for a URL the runner refuses.
    """
    scheme, separator, rest = raw.strip().partition("://")
    if not separator or scheme not in _PSYCOPG2_SCHEMES:
        return None
    if scheme != "postgresql+psycopg2" and installed_postgres_driver() != "psycopg2":
        return None
    refuse_unencoded_password(raw)
    location, _, query = rest[rest.rfind("@") + 1 :].partition("?")
    # SQLAlchemy keeps host escapes, and 2.0 database escapes too, where libpq decodes them;
    # a comma there is libpq's host list; parse_qsl reads '+' as a space, libpq not.
    if any(c in location for c in "%+,") or "+" in query:
        return None
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    keys = [key for key, _, _ in pairs]
    if len(keys) != len(set(keys)) or not all(value for _, _, value in pairs):
        return None  # a host list, or a blank value SQLAlchemy drops and libpq keeps
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import parse_dsn

    try:
        arguments: dict[str, str] = parse_dsn(f"postgresql://{rest}")
    except ProgrammingError:
        return None
    return {**arguments, "url": f"postgresql+psycopg2://{rest}"}


def _observe_postgres(
    arguments: dict[str, Any],
    settings: Settings,
    schemas: Sequence[str | None],
    head: Sequence[str],
) -> _Seen:
    """Heads, trust and fingerprint over one bare psycopg2 connection, with the connection
    arguments SQLAlchemy's psycopg2 dialect would pass, without loading SQLAlchemy. Heads
    other than ``head`` end the look there (the database is behind)."""
    import psycopg2
    from psycopg2 import errors, sql

    arguments.setdefault("connect_timeout", 5)
    arguments.setdefault("application_name", "alembic-deploy")
    with closing(psycopg2.connect(**arguments)) as conn:
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cursor:
            version = sql.Identifier(
                *filter(None, (settings.version_table_schema, settings.version_table))
            )
            try:
                cursor.execute(sql.SQL("SELECT version_num FROM {}").format(version))
            except errors.UndefinedTable:
                return _NO_VERSION_TABLE
            heads = [str(row[0]) for row in cursor.fetchall()]
            if not _at_head(heads, head):
                return _NOT_AT_HEAD
            cursor.execute("SELECT version(), current_setting('server_version_num')::int")
            banner, number = cursor.fetchone()
            refusal = server_refusal(str(banner), (int(number) // 10000,))
            if refusal is not None:
                return refusal
            cursor.execute(_PG_FINGERPRINT, _pg_params(settings, schemas))
            digest, objects = cursor.fetchone()
    return heads, str(digest), int(objects)


def _observe(
    raw: str, settings: Settings, schemas: Sequence[str | None], head: Sequence[str]
) -> _Seen:
    """The same through the runner's own engine (SQLite, other drivers)."""
    from runner.backends import Database

    database = Database.from_raw(raw)
    engine = database.engine(settings)
    try:
        with engine.connect() as conn:
            heads = _version_heads(conn, settings)
            if heads is None:
                return _NO_VERSION_TABLE
            if not _at_head(heads, head):
                return _NOT_AT_HEAD
            refusal = untrusted(conn)
            if refusal is not None:
                return refusal
            digest, objects = fingerprint(conn, settings, schemas)
    finally:
        engine.dispose()
    return heads, digest, objects


def _version_heads(conn: Connection, settings: Settings) -> list[str] | None:
    """The version table's rows (what Alembic's ``get_current_heads`` reads); None without it."""
    from sqlalchemy import column, select, table
    from sqlalchemy.exc import SQLAlchemyError

    version = table(
        settings.version_table, column("version_num"), schema=settings.version_table_schema
    )
    try:
        with conn.begin():
            return [str(v) for v in conn.execute(select(version.c.version_num)).scalars()]
    except SQLAlchemyError:
        return None
