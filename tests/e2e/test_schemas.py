"""Every schema the migrations touch is verified and healed; the shadow reproduces the schemas
of the target's ``search_path``; a ``--shadow-url`` is never the target nor somebody's data.

A table the migrations created in a second schema (``billing.invoices``) that is dropped by
hand used to go unnoticed (only the default schema was reflected). A role whose
``search_path`` starts with a schema a DBA created used to be unable to deploy at all: the
shadow database had no such schema, so the replay failed where plain Alembic works.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from tests.e2e.helpers import chain, db_revisions, execute, physical, tables, upgrade_to
from tests.fixtures.cli import run_cli
from tests.fixtures.postgres import PostgresServer

Project = Callable[[str], Path]


def _billing_tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names(schema="billing"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("source", ["shadow", "snapshot"])
def test_drift_in_a_second_schema_is_found_and_healed(
    source: str, project: Project, pg_url: str, make_db: Callable[[], str]
) -> None:
    ini = project("two_schemas")
    env = {"DATABASE_URL": pg_url}
    if source == "snapshot":
        built = run_cli("snapshot", "--config", str(ini), "--shadow-url", make_db())
        assert built.returncode == ExitCode.OK, built
    first = run_cli("migrate", "--config", str(ini), env=env)
    assert first.returncode == ExitCode.OK, first
    assert _billing_tables(pg_url) == {"invoices", "invoice_lines"}

    execute(
        pg_url, "DROP TABLE billing.invoice_lines", "DROP INDEX billing.ix_invoices_customer_id"
    )
    check = run_cli("check", "--config", str(ini), env=env)
    assert check.returncode == ExitCode.DRIFT, check
    assert check.one("verify.checked")["source"] == source
    found = {(e["kind"], e["table"], e["object"]) for e in check.named("verify.drift_found")}
    assert ("missing_table", "billing.invoice_lines", None) in found or any(
        kind == "missing_table" and "invoice_lines" in str(table) for kind, table, _ in found
    ), found
    assert any(
        kind == "missing_index" and obj == "ix_invoices_customer_id" for kind, _, obj in found
    ), found

    healed = run_cli("migrate", "--config", str(ini), env=env)
    assert healed.returncode == ExitCode.OK, healed
    assert _billing_tables(pg_url) == {"invoices", "invoice_lines"}
    again = run_cli("check", "--config", str(ini), env=env)
    assert again.returncode == ExitCode.OK, again


@pytest.fixture
def role_with_search_path(pg_cluster: PostgresServer) -> Iterator[str]:
    """A database owned by a CREATEDB role whose search_path is ``app`` (made by a DBA)."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    password = f"pw-{role}"
    name = f"searchpath_{uuid.uuid4().hex[:10]}"
    admin = pg_cluster.url("postgres")
    execute(admin, f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CREATEDB NOSUPERUSER")
    execute(admin, f"ALTER ROLE {role} SET search_path = app")
    pg_cluster.create_database(name)
    execute(admin, f"ALTER DATABASE {name} OWNER TO {role}")
    execute(pg_cluster.url(name), f"CREATE SCHEMA app AUTHORIZATION {role}")
    try:
        yield pg_cluster.url(name, user=role, password=password)
    finally:
        pg_cluster.drop_database(name)
        execute(admin, f"DROP ROLE IF EXISTS {role}")


def test_a_search_path_that_starts_with_a_dba_schema_deploys_and_verifies(
    project: Project, role_with_search_path: str
) -> None:
    ini = project("linear")
    pg_url = role_with_search_path
    env = {"DATABASE_URL": pg_url}
    result = run_cli("migrate", "--config", str(ini), env=env)
    assert result.returncode == ExitCode.OK, result
    assert result.named("verify.replay_failed") == []
    after = [e for e in result.named("verify.checked") if e["stage"] == "after"]
    assert [(e["source"], e["findings"]) for e in after] == [("shadow", 0)]
    engine = create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            in_app = set(inspect(conn).get_table_names(schema="app"))
    finally:
        engine.dispose()
    assert "users" in in_app
    assert db_revisions(pg_url) == [chain(ini)[-1]]

    status = run_cli("status", "--json", "--config", str(ini), env=env)
    assert status.returncode == ExitCode.OK, status
    assert json.loads(status.stdout)["drift"] == []
    assert status.one("verify.checked")["source"] == "shadow"

    execute(pg_url, "DROP INDEX app.ix_files_user_id")
    check = run_cli("check", "--config", str(ini), env=env)
    assert check.returncode == ExitCode.DRIFT, check
    assert {e["object"] for e in check.named("verify.drift_found")} == {"ix_files_user_id"}


# --- a --shadow-url is scratch space: never the target, never somebody's data ---------------


def _other_spelling(url: str) -> str:
    """The same database, named differently: postgres:// and localhost for 127.0.0.1."""
    return url.replace("postgresql+psycopg2://", "postgres://").replace("127.0.0.1", "localhost")


@pytest.mark.parametrize("command", ["status", "check", "migrate"])
def test_a_shadow_url_naming_the_target_is_refused_before_anything_is_touched(
    command: str, project: Project, pg_url: str
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    before = physical(pg_url)
    env = {"DATABASE_URL": pg_url, "ALEMBIC_DEPLOY_SHADOW_URL": _other_spelling(pg_url)}
    result = run_cli(command, "--config", str(ini), env=env)
    assert result.returncode == ExitCode.USAGE, result
    assert "is the database being deployed" in result.one("config.invalid")["error"]
    assert physical(pg_url) == before
    assert db_revisions(pg_url) == [chain(ini)[-1]]


def test_snapshot_refuses_a_shadow_url_that_is_the_configured_database(
    project: Project, pg_url: str
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, "head")
    before = physical(pg_url)
    result = run_cli(
        "snapshot",
        "--config",
        str(ini),
        "--shadow-url",
        _other_spelling(pg_url),
        env={"DATABASE_URL": pg_url},
    )
    assert result.returncode == ExitCode.USAGE, result
    assert physical(pg_url) == before


def test_a_shadow_url_holding_data_is_refused_and_an_empty_one_is_claimed_and_reused(
    project: Project, pg_url: str, make_db: Callable[[], str]
) -> None:
    ini = project("linear")
    other_tenant = make_db()
    execute(
        other_tenant, "CREATE TABLE orders (id int primary key)", "INSERT INTO orders VALUES (1)"
    )
    env = {"DATABASE_URL": pg_url, "ALEMBIC_DEPLOY_SHADOW_URL": other_tenant}
    refused = run_cli("migrate", "--config", str(ini), env=env)
    assert refused.returncode == ExitCode.USAGE, refused
    assert "not a shadow alembic-deploy created" in refused.one("config.invalid")["error"]
    assert tables(other_tenant) == {"orders"}
    assert db_revisions(pg_url) == []

    scratch = make_db()
    env["ALEMBIC_DEPLOY_SHADOW_URL"] = scratch
    upgrade_to(ini, pg_url, chain(ini)[3])
    for _ in range(2):  # claimed on first use, recognised (and emptied) on the next
        result = run_cli("check", "--config", str(ini), env=env)
        assert result.returncode == ExitCode.PENDING, result
        assert result.one("verify.checked")["source"] == "shadow"
