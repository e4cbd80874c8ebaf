"""What one run works on, under one name: settings, the database, its engine, the graph.

A :class:`Deployment` replaces the ``(config, script, engine, backend, settings, url)`` clump
that used to travel through every signature. It also builds worker jobs (:mod:`runner.worker`)
and the environment they run in, so that every run of the user's code, against the real
database or a scratch one, is set up the same way.

:func:`load_graph` runs the ``graph`` job. Raises :class:`ConfigError` (exit 2) when the
script directory cannot be found and :class:`RevisionGraphError` (exit 6) when a revision file
does not load.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from runner import fastpath
from runner.backends import Backend, Database
from runner.config import Settings, config_file, mask_text
from runner.errors import ConfigError, MigrationFailedError, RevisionGraphError
from runner.graph import Graph
from runner.logs import get_logger
from runner.supervise import JobResult, Supervisor, WorkerFailed

log = get_logger(__name__)


def job(
    kind: str,
    settings: Settings,
    database: Database | None,
    *,
    tag: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """A worker job for ``database`` (its URL travels over the pipe, never in argv)."""
    spec: dict[str, Any] = {
        "kind": kind,
        "config_path": str(config_file(settings).resolve()),
        "debug": settings.debug,
        **fields,
    }
    if database is not None:
        spec["url"] = database.rendered
        spec["engine_kwargs"] = database.backend.worker_engine_kwargs(settings, tag)
        spec["session_sql"] = database.backend.session_sql(settings)
    return spec


def worker_environ(
    settings: Settings,
    database: Database | None,
    redirect: Mapping[str, str] | None = None,
    options: str = "",
) -> dict[str, str]:
    """The environment env.py runs in: ``DATABASE_URL`` names ``database``.

    ``redirect`` maps other variables to new values (a replay points every variable that
    names the real database at the shadow); ``options`` are extra session options for every
    connection the worker opens (a replay mirrors the target's ``search_path``).
    """
    environ = dict(os.environ)
    environ.update(redirect or {})
    if database is not None:
        environ["DATABASE_URL"] = database.rendered
        environ.update(database.backend.migration_environ(settings, options))
    return environ


def load_graph(settings: Settings, database: Database | None) -> Graph:
    """The revision graph, loaded by a worker (revision files never import here).

    When the snapshot recorded the graph and the sources still hash as they did then
    (:func:`runner.fastpath.cached_graph`), the recorded graph is used and no worker starts.
    """
    cached = fastpath.cached_graph(settings)
    if cached is not None:
        records, locations = cached
        log.info("scripts.from_snapshot", revisions=len(records))
        return Graph.from_records(records, locations)
    try:
        result = Supervisor(step="graph", debug=settings.debug).run(
            job("graph", settings, database), worker_environ(settings, database)
        )
    except WorkerFailed as failed:
        message = mask_text(failed.error)
        # Alembic reports both a missing scripts folder and a broken graph (a cycle) as
        # CommandError; only the former is configuration.
        graph_error = any(word in message.lower() for word in ("cycle", "revision"))
        if failed.report.get("error_type") == "CommandError" and not graph_error:
            raise ConfigError(
                f"cannot load the migration scripts: {message}",
                hint="check script_location in the Alembic config",
            ) from None
        raise RevisionGraphError(
            f"cannot load the revision graph: {failed.report.get('error_type')}: {message}",
            hint="fix the migration file named above; `alembic heads` shows the same error",
        ) from None
    assert result.graph is not None
    return Graph.from_records(result.graph, result.locations or ())


@dataclass(frozen=True, slots=True)
class Deployment:
    """Everything one run works on."""

    settings: Settings
    #: The database being deployed (``--direct-url`` when set); for ``snapshot``, the server
    #: the snapshot is built on.
    database: Database
    engine: Engine
    graph: Graph
    #: ``snapshot``: ``database`` is scratch space, not a database to protect.
    builds_snapshot: bool = False

    @property
    def backend(self) -> Backend:
        return self.database.backend

    @property
    def config_dir(self) -> Path:
        return config_file(self.settings).resolve().parent

    def cancel_sessions(self, pids: list[int], tag: str, terminate: bool) -> None:
        """Cancel (or terminate) a worker's server sessions: a supervisor's ``cancel``."""
        self.backend.cancel_sessions(self.engine, pids, tag, terminate)

    def statement_status(self, pids: list[int], tag: str) -> dict[str, Any]:
        """What a worker's statement is doing on the server: a supervisor's ``describe``."""
        return self.backend.statement_status(self.engine, pids, tag)


def run_job(
    dep: Deployment,
    kind: str,
    *,
    failure: str,
    hint: str | None = None,
    failed_revision: str | None = None,
    watch: Callable[[], None] | None = None,
    **fields: Any,
) -> JobResult:
    """Run one job of the user's code against ``dep.database`` in a worker.

    A worker that fails is :class:`MigrationFailedError` (exit 8): ``failure`` says what was
    being done, the worker's error follows; ``failed_revision`` names the revision when the
    worker cannot. ``fields`` go into the job.
    """
    supervisor = Supervisor(step=kind, watch=watch, debug=dep.settings.debug)
    try:
        return supervisor.run(
            job(kind, dep.settings, dep.database, tag=supervisor.tag, **fields),
            worker_environ(dep.settings, dep.database),
        )
    except WorkerFailed as failed:
        raise MigrationFailedError(
            f"{failure}: {failed.error}",
            revision=failed_revision or failed.revision,
            applied=[],
            traceback=failed.traceback,
            hint=hint,
        ) from None
