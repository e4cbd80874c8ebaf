"""REPAIR: create audit as production has it (columns that later revisions add again)

The incident: production lost track of audit, so a repair revision was slipped in early in the
chain creating the table with every column it has today. The revisions after it still add
those columns, so a plain `alembic upgrade` fails with DuplicateColumn / relation exists.

Revision ID: fb0000000002
Revises: fb0000000001
"""

import sqlalchemy as sa
from alembic import op

revision = "fb0000000002"
down_revision = "fb0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name="fk_audit_user")),
        sa.Column("action", sa.String(64), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_user_id", "audit", ["user_id"])


def downgrade() -> None:
    op.drop_table("audit")
