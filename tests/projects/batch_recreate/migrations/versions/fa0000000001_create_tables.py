"""parent, child (FK, index, check) and tag (a named primary key)

Revision ID: fa0000000001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "fa0000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["parent.id"], name="fk_child_parent"),
        sa.CheckConstraint("id > 0", name="ck_child_positive"),
    )
    op.create_index("ix_child_parent", "child", ["parent_id"])
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tag"),
    )


def downgrade() -> None:
    op.drop_table("tag")
    op.drop_table("child")
    op.drop_table("parent")
