"""Snapshot file: the expected schema of every revision, recorded at build time.

``alembic-deploy snapshot`` replays the whole revision graph (in workers) into scratch databases
and
records, for every revision, the schema a clean upgrade to it produces, plus a checksum of
every revision file. The file is content-addressed (a table definition shared by many
revisions is stored once, keyed by its digest) and deterministic (the same scripts give a
byte-identical file), so it can be committed and checked in CI with ``snapshot --check``.

At deploy time a snapshot entry is used only when the revision's file and every ancestor's
file still have the recorded checksum and the dialect matches; otherwise the caller falls back
to shadow replay. Raises :class:`ConfigError` (exit 2) for an unreadable snapshot file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import fastpath
from runner.backends import Database
from runner.deployment import Deployment
from runner.errors import ConfigError
from runner.graph import Graph
from runner.logs import get_logger
from runner.schema import Enum, Schema, Table, canonical_json
from runner.shadow import excluded_tables, replay, scratch_database

log = get_logger(__name__)

FORMAT = "alembic-deploy-snapshot/1"


def state_key(heads: tuple[str, ...] | list[str]) -> str:
    """The key of a database state: its heads, sorted, comma-separated."""
    return ",".join(sorted(heads))


def _enum_digest(enum: Enum) -> str:
    return hashlib.sha256(canonical_json(enum.to_dict()).encode()).hexdigest()[:16]


def file_checksums(graph: Graph) -> dict[str, str]:
    """sha256 of every revision file, keyed by revision id."""
    sums = {}
    for revision, file in graph.files.items():
        sums[revision] = hashlib.sha256(Path(file.path).read_bytes()).hexdigest()
    return dict(sorted(sums.items()))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Expected schemas per database state, deduplicated by table digest."""

    dialect: str
    server_version: str
    schemas: tuple[str | None, ...]
    checksums: Mapping[str, str]
    tables: Mapping[str, Table]
    enums: Mapping[str, Enum]
    states: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    #: Each state's base (its first parent's state) for the delta encoding of the file.
    bases: Mapping[str, str | None] = field(default_factory=dict)
    #: What the no-op fast path compares (:func:`runner.fastpath.record`); None when the
    #: graph has several heads.
    fastpath: Mapping[str, Any] | None = None
    #: Revisions whose clean replay skipped a defensive operation (the chain creates an object
    #: twice, or drops one twice); None in a snapshot written before this was recorded.
    replay_skips: tuple[str, ...] | None = None

    def replays_cleanly(self, revisions: Iterable[str]) -> bool:
        """Whether a clean replay of ``revisions`` skipped nothing: applied to a database
        identical to the clean replay's, they need no defensive check (each would pass)."""
        skips = self.replay_skips
        return skips is not None and "*" not in skips and not set(skips) & set(revisions)

    def schema_for(self, heads: tuple[str, ...]) -> Schema | None:
        entry = self.states.get(state_key(heads))
        if entry is None:
            return None
        table_ids, enum_ids = entry
        tables = [self.tables[digest] for digest in table_ids]
        enums = [self.enums[digest] for digest in enum_ids]
        return Schema(
            tables={table.key: table for table in tables},
            enums={enum.key: enum for enum in enums},
            schemas=self.schemas,
        )

    def edited(self, current: Mapping[str, str]) -> list[str]:
        """Revisions whose file differs from (or is missing in) the snapshot."""
        return sorted(rev for rev, digest in current.items() if self.checksums.get(rev) != digest)

    def to_json(self) -> str:
        """Deterministic text: one line per table, enum and state, so diffs stay readable.

        A state is stored as the tables and enums it adds to and drops from its base state
        (its parent revision's), so a chain of N revisions costs O(N) in the file, not O(N²).
        """
        states = {}
        for key, (tables, enums) in sorted(self.states.items()):
            base = self.bases.get(key)
            base_tables, base_enums = self.states.get(base, ((), ())) if base else ((), ())
            states[key] = {
                "base": base,
                "tables+": sorted(set(tables) - set(base_tables)),
                "tables-": sorted(set(base_tables) - set(tables)),
                "enums+": sorted(set(enums) - set(base_enums)),
                "enums-": sorted(set(base_enums) - set(enums)),
            }
        document: dict[str, Any] = {
            "format": FORMAT,
            "dialect": self.dialect,
            "server_version": self.server_version,
            "fastpath": dict(self.fastpath) if self.fastpath else None,
            "replay_skips": None if self.replay_skips is None else sorted(self.replay_skips),
            "schemas": list(self.schemas),
            "checksums": dict(sorted(self.checksums.items())),
            "states": states,
            "enums": {d: e.to_dict() for d, e in sorted(self.enums.items())},
            "tables": {d: t.to_dict() for d, t in sorted(self.tables.items())},
        }
        return _layout(document)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Parse and check a snapshot file; ValueError names what is wrong with it."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown snapshot format {data.get('format')!r}")
        for key in ("states", "tables", "enums", "checksums"):
            if not isinstance(data.get(key), dict):
                raise ValueError(f"{key!r} is not an object")
        encoded: dict[str, dict[str, Any]] = data["states"]
        for key, entry in encoded.items():
            if not isinstance(entry, dict) or entry.get("base") not in (None, *encoded):
                raise ValueError(f"state {key!r} is malformed or names an unknown base")
        states: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

        def resolve(key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
            chain: list[str] = []
            seen: set[str] = set()
            while key not in states:  # iterative: chains can be thousands long
                if key in seen:
                    raise ValueError(f"state {key!r} is its own base, through {len(chain)} states")
                seen.add(key)
                chain.append(key)
                base = encoded[key]["base"]
                if base is None:
                    break
                key = base
            for item in reversed(chain):
                entry = encoded[item]
                tables, enums = states[entry["base"]] if entry["base"] else ((), ())
                states[item] = (
                    tuple(sorted((set(tables) | set(entry["tables+"])) - set(entry["tables-"]))),
                    tuple(sorted((set(enums) | set(entry["enums+"])) - set(entry["enums-"]))),
                )
            return states[chain[0]] if chain else states[key]

        for key in encoded:
            resolve(key)
        for key, (table_ids, enum_ids) in states.items():
            missing = [d for d in table_ids if d not in data["tables"]]
            missing += [d for d in enum_ids if d not in data["enums"]]
            if missing:
                raise ValueError(f"state {key!r} refers to {missing[0]!r}, which it lacks")
        return cls(
            dialect=data["dialect"],
            server_version=data["server_version"],
            schemas=tuple(data["schemas"]),
            checksums=data["checksums"],
            tables={d: Table.from_dict(t) for d, t in data["tables"].items()},
            enums={d: Enum.from_dict(e) for d, e in data["enums"].items()},
            states=states,
            bases={key: entry["base"] for key, entry in encoded.items()},
            fastpath=data.get("fastpath"),
            replay_skips=_revisions(data.get("replay_skips")),
        )


def _revisions(value: Any) -> tuple[str, ...] | None:
    """A list of revision ids as written, None for anything else (an older snapshot)."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


#: Keys written on one line: the fast path reads its record without parsing the whole file.
_ONE_LINE = {"fastpath"}


def _layout(document: dict[str, Any]) -> str:
    """JSON with one line per top-level key and per entry of the big mappings."""

    def compact(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    lines = ["{"]
    keys = list(document)
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        value = document[key]
        if isinstance(value, dict) and value and key not in _ONE_LINE:
            lines.append(f"{compact(key)}:{{")
            entries = list(value.items())
            for position, (name, item) in enumerate(entries):
                more = "," if position < len(entries) - 1 else ""
                lines.append(f"{compact(name)}:{compact(item)}{more}")
            lines.append("}" + comma)
        else:
            lines.append(f"{compact(key)}:{compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def load_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at ``path``; None when there is no file."""
    if not path.is_file():
        return None
    try:
        return Snapshot.from_json(path.read_text())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(
            f"cannot read snapshot {path}: {reason}",
            hint="rebuild it with `alembic-deploy snapshot` or remove it",
        ) from exc


def usable_schema(
    snapshot: Snapshot | None,
    graph: Graph,
    heads: tuple[str, ...],
    dialect: str,
    checksums: Mapping[str, str],
) -> Schema | None:
    """The snapshot's schema for ``heads`` if every file it depends on is unchanged."""
    if snapshot is None or snapshot.dialect != dialect:
        return None
    needed = graph.ancestors(heads)
    if any(snapshot.checksums.get(rev) != checksums.get(rev) for rev in needed):
        return None
    return snapshot.schema_for(heads)


def _ordered(schemas: set[str | None]) -> tuple[str | None, ...]:
    """The default schema (None) first, then the others by name."""
    return tuple(sorted(schemas, key=lambda s: (s is not None, s or "")))


def _fastpath_record(
    dep: Deployment, shadow: Database, schemas: tuple[str | None, ...]
) -> dict[str, Any]:
    engine = shadow.engine(dep.settings)
    try:
        with engine.connect() as conn:
            return fastpath.record(dep.settings, conn, dep.graph, schemas)
    finally:
        engine.dispose()


def build_snapshot(
    dep: Deployment,
    schemas: tuple[str | None, ...],
    watch: Callable[[], None] | None = None,
) -> Snapshot:
    """Replay the graph into scratch databases on ``dep``'s server and record each state.

    Revisions that build on each other are replayed by one worker into one scratch database in
    one upgrade run, each revision's schema recorded as it commits; a revision on another branch
    starts a fresh database.
    """
    graph = dep.graph
    tables: dict[str, Table] = {}
    enums: dict[str, Enum] = {}
    states: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    bases: dict[str, str | None] = {}
    excluded = excluded_tables(dep.settings)

    seen: set[str | None] = set(schemas)
    # A Table shared by many revisions is hashed once. The memo holds the Table itself: an id
    # is only unique while its object lives, and equal tables replace each other in `tables`.
    hashed: dict[int, tuple[Table, str]] = {}

    def record(key: str, schema: Schema) -> None:
        seen.update(schema.schemas)
        table_ids = []
        for table in schema.tables.values():
            # Keyed by everything recorded, the server's text included: a later revision
            # that only changes a comment or a collation keeps its own definition.
            memo = hashed.get(id(table))
            if memo is None:
                digest = hashlib.sha256(canonical_json(table.to_dict()).encode()).hexdigest()[:16]
                hashed[id(table)] = (table, digest)
            else:
                digest = memo[1]
            tables[digest] = table
            table_ids.append(digest)
        enum_ids = []
        for enum in schema.enums.values():
            digest = _enum_digest(enum)
            enums[digest] = enum
            enum_ids.append(digest)
        states[key] = (tuple(sorted(table_ids)), tuple(sorted(enum_ids)))

    groups: list[list[str]] = []
    done: frozenset[str] = frozenset()
    lineages = graph.lineages()
    for revision in graph.topological():
        needed = lineages[revision]
        if not groups or done != needed - {revision}:
            groups.append([])  # another branch is applied here: start from an empty database
        groups[-1].append(revision)
        done = needed
    fast: dict[str, Any] | None = None
    skips: set[str] = set()
    recorded_via = {"events": 0, "digests": 0}
    for group in groups:
        # One upgrade run per group, as a deploy runs it, recording each revision's schema
        # from inside its transaction (a chain may only work in one run, e.g. enum types).
        with scratch_database(dep) as shadow:
            found = replay(
                dep,
                shadow,
                [[group[-1]]],
                schemas,
                excluded,
                what="snapshot",
                watch=watch,
                each_revision=True,
            )
            skips.update(found.skipped)
            for via, count in found.recorded_via.items():
                recorded_via[via] = recorded_via.get(via, 0) + count
            if graph.heads == (group[-1],):
                # The clean replay at the single head: what the no-op fast path compares with,
                # over every schema the migrations created tables in.
                touched = {
                    s for found_schema in found.revisions.values() for s in found_schema.schemas
                }
                fast = _fastpath_record(dep, shadow, _ordered({*seen, *touched}))
        applied: set[str] = set()
        for revision in found.applied:
            applied.add(revision)
            if revision not in group or applied != lineages[revision]:
                continue  # another branch's revision, or one recorded by an earlier group
            record(state_key((revision,)), found.revisions[revision])
            parents = graph.parents(revision)
            bases[state_key((revision,))] = parents[0] if parents and parents[0] in states else None
    heads = graph.heads
    if len(heads) > 1:
        with scratch_database(dep) as shadow:
            merged = replay(
                dep, shadow, [["heads"]], schemas, excluded, what="snapshot", watch=watch
            )
        (schema,) = merged.stages
        skips.update(merged.skipped)
        record(state_key(heads), schema)
        bases[state_key(heads)] = state_key((heads[0],))
    with dep.engine.connect() as conn:
        version = conn.dialect.server_version_info or ()
    snapshot = Snapshot(
        dialect=dep.database.dialect,
        server_version=".".join(str(p) for p in version[:1]),
        schemas=_ordered(seen),
        checksums=file_checksums(graph),
        tables=tables,
        enums=enums,
        states=states,
        bases=bases,
        fastpath=fast,
        replay_skips=tuple(sorted(skips)),
    )
    log.info(
        "snapshot.built",
        revisions=len(states),
        tables=len(tables),
        enums=len(enums),
        # How each revision's changes were found: DDL events (runner.ddlwatch) or digests.
        by_ddl_events=recorded_via["events"],
        by_digests=recorded_via["digests"],
    )
    return snapshot
