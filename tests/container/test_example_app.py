"""The example app's contract, run as a plain process (no Docker): examples/app/app.py.

``/health`` is 200 only at head, SIGTERM stops it with exit 0. The image runs the same file.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli import cli_environ, run_cli
from tests.fixtures.postgres import free_port

APP = Path(__file__).resolve().parents[2] / "examples" / "app"


def _health(port: int) -> tuple[int, dict[str, object]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def _wait_for_answer(port: int, process: subprocess.Popen[str]) -> tuple[int, dict[str, object]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = _health(port)
        if answer is not None:
            return answer
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("the app did not answer within 30 s")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A copy of the example app; its default database is a SQLite file inside it."""
    target = tmp_path / "app"
    shutil.copytree(APP, target, ignore=shutil.ignore_patterns("__pycache__", "*.db", "*.lock"))
    return target


StartApp = Callable[..., tuple[subprocess.Popen[str], int]]


@pytest.fixture
def start_app(app_dir: Path) -> Iterator[StartApp]:
    """Starts ``python3 app.py`` in ``app_dir`` on a free PORT; kills what is left afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=app_dir,
            env=cli_environ({"PORT": str(port), **(env or {})}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process, port

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_health_is_503_until_the_database_is_at_head(app_dir: Path, start_app: StartApp) -> None:
    process, port = start_app()

    status, body = _wait_for_answer(port, process)
    assert (status, body["status"]) == (503, "not at head")

    result = run_cli("--config", str(app_dir / "alembic.ini"), "migrate")
    assert result.returncode == 0, result.stderr
    status, body = _wait_for_answer(port, process)
    assert (status, body["status"]) == (200, "ok")
    assert body["db_heads"] == body["script_heads"]


def test_health_is_503_when_the_database_is_unreachable(start_app: StartApp) -> None:
    dead = free_port()
    process, port = start_app({"DATABASE_URL": f"postgresql://u:secret-pw@127.0.0.1:{dead}/db"})

    status, body = _wait_for_answer(port, process)

    assert (status, body["status"]) == (503, "database unavailable")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert "secret-pw" not in stderr


def test_sigterm_stops_the_app_with_exit_0(start_app: StartApp) -> None:
    process, port = start_app()
    _wait_for_answer(port, process)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=10) == 0
    _, stderr = process.communicate()
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert events == ["app.listening", "app.stopping", "app.stopped"]
