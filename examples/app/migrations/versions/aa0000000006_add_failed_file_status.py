"""add 'failed' to file_status

Revision ID: aa0000000006
Revises: aa0000000005
Create Date: 2024-03-19 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = "aa0000000006"
down_revision: Union[str, Sequence[str], None] = "aa0000000005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Only PostgreSQL has a real enum type; elsewhere file_status is a VARCHAR(10) that
    # already fits 'failed'. A new enum value cannot be used in the transaction that adds
    # it, so add it outside the migration transaction.
    if op.get_context().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE file_status ADD VALUE IF NOT EXISTS 'failed'")


def downgrade() -> None:
    """Downgrade schema."""
    op.execute("UPDATE files SET status = 'done' WHERE status = 'failed'")
    if op.get_context().dialect.name != "postgresql":
        return
    # PostgreSQL cannot drop an enum value: rebuild the type without it.
    op.execute("ALTER TYPE file_status RENAME TO file_status_old")
    op.execute("CREATE TYPE file_status AS ENUM ('uploaded', 'processing', 'done')")
    op.execute(
        "ALTER TABLE files ALTER COLUMN status TYPE file_status"
        " USING status::text::file_status"
    )
    op.execute("DROP TYPE file_status_old")
