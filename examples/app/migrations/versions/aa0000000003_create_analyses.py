"""create analyses

Revision ID: aa0000000003
Revises: aa0000000002
Create Date: 2024-02-01 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "aa0000000003"
down_revision: Union[str, Sequence[str], None] = "aa0000000002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.CheckConstraint("score >= 0 AND score <= 100", name="ck_analyses_score_range"),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name="fk_analyses_file_id_files"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_analyses_file_id_kind", "analyses", ["file_id", "kind"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_analyses_file_id_kind", table_name="analyses")
    op.drop_table("analyses")
