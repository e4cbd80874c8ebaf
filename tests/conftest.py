pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.cli", "tests.fixtures.pgbouncer"]
