"""a serial's sequence and an identity changed, and the constraint-backing index's options

Revision ID: al0000000004
Revises: al0000000003
"""

from alembic import op

revision = "al0000000004"
down_revision = "al0000000003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("ALTER SEQUENCE parent_id_seq INCREMENT BY 5")
    op.execute("ALTER TABLE child ALTER COLUMN id SET INCREMENT BY 3")
    op.execute("ALTER INDEX uq_parent_code SET (fillfactor = 70)")


def downgrade() -> None:
    raise NotImplementedError
