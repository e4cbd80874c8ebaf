"""The fast path's look at a PostgreSQL database: the version table first, and the catalog's
fingerprint only when the database is at the snapshot's head (0.2 s at 2,000 tables that a
deploy with revisions to apply does not need)."""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg2.extensions
import sqlalchemy as sa

from runner.config import Settings
from runner.fastpath import _NOT_AT_HEAD, _observe_postgres, libpq_params


class _Recording(psycopg2.extensions.cursor):
    statements: ClassVar[list[str]] = []

    def execute(self, query: Any, vars: Any = None) -> None:
        _Recording.statements.append(str(query if isinstance(query, str) else "composed"))
        super().execute(query, vars)


def _look(pg_url: str, head: list[str]) -> Any:
    arguments = libpq_params(pg_url)
    assert arguments is not None
    arguments.pop("url")
    _Recording.statements = []
    return _observe_postgres({**arguments, "cursor_factory": _Recording}, Settings(), [None], head)


def test_a_database_behind_the_head_is_not_fingerprinted(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('aaa')"))
        conn.execute(sa.text("CREATE TABLE things (id integer PRIMARY KEY)"))
    engine.dispose()

    assert _look(pg_url, ["bbb"]) == _NOT_AT_HEAD
    assert len(_Recording.statements) == 1  # the version table only

    heads, digest, objects = _look(pg_url, ["aaa"])
    assert heads == ["aaa"] and digest and objects >= 1
    assert len(_Recording.statements) == 3  # and the server's banner, and the fingerprint
