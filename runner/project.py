"""The user's Alembic project: its ``Config`` (an ini file, parsed here) and its database URL.

The script directory is never loaded in the runner's process (its revision files import the
application): :func:`runner.deployment.load_graph` loads it in a worker. Raises
:class:`ConfigError` (exit 2) when the config file cannot be read or no database URL is
configured anywhere.
"""

from __future__ import annotations

import configparser

from alembic.config import Config

from runner.config import Settings, config_file, mask_text, register_url_secret
from runner.errors import ConfigError

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


def configured_url(config: Config) -> str | None:
    """``sqlalchemy.url`` of the Alembic config, unless it is absent or a placeholder."""
    try:
        url = config.get_main_option("sqlalchemy.url")
    except configparser.InterpolationError:
        raw = config.file_config.get(config.config_ini_section, "sqlalchemy.url", raw=True)
        register_url_secret(raw)
        raise ConfigError(
            "sqlalchemy.url in the Alembic config has a '%' that configparser cannot read "
            "(its value is not shown: it may hold a password)",
            hint="write a literal % as %% in alembic.ini (a percent-encoded password "
            "p%40ss becomes p%%40ss), or set DATABASE_URL instead",
        ) from None
    if url is None or url.strip().startswith(_PLACEHOLDER_URLS[0]) or not url.strip():
        return None
    return url.strip()


def target_url(settings: Settings, config: Config | None = None) -> str | None:
    """The URL of the database to deploy: ``--direct-url``, ``DATABASE_URL``, the config."""
    if settings.effective_url:
        return settings.effective_url
    return configured_url(config if config is not None else load_config(settings))


def url_source(settings: Settings) -> str:
    """Where the URL :func:`target_url` returns comes from, in the user's words."""
    if settings.direct_url:
        return "--direct-url / DIRECT_DATABASE_URL"
    if settings.database_url:
        return "--database-url / DATABASE_URL"
    return f"sqlalchemy.url of {settings.config_path}"


def database_url(settings: Settings, config: Config) -> str:
    """The URL to migrate: ``--direct-url``, ``--database-url`` / ``DATABASE_URL``, the config."""
    url = target_url(settings, config)
    if url is None:
        raise ConfigError(
            "no database URL: --database-url / DATABASE_URL is not set and the Alembic config "
            "has no sqlalchemy.url",
            hint="set DATABASE_URL=postgresql://user:password@host:5432/dbname",
        )
    return url
