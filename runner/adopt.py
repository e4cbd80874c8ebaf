"""Adoption: which revision does a database *physically* match?

For a database with tables but no revision (a dump/restore, ``metadata.create_all``) and for
explaining a wrong stamp: compare the reflected schema with the expected schema of every
revision (:meth:`ExpectedSchemas.every_revision`, which honours ``--no-shadow``) and rank them
by the number of differences.

``stamp`` writes the adopted revision into the version table, through Alembic in a worker.
Raises nothing of its own; the caller decides between adopting (``--adopt``) and refusing
(exit 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.deployment import Deployment, run_job
from runner.drift import Finding, diff
from runner.expected import ExpectedSchemas
from runner.lock import Locker
from runner.logs import get_logger
from runner.schema import Schema

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


def rank_revisions(expected: ExpectedSchemas, actual: Schema) -> list[Match]:
    """Every revision ranked by closeness to ``actual``: fewest errors, then fewest findings,
    then the latest revision first. Empty when no schema per revision can be had."""
    snapshot = expected.every_revision()
    if snapshot is None:
        return []
    order = expected.dep.graph.topological()
    position = {rev: index for index, rev in enumerate(order)}
    matches = []
    for revision in order:
        schema = snapshot.schema_for((revision,))
        if schema is not None:
            matches.append(Match(revision, tuple(diff(schema, actual))))
    matches.sort(key=lambda m: (m.errors, len(m.findings), -position[m.revision]))
    return matches


def stamp(dep: Deployment, revision: str, locker: Locker) -> None:
    """Write ``revision`` into the (possibly new) version table, if the lock is still held."""
    settings = dep.settings
    run_job(
        dep,
        "stamp",
        failure=f"cannot stamp revision {revision}",
        failed_revision=revision,
        watch=locker.check,
        revision=revision,
        gate=True,
        version_table=settings.version_table,
        version_table_schema=settings.version_table_schema,
    )
    log.info("adopt.stamped", revision=revision)
