"""a later revision on the same names

Revision ID: ee0000000002
Revises: ee0000000001
"""

import sqlalchemy as sa
from alembic import op

revision = "ee0000000002"
down_revision = "ee0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = "Billing Dept" if op.get_context().dialect.name == "postgresql" else None
    op.add_column("group", sa.Column("Where", sa.Text), schema=schema)
    op.create_index("ix group where", "group", ["Where"], schema=schema)


def downgrade() -> None:
    raise NotImplementedError
