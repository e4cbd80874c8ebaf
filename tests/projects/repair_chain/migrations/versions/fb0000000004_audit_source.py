"""audit.source (new)

Revision ID: fb0000000004
Revises: fb0000000003
"""

import sqlalchemy as sa
from alembic import op

revision = "fb0000000004"
down_revision = "fb0000000003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "audit", sa.Column("source", sa.String(16), nullable=False, server_default="web")
    )


def downgrade() -> None:
    op.drop_column("audit", "source")
