"""add notes.body

Revision ID: eb0000000002
Revises: eb0000000001
Create Date: 2024-07-01 09:00:00.000000

"""
from typing import Sequence, Union

import sys

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "eb0000000002"
down_revision: Union[str, Sequence[str], None] = "eb0000000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    sys.stdout.write("noisy revision eb0000000002: partial line without newline")
    sys.stderr.write("noisy revision eb0000000002: on stderr\n")
    op.add_column("notes", sa.Column("body", sa.Text(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("notes", "body")
