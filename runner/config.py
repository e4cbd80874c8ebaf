"""Configuration: CLI flags over environment over defaults, into one frozen ``Settings``.

Also owns the database URL: password masking for anything printed, Heroku's ``postgres://``
scheme, and driver resolution (SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; we
pick the PostgreSQL driver that is actually installed, psycopg2 first).

Raises :class:`~runner.errors.ConfigError` (exit 2) for any bad value.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from runner.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


class Command(StrEnum):
    RUN = "run"
    MIGRATE = "migrate"
    STATUS = "status"
    CHECK = "check"
    PLAN = "plan"
    SNAPSHOT = "snapshot"


class OnDrift(StrEnum):
    HEAL = "heal"
    FAIL = "fail"
    WARN = "warn"


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its flag, its environment twin, how to parse it and its help."""

    name: str
    flag: str
    env: str
    kind: type
    help: str


#: Every option that has an environment twin, in the order ``--help`` shows them.
OPTIONS: tuple[Option, ...] = (
    Option(
        "database_url",
        "--database-url",
        "DATABASE_URL",
        str,
        "database URL; postgres:// is accepted (default: sqlalchemy.url of the Alembic config)",
    ),
    Option(
        "direct_url",
        "--direct-url",
        "DIRECT_DATABASE_URL",
        str,
        "URL that bypasses a transaction-pooling proxy (PgBouncer); used for all of the "
        "runner's work when set",
    ),
    Option(
        "config_path",
        "--config",
        "ALEMBIC_CONFIG",
        str,
        "path of the Alembic config file (default: alembic.ini)",
    ),
    Option(
        "wait_timeout",
        "--wait-timeout",
        "ALEMBIC_DEPLOY_WAIT_TIMEOUT",
        float,
        "seconds to wait for the database to accept connections (default: 60)",
    ),
    Option(
        "lock_timeout",
        "--lock-timeout",
        "ALEMBIC_DEPLOY_LOCK_TIMEOUT",
        float,
        "seconds to wait for the migration lock held by another runner (default: 300)",
    ),
    Option(
        "ddl_lock_timeout",
        "--ddl-lock-timeout",
        "ALEMBIC_DEPLOY_DDL_LOCK_TIMEOUT",
        float,
        "PostgreSQL lock_timeout in seconds for migration statements (default: 10; 0 disables)",
    ),
    Option(
        "ddl_retries",
        "--ddl-retries",
        "ALEMBIC_DEPLOY_DDL_RETRIES",
        int,
        "times a revision that hit the DDL lock timeout is retried (default: 3)",
    ),
    Option(
        "lock_key",
        "--lock-key",
        "ALEMBIC_DEPLOY_LOCK_KEY",
        str,
        "name of the migration lock (default: derived from the version table)",
    ),
    Option(
        "version_table",
        "--version-table",
        "ALEMBIC_DEPLOY_VERSION_TABLE",
        str,
        "Alembic version table (default: alembic_version)",
    ),
    Option(
        "version_table_schema",
        "--version-table-schema",
        "ALEMBIC_DEPLOY_VERSION_TABLE_SCHEMA",
        str,
        "schema of the version table (default: the connection's default schema)",
    ),
    Option(
        "snapshot_path",
        "--snapshot",
        "ALEMBIC_DEPLOY_SNAPSHOT",
        str,
        "snapshot file of expected schemas (default: alembic-deploy-snapshot.json beside "
        "the Alembic config)",
    ),
    Option(
        "shadow_url",
        "--shadow-url",
        "ALEMBIC_DEPLOY_SHADOW_URL",
        str,
        "scratch database for shadow replay, emptied before use (default: a temporary "
        "database on the same server)",
    ),
    Option(
        "shadow",
        "--no-shadow",
        "ALEMBIC_DEPLOY_SHADOW",
        bool,
        "never replay migrations into a scratch database to learn the expected schema "
        "(environment: ALEMBIC_DEPLOY_SHADOW=0)",
    ),
    Option(
        "verbose",
        "--verbose",
        "ALEMBIC_DEPLOY_VERBOSE",
        bool,
        "on a terminal, log every event with its run keys (default: about one line per step; "
        "JSON logs always carry every event)",
    ),
    Option(
        "fast_path",
        "--no-fast-path",
        "ALEMBIC_DEPLOY_FAST_PATH",
        bool,
        "always run the full pipeline, even when the snapshot's fast-path record says the "
        "database is at head with no drift (environment: ALEMBIC_DEPLOY_FAST_PATH=0)",
    ),
    Option(
        "require_verify",
        "--require-verify",
        "ALEMBIC_DEPLOY_REQUIRE_VERIFY",
        bool,
        "exit 7 when no expected schema is available to verify against",
    ),
    Option(
        "strict_checksums",
        "--strict-checksums",
        "ALEMBIC_DEPLOY_STRICT_CHECKSUMS",
        bool,
        "exit 6 when a revision file differs from the snapshot's checksum",
    ),
    Option(
        "on_drift",
        "--on-drift",
        "ALEMBIC_DEPLOY_ON_DRIFT",
        OnDrift,
        "heal, fail or warn: what migrate does when objects of the stamped revision are "
        "missing (default: heal)",
    ),
    Option(
        "adopt",
        "--adopt",
        "ALEMBIC_DEPLOY_ADOPT",
        bool,
        "stamp a database that has tables but no revision with the revision its schema "
        "matches, then continue",
    ),
    Option(
        "dry_run",
        "--dry-run",
        "ALEMBIC_DEPLOY_DRY_RUN",
        bool,
        "run/migrate: change nothing and print the SQL it would run, like `plan` (run never "
        "starts the app)",
    ),
    Option(
        "log_format",
        "--log-format",
        "ALEMBIC_DEPLOY_LOG_FORMAT",
        LogFormat,
        "json, console, or auto: JSON unless the log stream is a terminal (default: auto)",
    ),
    Option(
        "defensive",
        "--no-defensive",
        "ALEMBIC_DEPLOY_DEFENSIVE",
        bool,
        "run migrations as written: no skipping of operations whose object already "
        "exists / is already gone (environment: ALEMBIC_DEPLOY_DEFENSIVE=0)",
    ),
    Option(
        "allow_multiple_heads",
        "--allow-multiple-heads",
        "ALEMBIC_DEPLOY_ALLOW_MULTIPLE_HEADS",
        bool,
        "upgrade every head instead of refusing unlabelled multiple heads",
    ),
    Option(
        "allow_unknown_revision",
        "--allow-unknown-revision",
        "ALEMBIC_DEPLOY_ALLOW_UNKNOWN_REVISION",
        bool,
        "when the database is stamped with a revision the scripts do not know, skip "
        "migrations and start the app (rollbacks)",
    ),
    Option("debug", "--debug", "ALEMBIC_DEPLOY_DEBUG", bool, "print tracebacks and debug events"),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the pipeline needs, resolved once.

    URLs are kept as given (secret included) but never shown: ``repr`` masks them.
    """

    command: Command = Command.MIGRATE
    database_url: str | None = field(default=None, repr=False)
    direct_url: str | None = field(default=None, repr=False)
    config_path: str = "alembic.ini"
    wait_timeout: float = 60.0
    lock_timeout: float = 300.0
    ddl_lock_timeout: float = 10.0
    ddl_retries: int = 3
    lock_key: str | None = None
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    snapshot_path: str | None = None
    shadow_url: str | None = field(default=None, repr=False)
    shadow: bool = True
    fast_path: bool = True
    verbose: bool = False
    require_verify: bool = False
    strict_checksums: bool = False
    on_drift: OnDrift = OnDrift.HEAL
    adopt: bool = False
    dry_run: bool = False
    log_format: LogFormat = LogFormat.AUTO
    defensive: bool = True
    allow_multiple_heads: bool = False
    allow_unknown_revision: bool = False
    debug: bool = False
    json: bool = False
    app_command: tuple[str, ...] = ()
    #: ``snapshot``: where to write, and whether to only check the existing file.
    output: str | None = None
    check_only: bool = False
    #: Lock polling: first delay and cap, seconds. Tests shrink them.
    lock_poll_initial: float = 0.05
    lock_poll_max: float = 2.0
    #: Connection polling while waiting: first delay and cap, seconds.
    wait_initial: float = 0.25
    wait_max: float = 5.0

    @property
    def effective_url(self) -> str | None:
        """The URL all of the runner's work uses: the direct one when set."""
        return self.direct_url or self.database_url


def parse_value(option: Option, raw: str, source: str) -> object:
    """Parse one raw flag/environment value; ConfigError names the source."""
    value = raw.strip()
    try:
        if option.kind is bool:
            low = value.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        if option.kind is float:
            number = float(value)
            if not number >= 0 or number == float("inf"):
                raise ValueError("expected a finite number of seconds >= 0")
            return number
        if option.kind is int:
            whole = int(value)
            if whole < 0:
                raise ValueError("expected a whole number >= 0")
            return whole
        if option.kind in (LogFormat, OnDrift):
            return option.kind(value.lower())
        if not value:
            raise ValueError("expected a non-empty value")
        return value
    except ValueError as exc:
        shown = mask_text(raw)
        reason = str(exc)
        if option.kind in (LogFormat, OnDrift):
            reason = "expected one of " + ", ".join(f.value for f in option.kind)
        raise ConfigError(
            f"invalid {source} value {shown!r}: {reason}",
            hint=f"fix {source} ({option.help.split(';')[0]})",
        ) from None


def build_settings(
    cli: Mapping[str, object],
    environ: Mapping[str, str],
    *,
    command: Command,
    json: bool = False,
    app_command: Sequence[str] = (),
    output: str | None = None,
    check_only: bool = False,
    parse_urls: bool = True,
) -> Settings:
    """Merge CLI values (already parsed, None when absent) over the environment over defaults.

    A ``--no-X`` flag stores False under its option's name. Boolean flags that are
    absent from the command line are looked up in the environment. ``parse_urls=False`` leaves
    :func:`check_urls` to the caller (the command line calls it once the fast path, which
    must not import SQLAlchemy, has missed).
    """
    values: dict[str, object] = {}
    for option in OPTIONS:
        given = cli.get(option.name)
        if given is not None and given is not False:
            values[option.name] = given
            continue
        if option.flag.startswith("--no-") and given is False:
            values[option.name] = False
            continue
        raw = environ.get(option.env)
        if raw is not None and not raw.strip() and option.name in _URL_OPTIONS:
            # Set but blank (an unfilled secret): falling back to alembic.ini's URL would
            # migrate some other database and start the app.
            raise ConfigError(
                f"{option.env} is set but empty",
                hint=f"give {option.env} a database URL, or unset it to use "
                "sqlalchemy.url of the Alembic config",
            )
        if raw is not None and (raw.strip() or option.kind is bool):
            values[option.name] = parse_value(option, raw, option.env)
    known = {f.name for f in fields(Settings)}
    settings = Settings(
        command=command,
        json=json,
        app_command=tuple(app_command),
        output=output,
        check_only=check_only,
        **{k: v for k, v in values.items() if k in known},  # type: ignore[arg-type]
    )
    validate(settings)
    if parse_urls:
        check_urls(settings)
    return settings


_URL_OPTIONS = ("database_url", "direct_url", "shadow_url")
#: PostgreSQL's lock_timeout is an int of milliseconds.
_MAX_LOCK_TIMEOUT_S = 2_147_483


def validate(settings: Settings) -> None:
    """Cross-field checks that a single value cannot express."""
    if settings.wait_timeout <= 0:
        raise ConfigError(
            "--wait-timeout must be greater than 0",
            hint="give the number of seconds to wait for the database",
        )
    if settings.ddl_lock_timeout > _MAX_LOCK_TIMEOUT_S:
        raise ConfigError(
            f"--ddl-lock-timeout {settings.ddl_lock_timeout:g} is beyond PostgreSQL's largest "
            f"lock_timeout ({_MAX_LOCK_TIMEOUT_S} s, about 24 days)",
            hint="give a number of seconds up to that, or 0 to wait without limit",
        )


def check_urls(settings: Settings) -> None:
    """Parse every URL given (ConfigError, exit 2, for the first that is unusable)."""
    for name in _URL_OPTIONS:
        url = getattr(settings, name)
        if url is not None:
            resolve_url(url)


def resolve_url(raw: str) -> URL:
    """Parse a database URL and pin the driver that is installed.

    ``postgres://`` (Heroku) becomes ``postgresql://``; a bare ``postgresql://`` gets
    ``+psycopg2`` when psycopg2 is importable, else ``+psycopg`` when psycopg 3 is; an explicit
    ``+driver`` is kept as given.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    refuse_unencoded_password(raw)
    try:
        url = make_url(raw.strip())
        port = url.port
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"cannot parse database URL {mask_text(raw)!r}",
            hint="use the form postgresql://user:password@host:5432/dbname or "
            "sqlite:///path/to/file.db (set --database-url or DATABASE_URL)",
        ) from exc
    if port is not None and not 0 < port < 65536:
        raise ConfigError(
            f"the database URL's port {port} is out of range",
            hint="give a TCP port from 1 to 65535 (PostgreSQL's default is 5432)",
        )
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        backend = "postgresql"
        if not driver:
            driver = installed_postgres_driver()
        url = url.set(drivername=f"{backend}+{driver}")
    return url


_MUST_ENCODE = re.compile(r"[@/#?\s]|%(?![0-9A-Fa-f]{2})")


def refuse_unencoded_password(raw: str) -> None:
    """Exit 2 for credentials with characters a URL cannot carry unencoded.

    ``user:Pa:ss@w/o%rd#1?x@host/db`` would otherwise parse as host ``w`` and leak the rest
    of the password as a database name in every event. The error prints none of it.
    """
    _, separator, rest = raw.strip().partition("://")
    if not separator or "@" not in rest:
        return
    userinfo = rest[: rest.rfind("@")]
    password = userinfo.partition(":")[2]
    register_secret(password)
    for part in re.split(r"[@/#?]", password):
        register_secret(part)
    if _MUST_ENCODE.search(userinfo):
        raise ConfigError(
            "the database URL's user or password contains characters that must be "
            "percent-encoded (@ / # ? % or spaces)",
            hint="encode them, e.g. python3 -c 'import sys, urllib.parse; "
            "print(urllib.parse.quote(sys.argv[1], safe=\"\"))' 'the password'",
        )


def installed_postgres_driver() -> str:
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return driver
    raise ConfigError(
        "no PostgreSQL driver is installed",
        hint="pip install psycopg2-binary (or name a driver: postgresql+DRIVER://...)",
    )


def render_url(url: URL) -> str:
    """A URL as a string with its password (for SQLAlchemy and env.py, never for logs)."""
    return url.render_as_string(hide_password=False)


_URL_SECRET = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<pw>[^@\s'\"]*)@")
# password=x, PGPASSWORD=x, DB_PASSWORD=x, password: x, "password": "x" (libpq keywords,
# environment dumps, YAML, JSON)
_KEYWORD_SECRET = re.compile(
    r"(?P<head>(?<!\w)\w*?(?:password|passwd|pwd)[\"']?\s*[:=]\s*)"
    r"(?P<pw>'[^']*'|\"[^\"]*\"|[^\s,;}]+)",
    re.I,
)
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a password so that it is masked wherever it appears, URL or not."""
    if value and len(value) >= 3:
        _secrets.add(value)


def register_url_secret(raw: str | None) -> None:
    """Remember the password of a URL (if it has one) for masking."""
    if not raw:
        return
    match = _URL_SECRET.search(raw)
    if match:
        # As given and decoded: a driver's error may echo either.
        register_secret(match.group("pw"))
        register_secret(unquote(match.group("pw")))


def mask_text(text: str) -> str:
    """Replace every URL password, ``password=`` value and known secret with ``***``."""
    masked = _URL_SECRET.sub(lambda m: f"{m.group('head')}***@", text)
    masked = _KEYWORD_SECRET.sub(lambda m: f"{m.group('head')}***", masked)
    for secret in _secrets:
        masked = masked.replace(secret, "***")
    return masked


def masked_url(url: URL | str) -> str:
    """A URL fit for logs: the password replaced by ``***``."""
    if isinstance(url, str):
        return mask_text(url)
    return url.render_as_string(hide_password=True)


def config_file(settings: Settings) -> Path:
    """The Alembic config path, checked to exist."""
    path = Path(settings.config_path)
    if not path.is_file():
        raise ConfigError(
            f"Alembic config file not found: {path}",
            hint="run from the project directory or pass --config / ALEMBIC_CONFIG",
        )
    return path


#: The snapshot's file name beside the Alembic config (``alembic-deploy snapshot`` writes it).
SNAPSHOT_NAME = "alembic-deploy-snapshot.json"


def snapshot_path(settings: Settings) -> Path:
    """``--snapshot``, else the default file beside the Alembic config."""
    if settings.snapshot_path:
        return Path(settings.snapshot_path)
    return Path(settings.config_path).resolve().parent / SNAPSHOT_NAME


def environment_snapshot() -> dict[str, str]:
    """The process environment, as a plain dict (a seam for tests)."""
    return dict(os.environ)
