"""Revisions step: compare the script heads with what the database is stamped with.

Refuses what cannot be upgraded safely: several unlabelled script heads (names them and prints
the ``alembic merge`` command), a stamped revision the scripts do not know ("database is ahead
of this code"), tables with no stamp. Heads that each carry a distinct branch label are an
intentional layout (expand/contract) and are all upgraded. Several rows in the version table
are branches, handled by Alembic. Read-only.

Raises :class:`MultipleHeadsError`, :class:`UnknownRevisionError`,
:class:`UnstampedDatabaseError` (all exit 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, inspect

from runner.config import Settings
from runner.errors import MultipleHeadsError, UnknownRevisionError, UnstampedDatabaseError
from runner.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RevisionState:
    """What the scripts and the database say, and what the upgrade will do."""

    script_heads: tuple[str, ...]
    db_heads: tuple[str, ...]
    #: ``"head"`` or ``"heads"``; None when the upgrade is skipped.
    target: str | None
    #: Revisions the upgrade will apply, oldest first.
    pending: tuple[str, ...]
    version_table_exists: bool
    #: Stamped revisions the scripts do not know (only with --allow-unknown-revision).
    unknown: tuple[str, ...] = ()

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


def _labelled_heads(script: ScriptDirectory, heads: tuple[str, ...]) -> dict[str, list[str]]:
    """Each head's branch labels, when every head has labels no other head shares."""
    labels = {head: sorted(script.get_revision(head).branch_labels) for head in heads}
    seen: set[str] = set()
    for head_labels in labels.values():
        if not head_labels or seen.intersection(head_labels):
            return {}
        seen.update(head_labels)
    return labels


def pending_revisions(
    script: ScriptDirectory, db_heads: tuple[str, ...], target: str
) -> tuple[str, ...]:
    """Revisions between the database heads and ``target``, oldest first."""
    lower: str | tuple[str, ...] = db_heads if db_heads else "base"
    revisions = script.iterate_revisions(target, lower, implicit_base=True)
    return tuple(reversed([rev.revision for rev in revisions]))


def unknown_revisions(script: ScriptDirectory, db_heads: tuple[str, ...]) -> list[str]:
    """Stamped revisions the scripts do not contain."""
    unknown = []
    for head in db_heads:
        try:
            script.get_revision(head)
        except (CommandError, RevisionError):
            unknown.append(head)
    return unknown


def upgrade_target(
    script: ScriptDirectory, script_heads: tuple[str, ...], settings: Settings
) -> str:
    """``head``, or ``heads`` when several heads are labelled or allowed; else refuse."""
    if len(script_heads) <= 1:
        return "head"
    labelled = _labelled_heads(script, script_heads)
    if labelled:
        log.info("revisions.branches_labelled", heads=labelled)
    elif settings.allow_multiple_heads:
        log.warning("revisions.multiple_heads_allowed", heads=list(script_heads))
    else:
        raise MultipleHeadsError(script_heads)
    return "heads"


def check_revisions(script: ScriptDirectory, conn: Connection, settings: Settings) -> RevisionState:
    """Read both sides and decide; see the module docstring for what is refused."""
    script_heads = tuple(sorted(script.get_heads()))
    db_heads, table_exists = read_db_heads(conn, settings)
    target = upgrade_target(script, script_heads, settings)
    unknown = unknown_revisions(script, db_heads)
    if unknown:
        if not settings.allow_unknown_revision:
            raise UnknownRevisionError(unknown)
        log.warning("revisions.unknown_allowed", db_heads=list(db_heads), unknown=unknown)
        return RevisionState(script_heads, db_heads, None, (), table_exists, tuple(unknown))

    if not db_heads:
        tables = _user_tables(conn, settings)
        if tables:
            raise UnstampedDatabaseError(tables, settings.version_table)

    pending = pending_revisions(script, db_heads, target)
    state = RevisionState(script_heads, db_heads, target, pending, table_exists)
    log.info(
        "revisions.checked",
        script_heads=list(script_heads),
        db_heads=list(db_heads),
        pending=len(pending),
        version_table_exists=table_exists,
    )
    return state
