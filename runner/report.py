"""What a run did, filled in step by step, so that even a failed run can be summarised.

The pipelines (:mod:`runner.pipeline`) and the fast path (:mod:`runner.fastpath`) fill it; the
command line (:mod:`runner.cli`) prints it. Imports nothing heavy: the fast path must not pay
for the pipeline. Raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.drift import Finding
    from runner.upgrade import AppliedRevision


@dataclass(slots=True)
class DeployReport:
    """What a run did, filled in as it goes (so a failed run can still be summarised)."""

    db_heads_before: tuple[str, ...] = ()
    db_heads_after: tuple[str, ...] = ()
    script_heads: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    applied: list[AppliedRevision] = field(default_factory=list)
    skipped_operations: int = 0
    steps_ms: dict[str, float] = field(default_factory=dict)
    expected_source: str = "none"
    drift_before: list[Finding] = field(default_factory=list)
    drift_after: list[Finding] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    #: ``--dry-run`` / ``plan``: the SQL the repairs would run, and what none can heal.
    repair_sql: list[str] = field(default_factory=list)
    unhealable: list[Finding] = field(default_factory=list)
    #: ``status`` of a drifted database: the revision it physically matches best.
    closest: str | None = None
    #: ``plan`` / ``--dry-run``: the offline SQL of the pending revisions.
    pending_sql: str = ""
    #: The database looked at (password masked) and where its URL came from.
    database: str | None = None
    url_source: str | None = None
