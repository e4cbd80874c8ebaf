"""Verify step: reflect the physical schema in bulk and diff it against the expected one.

``verify_schema`` is read-only. It logs ``verify.checked`` with the source and counts, one
``verify.drift_found`` per finding, and ``verify.skipped`` when no expected schema exists.
Raises :class:`DriftError` (exit 7) only when ``--require-verify`` is set and nothing could
be verified, and :class:`LockTimeoutError` (exit 5) when a table lock keeps the catalog
unreadable; what drift *means* (heal, fail, exit 9 after the upgrade) is the caller's call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from tenacity import (
    RetryCallState,
)

from runner import fastpath
from runner.deployment import Deployment
from runner.drift import Finding, diff
from runner.errors import DriftError, LockTimeoutError
from runner.expected import Expected, Source, scope
from runner.logs import get_logger
from runner.schema import FOR_DIFF, Schema, reflect_schema
from runner.shadow import excluded_tables
from runner.wait import describe

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


def _nothing_there(dep: Deployment, schemas: Sequence[str | None]) -> Schema | None:
    """The empty schema, when ``reflect_database`` would find no table and no enum (a fresh
    database, where nothing is expected either); None when it would find something.

    One light query where reflecting nothing costs ~60 ms: the Inspector's and the catalog's
    queries compiled and planned for a first use.
    """
    wanted = tuple(dict.fromkeys((*scope(dep.settings), *schemas)))
    excluded = excluded_tables(dep.settings)
    with dep.engine.connect() as conn:
        insp = sa.inspect(conn)
        if conn.dialect.name == "postgresql":
            namespaces = [s if s is not None else insp.default_schema_name for s in wanted]
            params = {"schemas": namespaces, "excluded": list(excluded)}
            if conn.execute(_PG_ANYTHING, params).scalar():
                return None
        elif any(set(insp.get_table_names(schema=s)) - set(excluded) for s in wanted):
            return None
    return Schema(tables={}, enums={}, schemas=wanted)


# A table (foreign ones too: the Inspector reflects them) or an enum in the schemas.
_PG_ANYTHING = sa.text(
    """
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'p', 'f')
                     AND NOT (c.relname = ANY(:excluded)))
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
                   JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = ANY(:schemas) AND t.typtype = 'e')
    """
)


def reflect_database(dep: Deployment, schemas: Sequence[str | None] = ()) -> Schema:
    """Reflect ``schemas`` and those in scope, waiting at most the DDL lock timeout per attempt.

    Column reflection calls ``pg_get_expr``, which takes a share lock on each table: a session
    holding ACCESS EXCLUSIVE (a long ALTER, VACUUM FULL) would block it for ever. So the
    connection gets the DDL ``lock_timeout``, and a time-out is retried like a DDL one.
    """

    def before_retry(state: RetryCallState) -> None:
        log.warning(
            "verify.lock_retry",
            attempt=state.attempt_number,
            sleep_s=round(state.upcoming_sleep, 3),
        )

    settings, backend = dep.settings, dep.backend
    retrying = backend.lock_retrying(settings, before_retry)
    try:
        for attempt in retrying:
            with attempt, dep.engine.connect() as conn:
                backend.prepare(conn, settings)
                return reflect_schema(
                    conn,
                    schemas=tuple(dict.fromkeys((*scope(settings), *schemas))),
                    exclude_tables=excluded_tables(settings),
                    reading=FOR_DIFF,
                )
    except DBAPIError as exc:
        if not backend.is_ddl_lock_timeout(exc):
            raise
        raise LockTimeoutError(
            f"reading the schema waited more than {settings.ddl_lock_timeout:g}s for a table "
            f"lock, {settings.ddl_retries + 1} time(s): {describe(exc)}",
            holder=None,
            hint="a session holds an exclusive lock on a table (a long ALTER, VACUUM FULL); "
            "find it in pg_locks / pg_stat_activity, or raise --ddl-lock-timeout",
        ) from exc
    raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises


def verify_schema(dep: Deployment, expected: Expected, *, stage: str) -> Verification:
    """Diff the deployed database against ``expected``."""
    settings = dep.settings
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
    if settings.fast_path and expected.source is Source.SNAPSHOT:
        # At the snapshot's head, a catalog identical to the clean replay's is no drift: one
        # query instead of reflecting and diffing every table (a fresh deploy's last step).
        with dep.engine.connect() as conn:
            objects = fastpath.fingerprint_matches(settings, conn, expected.heads)
        if objects is not None:
            log.info(
                "verify.checked",
                stage=stage,
                source="snapshot fingerprint",
                heads=list(expected.heads),
                objects=objects,
                findings=0,
                errors=0,
            )
            return Verification(Source.SNAPSHOT)
    actual = None
    if settings.fast_path and not expected.schema.tables and not expected.schema.enums:
        actual = _nothing_there(dep, expected.schema.schemas)
    if actual is None:
        # Every schema the expected one covers: the migrations may create tables in several.
        actual = reflect_database(dep, expected.schema.schemas)
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
