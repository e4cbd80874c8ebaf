"""create health_metrics

Revision ID: aa0000000004
Revises: aa0000000003
Create Date: 2024-02-20 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "aa0000000004"
down_revision: Union[str, Sequence[str], None] = "aa0000000003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "health_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_health_metrics_file_id_files"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id", "metric", name="uq_health_metrics_file_metric"),
    )
    op.create_index("ix_health_metrics_file_id", "health_metrics", ["file_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_health_metrics_file_id", table_name="health_metrics")
    op.drop_table("health_metrics")
