"""Revisions step: compare the script heads with what the database is stamped with.

Refuses what cannot be upgraded safely: several unlabelled script heads (names them and prints
the ``alembic merge`` command), a stamped revision the scripts do not know ("database is ahead
of this code"), tables with no stamp. Heads that each carry a distinct branch label are an
intentional layout (expand/contract) and are all upgraded. Several rows in the version table
are branches, handled by Alembic. Read-only.

:func:`decide` is the one revision policy every command uses; it raises nothing and returns
the refusal (:class:`MultipleHeadsError`, :class:`UnknownRevisionError`,
:class:`UnstampedDatabaseError`, all exit 6) for the caller to raise or report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from runner.config import Settings
from runner.errors import (
    MultipleHeadsError,
    RevisionGraphError,
    UnknownRevisionError,
    UnstampedDatabaseError,
)
from runner.graph import Graph
from runner.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RevisionState:
    """What the scripts and the database say, and what the upgrade will do."""

    script_heads: tuple[str, ...]
    db_heads: tuple[str, ...]
    #: ``"head"`` or ``"heads"``; None when the upgrade is skipped or refused.
    target: str | None
    #: Revisions the upgrade will apply, oldest first.
    pending: tuple[str, ...]
    version_table_exists: bool
    #: Stamped revisions the scripts do not know.
    unknown: tuple[str, ...] = ()
    #: Heads that each carry their own branch labels (an intentional layout).
    labelled: Mapping[str, list[str]] = field(default_factory=dict)
    #: Why this state cannot be upgraded, if it cannot; every command decides with it.
    refusal: RevisionGraphError | None = None

    @property
    def at_head(self) -> bool:
        return not self.pending and not self.unknown


def read_db_heads(conn: Connection, settings: Settings) -> tuple[tuple[str, ...], bool]:
    """The revisions in the version table, and whether the table exists at all."""
    exists = inspect(conn).has_table(settings.version_table, schema=settings.version_table_schema)
    if not exists:
        return (), False
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": settings.version_table,
            "version_table_schema": settings.version_table_schema,
        },
    )
    return tuple(sorted(context.get_current_heads())), True


def _user_tables(conn: Connection, settings: Settings) -> list[str]:
    names = inspect(conn).get_table_names(schema=settings.version_table_schema)
    return sorted(name for name in names if name != settings.version_table)


def _labelled_heads(graph: Graph) -> dict[str, list[str]]:
    """Each head's branch labels, when every head has labels no other head shares."""
    labels = {head: sorted(graph.branch_labels(head)) for head in graph.heads}
    seen: set[str] = set()
    for head_labels in labels.values():
        if not head_labels or seen.intersection(head_labels):
            return {}
        seen.update(head_labels)
    return labels


def decide(
    graph: Graph,
    db_heads: tuple[str, ...],
    version_table_exists: bool,
    user_tables: Sequence[str],
    settings: Settings,
) -> RevisionState:
    """The revision policy, for every command: what to upgrade to, and what is refused.

    Pure. Several script heads are upgraded together when each carries its own branch label or
    ``--allow-multiple-heads`` is set, else refused; a stamped revision the scripts do not know
    is refused unless ``--allow-unknown-revision`` (then nothing is upgraded); tables with no
    stamp are refused (``--adopt`` is the caller's business).
    """
    script_heads = graph.heads
    refusal: RevisionGraphError | None = _broken_stamp(graph, db_heads, settings)
    target: str | None = "head"
    labelled: dict[str, list[str]] = {}
    if not script_heads and refusal is None:
        refusal = RevisionGraphError(
            "no revision files found in the migration scripts",
            hint="check that the image contains the versions folder (script_location / "
            "version_locations in the Alembic config)",
        )
    if len(script_heads) > 1:
        target = "heads"
        labelled = _labelled_heads(graph)
        if not labelled and not settings.allow_multiple_heads:
            refusal = MultipleHeadsError(script_heads)
    unknown = tuple(head for head in db_heads if head.strip() and not graph.knows(head))
    if unknown:
        target = None
        if refusal is None and not settings.allow_unknown_revision:
            refusal = UnknownRevisionError(unknown)
    elif not db_heads and user_tables and refusal is None:
        refusal = UnstampedDatabaseError(user_tables, settings.version_table)
    pending = () if unknown or refusal is not None else graph.pending(db_heads, "heads")
    return RevisionState(
        script_heads=script_heads,
        db_heads=db_heads,
        target=None if refusal is not None else target,
        pending=pending,
        version_table_exists=version_table_exists,
        unknown=unknown,
        labelled=labelled,
        refusal=refusal,
    )


def _broken_stamp(
    graph: Graph, db_heads: tuple[str, ...], settings: Settings
) -> RevisionGraphError | None:
    """A version table no Alembic run could have left: an empty id, or two rows where one
    revision is an ancestor of the other."""
    table = settings.version_table
    if any(not head.strip() for head in db_heads):
        return RevisionGraphError(
            f"the version table {table} holds an empty revision id",
            hint="delete that row, or re-stamp: alembic stamp --purge <revision> "
            "(`alembic-deploy status` names the revision the schema matches)",
        )
    known = [head for head in db_heads if graph.knows(head)]
    for head in known:
        below = graph.ancestors((head,)) - {head}
        shadowed = sorted(other for other in known if other in below)
        if shadowed:
            return RevisionGraphError(
                f"the version table {table} stamps {', '.join(shadowed)} and {head}, but "
                f"{shadowed[0]} is an ancestor of {head}: a stamp no upgrade leaves",
                hint=f"keep only the later one: alembic stamp --purge {head} (if the schema "
                f"is at {head}; `alembic-deploy status` names the revision it matches)",
            )
    return None


def read_revisions(conn: Connection, graph: Graph, settings: Settings) -> RevisionState:
    """Read the database's side and apply :func:`decide`; logs what was decided."""
    db_heads, exists = read_db_heads(conn, settings)
    tables = _user_tables(conn, settings) if not db_heads else []
    state = decide(graph, db_heads, exists, tables, settings)
    if state.labelled:
        log.info("revisions.branches_labelled", heads=state.labelled)
    elif len(state.script_heads) > 1 and settings.allow_multiple_heads:
        log.warning("revisions.multiple_heads_allowed", heads=list(state.script_heads))
    if state.unknown and state.refusal is None:
        log.warning("revisions.unknown_allowed", db_heads=list(db_heads), unknown=state.unknown)
    log.info(
        "revisions.checked",
        script_heads=list(state.script_heads),
        db_heads=list(db_heads),
        pending=len(state.pending),
        version_table_exists=exists,
        refused=state.refusal.message if state.refusal else None,
    )
    return state
