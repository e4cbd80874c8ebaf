"""billing.invoice_lines

Revision ID: fc0000000002
Revises: fc0000000001
"""

import sqlalchemy as sa
from alembic import op

revision = "fc0000000002"
down_revision = "fc0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("invoice_id", sa.Integer, nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["billing.invoices.id"], name="fk_invoice_lines_invoice"
        ),
        schema="billing",
    )


def downgrade() -> None:
    op.drop_table("invoice_lines", schema="billing")
