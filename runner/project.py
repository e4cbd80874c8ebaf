"""The user's Alembic project: its ``Config``, its ``ScriptDirectory`` and its database URL.

Raises :class:`ConfigError` (exit 2) when the config file or script directory cannot be
loaded or no database URL is configured anywhere.
"""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from runner.config import Settings, config_file, mask_text
from runner.errors import ConfigError, RevisionGraphError

_PLACEHOLDER_URLS = ("driver://", "")


def load_config(settings: Settings) -> Config:
    """Load the Alembic config named by ``--config`` / ``ALEMBIC_CONFIG``."""
    path = config_file(settings)
    config = Config(str(path))
    try:
        config.get_main_option("script_location")
    except Exception as exc:  # configparser errors: malformed ini
        raise ConfigError(
            f"cannot read Alembic config {path}: {mask_text(str(exc))}",
            hint="fix the file or point --config at the right one",
        ) from exc
    return config


def load_scripts(config: Config) -> ScriptDirectory:
    """The script directory of ``config``, every revision file imported (none run).

    A revision file that does not import (syntax error, missing module) or a graph Alembic
    cannot build (a ``down_revision`` that names no revision, a cycle) is a broken revision
    graph: :class:`RevisionGraphError` (exit 6) naming the file and the error.
    """
    try:
        script = ScriptDirectory.from_config(config)
    except CommandError as exc:
        raise ConfigError(
            f"cannot load the migration scripts: {mask_text(str(exc))}",
            hint="check script_location in the Alembic config",
        ) from exc
    try:
        script.revision_map.heads  # noqa: B018 - imports every revision file
    except Exception as exc:
        where = ""
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f" ({exc.filename}, line {exc.lineno})"
        raise RevisionGraphError(
            f"cannot load the revision graph: {type(exc).__name__}: {mask_text(str(exc))}{where}",
            hint="fix the migration file named above; `alembic heads` shows the same error",
        ) from exc
    return script


def configured_url(config: Config) -> str | None:
    """``sqlalchemy.url`` of the Alembic config, unless it is absent or a placeholder."""
    url = config.get_main_option("sqlalchemy.url")
    if url is None or url.strip().startswith(_PLACEHOLDER_URLS[0]) or not url.strip():
        return None
    return url.strip()


def database_url(settings: Settings, config: Config) -> str:
    """The URL to migrate: ``--direct-url``, ``--database-url`` / ``DATABASE_URL``, the config."""
    url = settings.effective_url or configured_url(config)
    if url is None:
        raise ConfigError(
            "no database URL: --database-url / DATABASE_URL is not set and the Alembic config "
            "has no sqlalchemy.url",
            hint="set DATABASE_URL=postgresql://user:password@host:5432/dbname",
        )
    return url
