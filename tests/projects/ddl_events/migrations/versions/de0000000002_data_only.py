"""rows only: no DDL at all

Revision ID: de0000000002
Revises: de0000000001
"""

from alembic import op

revision = "de0000000002"
down_revision = 'de0000000001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("INSERT INTO hub (code) VALUES ('a')")


def downgrade() -> None:
    raise NotImplementedError
