"""The no-op fast path is taken only when it is safe.

A database at the snapshot's head, with the scripts and config the snapshot hashed and a
catalog identical to the clean replay's, is answered without the graph worker (no
``step.finished step=scripts``). Every other case: an edited, added or removed revision file,
an edited env.py, any drift (a dropped index, a changed column type, a missing constraint, an
extra table), a database behind head, a snapshot of another project or dialect, another version
table: ``fastpath.skipped`` and the full pipeline, which then decides as it always did.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from runner.fastpath import server_refusal
from runner.schema import reflect_schema
from runner.snapshot import load_snapshot
from tests.e2e.helpers import add_revision, chain, execute, upgrade_to
from tests.fixtures.cli import CliResult, cli_environ, parse_events, run_cli
from tests.fixtures.postgres import PostgresServer

Project = Callable[[str], Path]

HEAD = "aa0000000007"


@pytest.fixture(params=["sqlite", "postgresql"])
def deployed(request: pytest.FixtureRequest, project: Project, tmp_path: Path) -> tuple[Path, str]:
    """The ``linear`` project with a snapshot, its database migrated to head (full path)."""
    ini = project("linear")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        built = run_cli("snapshot", "--config", str(ini), env={"DATABASE_URL": url})
    else:
        make_db = request.getfixturevalue("make_db")
        url = make_db()
        built = run_cli(
            "snapshot", "--config", str(ini), "--shadow-url", make_db(), env={"DATABASE_URL": url}
        )
    assert built.returncode == ExitCode.OK, built
    first = migrate(ini, url)
    assert first.returncode == ExitCode.OK, first
    assert first.named("fastpath.skipped"), first  # an empty database: not at head
    # ... but the graph came from the snapshot: no worker imported the revision files, and
    # the upgraded database was verified by its fingerprint, not by reflecting every table.
    assert first.named("scripts.from_snapshot"), first
    (after,) = [e for e in first.named("verify.checked") if e["stage"] == "after"]
    assert after["source"] == "snapshot fingerprint", first
    return ini, url


def migrate(ini: Path, url: str, *extra: str, command: str = "migrate") -> CliResult:
    return run_cli(command, "--config", str(ini), *extra, env={"DATABASE_URL": url})


def took_fast_path(result: CliResult) -> bool:
    steps = {event.get("step") for event in result.named("step.finished")}
    if result.named("fastpath.taken"):
        assert "scripts" not in steps, "the fast path loaded the scripts"
        return True
    return False


def skipped(result: CliResult) -> str:
    (event,) = result.named("fastpath.skipped")
    return str(event["reason"])


def test_a_no_op_start_takes_the_fast_path(deployed: tuple[Path, str]) -> None:
    ini, url = deployed
    for command in ("migrate", "check"):
        result = migrate(ini, url, command=command)
        assert result.returncode == ExitCode.OK, result
        assert took_fast_path(result), result
    assert took_fast_path(
        run_cli(
            "run",
            "--config",
            str(ini),
            "--",
            "python",
            "-c",
            "print('app started')",
            env={"DATABASE_URL": url},
        )
    )


def test_the_fast_path_imports_neither_sqlalchemy_nor_alembic_on_postgresql(
    deployed: tuple[Path, str],
) -> None:
    """A third of a no-op start was importing SQLAlchemy to parse the URL; libpq parses it."""
    ini, url = deployed
    if not url.startswith("postgresql"):
        pytest.skip("SQLite's fast path connects through SQLAlchemy's engine")
    probe = (
        "import sys, runner.cli\n"
        "code = runner.cli.main(['check', '--config', sys.argv[1]])\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'alembic'})\n"
        "print(code, *loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ini)],
        env=cli_environ({"DATABASE_URL": url}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.split() == ["0"], result.stderr
    assert any(e["event"] == "fastpath.taken" for e in parse_events(result.stderr)), result.stderr


def test_no_fast_path_flag_runs_the_full_pipeline(deployed: tuple[Path, str]) -> None:
    ini, url = deployed
    result = migrate(ini, url, "--no-fast-path")
    assert result.returncode == ExitCode.OK, result
    assert not result.named("fastpath.taken") and not result.named("fastpath.skipped")
    assert "scripts" in {event.get("step") for event in result.named("step.finished")}


def _edit_revision(ini: Path) -> None:
    path = next((ini.parent / "migrations" / "versions").glob("aa0000000003_*.py"))
    path.write_text(path.read_text() + "\n# edited after the snapshot\n")


def _add_revision(ini: Path) -> None:
    add_revision(
        ini,
        "aa0000000008",
        HEAD,
        'op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True))',
    )


def _remove_revision(ini: Path) -> None:
    next((ini.parent / "migrations" / "versions").glob(f"{HEAD}_*.py")).unlink()


def _edit_env(ini: Path) -> None:
    env = ini.parent / "migrations" / "env.py"
    env.write_text(env.read_text() + "\n# edited after the snapshot\n")


SCRIPT_CHANGES = {
    "edited revision file": (_edit_revision, ExitCode.OK),
    "added revision file": (_add_revision, ExitCode.OK),
    # The full path refuses a database stamped with a revision the scripts no longer have.
    "removed revision file": (_remove_revision, ExitCode.REVISION_GRAPH),
    "edited env.py": (_edit_env, ExitCode.OK),
}


@pytest.mark.parametrize("change", sorted(SCRIPT_CHANGES), ids=str)
def test_changed_scripts_take_the_full_path(deployed: tuple[Path, str], change: str) -> None:
    ini, url = deployed
    edit, code = SCRIPT_CHANGES[change]
    edit(ini)
    result = migrate(ini, url)
    assert "scripts or the Alembic config changed" in skipped(result), result
    assert not result.named("scripts.from_snapshot"), result  # the worker reads them again
    assert result.returncode == code, result
    if change == "added revision file":
        assert [a["revision"] for a in result.named("upgrade.revision_applied")] == [
            "aa0000000008"
        ], result


DRIFT = {
    "dropped index": ("DROP INDEX ix_files_user_id", True),
    "dropped foreign key": ("ALTER TABLE analyses DROP CONSTRAINT fk_analyses_file_id_files", True),
    "changed column type": ("ALTER TABLE analyses ALTER COLUMN kind TYPE varchar(64)", False),
    "dropped column": ("ALTER TABLE users DROP COLUMN name", True),
    "extra table": ("CREATE TABLE scratch_notes (id integer PRIMARY KEY)", False),
}


@pytest.mark.parametrize("damage", sorted(DRIFT), ids=str)
def test_any_drift_takes_the_full_path(deployed: tuple[Path, str], damage: str) -> None:
    ini, url = deployed
    statement, healed = DRIFT[damage]
    if url.startswith("sqlite") and ("ALTER COLUMN" in statement or "CONSTRAINT" in statement):
        pytest.skip("SQLite cannot alter a column or drop a constraint in place")
    execute(url, statement)
    result = migrate(ini, url)
    assert "the catalog differs" in skipped(result), result
    assert result.returncode == ExitCode.OK, result
    if healed:
        assert result.named("heal.repair_applied"), result
        # The heal made the catalog identical to a clean upgrade's: fast again.
        assert took_fast_path(migrate(ini, url))


def test_a_database_behind_head_takes_the_full_path(
    project: Project, make_db: Callable[[], str]
) -> None:
    ini = project("linear")
    url = make_db()
    run_cli("snapshot", "--config", str(ini), "--shadow-url", make_db(), env={"DATABASE_URL": url})
    assert migrate(ini, url).returncode == ExitCode.OK
    execute(url, "UPDATE alembic_version SET version_num = 'aa0000000006'", "DROP TABLE settings")
    result = migrate(ini, url)
    assert "not at the snapshot's head" in skipped(result), result
    assert [a["revision"] for a in result.named("upgrade.revision_applied")] == [HEAD]


def test_a_snapshot_of_another_project_is_not_trusted(
    deployed: tuple[Path, str], project: Project, tmp_path: Path
) -> None:
    ini, url = deployed
    other = project("fidelity")
    built = run_cli(
        "snapshot", "--config", str(other), env={"DATABASE_URL": f"sqlite:///{tmp_path}/o.db"}
    )
    assert built.returncode == ExitCode.OK, built
    shutil.copy(other.parent / "alembic-deploy-snapshot.json", ini.parent)
    result = migrate(ini, url)
    assert not took_fast_path(result), result
    assert result.named("fastpath.skipped"), result
    # ... and the full path says why it does not use it, instead of ignoring it silently.
    assert result.named("verify.snapshot_other_project"), result
    assert result.returncode == ExitCode.OK, result


def test_a_snapshot_of_another_dialect_is_not_trusted(
    project: Project, make_db: Callable[[], str], tmp_path: Path
) -> None:
    ini = project("linear")
    built = run_cli(
        "snapshot", "--config", str(ini), env={"DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    )
    assert built.returncode == ExitCode.OK, built
    url = make_db()
    assert migrate(ini, url).returncode == ExitCode.OK
    result = migrate(ini, url)
    assert "built on sqlite, not postgresql" in skipped(result), result
    assert result.returncode == ExitCode.OK, result


def test_another_version_table_is_not_trusted(deployed: tuple[Path, str]) -> None:
    ini, url = deployed
    result = migrate(ini, url, "--version-table", "other_version")
    assert "another version table" in skipped(result), result


@pytest.mark.parametrize(
    ("banner", "version", "trusted"),
    [
        ("PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu", (15, 18), True),
        ("PostgreSQL 18.1 on x86_64-pc-linux-gnu, compiled by gcc", (18, 1), True),
        ("PostgreSQL 11.22 on x86_64-pc-linux-gnu", (11, 22), False),
        ("PostgreSQL 27.0 on x86_64-pc-linux-gnu", (27, 0), False),
        ("CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu)", (13, 0), False),
        ("PostgreSQL 8.0.2 on i686-pc-linux-gnu, Redshift 1.0.77467", (8, 0), False),
        ("PostgreSQL 11.2-YB-2.18.0.0-b0 on x86_64-pc-linux-gnu", (11, 2), False),
    ],
)
def test_only_known_servers_are_fingerprinted(
    banner: str, version: tuple[int, ...], trusted: bool
) -> None:
    assert (server_refusal(banner, version) is None) is trusted


def test_the_default_snapshot_server_gives_a_fast_start(
    project: Project, make_db: Callable[[], str]
) -> None:
    """``snapshot`` without --shadow-url builds on the embedded PostgreSQL (18), whatever the
    target runs: the fingerprint must not depend on the server's major version."""
    ini = project("linear")
    url = make_db()
    built = run_cli("snapshot", "--config", str(ini), env={"DATABASE_URL": url})
    assert built.returncode == ExitCode.OK, built
    if not built.named("snapshot.server_started"):
        pytest.skip("no embedded PostgreSQL here: the snapshot was built on the target")
    assert migrate(ini, url).returncode == ExitCode.OK
    result = migrate(ini, url)
    assert took_fast_path(result), result


@pytest.mark.parametrize("name", ["altered", "ddl_events", "fidelity", "hostile_names", "linear"])
def test_the_incremental_snapshot_records_what_a_full_reflection_reads(
    project: Project, make_db: Callable[[], str], name: str
) -> None:
    """The build re-reads only the tables a revision changed (catalog digests); each
    revision's recorded schema, server text included, equals a full reflection of a clean
    upgrade to it. ``altered`` changes what other objects' catalog text says: a renamed
    column or table that another table's foreign key names, comments, sequence options, the
    options of an index behind a constraint."""
    ini = project(name)
    target = make_db()
    built = run_cli(
        "snapshot", "--config", str(ini), "--shadow-url", make_db(), env={"DATABASE_URL": target}
    )
    assert built.returncode == ExitCode.OK, built
    snapshot = load_snapshot(ini.parent / "alembic-deploy-snapshot.json")
    assert snapshot is not None
    for revision in chain(ini):
        url = make_db()
        upgrade_to(ini, url, revision)
        recorded = snapshot.schema_for((revision,))
        assert recorded is not None
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                actual = reflect_schema(
                    conn, schemas=recorded.schemas, exclude_tables=("alembic_version",)
                )
        finally:
            engine.dispose()
        assert recorded.to_dict() == actual.to_dict(), revision


@pytest.fixture
def plain_shadow(pg_cluster: PostgresServer) -> Iterator[str]:
    """A database owned by a role that may not create event triggers (no superuser)."""
    role = f"plain_{uuid.uuid4().hex[:8]}"
    name = f"plain_{uuid.uuid4().hex[:10]}"
    admin = pg_cluster.url("postgres")
    execute(admin, f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}' NOSUPERUSER")
    pg_cluster.create_database(name)
    execute(admin, f"ALTER DATABASE {name} OWNER TO {role}")
    try:
        yield pg_cluster.url(name, user=role, password=f"pw-{role}")
    finally:
        pg_cluster.drop_database(name)
        execute(admin, f"DROP ROLE IF EXISTS {role}")


def test_ddl_events_and_digests_record_the_same_schemas(
    project: Project, make_db: Callable[[], str], plain_shadow: str, tmp_path: Path
) -> None:
    """A superuser's build learns what each revision touched from DDL event triggers, a
    plain role's from digests of every table: the same schema for every revision. Where
    the events cannot tell (DDL through another connection, a renamed schema, a schema made
    after the first revision), the superuser's build digests too."""
    ini = project("ddl_events")
    target = make_db()
    built: dict[str, object] = {}
    for who, shadow in (("superuser", make_db()), ("plain", plain_shadow)):
        result = run_cli(
            "snapshot", "--config", str(ini), "--shadow-url", shadow, env={"DATABASE_URL": target}
        )
        assert result.returncode == ExitCode.OK, result
        (summary,) = result.named("snapshot.built")
        copy = tmp_path / f"{who}.json"
        shutil.copy(ini.parent / "alembic-deploy-snapshot.json", copy)
        built[who] = (summary["by_ddl_events"], summary["by_digests"], load_snapshot(copy))
    revisions = chain(ini)
    events, digests, superuser = built["superuser"]  # type: ignore[misc]
    if (events, digests) == (0, len(revisions)):
        pytest.skip("the test server's role may not create event triggers")
    # Three revisions the events cannot follow: another connection's DDL, a renamed schema,
    # a schema made after the first revision (the schemas are listed again).
    assert (events, digests) == (len(revisions) - 3, 3), built
    assert built["plain"][:2] == (0, len(revisions)), built  # type: ignore[index]
    plain = built["plain"][2]  # type: ignore[index]
    for revision in revisions:
        recorded = superuser.schema_for((revision,))
        assert recorded is not None
        assert recorded.to_dict() == plain.schema_for((revision,)).to_dict(), revision
    head = superuser.schema_for((revisions[-1],))
    assert ("later", "ledger") in head.tables, sorted(head.tables)


def test_a_snapshot_build_prestarts_its_worker_in_the_replays_environment(
    project: Project, make_db: Callable[[], str]
) -> None:
    """``snapshot`` starts its worker before it connects; env.py (which reads DATABASE_URL)
    still runs against the scratch database, never the real one. ``--check`` replays
    nothing and starts no worker."""
    ini = project("linear_envurl")
    target, shadow = make_db(), make_db()
    env = {"DATABASE_URL": target}
    built = run_cli("snapshot", "--config", str(ini), "--shadow-url", shadow, env=env)
    assert built.returncode == ExitCode.OK, built
    assert built.named("worker.prestarted"), built
    snapshot = load_snapshot(ini.parent / "alembic-deploy-snapshot.json")
    assert snapshot is not None and snapshot.schema_for((HEAD,)) is not None
    engine = create_engine(target, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert reflect_schema(conn, exclude_tables=()).tables == {}
    finally:
        engine.dispose()
    checked = run_cli("snapshot", "--config", str(ini), "--check", env=env)
    assert checked.returncode == ExitCode.OK, checked
    assert checked.named("snapshot.fresh") and not checked.named("worker.prestarted"), checked


def test_a_prestarted_worker_runs_env_py_in_the_deploys_environment(
    project: Project, make_db: Callable[[], str]
) -> None:
    """The database is behind head: the upgrade's worker starts while the runner verifies.
    It was started with the runner's environment; env.py must still see the deploy's own
    (PGOPTIONS carrying the DDL lock_timeout, PGAPPNAME tagging its sessions)."""
    ini = project("linear_envurl")
    add_revision(
        ini,
        "aa0000000008",
        HEAD,
        """
        op.execute(
            "CREATE TABLE probe AS SELECT "
            "current_setting('lock_timeout') AS lock_timeout, "
            "current_setting('application_name') AS application_name"
        )
        """,
    )
    url = make_db()
    env = {"DATABASE_URL": url}
    built = run_cli("snapshot", "--config", str(ini), "--shadow-url", make_db(), env=env)
    assert built.returncode == ExitCode.OK, built
    result = run_cli("migrate", "--config", str(ini), "--ddl-lock-timeout", "7", env=env)
    assert result.returncode == ExitCode.OK, result
    assert skipped(result) == "the database has no version table"
    assert result.named("worker.prestarted"), result
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT lock_timeout, application_name FROM probe").one()
    finally:
        engine.dispose()
    assert row[0] == "7s", row
    assert row[1].startswith("alembic-deploy-worker-"), row
    # At head: nothing pending, so no worker is started ahead (and the fast path answers).
    again = run_cli("migrate", "--config", str(ini), env=env)
    assert took_fast_path(again) and not again.named("worker.prestarted"), again
