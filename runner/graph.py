"""The revision graph as the runner's own process sees it, without importing a revision file.

Revision files are Python modules that may import the whole application, so they are loaded
only in a worker (:mod:`runner.worker`, job ``graph``), which reports each revision's id,
parents, dependencies, branch labels and file path. Here they become plain
``alembic.script.revision.Revision`` objects in Alembic's own ``RevisionMap``, so heads,
ancestry and upgrade ranges follow Alembic's rules exactly (merges, branch labels,
``depends_on``) while nothing of the user's code runs in this process.

Raises :class:`~runner.errors.RevisionGraphError` (exit 6) for a graph Alembic cannot build.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alembic.script.revision import Revision, RevisionError, RevisionMap
from alembic.util import CommandError

from runner.errors import RevisionGraphError


@dataclass(frozen=True, slots=True)
class RevisionFile:
    """One revision as the worker reported it."""

    revision: str
    down_revisions: tuple[str, ...]
    dependencies: tuple[str, ...]
    branch_labels: tuple[str, ...]
    path: str


class Graph:
    """Heads, ancestry and upgrade ranges of the project's revisions."""

    def __init__(self, files: Sequence[RevisionFile], locations: Sequence[str] = ()) -> None:
        self.files: Mapping[str, RevisionFile] = {f.revision: f for f in files}
        #: The script folder (env.py) and every version location, absolute.
        self.locations: tuple[str, ...] = tuple(locations)
        _check_references(files)
        self._map = RevisionMap(lambda: [_revision(f) for f in files])
        try:
            self.heads: tuple[str, ...] = tuple(sorted(self._map.heads))
        except (RevisionError, CommandError) as exc:
            raise RevisionGraphError(
                f"cannot build the revision graph: {exc}",
                hint="fix the down_revision / depends_on named above; `alembic heads` shows "
                "the same error",
            ) from exc

    @classmethod
    def from_records(
        cls, records: Sequence[Mapping[str, Any]], locations: Sequence[str] = ()
    ) -> Graph:
        return cls(
            [
                RevisionFile(
                    revision=r["revision"],
                    down_revisions=tuple(r["down_revision"]),
                    dependencies=tuple(r["dependencies"]),
                    branch_labels=tuple(r["branch_labels"]),
                    path=r["path"],
                )
                for r in records
            ],
            locations,
        )

    def knows(self, revision: str) -> bool:
        """Whether ``revision`` (an id, a unique prefix or a label) names a revision."""
        try:
            return self._map.get_revision(revision) is not None
        except (RevisionError, CommandError):
            return False

    def branch_labels(self, revision: str) -> tuple[str, ...]:
        rev = self._map.get_revision(revision)
        return tuple(sorted(rev.branch_labels)) if rev else ()

    def resolve(self, target: str) -> tuple[str, ...]:
        """The revision ids ``target`` (``head``, ``heads``, an id, a label) stands for."""
        revisions = self._map.get_revisions(target)
        return tuple(sorted(rev.revision for rev in revisions if isinstance(rev, Revision)))

    def parents(self, revision: str) -> tuple[str, ...]:
        return self.files[revision].down_revisions

    def ancestors(self, heads: Sequence[str]) -> set[str]:
        """The revisions a database at ``heads`` has applied (heads included)."""
        found: set[str] = set()
        for head in heads:
            found.update(
                rev.revision
                for rev in self._map.iterate_revisions(head, "base")
                if isinstance(rev, Revision)
            )
        return found

    def lineages(self) -> Mapping[str, frozenset[str]]:
        """:meth:`ancestors` of every revision at once, parents and dependencies first.

        For a caller that asks about every revision (the snapshot build): one walk of
        Alembic's map per revision would be quadratic. The sets hold one entry per ancestor,
        so a long chain's lineages take memory quadratic in its length; a single question is
        :meth:`ancestors`'s.
        """
        lineage: dict[str, frozenset[str]] = {}
        for revision in self.topological():
            found = {revision}
            for parent in self.files[revision].down_revisions:
                found |= lineage[parent]
            for dependency in self.files[revision].dependencies:
                # A dependency may name a branch label.
                rev = self._map.get_revision(dependency)
                if isinstance(rev, Revision):
                    found |= lineage[rev.revision]
            lineage[revision] = frozenset(found)
        return lineage

    def pending(self, db_heads: Sequence[str], target: str) -> tuple[str, ...]:
        """Revisions between the database heads and ``target``, oldest first."""
        lower: str | tuple[str, ...] = tuple(db_heads) if db_heads else "base"
        revisions = self._map.iterate_revisions(target, lower, implicit_base=True)
        return tuple(reversed([rev.revision for rev in revisions]))

    def topological(self) -> list[str]:
        """Every revision, ancestors first (the order ``alembic upgrade heads`` uses)."""
        return list(reversed(list(self._walk())))

    def _walk(self) -> Iterator[str]:
        for rev in self._map.iterate_revisions(
            "heads", "base", inclusive=True, assert_relative_length=False
        ):
            if rev is not None:
                yield rev.revision


def _check_references(files: Sequence[RevisionFile]) -> None:
    """A parent or dependency that names no revision: Alembic would fail with a KeyError."""
    ids = {f.revision for f in files}
    labels = {label for f in files for label in f.branch_labels}
    for f in files:
        for ref in (*f.down_revisions, *f.dependencies):
            known = ref in ids or ref in labels or any(i.startswith(ref) for i in ids)
            if known and ref in f.dependencies and ref not in ids and ref not in labels:
                # Alembic resolves depends_on by exact id or label only.
                raise RevisionGraphError(
                    f"revision {f.revision} ({f.path}) depends on {ref!r}, a prefix of a "
                    "revision id: Alembic needs the whole id or a branch label there",
                    hint="write the full revision id in its depends_on",
                )
            if not known:
                raise RevisionGraphError(
                    f"revision {f.revision} ({f.path}) refers to {ref!r}, which is not a "
                    "revision in the migration scripts",
                    hint="fix its down_revision / depends_on, or restore the missing file",
                )


def _revision(f: RevisionFile) -> Revision:
    return Revision(
        f.revision,
        f.down_revisions or None,
        dependencies=f.dependencies or None,
        branch_labels=f.branch_labels or None,
    )
