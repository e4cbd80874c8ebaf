"""the enum renamed and given a value: hub's column type and default read anew

Revision ID: de0000000003
Revises: de0000000002
"""

from alembic import op

revision = "de0000000003"
down_revision = 'de0000000002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('ALTER TYPE mood RENAME TO feeling_kind')
    op.execute("ALTER TYPE feeling_kind ADD VALUE 'glad'")


def downgrade() -> None:
    raise NotImplementedError
