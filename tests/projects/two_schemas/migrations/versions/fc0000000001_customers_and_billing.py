"""customers (default schema); the billing schema and billing.invoices

Revision ID: fc0000000001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateSchema

revision = "fc0000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
    )
    op.execute(CreateSchema("billing"))
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        schema="billing",
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id"], schema="billing")


def downgrade() -> None:
    op.drop_table("invoices", schema="billing")
    op.execute("DROP SCHEMA billing")
    op.drop_table("customers")
