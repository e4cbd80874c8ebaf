"""a table moved to another schema

Revision ID: de0000000008
Revises: de0000000007
"""

from alembic import op

revision = "de0000000008"
down_revision = 'de0000000007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('ALTER TABLE spoke SET SCHEMA side')


def downgrade() -> None:
    raise NotImplementedError
