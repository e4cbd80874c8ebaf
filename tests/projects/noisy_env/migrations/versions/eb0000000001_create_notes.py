"""create notes

Revision ID: eb0000000001
Revises: 
Create Date: 2024-07-01 09:00:00.000000

"""
from typing import Sequence, Union

import logging

from alembic import op
import sqlalchemy as sa
import structlog

# revision identifiers, used by Alembic.
revision: str = "eb0000000001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    print("noisy revision eb0000000001: hello from upgrade() on stdout")
    logging.getLogger("noisy.revision").warning("noisy revision eb0000000001: stdlib warning")
    structlog.get_logger("noisy.revision").info("noisy revision eb0000000001: structlog info")
    op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("notes")
