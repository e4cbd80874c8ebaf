"""The distributable: a wheel built from the repository installs into a fresh virtualenv and
deploys the example app there, with nothing of the source tree on its path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_built_wheel_installs_and_deploys_the_example_app(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("alembic_deploy-*-py3-none-any.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, capture_output=True
    )
    app = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "app", app, ignore=shutil.ignore_patterns("*.db", "*.lock"))
    result = subprocess.run(
        [str(venv / "bin" / "alembic-deploy"), "--log-format", "json", "migrate"],
        cwd=app,
        env={"PATH": str(venv / "bin"), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"deploy.summary"' in result.stderr
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import runner; print(runner.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in located.stdout  # the installed copy, not the source tree
    assert (app / "app.db").exists()
