"""create doomed, then sys.exit(0)

Revision ID: ec0000000002
Revises: ec0000000001
Create Date: 2024-07-01 09:00:00.000000

"""
from typing import Sequence, Union

import os
import signal
import sys

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "ec0000000002"
down_revision: Union[str, Sequence[str], None] = "ec0000000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table("doomed", sa.Column("id", sa.Integer(), primary_key=True))
    # A revision that "finishes early" the wrong way: it must count as a failed migration.
    if os.environ.get("EXITS_EARLY_HOW") == "sigkill":  # the OOM killer, say
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(0)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("doomed")
