"""a column renamed under a foreign key, a parent and a partitioned table altered

Revision ID: de0000000006
Revises: de0000000005
"""

from alembic import op

revision = "de0000000006"
down_revision = 'de0000000005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('ALTER TABLE hub RENAME COLUMN code TO label')
    op.execute('ALTER TABLE animal ADD COLUMN legs integer')
    op.execute('CREATE INDEX ix_measure_v ON measure (v)')


def downgrade() -> None:
    raise NotImplementedError
