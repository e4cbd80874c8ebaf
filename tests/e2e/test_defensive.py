"""Defensive operations, one per kind: skipped when the database already has the result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import ExitCode
from tests.e2e.helpers import chain, db_revisions, execute, upgrade_to
from tests.fixtures.cli import run_cli

Project = Callable[[str], Path]


@pytest.mark.parametrize(
    ("at", "prepare", "operation", "obj"),
    [
        # revision 4 creates health_metrics and its index; revision 5 adds users.last_login_at
        (
            3,
            "CREATE TABLE health_metrics (id serial primary key, file_id integer, "
            "metric varchar(64) not null, value double precision, recorded_at timestamptz)",
            "create_table",
            "health_metrics",
        ),
        (
            3,
            "CREATE TABLE health_metrics (id serial primary key, file_id integer, "
            "metric varchar(64) not null, value double precision, recorded_at timestamptz); "
            "CREATE INDEX ix_health_metrics_file_id ON health_metrics (file_id)",
            "create_index",
            "ix_health_metrics_file_id",
        ),
        (
            4,
            "CREATE INDEX ix_users_last_login_at ON users (email)",
            "create_index",
            "ix_users_last_login_at",
        ),
    ],
)
def test_create_operations_skip_existing_objects(
    pg_url: str, project: Project, at: int, prepare: str, operation: str, obj: str
) -> None:
    ini = project("linear")
    upgrade_to(ini, pg_url, chain(ini)[at - 1])
    execute(pg_url, *prepare.split("; "))
    result = run_cli(
        "migrate", "--config", str(ini), "--on-drift", "warn", env={"DATABASE_URL": pg_url}
    )
    assert result.returncode == ExitCode.OK, result
    skipped = {(e["operation"], e["object"]) for e in result.named("upgrade.operation_skipped")}
    assert (operation, obj) in skipped
    assert db_revisions(pg_url) == [chain(ini)[-1]]
