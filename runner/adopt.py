"""Adoption: which revision does a database *physically* match?

For a database with tables but no revision (a dump/restore, ``metadata.create_all``) and for
explaining a wrong stamp: compare the reflected schema with the expected schema of every
revision (from a usable snapshot, else from a snapshot built now by replaying the graph into
a scratch database) and rank them by the number of differences.

``stamp`` writes the adopted revision into the version table. Raises nothing of its own;
the caller decides between adopting (``--adopt``) and refusing (exit 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from runner.backends import Backend
from runner.config import Settings
from runner.drift import Finding, diff
from runner.expected import scope, snapshot_path
from runner.logs import get_logger
from runner.schema import Schema
from runner.snapshot import build_snapshot, file_checksums, load_snapshot

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Match:
    """A revision and how the physical schema differs from it."""

    revision: str
    findings: tuple[Finding, ...]

    @property
    def exact(self) -> bool:
        return not self.findings

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")


def rank_revisions(
    config: Config,
    script: ScriptDirectory,
    engine: Engine,
    backend: Backend,
    settings: Settings,
    actual: Schema,
) -> list[Match]:
    """Every revision ranked by closeness to ``actual``: fewest errors, then fewest findings,
    then the latest revision first."""
    snapshot = load_snapshot(snapshot_path(settings))
    if (
        snapshot is None
        or snapshot.dialect != engine.dialect.name
        or snapshot.edited(file_checksums(script))
    ):
        log.info("adopt.replaying", reason="no usable snapshot")
        snapshot = build_snapshot(config, script, engine, backend, settings, scope(settings))
    order = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    position = {rev: index for index, rev in enumerate(order)}
    matches = []
    for revision in order:
        expected = snapshot.schema_for((revision,))
        if expected is not None:
            matches.append(Match(revision, tuple(diff(expected, actual))))
    matches.sort(key=lambda m: (m.errors, len(m.findings), -position[m.revision]))
    return matches


def stamp(conn: Connection, script: ScriptDirectory, settings: Settings, revision: str) -> None:
    """Write ``revision`` into the (possibly new) version table, in the caller's transaction."""
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": settings.version_table,
            "version_table_schema": settings.version_table_schema,
        },
    )
    context.stamp(script, revision)
    log.info("adopt.stamped", revision=revision)
