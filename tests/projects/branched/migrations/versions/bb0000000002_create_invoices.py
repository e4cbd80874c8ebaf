"""create invoices

Revision ID: bb0000000002
Revises: bb0000000001
Create Date: 2024-05-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "bb0000000002"
down_revision: Union[str, Sequence[str], None] = "bb0000000001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name="fk_invoices_account_id_accounts"),
            nullable=False,
        ),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("invoices")
