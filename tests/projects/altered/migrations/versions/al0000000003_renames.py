"""renames in parent that change how child's foreign key reads, child itself untouched

Revision ID: al0000000003
Revises: al0000000002
"""

from alembic import op

revision = "al0000000003"
down_revision = "al0000000002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.alter_column("parent", "code", new_column_name="ref")
    op.alter_column("parent", "id", new_column_name="pid")


def downgrade() -> None:
    raise NotImplementedError
