"""Secrets never reach the output: a password with every character a URL must encode, the
console format's tracebacks, libpq and YAML spellings, and a ``%`` in alembic.ini. Every CLI
output of the whole session is also checked for the test passwords (tests/conftest.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import structlog

from runner.config import LogFormat, mask_text, register_secret
from runner.errors import ExitCode
from runner.logs import configure_logging, get_logger
from tests.e2e.helpers import db_revisions, execute
from tests.fixtures.cli import run_cli
from tests.fixtures.postgres import SPECIAL_PASSWORD

Project = Callable[[str], Path]


@pytest.fixture
def special_role_url(pg_url: str) -> str:
    """``pg_url`` as a role whose password needs every kind of percent-encoding."""
    name = pg_url.rsplit("/", 1)[1]
    execute(
        pg_url,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'special_pw') "
        "THEN CREATE ROLE special_pw LOGIN; END IF; END $$",
        f"ALTER ROLE special_pw PASSWORD '{SPECIAL_PASSWORD}'",
        f'ALTER DATABASE "{name}" OWNER TO special_pw',
        "GRANT CREATE ON SCHEMA public TO special_pw",
    )
    host = pg_url.split("@", 1)[1]
    return f"postgresql://special_pw:{quote(SPECIAL_PASSWORD, safe='')}@{host}"


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_percent_encoded_password_works_and_is_never_printed(
    project: Project, special_role_url: str, log_format: str
) -> None:
    ini = project("linear")
    result = run_cli(
        "--config",
        str(ini),
        "--log-format",
        log_format,
        "--debug",
        "migrate",
        env={"DATABASE_URL": special_role_url},
    )
    assert result.returncode == ExitCode.OK, result
    assert db_revisions(special_role_url.replace("postgresql://", "postgresql+psycopg2://"))
    output = result.stdout + result.stderr
    for fragment in (SPECIAL_PASSWORD, quote(SPECIAL_PASSWORD, safe=""), "w/o%rd", "o%25rd"):
        assert fragment not in output


def test_a_failed_migration_with_debug_prints_no_password(
    project: Project, special_role_url: str
) -> None:
    """The worker's traceback (console format, --debug) is masked too."""
    ini = project("linear")
    revision = next((ini.parent / "migrations" / "versions").glob("aa0000000003_*.py"))
    revision.write_text(
        revision.read_text().replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n    import os\n"
            "    raise RuntimeError('cannot use ' + os.environ['DATABASE_URL'])\n",
        )
    )
    result = run_cli(
        "--config",
        str(ini),
        "--log-format",
        "console",
        "--debug",
        "migrate",
        env={"DATABASE_URL": special_role_url},
    )
    assert result.returncode == ExitCode.MIGRATION_FAILED, result
    assert "cannot use" in result.stderr and "RuntimeError" in result.stderr
    assert quote(SPECIAL_PASSWORD, safe="") not in result.stderr + result.stdout


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(LogFormat.CONSOLE, debug=True, stream=stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_console_tracebacks_are_masked(console: io.StringIO) -> None:
    register_secret("tb-secret-4711")
    try:
        raise RuntimeError("connect to postgresql://app:tb-secret-4711@db/app failed")
    except RuntimeError:
        get_logger("test").error("deploy.crashed", exc_info=True)
    text = console.getvalue()
    assert "Traceback" in text and "RuntimeError" in text, text
    assert "tb-secret-4711" not in text, text


@pytest.mark.parametrize(
    "text",
    [
        "PGPASSWORD=hunter2x psql -h db",
        "password: hunter2x",
        '{"password": "hunter2x"}',
        "host=db password=hunter2x dbname=app",
        "DB_PASSWORD=hunter2x",
        "postgresql://app:hunter2x@db/app",
    ],
)
def test_password_spellings_are_masked(text: str) -> None:
    assert "hunter2x" not in mask_text(text)
    assert "***" in mask_text(text)
