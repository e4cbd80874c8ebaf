"""a schema made after the first revision, with a table in it

Revision ID: de0000000013
Revises: de0000000012
"""

from alembic import op

revision = "de0000000013"
down_revision = 'de0000000012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('CREATE SCHEMA later')
    op.execute('CREATE TABLE later.ledger (id integer PRIMARY KEY, far_ref text)')


def downgrade() -> None:
    raise NotImplementedError
