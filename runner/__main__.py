"""``python -m runner``: the same as the ``alembic-deploy`` console script."""

from runner.cli import entry

entry()
