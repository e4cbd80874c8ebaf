"""a partitioned table dropped with its partition and their indexes

Revision ID: de0000000012
Revises: de0000000011
"""

from alembic import op

revision = "de0000000012"
down_revision = 'de0000000011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('DROP TABLE measure')
    op.execute('DROP TABLE far.gauge')


def downgrade() -> None:
    raise NotImplementedError
