"""Shadow replay: the expected schema of a revision, by migrating an empty scratch database.

The scratch database is a temporary ``CREATE DATABASE`` on the same PostgreSQL server (dropped
afterwards, also on failure), a temporary SQLite file, or ``--shadow-url`` (emptied first).
The replay runs the user's env.py with ``sqlalchemy.url`` and ``DATABASE_URL`` pointing at the
shadow, and afterwards proves that the real database's version table is untouched: an env.py
that connects somewhere of its own choosing must not migrate production by accident.

Raises :class:`ShadowUnavailable` when no scratch database can be had (no privilege to create
one); the caller falls back. Raises :class:`ShadowLeakError` (exit 1, loudly) when the real
database changed during a replay.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateSchema, DropSchema

from runner.backends import Backend
from runner.config import Settings
from runner.errors import DeployError, ExitCode
from runner.logs import get_logger
from runner.revisions import read_db_heads
from runner.schema import Schema, reflect_schema
from runner.upgrade import run_upgrade
from runner.wait import describe

log = get_logger(__name__)


class ShadowUnavailable(Exception):
    """No scratch database could be created (privileges, dialect)."""


class ShadowLeakError(DeployError):
    """The real database changed while a shadow replay ran."""

    exit_code = ExitCode.UNEXPECTED
    event = "shadow.leaked"


def _quote(engine: Engine, name: str) -> str:
    # CREATE/DROP DATABASE take no bind parameters: quote through the dialect.
    return engine.dialect.identifier_preparer.quote(name)


@contextmanager
def _postgres_scratch(engine: Engine) -> Iterator[URL]:
    name = f"alembic_deploy_shadow_{uuid.uuid4().hex[:12]}"
    admin = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        try:
            admin.execute(text(f"CREATE DATABASE {_quote(engine, name)}"))
        except DBAPIError as exc:
            raise ShadowUnavailable(f"cannot create a shadow database: {describe(exc)}") from exc
        log.info("shadow.created", shadow_database=name)
        try:
            yield engine.url.set(database=name)
        finally:
            admin.execute(text(f"DROP DATABASE IF EXISTS {_quote(engine, name)} WITH (FORCE)"))
            log.info("shadow.dropped", shadow_database=name)
    finally:
        admin.close()


@contextmanager
def _sqlite_scratch(engine: Engine) -> Iterator[URL]:
    with tempfile.TemporaryDirectory(prefix="alembic-deploy-shadow-") as folder:
        yield make_url(f"sqlite:///{Path(folder) / 'shadow.db'}")


_SCRATCH: dict[str, Callable[[Engine], object]] = {
    "postgresql": _postgres_scratch,
    "sqlite": _sqlite_scratch,
}


@contextmanager
def _given_shadow(url: URL, backend: Backend, settings: Settings) -> Iterator[URL]:
    """``--shadow-url``: empty its schemas first (it is scratch space by contract)."""
    engine = create_engine(url, **backend.engine_kwargs(settings))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                insp = inspect(conn)
                schema = insp.default_schema_name or "public"
                conn.execute(DropSchema(schema, cascade=True, if_exists=True))
                conn.execute(CreateSchema(schema))
            else:
                for table in reversed(inspect(conn).get_table_names()):
                    conn.execute(text(f"DROP TABLE {_quote(engine, table)}"))
        yield url
    finally:
        engine.dispose()


@contextmanager
def scratch_database(engine: Engine, backend: Backend, settings: Settings) -> Iterator[URL]:
    """An empty database to replay into; removed afterwards when we created it."""
    if settings.shadow_url:
        from runner.config import resolve_url

        with _given_shadow(resolve_url(settings.shadow_url), backend, settings) as url:
            yield url
        return
    factory = _SCRATCH.get(engine.dialect.name)
    if factory is None:
        raise ShadowUnavailable(f"no shadow replay for {engine.dialect.name}")
    with factory(engine) as url:  # type: ignore[attr-defined]
        yield url


def replay_schemas(
    config: Config,
    script: ScriptDirectory,
    engine: Engine,
    backend: Backend,
    settings: Settings,
    stages: list[tuple[str, ...]],
    schemas: tuple[str | None, ...],
) -> list[Schema]:
    """The schema a clean upgrade produces at each stage (a tuple of heads), in one replay.

    Stages must be in upgrade order (e.g. the database heads, then the script heads).
    """
    with engine.connect() as conn:
        before = read_db_heads(conn, settings)
    results: list[Schema] = []
    with scratch_database(engine, backend, settings) as shadow_url:
        shadow = create_engine(shadow_url, **backend.engine_kwargs(settings))
        try:
            rendered = shadow_url.render_as_string(hide_password=False)
            for stage in stages:
                for revision in stage:
                    run_upgrade(
                        config,
                        script,
                        shadow,
                        backend,
                        settings,
                        revision,
                        rendered,
                        defensive_mode=False,
                        step="shadow",
                    )
                with shadow.connect() as conn:
                    results.append(
                        reflect_schema(
                            conn, schemas=schemas, exclude_tables=excluded_tables(settings)
                        )
                    )
        finally:
            shadow.dispose()
    with engine.connect() as conn:
        after = read_db_heads(conn, settings)
    if after != before:
        raise ShadowLeakError(
            f"the real database's version table changed during the shadow replay "
            f"({list(before[0])} -> {list(after[0])}): env.py connected to it instead of the "
            "shadow database",
            hint="make env.py use config.attributes['connection'], sqlalchemy.url or "
            "DATABASE_URL (README, env.py); check the database before deploying again",
        )
    log.info("shadow.replayed", stages=[list(stage) for stage in stages])
    return results


def excluded_tables(settings: Settings) -> tuple[str, ...]:
    """Tables that are never part of a schema: the version table and our own ledger."""
    return (settings.version_table, *EXCLUDED_TABLES)


#: Tables of alembic-deploy itself, never part of an expected schema.
EXCLUDED_TABLES: tuple[str, ...] = ("alembic_deploy_repairs",)
