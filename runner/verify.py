"""Verify step: reflect the physical schema in bulk and diff it against the expected one.

``verify_schema`` is read-only. It logs ``verify.checked`` with the source and counts, one
``verify.drift_found`` per finding, and ``verify.skipped`` when no expected schema exists.
Raises :class:`DriftError` (exit 7) only when ``--require-verify`` is set and nothing could
be verified; what drift *means* (heal, fail, exit 9 after the upgrade) is the caller's call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection

from runner.config import Settings
from runner.drift import Finding, diff
from runner.errors import DriftError
from runner.expected import Expected, Source, scope
from runner.logs import get_logger
from runner.schema import Schema, reflect_schema
from runner.shadow import excluded_tables

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of one verification."""

    source: Source
    findings: tuple[Finding, ...] = ()
    actual: Schema | None = field(default=None, compare=False)

    @property
    def verified(self) -> bool:
        return self.source is not Source.NONE

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


def verify_schema(
    conn: Connection, expected: Expected, settings: Settings, *, stage: str
) -> Verification:
    """Diff the database behind ``conn`` against ``expected``."""
    if expected.schema is None:
        log.warning(
            "verify.skipped",
            stage=stage,
            heads=list(expected.heads),
            reason="no expected schema: no snapshot covers this revision, shadow replay was "
            "not possible, and the database is not at head with models",
        )
        if settings.require_verify:
            raise DriftError(
                f"cannot verify the schema at {list(expected.heads)}: no expected schema",
                hint="build a snapshot with `alembic-deploy snapshot`, allow shadow replay, or "
                "drop --require-verify",
            )
        return Verification(Source.NONE)
    actual = reflect_schema(conn, schemas=scope(settings), exclude_tables=excluded_tables(settings))
    findings = tuple(diff(expected.schema, actual))
    for finding in findings:
        log.warning("verify.drift_found", stage=stage, **finding.to_dict())
    log.info(
        "verify.checked",
        stage=stage,
        source=expected.source.value,
        heads=list(expected.heads),
        tables=len(actual.tables),
        findings=len(findings),
        errors=sum(1 for f in findings if f.severity == "error"),
    )
    return Verification(expected.source, findings, actual)
