"""The reference image, built from the project's Dockerfile and run against real PostgreSQL.

Each test starts containers on the host network (``docker run --network host``) with its own
``PORT`` and a fresh database from ``pg_url``. Needs a Docker engine: see tests/fixtures/docker.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter

import pytest
from docker.models.images import Image
from sqlalchemy.engine import make_url

from tests.e2e.helpers import chain, db_revisions
from tests.fixtures.docker import (
    APP_DIR,
    Containers,
    events,
    logs,
    wait_until_healthy,
)
from tests.fixtures.postgres import free_port

pytestmark = pytest.mark.container

APP_INI = APP_DIR / "alembic.ini"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_image_migrates_then_execs_the_app_as_pid_1(
    containers: Containers, pg_url: str, app_image: Image
) -> None:
    """The deploy path: migrations applied, app healthy, and the app itself is PID 1.

    A shell or the runner left as PID 1 would swallow ``docker stop``'s SIGTERM.
    """
    port = free_port()
    container = containers.run(environment={"DATABASE_URL": pg_url, "PORT": str(port)})

    body = wait_until_healthy(container, port)

    assert body["status"] == "ok"
    assert db_revisions(pg_url) == [chain(APP_INI)[-1]]
    processes = container.top()["Processes"]
    assert [p[-1] for p in processes] == ["python3 app.py"], processes
    exit_code, output = container.exec_run(["cat", "/proc/1/cmdline"])
    assert exit_code == 0
    assert output.split(b"\0")[:-1] == [b"python3", b"app.py"]
    names = [e["event"] for e in events(container)]
    assert "launch.exec" in names
    assert names.index("deploy.summary") < names.index("app.listening")
    # The image's HEALTHCHECK command, run now rather than after its 10 s interval.
    healthcheck = app_image.attrs["Config"]["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD"
    exit_code, output = container.exec_run(healthcheck[1:])
    assert exit_code == 0, output


def test_docker_stop_delivers_sigterm_and_the_app_exits_0(
    containers: Containers, pg_url: str
) -> None:
    """``docker stop`` sends SIGTERM; an app that ignored it would be killed after the timeout."""
    port = free_port()
    container = containers.run(environment={"DATABASE_URL": pg_url, "PORT": str(port)})
    wait_until_healthy(container, port)

    started = time.monotonic()
    container.stop(timeout=20)
    elapsed = time.monotonic() - started

    assert container.wait(timeout=30)["StatusCode"] == 0
    assert elapsed < 5, f"stop took {elapsed:.1f}s: SIGTERM not handled?"
    stopping = [e for e in events(container) if e["event"] == "app.stopping"]
    assert stopping == [{"event": "app.stopping", "signal": "SIGTERM"}]


def test_two_containers_at_once_migrate_once(containers: Containers, pg_url: str) -> None:
    """Two replicas starting together on an empty database: one migrates, both serve."""
    ports = [free_port(), free_port()]
    started = [
        containers.run(environment={"DATABASE_URL": pg_url, "PORT": str(port)}) for port in ports
    ]

    for container, port in zip(started, ports, strict=True):
        wait_until_healthy(container, port)

    applied = Counter(
        e["revision"]
        for container in started
        for e in events(container)
        if e["event"] == "upgrade.revision_applied"
    )
    assert applied == Counter(chain(APP_INI)), applied
    per_container = [
        sum(e["event"] == "upgrade.revision_applied" for e in events(c)) for c in started
    ]
    assert sorted(per_container) == [0, len(chain(APP_INI))]


def test_wrong_password_exits_4_without_starting_the_app(
    containers: Containers, pg_url: str
) -> None:
    """An authentication failure is permanent: exit 4 at once, no app, no password in logs."""
    password = "wrong-pw-7c1e9b"
    url = make_url(pg_url).set(password=password).render_as_string(hide_password=False)
    port = free_port()
    started = time.monotonic()
    container = containers.run(environment={"DATABASE_URL": url, "PORT": str(port)})

    result = container.wait(timeout=120)

    assert result["StatusCode"] == 4
    assert time.monotonic() - started < 30, "a permanent error must not wait for the deadline"
    names = [e["event"] for e in events(container)]
    assert "launch.exec" not in names
    assert "app.listening" not in names
    assert not _listening(port)
    output = logs(container)
    assert password not in output
    assert "pg-test-pw" not in output


def test_image_runs_as_non_root_without_a_compiler(
    containers: Containers, app_image: Image
) -> None:
    """The final stage carries the venv and the app only: no build tools, no root."""
    user = app_image.attrs["Config"]["User"]
    assert user and user.split(":")[0] not in ("0", "root")
    probe = (
        "import json, os, shutil; print(json.dumps({'uid': os.getuid(), 'tools': "
        "[t for t in ('gcc', 'cc', 'c++', 'g++', 'clang', 'make', 'ld') if shutil.which(t)]}))"
    )
    container = containers.run(entrypoint=["python3", "-c", probe])

    assert container.wait(timeout=60)["StatusCode"] == 0
    report = json.loads(logs(container, stderr=False).strip().splitlines()[-1])
    assert report["uid"] != 0
    assert report["tools"] == []


def test_entrypoint_passes_arguments_untouched(containers: Containers) -> None:
    """``exec alembic-deploy run -- "$@"``: no word splitting, globbing or lost empty strings.

    No DATABASE_URL: the app's default, a SQLite file in its (writable) directory.
    """
    args = ["a b", "", "it's", "*", "$HOME", "--config", "x"]
    command = ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *args]
    container = containers.run(command=command)

    assert container.wait(timeout=120)["StatusCode"] == 0, logs(container)
    assert json.loads(logs(container, stderr=False).strip().splitlines()[-1]) == args
    exec_event = next(e for e in events(container) if e["event"] == "launch.exec")
    assert exec_event["argv"] == command


def test_a_drifted_database_is_healed_by_the_container_start(
    containers: Containers, pg_url: str
) -> None:
    """Stamped at head, but a table lost in a restore: the container's start re-creates it."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    from tests.e2e.helpers import upgrade_to

    upgrade_to(APP_INI, pg_url, "head")
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE health_metrics"))
    port = free_port()
    container = containers.run(environment={"DATABASE_URL": pg_url, "PORT": str(port)})
    assert wait_until_healthy(container, port)["status"] == "ok"
    repaired = [e for e in events(container) if e["event"] == "heal.repair_applied"]
    assert ("missing_table", "health_metrics") in {(e["kind"], e["object"]) for e in repaired}
    with engine.connect() as conn:
        assert inspect(conn).has_table("health_metrics")
    engine.dispose()
