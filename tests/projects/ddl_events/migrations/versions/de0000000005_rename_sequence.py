"""the serial's sequence renamed: hub's default names it

Revision ID: de0000000005
Revises: de0000000004
"""

from alembic import op

revision = "de0000000005"
down_revision = 'de0000000004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('ALTER SEQUENCE hub_id_seq RENAME TO hub_serial')


def downgrade() -> None:
    raise NotImplementedError
