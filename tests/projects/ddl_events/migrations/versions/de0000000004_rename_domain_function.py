"""a domain and a function renamed: hub's column, default, check

Revision ID: de0000000004
Revises: de0000000003
"""

from alembic import op

revision = "de0000000004"
down_revision = 'de0000000003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('ALTER DOMAIN posint RENAME TO positive_int')
    op.execute('ALTER FUNCTION pick() RENAME TO pick_one')


def downgrade() -> None:
    raise NotImplementedError
