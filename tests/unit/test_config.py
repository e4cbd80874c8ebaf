"""Configuration: precedence, validation, URL driver resolution and masking."""

from __future__ import annotations

import pytest

from runner.cli import parse_settings
from runner.config import (
    Command,
    LogFormat,
    check_urls,
    mask_text,
    masked_url,
    register_secret,
    resolve_url,
)
from runner.errors import ConfigError, ExitCode


def test_defaults_apply_when_nothing_is_given() -> None:
    settings = parse_settings(["migrate"], {})
    assert settings.command is Command.MIGRATE
    assert settings.wait_timeout == 60
    assert settings.lock_timeout == 300
    assert settings.ddl_lock_timeout == 10
    assert settings.config_path == "alembic.ini"
    assert settings.log_format is LogFormat.AUTO
    assert settings.defensive is True
    assert settings.database_url is None


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "ALEMBIC_DEPLOY_WAIT_TIMEOUT": "7",
        "ALEMBIC_DEPLOY_LOCK_TIMEOUT": "9",
        "DATABASE_URL": "postgres://u:p@h/env",
        "ALEMBIC_CONFIG": "env.ini",
    }
    from_env = parse_settings(["migrate"], env)
    assert (from_env.wait_timeout, from_env.lock_timeout) == (7, 9)
    assert from_env.database_url == "postgres://u:p@h/env"
    assert from_env.config_path == "env.ini"
    from_cli = parse_settings(
        ["migrate", "--wait-timeout", "3", "--database-url", "postgres://u:p@h/cli"], env
    )
    assert from_cli.wait_timeout == 3
    assert from_cli.lock_timeout == 9
    assert from_cli.database_url == "postgres://u:p@h/cli"


def test_options_are_accepted_before_the_command_too() -> None:
    settings = parse_settings(["--wait-timeout", "4", "status", "--json"], {})
    assert settings.wait_timeout == 4
    assert settings.json is True


def test_boolean_flags_and_their_environment_twins() -> None:
    assert parse_settings(["migrate", "--no-defensive"], {}).defensive is False
    assert parse_settings(["migrate"], {"ALEMBIC_DEPLOY_DEFENSIVE": "0"}).defensive is False
    assert parse_settings(["migrate"], {"ALEMBIC_DEPLOY_DEFENSIVE": "yes"}).defensive is True
    assert parse_settings(["migrate", "--allow-multiple-heads"], {}).allow_multiple_heads
    env = {"ALEMBIC_DEPLOY_ALLOW_UNKNOWN_REVISION": "true"}
    assert parse_settings(["migrate"], env).allow_unknown_revision


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["migrate", "--wait-timeout", "soon"], {}, "--wait-timeout"),
        (["migrate"], {"ALEMBIC_DEPLOY_LOCK_TIMEOUT": "-1"}, "ALEMBIC_DEPLOY_LOCK_TIMEOUT"),
        (["migrate"], {"ALEMBIC_DEPLOY_LOG_FORMAT": "xml"}, "ALEMBIC_DEPLOY_LOG_FORMAT"),
        (["migrate"], {"ALEMBIC_DEPLOY_DEFENSIVE": "maybe"}, "ALEMBIC_DEPLOY_DEFENSIVE"),
        (["migrate", "--wait-timeout", "0"], {}, "--wait-timeout"),
        (["migrate", "--database-url", "not a url"], {}, "database URL"),
    ],
)
def test_bad_values_are_configuration_errors_naming_the_source(
    argv: list[str], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        # URLs are parsed once the fast path has missed (it parses without SQLAlchemy).
        check_urls(parse_settings(argv, env))
    assert caught.value.exit_code is ExitCode.USAGE
    assert named in caught.value.message


def test_run_takes_the_app_command_after_double_dash() -> None:
    settings = parse_settings(["run", "--", "sh", "-c", "echo '$x'", ""], {})
    assert settings.app_command == ("sh", "-c", "echo '$x'", "")


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg2"),
        ("postgresql://u:p@h/db", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+psycopg2"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_driver_resolution_pins_the_installed_driver(raw: str, driver: str) -> None:
    assert resolve_url(raw).drivername == driver


def test_bare_postgresql_url_connects_with_psycopg2_under_this_sqlalchemy() -> None:
    # SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://; the resolved URL loads
    # psycopg2's dialect without connecting.
    url = resolve_url("postgresql://u:p@127.0.0.1:1/db")
    assert url.get_dialect().driver == "psycopg2"


def test_masking_hides_url_passwords_keyword_passwords_and_registered_secrets() -> None:
    assert masked_url("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert masked_url(resolve_url("postgres://u:s3cret@h/db")) == (
        "postgresql+psycopg2://u:***@h/db"
    )
    text = "failed for dsn host=h password=s3cret user=u and postgres://a:b%40c@h/x"
    masked = mask_text(text)
    assert "s3cret" not in masked and "b%40c" not in masked
    register_secret("hunter22")
    assert mask_text("the password is hunter22!") == "the password is ***!"
    assert mask_text("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
