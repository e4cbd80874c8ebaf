"""names that need quoting everywhere: spaces, mixed case, SQL keywords, quotes, unicode

Revision ID: ee0000000001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "ee0000000001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "Billing Dept"


def upgrade() -> None:
    pg = op.get_context().dialect.name == "postgresql"
    if pg:
        op.execute(sa.schema.CreateSchema(SCHEMA))
        postgresql.ENUM("happy", "it's", "Ünïcode ok", name="Mood Type").create(op.get_bind())
        mood: sa.types.TypeEngine = postgresql.ENUM(name="Mood Type", create_type=False)
    else:
        mood = sa.String(12)
    op.create_table(
        "Order Items",
        sa.Column("ID", sa.Integer, primary_key=True),
        sa.Column("select", sa.String(20), nullable=False),
        sa.Column("naïve", sa.Text),
        sa.Column('quo"te', sa.Integer, server_default="0"),
        sa.Column("mood", mood),
        sa.UniqueConstraint("select", name="uq Order Items select"),
        sa.CheckConstraint('"ID" > 0', name="ck: positive id"),
    )
    op.create_index("ix Order Items naïve", "Order Items", ["naïve"])
    op.create_table(
        "group",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("Order Item", sa.Integer),
        sa.ForeignKeyConstraint(["Order Item"], ["Order Items.ID"], name="fk group order's item"),
        schema=SCHEMA if pg else None,
    )


def downgrade() -> None:
    raise NotImplementedError
