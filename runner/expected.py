"""The expected schema of a database state, from the best source available.

Sources, in order:
1. the snapshot file, when it covers the state and none of the revision files it depends on
   changed since it was built;
2. shadow replay: migrate a scratch database to the same revisions and reflect it (one replay
   serves several stages, e.g. the stamped revision and head);
3. the head models (env.py's ``target_metadata``), when the stage is the script heads;
4. none: say so; ``--require-verify`` makes that fatal (exit 7) in the verify step.

Shadow replay is skipped with ``--no-shadow``; a scratch database that cannot be created and a
replay that fails are logged (``verify.shadow_unavailable``, ``verify.replay_failed``) and fall
through, the same way for every command. Raises :class:`RevisionGraphError` (exit 6) with
``--strict-checksums`` when a revision file differs from the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from runner.backends import ShadowUnavailable
from runner.config import Settings, snapshot_path
from runner.deployment import Deployment, run_job
from runner.errors import ConfigError, ReplayFailedError, RevisionGraphError
from runner.logs import get_logger
from runner.schema import Schema
from runner.shadow import replay_schemas
from runner.snapshot import (
    Snapshot,
    build_snapshot,
    file_checksums,
    load_snapshot,
    usable_schema,
)

log = get_logger(__name__)

_T = TypeVar("_T")


class Source(StrEnum):
    BASE = "base"
    SNAPSHOT = "snapshot"
    SHADOW = "shadow"
    MODELS = "models"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Expected:
    """What a state should physically be, and where that knowledge came from."""

    heads: tuple[str, ...]
    schema: Schema | None
    source: Source


def scope(settings: Settings) -> tuple[str | None, ...]:
    """The schemas verified: the default one, plus the version table's when it differs."""
    if settings.version_table_schema:
        return (None, settings.version_table_schema)
    return (None,)


@dataclass(slots=True)
class ExpectedSchemas:
    """Resolves expected schemas for the stages of one run, sharing the costly work.

    The only place that decides where an expected schema comes from, for every command:
    ``--no-shadow`` is honoured here, and a shadow that cannot be had (no privilege) or a
    replay that fails falls back the same way for every caller.
    """

    dep: Deployment
    #: Checks the migration lock while replays run (``deploy`` holds it; read-only commands
    #: do not).
    watch: Callable[[], None] | None = None
    _snapshot: Snapshot | None = None
    _checksums: dict[str, str] | None = None
    _loaded: bool = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        settings = self.dep.settings
        path = snapshot_path(settings)
        if settings.snapshot_path and not path.is_file():
            raise ConfigError(
                f"snapshot file not found: {path} (--snapshot / ALEMBIC_DEPLOY_SNAPSHOT)",
                hint="build it with `alembic-deploy snapshot --output PATH`, or unset the "
                "option to use the default file beside alembic.ini",
            )
        self._snapshot = load_snapshot(path)
        if self._snapshot is None:
            log.info("verify.no_snapshot", snapshot=str(path))
            return
        if self._snapshot.dialect != self.dep.database.dialect:
            # Silently ignored, it would cost a shadow replay on every start.
            log.warning(
                "verify.snapshot_other_dialect",
                snapshot=str(path),
                snapshot_dialect=self._snapshot.dialect,
                database_dialect=self.dep.database.dialect,
                hint="build it for this database: alembic-deploy snapshot --database-url "
                f"{self.dep.database.dialect}://... (an empty database or --shadow-url)",
            )
        self._checksums = file_checksums(self.dep.graph)
        if not set(self._snapshot.checksums) & set(self._checksums):
            # Not one revision in common: a snapshot copied from another project.
            log.warning(
                "verify.snapshot_other_project",
                snapshot=str(path),
                snapshot_revisions=len(self._snapshot.checksums),
                hint="the snapshot knows none of these revisions: build it for this project "
                "with `alembic-deploy snapshot` (or point --snapshot at its own file)",
            )
            return
        edited = self._snapshot.edited(self._checksums)
        if edited:
            log.warning(
                "verify.checksum_mismatch",
                revisions=edited,
                snapshot=str(path),
                hint="rebuild the snapshot with `alembic-deploy snapshot`",
            )
            if settings.strict_checksums:
                raise RevisionGraphError(
                    f"revision file(s) changed since the snapshot was built: {', '.join(edited)}",
                    hint="a migration was edited after it was recorded; rebuild the snapshot "
                    "with `alembic-deploy snapshot` if the edit is intended",
                )

    def _replay(self, replay: Callable[[], _T]) -> _T | None:
        """Run a replay; None (logged) when shadow replay is off, impossible or failed.

        The one fallback for every caller: the next source takes over.
        """
        if not self.dep.settings.shadow:
            log.info("verify.shadow_disabled", reason="--no-shadow")
            return None
        try:
            return replay()
        except ShadowUnavailable as exc:
            log.warning("verify.shadow_unavailable", reason=str(exc))
        except ReplayFailedError as exc:
            log.warning("verify.replay_failed", error=exc.message, revision=exc.revision)
        return None

    def resolve(self, stages: Sequence[tuple[str, ...]]) -> list[Expected]:
        """The expected schema of each stage (tuples of heads, in upgrade order)."""
        self._load()
        graph = self.dep.graph
        found: dict[int, Expected] = {}
        for index, heads in enumerate(stages):
            if not heads:
                found[index] = Expected(heads, Schema(), Source.BASE)
                continue
            schema = usable_schema(
                self._snapshot, graph, heads, self.dep.database.dialect, self._checksums or {}
            )
            if schema is not None:
                found[index] = Expected(heads, schema, Source.SNAPSHOT)
        missing = [i for i in range(len(stages)) if i not in found]
        if missing:
            replayed = self._replay(
                lambda: replay_schemas(
                    self.dep, [stages[i] for i in missing], scope(self.dep.settings), self.watch
                )
            )
            for i, schema in zip(missing, replayed or [], strict=False):
                found[i] = Expected(stages[i], schema, Source.SHADOW)
        for i in (i for i in range(len(stages)) if i not in found):
            models = None
            if tuple(sorted(stages[i])) == graph.heads:
                models = load_models(self.dep)
            source = Source.MODELS if models is not None else Source.NONE
            found[i] = Expected(stages[i], models, source)
        return [found[i] for i in range(len(stages))]

    def _whole_snapshot(self) -> Snapshot | None:
        """The snapshot when it holds every revision as it is now, on this dialect."""
        self._load()
        snapshot = self._snapshot
        if (
            snapshot is not None
            and snapshot.dialect == self.dep.database.dialect
            and not snapshot.edited(self._checksums or {})
        ):
            return snapshot
        return None

    def replays_cleanly(self, revisions: Sequence[str]) -> bool:
        """Whether the snapshot, usable for these revisions, saw their clean replay skip no
        defensive operation (see :meth:`Snapshot.replays_cleanly`)."""
        snapshot = self._whole_snapshot()
        return snapshot is not None and snapshot.replays_cleanly(revisions)

    def every_revision(self) -> Snapshot | None:
        """The expected schema of every revision (adoption, explaining a wrong stamp).

        The snapshot when it is usable, else one built now by replay (unless ``--no-shadow``
        or no scratch database can be had: None, logged).
        """
        snapshot = self._whole_snapshot()
        if snapshot is not None:
            return snapshot

        def build() -> Snapshot:
            log.info("adopt.replaying", reason="no usable snapshot")
            return build_snapshot(self.dep, scope(self.dep.settings), self.watch)

        return self._replay(build)


def load_models(dep: Deployment) -> Schema | None:
    """env.py's ``target_metadata`` (the head models) as a schema, loaded by a worker.

    None when env.py sets none. Raises :class:`MigrationFailedError` (exit 8) when env.py fails.
    """
    result = run_job(
        dep,
        "metadata",
        failure="env.py failed while loading target_metadata",
        hint="run `alembic check` to see the same error",
    )
    data = result.schemas.get(0)
    return Schema.from_dict(data) if data is not None else None
