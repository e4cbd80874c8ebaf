"""documents.note, lines.amount: a later revision, so that heals happen at a mid stamp too

Revision ID: fd0000000002
Revises: fd0000000001
"""

import sqlalchemy as sa
from alembic import op

revision = "fd0000000002"
down_revision = "fd0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("note", sa.Text, comment="free text"))
    with op.batch_alter_table("lines") as batch:
        batch.add_column(sa.Column("amount", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    raise NotImplementedError
