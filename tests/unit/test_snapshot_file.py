"""The snapshot file format: delta-encoded states round-trip, output is deterministic."""

from __future__ import annotations

from runner.schema import Column, Enum, Table, table_digest
from runner.snapshot import Snapshot


def _table(name: str) -> Table:
    return Table(
        schema=None,
        name=name,
        columns=(Column("id", "INTEGER", False),),
        primary_key=None,
        indexes=(),
        uniques=(),
        checks=(),
        foreign_keys=(),
    )


def _snapshot(length: int) -> Snapshot:
    tables = {table_digest(t)[:16]: t for t in (_table(f"t{i}") for i in range(length))}
    digests = list(tables)
    mood = Enum(None, "mood", ("ok", "sad"))
    states = {}
    bases: dict[str, str | None] = {}
    for i in range(length):
        # Each revision adds a table; revision 3 drops the first table again.
        present = digests[: i + 1] if i != 3 else digests[1:4]
        states[f"r{i}"] = (tuple(sorted(present)), ("e1",) if i >= 2 else ())
        bases[f"r{i}"] = f"r{i - 1}" if i else None
    return Snapshot(
        "postgresql",
        "15",
        (None,),
        {f"r{i}": "x" for i in range(length)},
        tables,
        {"e1": mood},
        states,
        bases,
    )


def test_delta_encoded_states_round_trip() -> None:
    snapshot = _snapshot(40)
    again = Snapshot.from_json(snapshot.to_json())
    assert again.states == snapshot.states
    assert again.tables == snapshot.tables and again.enums == snapshot.enums
    assert again.schema_for(("r3",)) == snapshot.schema_for(("r3",))
    assert [t.name for t in again.schema_for(("r3",)).tables.values()] == ["t1", "t2", "t3"]


def test_output_is_deterministic_and_grows_linearly() -> None:
    assert _snapshot(30).to_json() == _snapshot(30).to_json()
    small, large = len(_snapshot(50).to_json()), len(_snapshot(100).to_json())
    assert large < 2.2 * small  # full state lists would make it about 4x
