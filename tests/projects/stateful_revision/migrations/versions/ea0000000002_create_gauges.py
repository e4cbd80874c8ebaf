"""create gauges, consuming module-level state

Revision ID: ea0000000002
Revises: ea0000000001
Create Date: 2024-07-01 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import stateful_registry

# revision identifiers, used by Alembic.
revision: str = "ea0000000002"
down_revision: Union[str, Sequence[str], None] = "ea0000000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Pops its table name from module-level state, then uses it: a second upgrade() in the
    # same interpreter (say, a shadow replay and then the real upgrade) raises KeyError.
    table = stateful_registry.PENDING.pop("gauges")
    op.create_table(table, sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("gauges")
