"""a schema renamed: everything in it, and what names it, reads anew

Revision ID: de0000000010
Revises: de0000000009
"""

from alembic import op

revision = "de0000000010"
down_revision = 'de0000000009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('ALTER SCHEMA side RENAME TO far')


def downgrade() -> None:
    raise NotImplementedError
