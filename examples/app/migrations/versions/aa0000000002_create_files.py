"""create files

Revision ID: aa0000000002
Revises: aa0000000001
Create Date: 2024-01-15 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "aa0000000002"
down_revision: Union[str, Sequence[str], None] = "aa0000000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # On PostgreSQL create_table also emits CREATE TYPE file_status; elsewhere it is a VARCHAR.
    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("uploaded", "processing", "done", name="file_status"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_files_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_files_user_id", "files", ["user_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_files_user_id", table_name="files")
    op.drop_table("files")
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TYPE IF EXISTS file_status")
