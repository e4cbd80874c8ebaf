"""``python -m runner``: the same as the ``alembic-deploy`` console script."""

import sys

from runner.cli import main

sys.exit(main())
