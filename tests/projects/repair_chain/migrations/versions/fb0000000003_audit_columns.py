"""audit.action and audit.note, written before the repair existed

Revision ID: fb0000000003
Revises: fb0000000002
"""

import sqlalchemy as sa
from alembic import op

revision = "fb0000000003"
down_revision = "fb0000000002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit", sa.Column("action", sa.String(64), nullable=True))
    op.add_column("audit", sa.Column("note", sa.Text, nullable=True))
    op.create_index("ix_audit_user_id", "audit", ["user_id"])


def downgrade() -> None:
    op.drop_column("audit", "note")
    op.drop_column("audit", "action")
