"""drop and re-create the FK, the index and the check under the same names, in one batch

A common real pattern: change an FK's ON DELETE, an index's columns or a check's condition.

Revision ID: fa0000000002
Revises: fa0000000001
"""

from alembic import op

revision = "fa0000000002"
down_revision = "fa0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("child") as batch:
        batch.drop_constraint("fk_child_parent", type_="foreignkey")
        batch.create_foreign_key(
            "fk_child_parent", "parent", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch.drop_index("ix_child_parent")
        batch.create_index("ix_child_parent", ["parent_id", "id"])
        batch.drop_constraint("ck_child_positive", type_="check")
        batch.create_check_constraint("ck_child_positive", "id > 1")


def downgrade() -> None:
    pass
