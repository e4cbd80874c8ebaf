"""Shadow replay: the expected schema of a revision, by migrating an empty scratch database.

The scratch database comes from the dialect seam (a temporary ``CREATE DATABASE`` on the same
PostgreSQL server, dropped afterwards even on failure; a temporary SQLite file) or is
``--shadow-url`` (emptied first). The replay runs the user's env.py in a worker
(:mod:`runner.worker`) whose environment points ``DATABASE_URL``, ``sqlalchemy.url`` and every
other variable that names the real database at the shadow; every commit the replay makes is
checked first, and one that would land on the real database is refused (rolled back) before it
happens. Afterwards the real database's version table is compared with what it was.

Raises :class:`ShadowUnavailable` when no scratch database can be had (the caller falls back),
:class:`ReplayFailedError` (exit 8) when a migration fails in the replay (the real database was
not touched), and :class:`ShadowLeakError` (exit 1, loudly) when the real database changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError

from runner.backends import Database, ShadowUnavailable
from runner.config import Settings, mask_text, resolve_url
from runner.deployment import Deployment, job, worker_environ
from runner.errors import ConfigError, DeployError, ExitCode, ReplayFailedError
from runner.logs import get_logger
from runner.project import target_url
from runner.revisions import read_db_heads
from runner.schema import Enum, Schema, Table
from runner.supervise import Supervisor, WorkerFailed
from runner.wait import describe

log = get_logger(__name__)

__all__ = ["ShadowUnavailable", "replay", "replay_schemas", "scratch_database"]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay recorded: each stage's schema, or each revision's (in applied order)."""

    stages: list[Schema]
    applied: list[str] = field(default_factory=list)
    revisions: dict[str, Schema] = field(default_factory=dict)
    #: Revisions in which a defensive operation was skipped (the chain repeats itself).
    skipped: list[str] = field(default_factory=list)
    #: ``each_revision``: how many revisions' changes DDL events told, how many digests.
    recorded_via: dict[str, int] = field(default_factory=dict)


class ShadowLeakError(DeployError):
    """The real database changed while a shadow replay ran."""

    exit_code = ExitCode.UNEXPECTED
    event = "shadow.leaked"


#: The table that marks a ``--shadow-url`` database as the runner's scratch space.
SHADOW_MARKER = "alembic_deploy_shadow"


def _targets(dep: Deployment) -> list[Database]:
    """The databases a ``--shadow-url`` must not be: the target, however it was named."""
    settings = dep.settings
    found = [] if dep.builds_snapshot else [dep.database]
    raw = target_url(settings)
    if raw:
        found.append(Database.from_raw(raw))
    return found


def _is_target(
    shadow: Database, shadow_identity: dict[str, Any], target: Database, dep: Deployment
) -> bool:
    """Compare where the two connect (server and database), not how their URLs are spelled."""
    if shadow.dialect != target.dialect:
        return False
    if target.backend.same_database(shadow.url, target.url):
        return True
    engine = dep.engine if target is dep.database else target.engine(dep.settings)
    try:
        with engine.connect() as conn:
            return dict(target.backend.identity(conn)) == shadow_identity
    except DBAPIError:
        return False  # unreachable: the URLs differ, and nothing can be compared further
    finally:
        if engine is not dep.engine:
            engine.dispose()


@contextmanager
def _given_shadow(dep: Deployment, shadow: Database) -> Iterator[URL]:
    """``--shadow-url``: refuse the target and any database holding data, then empty it.

    A given shadow must be empty the first time (the runner then marks it as its own with a
    table) or carry that mark; anything else is somebody's data and is never touched.
    """
    settings = dep.settings
    engine = shadow.engine(settings)
    try:
        try:
            with engine.connect() as conn:
                identity = shadow.backend.identity(conn)
                tables = shadow.backend.all_tables(conn)
        except DBAPIError as exc:
            raise ConfigError(
                f"cannot use --shadow-url {shadow.masked}: {mask_text(describe(exc))}",
                hint="point --shadow-url / ALEMBIC_DEPLOY_SHADOW_URL at a reachable database "
                "this role may connect to and create tables in, or unset it to use a "
                "temporary one",
            ) from None
        for target in _targets(dep):
            if _is_target(shadow, identity, target, dep):
                raise ConfigError(
                    f"--shadow-url {shadow.masked} is the database being deployed: a shadow is "
                    "scratch space the runner empties",
                    hint="point --shadow-url / ALEMBIC_DEPLOY_SHADOW_URL at an empty database "
                    "of its own, or unset it to use a temporary one",
                )
        if tables and SHADOW_MARKER not in tables:
            shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
            raise ConfigError(
                f"--shadow-url {shadow.masked} holds {len(tables)} table(s) ({shown}) and is "
                "not a shadow alembic-deploy created: refusing to empty it",
                hint="point --shadow-url at an empty database (the runner marks it as its own "
                "on first use), or unset it to use a temporary one",
            )
        try:
            with engine.begin() as conn:
                shadow.backend.empty_database(conn)
                marker = sa.Table(SHADOW_MARKER, sa.MetaData(), sa.Column("claimed", sa.Boolean))
                marker.create(conn)
        except DBAPIError as exc:
            raise ConfigError(
                f"cannot prepare --shadow-url {shadow.masked}: {mask_text(describe(exc))}",
                hint="the role needs to create and drop tables in the shadow database; grant "
                "it, or unset --shadow-url to use a temporary one",
            ) from None
        yield shadow.url
    finally:
        engine.dispose()


@contextmanager
def scratch_database(dep: Deployment) -> Iterator[Database]:
    """An empty database to replay into; removed afterwards when we created it."""
    if dep.settings.shadow_url:
        given = Database.from_raw(dep.settings.shadow_url)
        with _given_shadow(dep, given):
            yield given
        return
    with dep.backend.scratch_database(dep.engine) as url:
        yield Database(url, dep.backend)


def _redirects(target: Database, shadow: Database) -> dict[str, str]:
    """Every environment variable that names the real database, pointed at the shadow."""
    moved = {}
    for key, value in os.environ.items():
        if "://" not in value:
            continue
        try:
            url = resolve_url(value)
        except (ConfigError, ArgumentError, ValueError):
            continue
        if url.get_backend_name() == target.dialect and target.backend.same_database(
            url, target.url
        ):
            moved[key] = shadow.rendered
    return moved


def replay(
    dep: Deployment,
    shadow: Database,
    stages: Sequence[Sequence[str]],
    schemas: tuple[str | None, ...],
    exclude_tables: tuple[str, ...],
    *,
    what: str = "shadow replay",
    watch: Callable[[], None] | None = None,
    each_revision: bool = False,
    mirror_target: bool = True,
) -> ReplayResult:
    """Migrate ``shadow`` through ``stages`` (lists of targets) in one worker, reflecting each
    stage (and, with ``each_revision``, each revision as it commits).

    ``watch`` checks the migration lock while the replay runs (a deploy holds it throughout).
    With ``mirror_target`` the shadow first gets the target's schemas and ``search_path``.
    Every schema the migrations leave behind is reflected, not only the default one.
    Raises :class:`ReplayFailedError` when a migration fails there.
    """
    # ``snapshot --shadow-url X`` builds on X itself: there is no other database to protect.
    guarded = not dep.backend.same_database(shadow.url, dep.database.url)
    target_identity: dict[str, Any] = {}
    mirror: dict[str, Any] = {}
    if guarded:
        with dep.engine.connect() as conn:
            target_identity = dep.backend.identity(conn)
            if mirror_target:
                mirror = dep.backend.mirror_settings(conn)
    if mirror:
        # The target's schemas exist before its migrations run (a DBA made them).
        engine = shadow.engine(dep.settings)
        try:
            with engine.begin() as conn:
                dep.backend.prepare_shadow(conn, mirror)
        finally:
            engine.dispose()

    def gate(identity: Mapping[str, Any]) -> str | None:
        if guarded and dict(identity) == target_identity:
            return "the replay's connection reached the real database"
        return None

    supervisor = Supervisor(
        step="shadow",
        watch=watch,
        gate=gate,
        cancel=dep.cancel_sessions,
        debug=dep.settings.debug,
    )
    spec = job(
        "upgrade",
        dep.settings,
        shadow,
        tag=supervisor.tag,
        stages=[list(stage) for stage in stages],
        # The same defensive rules as the deploy: a chain that deploys also replays.
        defensive=dep.settings.defensive,
        gate=True,
        guard=guarded,
        reflect=not each_revision,
        reflect_each=each_revision,
        schemas=list(schemas),
        all_schemas=True,
        exclude_tables=list(exclude_tables),
    )
    environ = worker_environ(
        dep.settings,
        shadow,
        _redirects(dep.database, shadow),
        options=dep.backend.shadow_options(mirror),
    )
    try:
        result = supervisor.run(spec, environ)
    except WorkerFailed as failed:
        if failed.aborted and "real database" in failed.error:
            raise ShadowLeakError(
                f"the {what} tried to commit to the real database, and was stopped: "
                "env.py connects somewhere of its own choosing",
                hint="make env.py use config.attributes['connection'], sqlalchemy.url or "
                "DATABASE_URL (README, env.py)",
            ) from None
        where = f"revision {failed.revision}" if failed.revision else "env.py"
        raise ReplayFailedError(
            f"the {what} failed in {where}: {failed.error}",
            revision=failed.revision,
            traceback=failed.traceback,
        ) from None
    # "*": a skip outside any revision (env.py's own DDL) taints the whole chain.
    skipped = sorted({str(record.get("revision") or "*") for record in result.skipped})
    if each_revision:
        return ReplayResult(
            stages=[],
            applied=[record["revision"] for record in result.applied],
            revisions=_shared_schemas(result.revision_schemas),
            skipped=skipped,
            recorded_via=result.recorded_via,
        )
    return ReplayResult(
        stages=[Schema.from_dict(result.schemas[i] or {}) for i in range(len(stages))],
        skipped=skipped,
    )


def replay_schemas(
    dep: Deployment,
    stages: list[tuple[str, ...]],
    schemas: tuple[str | None, ...],
    watch: Callable[[], None] | None = None,
) -> list[Schema]:
    """The schema a clean upgrade produces at each stage (a tuple of heads), in one replay.

    Stages must be in upgrade order (e.g. the database heads, then the script heads).
    """
    settings = dep.settings
    with dep.engine.connect() as conn:
        before = read_db_heads(conn, settings)
    with scratch_database(dep) as shadow:
        results = replay(
            dep, shadow, stages, schemas, excluded_tables(settings), watch=watch
        ).stages
    with dep.engine.connect() as conn:
        after = read_db_heads(conn, settings)
    # Belt and braces behind the commit gate, only under the migration lock: without it
    # (status, check) another replica's deploy legitimately moves the version table.
    if watch is not None and after != before:
        raise ShadowLeakError(
            f"the real database's version table changed during the shadow replay "
            f"({list(before[0])} -> {list(after[0])}): env.py connected to it instead of the "
            "shadow database",
            hint="make env.py use config.attributes['connection'], sqlalchemy.url or "
            "DATABASE_URL (README, env.py); check the database before deploying again",
        )
    log.info("shadow.replayed", stages=[list(stage) for stage in stages])
    return results


def _shared_schemas(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Schema]:
    """Each revision's schema, a table dict shared by several revisions parsed once (the
    worker sends only what each revision changed): linear in the tables, not quadratic."""
    parsed: dict[int, Table] = {}

    def table(item: Mapping[str, Any]) -> Table:
        found = parsed.get(id(item))
        if found is None:
            found = parsed[id(item)] = Table.from_dict(item)
        return found

    schemas = {}
    for revision, record in records.items():
        tables = [table(item) for item in record["tables"]]
        schemas[revision] = Schema(
            tables={t.key: t for t in tables},
            enums={e.key: e for e in (Enum.from_dict(item) for item in record["enums"])},
            schemas=tuple(record["schemas"]),
        )
    return schemas


def excluded_tables(settings: Settings) -> tuple[str, ...]:
    """Tables that are never part of a schema: the version table and our own ledger."""
    return (settings.version_table, *EXCLUDED_TABLES)


#: Tables of alembic-deploy itself, never part of an expected schema.
EXCLUDED_TABLES: tuple[str, ...] = ("alembic_deploy_repairs", SHADOW_MARKER)
