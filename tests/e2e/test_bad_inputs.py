"""A catalogue of bad inputs: each is a distinct exit code, one line naming the problem (and a
hint naming the fix), no traceback, and a database exactly as it was before the run.

Cases run as a user would run them (``python -m runner``, real PostgreSQL or a SQLite file);
each names what it breaks. The database fingerprint compared before and after is every
table's reflected schema plus the version table's rows.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner.errors import ExitCode
from tests.e2e.helpers import db_revisions, execute, physical, upgrade_to
from tests.fixtures.cli import CliResult, run_cli
from tests.fixtures.postgres import SPECIAL_PASSWORD

REVISIONS = [f"aa000000000{n}" for n in range(1, 8)]
VERSIONS = "migrations/versions"


@dataclass
class Target:
    """The project under test and the database it points at."""

    ini: Path
    url: str
    make_db: Callable[[], str]
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.ini.parent

    def revision_file(self, revision: str) -> Path:
        return next((self.root / VERSIONS).glob(f"{revision}_*.py"))


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: ExitCode
    says: str  # a fragment the one-line error must contain (case-insensitive)
    prepare: Callable[[Target], None] | None = None
    backend: str = "sqlite"
    env: tuple[tuple[str, str], ...] = ()
    url: Callable[[Target], str | None] | None = None  # DATABASE_URL (None: unset)
    forbidden: tuple[str, ...] = ()  # text that must appear nowhere in the output
    hint: str = ""  # a fragment the hint must contain: it fits the dialect and the mistake


def _at(revision: str) -> Callable[[Target], None]:
    def prepare(target: Target) -> None:
        upgrade_to(target.ini, target.url, revision)

    return prepare


def _stamp(*values: str) -> Callable[[Target], None]:
    def prepare(target: Target) -> None:
        upgrade_to(target.ini, target.url, REVISIONS[2])
        execute(target.url, "DELETE FROM alembic_version")
        for value in values:
            execute(target.url, f"INSERT INTO alembic_version (version_num) VALUES ('{value}')")

    return prepare


def _edit(revision: str, old: str, new: str) -> Callable[[Target], None]:
    def prepare(target: Target) -> None:
        path = target.revision_file(revision)
        path.write_text(path.read_text().replace(old, new, 1))

    return prepare


def _duplicate_id(target: Target) -> None:
    source = target.revision_file(REVISIONS[6])
    shutil.copy(source, source.with_name("zz_copy_of_head.py"))


def _empty_versions(target: Target) -> None:
    for path in (target.root / VERSIONS).glob("*.py"):
        path.unlink()


def _ini(old: str, new: str) -> Callable[[Target], None]:
    def prepare(target: Target) -> None:
        target.ini.write_text(target.ini.read_text().replace(old, new))

    return prepare


def _snapshot(content: str) -> Callable[[Target], None]:
    def prepare(target: Target) -> None:
        upgrade_to(target.ini, target.url, "head")
        (target.tmp / "snapshot.json").write_text(content)

    return prepare


def _valid_snapshot_then(change: Callable[[dict[str, Any]], Any]) -> Callable[[Target], None]:
    def prepare(target: Target) -> None:
        path = target.tmp / "snapshot.json"
        built = run_cli(
            "--config",
            str(target.ini),
            "snapshot",
            "--output",
            str(path),
            env={"DATABASE_URL": target.url},
        )
        assert built.returncode == ExitCode.OK, built
        upgrade_to(target.ini, target.url, "head")
        data = json.loads(path.read_text())
        path.write_text(json.dumps(change(data)))

    return prepare


def _drop_a_digest(data: dict[str, Any]) -> dict[str, Any]:
    data["tables"].pop(sorted(data["tables"])[0])
    return data


def _states_as_list(data: dict[str, Any]) -> dict[str, Any]:
    data["states"] = list(data["states"].values())
    return data


def _cycle(data: dict[str, Any]) -> dict[str, Any]:
    # Every state's base is another state, round and round.
    keys = sorted(data["states"])
    for key, other in zip(keys, keys[1:] + keys[:1], strict=True):
        state = data["states"][key]
        if isinstance(state, dict) and "base" in state:
            state["base"] = other
    return data


def _read_only_database(target: Target) -> None:
    upgrade_to(target.ini, target.url, REVISIONS[3])
    name = target.url.rsplit("/", 1)[1]
    execute(target.url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')


def _weak_role(target: Target) -> None:
    upgrade_to(target.ini, target.url, REVISIONS[3])
    name = target.url.rsplit("/", 1)[1]
    execute(
        target.url,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'weak_deployer') "
        "THEN CREATE ROLE weak_deployer LOGIN PASSWORD 'weak-pw'; END IF; END $$",
        f'GRANT CONNECT ON DATABASE "{name}" TO weak_deployer',
        "GRANT USAGE ON SCHEMA public TO weak_deployer",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO weak_deployer",
    )


def _as_weak_role(target: Target) -> str:
    head, _, rest = target.url.partition("://")
    return f"{head}://weak_deployer:weak-pw@{rest.split('@', 1)[1]}"


def _with_password(password: str) -> Callable[[Target], str]:
    def url(target: Target) -> str:
        head, _, rest = target.url.partition("://")
        return f"{head}://someone:{password}@{rest.split('@', 1)[1]}"

    return url


def _http_port(target: Target) -> str:
    return f"postgresql://u:p@127.0.0.1:{target.env['HTTP_PORT']}/db"


CASES: dict[str, Case] = {
    # --- flags and environment ---------------------------------------------------------
    "unknown-command": Case(("deploy-now",), ExitCode.USAGE, "deploy-now"),
    "unknown-flag": Case(("migrate", "--frobnicate"), ExitCode.USAGE, "--frobnicate"),
    "wait-timeout-not-a-number": Case(
        ("migrate", "--wait-timeout", "soon"), ExitCode.USAGE, "--wait-timeout"
    ),
    "negative-lock-timeout": Case(("migrate", "--lock-timeout", "-5"), ExitCode.USAGE, "-5"),
    "ddl-lock-timeout-beyond-the-server-maximum": Case(
        ("migrate", "--ddl-lock-timeout", "3000000"), ExitCode.USAGE, "--ddl-lock-timeout"
    ),
    "bad-on-drift": Case(("migrate", "--on-drift", "explode"), ExitCode.USAGE, "explode"),
    "bad-log-format": Case(("migrate", "--log-format", "xml"), ExitCode.USAGE, "xml"),
    "bad-environment-value": Case(
        ("migrate",),
        ExitCode.USAGE,
        "ALEMBIC_DEPLOY_WAIT_TIMEOUT",
        env=(("ALEMBIC_DEPLOY_WAIT_TIMEOUT", "forever"),),
    ),
    "run-unknown-program": Case(
        ("run", "--", "no-such-program-xyz"), ExitCode.USAGE, "no-such-program-xyz"
    ),
    "run-without-a-command": Case(("run", "--"), ExitCode.USAGE, "command"),
    # --- database URLs -----------------------------------------------------------------
    "blank-database-url": Case(("migrate",), ExitCode.USAGE, "DATABASE_URL", url=lambda t: ""),
    "whitespace-database-url": Case(
        ("migrate",), ExitCode.USAGE, "DATABASE_URL", url=lambda t: "   "
    ),
    "not-a-url": Case(("migrate",), ExitCode.USAGE, "url", url=lambda t: "not a url"),
    "unsupported-dialect": Case(
        ("migrate",),
        ExitCode.USAGE,
        "mysql",
        url=lambda t: "mysql://u:p@127.0.0.1/db",
        hint="PostgreSQL and SQLite only",
    ),
    "misspelt-scheme": Case(
        ("migrate",),
        ExitCode.USAGE,
        "postgress",
        url=lambda t: "postgress://u:p@127.0.0.1/db",
        hint="did you mean postgresql://",
    ),
    "sqlite-folder-missing": Case(
        ("migrate",),
        ExitCode.USAGE,
        "folder",
        url=lambda t: f"sqlite:///{t.tmp}/no/such/folder/app.db",
        hint="SQLite creates the file, not its folder",
    ),
    "port-out-of-range": Case(
        ("migrate",),
        ExitCode.USAGE,
        "port",
        url=lambda t: "postgresql://u:p@127.0.0.1:99999/db",
    ),
    "password-with-unencoded-special-characters": Case(
        ("migrate",),
        ExitCode.USAGE,
        "percent-encoded",
        backend="pg",
        url=_with_password(SPECIAL_PASSWORD),
        forbidden=("w/o%rd", "rd#1", "1?x"),
    ),
    "wrong-password": Case(
        ("migrate", "--wait-timeout", "5"),
        ExitCode.CONNECTION_REFUSED,
        "password",
        backend="pg",
        url=_with_password("not-the-password"),
        forbidden=("not-the-password",),
    ),
    "unknown-database": Case(
        ("migrate", "--wait-timeout", "5"),
        ExitCode.CONNECTION_REFUSED,
        "does not exist",
        backend="pg",
        url=lambda t: t.url.rsplit("/", 1)[0] + "/no_such_database_xyz",
    ),
    "http-server-on-the-port": Case(
        ("migrate", "--wait-timeout", "3"),
        ExitCode.UNREACHABLE,
        "127.0.0.1",
        url=_http_port,
    ),
    "sqlite-directory-missing": Case(
        ("migrate",),
        ExitCode.USAGE,
        "no-such-dir",
        url=lambda t: f"sqlite:///{t.tmp}/no-such-dir/app.db",
    ),
    # --- project files -------------------------------------------------------------------
    "missing-alembic-ini": Case(
        ("migrate",), ExitCode.USAGE, "not found", prepare=lambda t: t.ini.unlink()
    ),
    "ini-without-script-location": Case(
        ("migrate",),
        ExitCode.USAGE,
        "script_location",
        prepare=_ini("script_location = %(here)s/migrations", ""),
    ),
    "ini-url-with-a-bare-percent": Case(
        ("migrate",),
        ExitCode.USAGE,
        "%",
        prepare=_ini(
            "sqlalchemy.url = sqlite:///%(here)s/app.db",
            "sqlalchemy.url = postgresql://app:s3cr%t-pw-77@127.0.0.1/app",
        ),
        url=lambda t: None,
        forbidden=("s3cr", "t-pw-77"),
    ),
    "script-location-missing": Case(
        ("migrate",),
        ExitCode.USAGE,
        "nowhere",
        prepare=_ini("%(here)s/migrations", "%(here)s/nowhere"),
    ),
    "syntax-error-in-a-revision": Case(
        ("migrate",),
        ExitCode.REVISION_GRAPH,
        "aa0000000003",
        prepare=_edit(REVISIONS[2], "def upgrade", "def upgrade(:\ndef _x"),
    ),
    "missing-import-in-a-revision": Case(
        ("migrate",),
        ExitCode.REVISION_GRAPH,
        "no_such_module_xyz",
        prepare=_edit(
            REVISIONS[4], "import sqlalchemy", "import no_such_module_xyz\nimport sqlalchemy"
        ),
    ),
    "revision-cycle": Case(
        ("migrate",),
        ExitCode.REVISION_GRAPH,
        "cycl",
        prepare=_edit(REVISIONS[0], "] = None", f'] = "{REVISIONS[6]}"'),
    ),
    "missing-down-revision": Case(
        ("migrate",),
        ExitCode.REVISION_GRAPH,
        "aa0000000099",
        prepare=_edit(REVISIONS[3], f'] = "{REVISIONS[2]}"', '] = "aa0000000099"'),
    ),
    "duplicate-revision-id": Case(
        ("migrate",), ExitCode.REVISION_GRAPH, "aa0000000007", prepare=_duplicate_id
    ),
    "empty-versions-folder": Case(
        ("migrate",), ExitCode.REVISION_GRAPH, "no revision", prepare=_empty_versions
    ),
    # --- the version table ---------------------------------------------------------------
    "garbage-stamp": Case(("migrate",), ExitCode.REVISION_GRAPH, "zzzz", prepare=_stamp("zzzz")),
    "empty-string-stamp": Case(("migrate",), ExitCode.REVISION_GRAPH, "empty", prepare=_stamp("")),
    "two-stamps-one-an-ancestor": Case(
        ("migrate",),
        ExitCode.REVISION_GRAPH,
        "ancestor",
        prepare=_stamp(REVISIONS[1], REVISIONS[3]),
    ),
    "version-table-schema-env-py-ignores": Case(
        ("migrate", "--version-table-schema", "elsewhere"),
        ExitCode.USAGE,
        "--version-table-schema",
        prepare=_at(REVISIONS[2]),
        backend="pg",
    ),
    # --- snapshots -----------------------------------------------------------------------
    "snapshot-not-json": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "snapshot",
        prepare=_snapshot("{not json"),
    ),
    "snapshot-truncated": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "snapshot",
        prepare=_snapshot('{"format": "alembic-deploy-snapshot/1", "states": {'),
    ),
    "snapshot-foreign-format": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "format",
        prepare=_snapshot('{"format": "something-else/3"}'),
    ),
    "snapshot-top-level-list": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "snapshot",
        prepare=_snapshot("[1, 2, 3]"),
    ),
    "snapshot-states-a-list": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "states",
        prepare=_valid_snapshot_then(_states_as_list),
    ),
    "snapshot-missing-a-table-digest": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "snapshot",
        prepare=_valid_snapshot_then(_drop_a_digest),
    ),
    "snapshot-base-cycle": Case(
        ("migrate", "--snapshot", "{tmp}/snapshot.json"),
        ExitCode.USAGE,
        "its own base",
        prepare=_valid_snapshot_then(_cycle),
    ),
    "snapshot-explicit-path-missing": Case(
        ("migrate", "--snapshot", "{tmp}/nowhere.json"),
        ExitCode.USAGE,
        "nowhere.json",
        prepare=_at("head"),
    ),
    "snapshot-output-unwritable": Case(
        ("snapshot", "--output", "/proc/alembic-deploy/snapshot.json"),
        ExitCode.USAGE,
        "/proc/alembic-deploy",
    ),
    # --- wrong targets (PostgreSQL) ----------------------------------------------------
    "shadow-url-is-the-target": Case(
        ("status", "--shadow-url", "{url}"),
        ExitCode.USAGE,
        "shadow",
        prepare=_at(REVISIONS[3]),
        backend="pg",
    ),
    "shadow-url-unreachable": Case(
        ("check", "--shadow-url", "postgresql://u:p@127.0.0.1:9/shadow"),
        ExitCode.USAGE,
        "--shadow-url",
        prepare=_at(REVISIONS[3]),
        backend="pg",
    ),
    "read-only-server-with-pending-revisions": Case(
        ("migrate",),
        ExitCode.CONNECTION_REFUSED,
        "read-only",
        prepare=_read_only_database,
        backend="pg",
    ),
    "role-without-create-privilege": Case(
        ("migrate",),
        ExitCode.CONNECTION_REFUSED,
        "CREATE",
        prepare=_weak_role,
        backend="pg",
        url=_as_weak_role,
    ),
}


@pytest.fixture
def http_port() -> Iterator[int]:
    """A plain HTTP server on a free loopback port (something that is not PostgreSQL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _fingerprint(url: str) -> tuple[Any, ...]:
    if url.startswith("sqlite") and not Path(url.removeprefix("sqlite:///")).exists():
        return (physical("sqlite:///:memory:").to_dict(), [])  # absent is empty
    return (physical(url).to_dict(), db_revisions(url))


def _last_error(result: CliResult) -> str:
    errors = [e for e in result.events if "error" in e]
    return json.dumps(errors[-1]) if errors else result.stderr[-600:]


def _error_event(result: CliResult) -> dict[str, Any]:
    failures = [e for e in result.events if e.get("level") == "error" and "error" in e]
    assert failures, f"no error event\n{result}"
    return failures[-1]


@pytest.mark.parametrize("name", sorted(CASES), ids=str)
def test_bad_input(
    name: str,
    project: Callable[[str], Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    http_port: int,
) -> None:
    case = CASES[name]
    if case.backend == "pg":
        make_db: Callable[[], str] = request.getfixturevalue("make_db")
        url = make_db()
    else:
        url = f"sqlite:///{tmp_path / 'app.db'}"

        def make_db() -> str:
            raise AssertionError("SQLite cases have one database")

    target = Target(project("linear"), url, make_db, tmp_path, {"HTTP_PORT": str(http_port)})
    if case.prepare is not None:
        case.prepare(target)
    before = _fingerprint(url)
    database_url = case.url(target) if case.url is not None else url
    args = [a.format(tmp=tmp_path, url=url) for a in case.args]
    env = {**({"DATABASE_URL": database_url} if database_url is not None else {}), **dict(case.env)}
    result = run_cli("--config", str(target.ini), *args, env=env, timeout=120)

    print(f"CASE {name}: exit {result.returncode}: {_last_error(result)}")
    assert result.returncode == case.code, result
    output = result.stdout + result.stderr
    assert "Traceback" not in output, result
    event = _error_event(result)
    assert "\n" not in event["error"], event
    assert case.says.lower() in event["error"].lower(), event
    assert event.get("hint"), event
    assert case.hint.lower() in event["hint"].lower(), event
    for secret in case.forbidden:
        assert secret not in output, f"{secret!r} printed\n{result}"
    assert _fingerprint(url) == before
