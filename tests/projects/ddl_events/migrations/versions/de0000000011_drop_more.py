"""a child table, a column and a check dropped

Revision ID: de0000000011
Revises: de0000000010
"""

from alembic import op

revision = "de0000000011"
down_revision = 'de0000000010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('DROP TABLE dog')
    op.execute('ALTER TABLE hub DROP COLUMN qty')
    op.execute('ALTER TABLE hub DROP CONSTRAINT hub_pickme_check')


def downgrade() -> None:
    raise NotImplementedError
