"""The fast path parses PostgreSQL URLs with libpq instead of SQLAlchemy (an import it cannot
afford). Wherever it does, it must connect exactly as SQLAlchemy's psycopg2 dialect would;
wherever the two parsers could differ it must decline (None), and the full path parses."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from runner.config import resolve_url
from runner.errors import ConfigError
from runner.fastpath import libpq_params


def _sqlalchemy_arguments(raw: str) -> dict[str, str]:
    url = resolve_url(raw)
    engine = create_engine(url)
    try:
        _, kwargs = engine.dialect.create_connect_args(url)
    finally:
        engine.dispose()
    return {key: str(value) for key, value in kwargs.items()}


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://app:s3cret@db.internal:5433/orders",
        "postgresql+psycopg2://app:s3cret@127.0.0.1/orders?sslmode=require&connect_timeout=3",
        "postgres://app@localhost/orders",  # Heroku's scheme
        "postgresql://app:p%40ss%3Aw%2Frd@host/db",  # an encoded password
        "postgresql://app:pa+ss@host/db",  # '+' in a password is not a space
        "postgresql://u:p@[::1]:5432/db",
        "postgresql:///orders?host=/var/run/postgresql",
        "postgresql://host/db?application_name=web&options=-c%20statement_timeout%3D5",
        "postgresql://host/my%20db",
        "postgresql://host/db?host=a&host=b",  # multi-host, SQLAlchemy's way
        "postgresql://h1:5432,h2:5432/db",  # multi-host, libpq's way (SQLAlchemy refuses)
        "postgresql://host/db?options=a+b",
        "postgresql://host/db?options=a%2Bb%20c&sslmode=",
        "postgresql://u@/db?host=%2Ftmp%2Fpg&port=5433",  # a Unix socket, as SQLAlchemy renders it
        "postgresql://%2Ftmp%2Fpg/db",
        "postgresql://u:p@host/",
        "postgresql://host",
    ],
)
def test_libpq_parse_is_sqlalchemys_or_declines(raw: str) -> None:
    params = libpq_params(raw)
    if params is None:
        return
    url = params.pop("url")
    assert url.startswith("postgresql+psycopg2://")
    assert params == _sqlalchemy_arguments(raw)


def test_the_plain_urls_of_real_deployments_are_parsed_by_libpq() -> None:
    for raw in (
        "postgresql://app:s3cret@db.internal:5433/orders",
        "postgres://app:s3cret@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d8f?sslmode=require",
        "postgresql+psycopg2://app:p%40ss@127.0.0.1/orders",
        "postgresql+psycopg2://u@/db?host=%2Ftmp%2Fpg&port=5433",
        "postgresql://u@h/db?options=-c%20search_path%3Dapp,public",
    ):
        assert libpq_params(raw) is not None, raw


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql+psycopg://u:p@host/db",  # another driver
        "sqlite:///app.db",
        "mysql://u:p@host/db",
        "postgresql://host/my%20db",
        "postgresql://h1:5432,h2:5432/db",
        "postgresql://host/db?host=a&host=b",
        "postgresql://host/db?options=a+b",
        "postgresql://%2Ftmp%2Fpg/db",
        "postgresql://host/db?sslmode=",
    ],
)
def test_declines_what_it_cannot_parse_as_sqlalchemy_does(raw: str) -> None:
    assert libpq_params(raw) is None


def test_refuses_what_the_runner_refuses() -> None:
    with pytest.raises(ConfigError):
        libpq_params("postgresql://user:pa@ss@host/db")
