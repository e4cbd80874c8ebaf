"""The README's CI and probe recipe, run on the example app (SQLite): `snapshot`, then
`snapshot --check` and `check` pass (without a scratch database); an edited revision fails
`snapshot --check` with exit 7, and so does drift in `check`."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from runner.errors import ExitCode
from tests.fixtures.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_ci_and_probe_recipe_on_the_example_app(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "app", app, ignore=shutil.ignore_patterns("*.db", "*.lock"))
    assert run_cli("snapshot", cwd=app).returncode == ExitCode.OK
    assert run_cli("migrate", cwd=app).returncode == ExitCode.OK
    fresh = run_cli("snapshot", "--check", cwd=app)
    assert fresh.returncode == ExitCode.OK, fresh
    probe = run_cli("check", cwd=app)
    assert probe.returncode == ExitCode.OK, probe
    assert probe.named("shadow.created") == []  # a probe never builds a scratch database
    tables = [
        name
        for (name,) in sqlite3.connect(app / "app.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'alembic%'"
        )
    ]
    with sqlite3.connect(app / "app.db") as conn:
        conn.execute(f'DROP TABLE "{sorted(tables)[-1]}"')
    assert run_cli("check", cwd=app).returncode == ExitCode.DRIFT
    revision = sorted((app / "migrations" / "versions").glob("*.py"))[0]
    revision.write_text(revision.read_text() + "\n# edited\n")
    assert run_cli("snapshot", "--check", cwd=app).returncode == ExitCode.DRIFT


def test_the_ci_yaml_recipes_run_the_commands_tested_here() -> None:
    """Every alembic-deploy command in the README's CI YAML is one this file runs above."""
    readme = (ROOT / "README.md").read_text()
    blocks = [part.split("```", 1)[0] for part in readme.split("```yaml\n")[1:]]
    ci = [b for b in blocks if "alembic-deploy" in b]
    assert len(ci) == 2, "a GitHub Actions and a GitLab CI recipe"
    commands = {
        "alembic-deploy " + line.split("alembic-deploy ", 1)[1].strip()
        for block in ci
        for line in block.splitlines()
        if "alembic-deploy " in line and "install" not in line
    }
    assert commands == {"alembic-deploy snapshot --check", "alembic-deploy check"}
