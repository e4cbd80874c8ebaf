"""create slow_step, then sleep 30 s (or wait in Python for a file)

Revision ID: ed0000000002
Revises: ed0000000001
Create Date: 2024-07-01 09:00:00.000000

"""
import os
import time
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "ed0000000002"
down_revision: Union[str, Sequence[str], None] = "ed0000000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table("slow_step", sa.Column("id", sa.Integer(), primary_key=True))
    release = os.environ.get("SLOW_REVISION_RELEASE")
    if release:
        # Busy in Python, not in a statement: until the test creates this file, then for a
        # moment more (the runner, told to stop meanwhile, is stopping when this returns).
        deadline = time.monotonic() + 60
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        return
    # Long enough that a test can stop the run while this statement runs.
    seconds = float(os.environ.get("SLOW_REVISION_SECONDS", "30"))
    op.execute(f"SELECT pg_sleep({seconds:g})")  # a number, never text from outside


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("slow_step")
