"""parent renamed: child's foreign key now names another table

Revision ID: al0000000005
Revises: al0000000004
"""

from alembic import op

revision = "al0000000005"
down_revision = "al0000000004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("parent", "owner")


def downgrade() -> None:
    raise NotImplementedError
