"""Fixtures shared by every suite, and the session-wide check that no password leaks."""

from collections.abc import Iterator
from urllib.parse import quote

import pytest

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.cli",
    "tests.fixtures.docker",
    "tests.fixtures.pgbouncer",
]


@pytest.fixture(scope="session", autouse=True)
def _no_test_password_printed() -> Iterator[None]:
    """After the whole session: no CLI output of any test contained a test password."""
    from tests.fixtures.cli import PRINTED
    from tests.fixtures.postgres import PASSWORD, SPECIAL_PASSWORD

    yield
    secrets = (PASSWORD, SPECIAL_PASSWORD, quote(SPECIAL_PASSWORD, safe=""), "weak-pw")
    leaks = [
        (secret, text[max(0, text.find(secret) - 200) : text.find(secret) + 50])
        for text in PRINTED
        for secret in secrets
        if secret in text
    ]
    assert not leaks, f"{len(leaks)} output(s) printed a test password, e.g. {leaks[0]!r}"
