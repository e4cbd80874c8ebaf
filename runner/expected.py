"""The expected schema of a database state, from the best source available.

Sources, in order (DESIGN.md, "The expected schema of a revision"):
1. the snapshot file, when it covers the state and none of the revision files it depends on
   changed since it was built;
2. shadow replay: migrate a scratch database to the same revisions and reflect it (one replay
   serves several stages, e.g. the stamped revision and head);
3. the head models (env.py's ``target_metadata``), when the stage is the script heads;
4. none: say so; ``--require-verify`` makes that fatal (exit 7) in the verify step.

Raises :class:`RevisionGraphError` (exit 6) with ``--strict-checksums`` when a revision file
differs from the snapshot; other sources' failures are logged and fall through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

from runner.backends import Backend
from runner.config import Settings
from runner.errors import DeployError, RevisionGraphError
from runner.logs import get_logger
from runner.schema import Schema, schema_from_metadata
from runner.shadow import ShadowUnavailable, replay_schemas
from runner.snapshot import DEFAULT_NAME, Snapshot, file_checksums, load_snapshot, usable_schema
from runner.upgrade import load_target_metadata

log = get_logger(__name__)


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


def snapshot_path(settings: Settings) -> Path:
    """``--snapshot``, else the default file beside the Alembic config."""
    if settings.snapshot_path:
        return Path(settings.snapshot_path)
    return Path(settings.config_path).resolve().parent / DEFAULT_NAME


def scope(settings: Settings) -> tuple[str | None, ...]:
    """The schemas verified: the default one, plus the version table's when it differs."""
    if settings.version_table_schema:
        return (None, settings.version_table_schema)
    return (None,)


@dataclass(slots=True)
class ExpectedSchemas:
    """Resolves expected schemas for the stages of one run, sharing the costly work."""

    config: Config
    script: ScriptDirectory
    engine: Engine
    backend: Backend
    settings: Settings
    url: str
    _snapshot: Snapshot | None = None
    _checksums: dict[str, str] | None = None
    _loaded: bool = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = snapshot_path(self.settings)
        self._snapshot = load_snapshot(path)
        if self._snapshot is None:
            log.info("verify.no_snapshot", snapshot=str(path))
            return
        self._checksums = file_checksums(self.script)
        edited = self._snapshot.edited(self._checksums)
        if edited:
            log.warning(
                "verify.checksum_mismatch",
                revisions=edited,
                snapshot=str(path),
                hint="rebuild the snapshot with `alembic-deploy snapshot`",
            )
            if self.settings.strict_checksums:
                raise RevisionGraphError(
                    f"revision file(s) changed since the snapshot was built: {', '.join(edited)}",
                    hint="a migration was edited after it was recorded; rebuild the snapshot "
                    "with `alembic-deploy snapshot` if the edit is intended",
                )

    def resolve(self, stages: Sequence[tuple[str, ...]]) -> list[Expected]:
        """The expected schema of each stage (tuples of heads, in upgrade order)."""
        self._load()
        found: dict[int, Expected] = {}
        for index, heads in enumerate(stages):
            if not heads:
                found[index] = Expected(heads, Schema(), Source.BASE)
                continue
            schema = usable_schema(
                self._snapshot, self.script, heads, self.engine.dialect.name, self._checksums or {}
            )
            if schema is not None:
                found[index] = Expected(heads, schema, Source.SNAPSHOT)
        missing = [i for i in range(len(stages)) if i not in found]
        if missing and self.settings.shadow:
            try:
                replayed = replay_schemas(
                    self.config,
                    self.script,
                    self.engine,
                    self.backend,
                    self.settings,
                    [stages[i] for i in missing],
                    scope(self.settings),
                )
            except ShadowUnavailable as exc:
                log.warning("verify.shadow_unavailable", reason=str(exc))
            except DeployError:
                raise
            else:
                for i, schema in zip(missing, replayed, strict=True):
                    found[i] = Expected(stages[i], schema, Source.SHADOW)
        missing = [i for i in range(len(stages)) if i not in found]
        heads = tuple(sorted(self.script.get_heads()))
        for i in missing:
            if tuple(sorted(stages[i])) == heads:
                metadata = load_target_metadata(
                    self.config, self.script, self.engine, self.backend, self.settings, self.url
                )
                if metadata is not None:
                    found[i] = Expected(
                        stages[i], _models_schema(metadata, self.engine), Source.MODELS
                    )
                    continue
            found[i] = Expected(stages[i], None, Source.NONE)
        return [found[i] for i in range(len(stages))]


def _models_schema(metadata: MetaData | Sequence[MetaData], engine: Engine) -> Schema:
    """env.py's target_metadata (one MetaData or several) as one schema."""
    parts = [metadata] if isinstance(metadata, MetaData) else list(metadata)
    schemas = [schema_from_metadata(part, engine.dialect) for part in parts]
    return Schema(
        tables={k: t for s in schemas for k, t in s.tables.items()},
        enums={k: e for s in schemas for k, e in s.enums.items()},
        schemas=tuple(dict.fromkeys(x for s in schemas for x in s.schemas)),
    )
