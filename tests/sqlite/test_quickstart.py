"""The README's first command, exactly as written, on a fresh copy of the repository."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.helpers import chain
from tests.fixtures.cli import cli_environ
from tests.fixtures.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


def first_command() -> str:
    """The first command line of the README's first ``sh`` block."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    return next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[1].endswith(".venv/bin/pytest")
    assert ".ci/run" not in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci  # CI runs the README's test command as written


def _copy_repository(target: Path) -> None:
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = ROOT / name
        if not source.is_file():
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())
        destination.chmod(source.stat().st_mode)


def _health(port: int) -> tuple[int, dict[str, object]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}
    except OSError:
        return None


@pytest.mark.slow
def test_quick_start_command_migrates_sqlite_and_serves_health(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _copy_repository(repo)
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALEMBIC_", "DATABASE_URL", "VIRTUAL_ENV"))
    }
    env["PORT"] = str(port)
    log = tmp_path / "quickstart.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", first_command()],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 600  # a fresh venv and pip install come first
            while (answer := _health(port)) is None or answer[0] != 200:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            assert answer[1]["status"] == "ok"
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    output = log.read_text()
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    names = [event.get("event") for event in events]
    assert "deploy.summary" in names and "launch.exec" in names, output
    assert "app.stopped" in names, output  # the app handled SIGTERM and shut down cleanly
    database = repo / "examples" / "app" / "app.db"
    with sqlite3.connect(database) as conn:
        (head,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert head == chain(repo / "examples" / "app" / "alembic.ini")[-1]


def _console_events(text: str) -> list[tuple[str, str]]:
    """(level, event) of each console line: ``[info     ] wait.connected  key=value``."""
    found = []
    for line in text.splitlines():
        if line.startswith("[") and "] " in line:
            level, rest = line[1:].split("] ", 1)
            found.append((level.strip(), rest.split()[0]))
    return found


def test_readme_drift_demo_is_the_real_output(tmp_path: Path) -> None:
    """The README's drift demo, run as written (the app replaced by a no-op), prints the
    events the README shows, in order, one line per step, and nothing else."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("```\n[info     ] wait.connected", 1)[1].split("```", 1)[0]
    app = tmp_path / "app"
    subprocess.run(["cp", "-r", str(ROOT / "examples" / "app"), str(app)], check=True)
    for name in app.glob("app.db*"):
        name.unlink()
    deploy = [str(Path(sys.executable).parent / "alembic-deploy"), "run", "--log-format", "console"]
    no_op_app = ["--", sys.executable, "-c", "pass"]
    env = cli_environ()
    first = subprocess.run(
        [*deploy, *no_op_app], cwd=app, env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    sqlite3.connect(app / "app.db").execute("DROP TABLE health_metrics")
    demo = subprocess.run(
        [*deploy, *no_op_app], cwd=app, env=env, capture_output=True, text=True, check=False
    )
    assert demo.returncode == 0, demo.stderr
    assert _console_events(demo.stderr) == [("info", "wait.connected"), *_console_events(shown)]
    assert "run_id=" not in demo.stderr and "step.finished" not in demo.stderr
    verbose = subprocess.run(
        [*deploy, "--verbose", *no_op_app], cwd=app, env=env, capture_output=True, text=True
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "step.finished" in verbose.stderr and "run_id=" in verbose.stderr
