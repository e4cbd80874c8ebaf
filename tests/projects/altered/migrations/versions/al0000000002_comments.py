"""comments on a column and a table, nothing else

Revision ID: al0000000002
Revises: al0000000001
"""

from alembic import op

revision = "al0000000002"
down_revision = "al0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("COMMENT ON COLUMN parent.name IS 'shown to people'")
    op.execute("COMMENT ON TABLE child IS 'belongs to a parent'")


def downgrade() -> None:
    raise NotImplementedError
