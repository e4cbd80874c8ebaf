"""parent and child tables, a foreign key between them, a unique constraint and an index

Revision ID: al0000000001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "al0000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.UniqueConstraint("code", name="uq_parent_code"),
    )
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent")),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_child_note", "child", ["note"])
    op.create_table("bystander", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    raise NotImplementedError
