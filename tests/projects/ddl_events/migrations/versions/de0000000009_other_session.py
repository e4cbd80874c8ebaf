"""DDL through a connection of the revision's own

Revision ID: de0000000009
Revises: de0000000008
"""

import sqlalchemy as sa
from alembic import op

revision = "de0000000009"
down_revision = 'de0000000008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    engine = op.get_bind().engine
    with engine.connect() as other:
        other.execute(sa.text("CREATE TABLE lonely (id integer)"))
        other.execute(sa.text("CREATE INDEX ix_lonely ON lonely (id)"))
        other.commit()


def downgrade() -> None:
    raise NotImplementedError
