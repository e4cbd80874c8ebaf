"""The runner's events: a closed set, each name with one line of meaning.

Every event the runner logs (``step.past_tense``; data in keys, units in key names) is a key
of :data:`EVENTS`, grouped by step in pipeline order. Error events are the ``event`` attribute
of a :class:`~runner.errors.DeployError` subclass and carry ``error``, ``hint`` and
``exit_code``. ``tests/unit/test_events.py`` fails when the code logs a name missing here, when
a name here is no longer logged, and when the README's "Events" table (rendered by
:func:`markdown_table`) disagrees with this file.
"""

from __future__ import annotations

EVENTS: dict[str, str] = {
    # --- config ------------------------------------------------------------------------------
    "config.invalid": "a flag, environment variable, URL or the Alembic config is invalid (exit 2)",
    # --- fastpath ---------------------------------------------------------------------------
    "fastpath.taken": "the snapshot's sources and catalog fingerprint match a database at "
    "head: nothing to do, verified without loading the scripts (`heads`, `objects`)",
    "fastpath.skipped": "the no-op fast path does not apply (`reason`); the full pipeline runs",
    "scripts.from_snapshot": "the revision graph came from the snapshot (its sources are "
    "unchanged): no worker imported the revision files (`revisions`)",
    # --- wait --------------------------------------------------------------------------------
    "wait.retrying": "a transient connection error; the next attempt follows after `sleep_s`",
    "wait.connected": "the database accepted a connection (`attempts`, `server_version`)",
    "wait.gave_up": "transient connection errors lasted until `--wait-timeout` (exit 3)",
    "wait.failed": "a permanent connection error: authentication, unknown database, missing "
    "driver (exit 4)",
    # --- lock --------------------------------------------------------------------------------
    "lock.waiting": "another runner holds the migration lock; repeated while waiting, with "
    "its `holder`",
    "lock.acquired": "the migration lock is held by this run (`waited_ms`)",
    "lock.released": "the migration lock was released",
    "lock.release_failed": "the lock could not be released explicitly; the server frees it "
    "when the session ends",
    "lock.timed_out": "another runner held the lock until `--lock-timeout` (exit 5)",
    "lock.lost": "the lock's session ended while working; the revision in progress was rolled "
    "back (exit 5)",
    # --- revisions ---------------------------------------------------------------------------
    "revisions.branches_labelled": "several script heads with distinct branch labels, all upgraded",
    "revisions.multiple_heads_allowed": "several unlabelled script heads, all upgraded "
    "because of `--allow-multiple-heads`",
    "revisions.unknown_allowed": "the database is stamped with a revision the scripts do not "
    "know; migrations skipped (`--allow-unknown-revision`)",
    "revisions.not_writable": "revisions are pending or objects missing, but the server is "
    "read-only or the role may not create in the schema (exit 4, before anything runs)",
    "revisions.checked": "script heads against database heads (`pending`, `refused`)",
    "revisions.refused": "multiple unlabelled heads, an unknown stamped revision or tables "
    "without a stamp (exit 6)",
    # --- adopt -------------------------------------------------------------------------------
    "adopt.replaying": "no usable snapshot: every revision is replayed to rank which one the "
    "database matches",
    "adopt.matched": "the revision an unstamped database physically matches (`exact`, `findings`)",
    "adopt.stamped": "`--adopt` stamped the database with the matched revision",
    # --- expected schema and verify ----------------------------------------------------------
    "verify.no_snapshot": "no snapshot file; the expected schema comes from elsewhere",
    "verify.snapshot_other_dialect": "the snapshot was built for another dialect and is not "
    "used (every start then replays)",
    "verify.snapshot_other_project": "the snapshot knows none of the project's revisions (a "
    "file copied from another project); it is not used, every start then replays",
    "verify.checksum_mismatch": "revision files changed since the snapshot was built; their "
    "entries are not used (`--strict-checksums`: exit 6)",
    "verify.shadow_disabled": "shadow replay skipped because of `--no-shadow`",
    "verify.shadow_unavailable": "no scratch database could be had; falling back to the next "
    "source",
    "verify.replay_failed": "the shadow replay failed (the real database untouched); falling "
    "back to the next source",
    "verify.skipped": "no expected schema for this stage: nothing to verify against",
    "verify.lock_retry": "reading the schema hit the DDL lock timeout; retrying",
    "verify.drift_found": "one difference between the expected and the physical schema",
    "verify.checked": "the physical schema was compared with the expected one (`source`, "
    "`findings`)",
    "verify.closest_revision": "a drifted database physically matches another revision best",
    "verify.failed": "objects of the stamped revision are missing and were not healed (exit 7)",
    "verify.after_upgrade_failed": "after the upgrade the database is not at head or misses "
    "objects (exit 9)",
    # --- shadow replay -----------------------------------------------------------------------
    "shadow.created": "a temporary scratch database was created for a replay",
    "shadow.revision_started": "a revision started in a shadow replay (debug)",
    "shadow.revision_applied": "a revision was applied in a shadow replay (debug)",
    "shadow.operation_skipped": "a defensive operation was skipped in a replay, as the deploy "
    "would skip it (debug)",
    "shadow.replayed": "the shadow replay reflected every requested stage",
    "shadow.stale_removed": "a scratch database left by a runner killed during a replay was "
    "dropped",
    "shadow.stale_kept": "an orphaned scratch database could not be dropped (`error`)",
    "shadow.dropped": "the temporary scratch database was dropped",
    "shadow.replay_failed": "a migration failed in a replay that could not fall back, e.g. "
    "`snapshot` (exit 8)",
    "shadow.leaked": "the real database changed while a shadow replay ran (exit 1)",
    # --- heal --------------------------------------------------------------------------------
    "heal.skipped": "missing objects left as they are because of `--on-drift warn`",
    "heal.repair_applied": "one additive repair was executed (`kind`, `table`, `ddl`)",
    "heal.table_recreated": "a missing table was re-created empty; its lost data is not restored",
    "heal.finished": "every repair was committed in one transaction (`repairs`)",
    # --- upgrade -----------------------------------------------------------------------------
    "upgrade.started": "pending revisions are being applied through env.py (`target`, `pending`, "
    "`defensive`: off, with `why`, when the database is the clean replay the snapshot saw skip "
    "nothing)",
    "upgrade.revision_started": "a revision's transaction started",
    "upgrade.still_running": "a revision is still running (a long migration is not a hang); "
    "every 5 s: `elapsed_s`, and on PostgreSQL the statement's `state`, `waiting_for`, "
    "`blocked_by` (the sessions holding the lock it waits for) and `progress`",
    "upgrade.operation_skipped": "a defensive operation found its object already there (or "
    "already gone) and did nothing",
    "upgrade.revision_applied": "a revision was committed (`duration_ms`)",
    "upgrade.lock_retry": "a revision hit the DDL lock timeout, was rolled back and is retried",
    "upgrade.finished": "every pending revision was applied (`applied`, `skipped_operations`)",
    "deploy.connection_lost": "the database connection broke during a revision (server "
    "stopped, session terminated); it never committed (exit 3)",
    "upgrade.failed": "a migration failed; its revision was rolled back, earlier ones stay "
    "(exit 8)",
    # --- snapshot ----------------------------------------------------------------------------
    "snapshot.server_started": "a throwaway PostgreSQL was started to build the snapshot on",
    "snapshot.server_fallback": "no embedded PostgreSQL; the snapshot is built on the "
    "configured server",
    "snapshot.built": "every revision's schema was replayed and recorded (`by_ddl_events`, "
    "`by_digests`: how many revisions' changes the server's DDL events told, how many a "
    "digest of every table)",
    "snapshot.written": "the snapshot file was written (`bytes`)",
    "snapshot.fresh": "`snapshot --check`: the file matches every revision file",
    # --- worker ------------------------------------------------------------------------------
    "worker.prestarted": "a worker was started ahead of its job (the database is behind head, "
    "or a snapshot build), importing Alembic and SQLAlchemy while the runner waits, locks and "
    "verifies",
    "worker.output": "a line the worker child printed on its stdout or stderr",
    "worker.log": "a stdlib logging record from the worker child (Alembic, env.py, the app)",
    "worker.sessions_cancelled": "the worker's statements were cancelled (or its sessions "
    "terminated) on the server",
    "worker.cancel_failed": "cancelling the worker's server sessions failed; the child is "
    "killed anyway",
    # --- pipeline and run --------------------------------------------------------------------
    "step.finished": "a pipeline step ended (`step`, `duration_ms`)",
    "check.pending": "`check`: revisions are pending (exit 10)",
    "launch.exec": "the lock is released; the process becomes the app (`argv`)",
    "deploy.final_heads_unknown": "the version table could not be read for the summary (debug)",
    "deploy.summary": "the run's outcome: exit code, heads before and after, step timings",
    "deploy.failed": "the default error event of a failure class without its own (exit 1)",
    "deploy.interrupted": "SIGTERM or SIGINT stopped the run (exit 130)",
    "deploy.crashed": "an unexpected error, a bug: the traceback is printed (exit 1)",
}


def markdown_table() -> str:
    """The README's "Events" table, one row per event in :data:`EVENTS` order."""
    rows = ["| event | meaning |", "| --- | --- |"]
    rows += [f"| `{name}` | {meaning} |" for name, meaning in EVENTS.items()]
    return "\n".join(rows)


#: The info events a terminal shows by default, about one line per step (``--verbose`` and the
#: JSON format show every event; warnings and errors are always shown).
HEADLINES: frozenset[str] = frozenset(
    {
        "fastpath.taken",
        "wait.connected",
        "lock.acquired",
        "adopt.stamped",
        "revisions.checked",
        "shadow.replayed",
        "verify.checked",
        "heal.repair_applied",
        "heal.finished",
        "upgrade.started",
        "upgrade.still_running",
        "upgrade.revision_applied",
        "upgrade.finished",
        "snapshot.built",
        "snapshot.written",
        "snapshot.fresh",
        "deploy.summary",
        "launch.exec",
    }
)
