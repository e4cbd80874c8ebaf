"""re-create tag's primary key under the same name, then reference it

Revision ID: fa0000000003
Revises: fa0000000002
"""

import sqlalchemy as sa
from alembic import op

revision = "fa0000000003"
down_revision = "fa0000000002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tag") as batch:
        batch.drop_constraint("pk_tag", type_="primary")
        batch.create_primary_key("pk_tag", ["id", "name"])
    op.create_table(
        "tag_use",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tag_id", sa.Integer, nullable=False),
        sa.Column("tag_name", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["tag_id", "tag_name"], ["tag.id", "tag.name"], name="fk_tag_use_tag"
        ),
    )


def downgrade() -> None:
    pass
