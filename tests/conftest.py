pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.cli",
    "tests.fixtures.docker",
    "tests.fixtures.pgbouncer",
]
