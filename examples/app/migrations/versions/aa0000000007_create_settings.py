"""create settings and seed defaults

Revision ID: aa0000000007
Revises: aa0000000006
Create Date: 2024-04-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "aa0000000007"
down_revision: Union[str, Sequence[str], None] = "aa0000000006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    settings = op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.bulk_insert(
        settings,
        [
            {"key": "max_upload_mb", "value": "100"},
            {"key": "analysis_kinds", "value": "ecg,spo2"},
            {"key": "retention_days", "value": "365"},
        ],
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("settings")
