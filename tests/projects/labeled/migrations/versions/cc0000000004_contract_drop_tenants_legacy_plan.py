"""contract: drop tenants.legacy_plan

Revision ID: cc0000000004
Revises: cc0000000001
Create Date: 2024-06-04 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "cc0000000004"
down_revision: Union[str, Sequence[str], None] = "cc0000000001"
branch_labels: Union[str, Sequence[str], None] = ("contract",)
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.drop_column("tenants", "legacy_plan")


def downgrade() -> None:
    """Downgrade schema."""
    op.add_column("tenants", sa.Column("legacy_plan", sa.String(length=32), nullable=True))
