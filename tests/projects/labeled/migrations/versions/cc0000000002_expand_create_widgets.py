"""expand: create widgets

Revision ID: cc0000000002
Revises: cc0000000001
Create Date: 2024-06-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "cc0000000002"
down_revision: Union[str, Sequence[str], None] = "cc0000000001"
branch_labels: Union[str, Sequence[str], None] = ("expand",)
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "widgets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.Integer(),
            sa.ForeignKey("tenants.id", name="fk_widgets_tenant_id_tenants"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("widgets")
