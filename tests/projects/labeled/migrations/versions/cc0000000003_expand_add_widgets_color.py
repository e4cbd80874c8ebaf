"""expand: add widgets.color

Revision ID: cc0000000003
Revises: cc0000000002
Create Date: 2024-06-03 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "cc0000000003"
down_revision: Union[str, Sequence[str], None] = "cc0000000002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("widgets", sa.Column("color", sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("widgets", "color")
