"""an index dropped, a comment, a renamed constraint

Revision ID: de0000000007
Revises: de0000000006
"""

from alembic import op

revision = "de0000000007"
down_revision = 'de0000000006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute('DROP INDEX ix_spoke_hub')
    op.execute('CREATE INDEX passing ON hub (id)')  # a data migration's helper
    op.execute('DROP INDEX passing')
    op.execute("COMMENT ON COLUMN spoke.hub_id IS 'the hub'")
    op.execute('ALTER TABLE spoke RENAME CONSTRAINT spoke_hub_id_fkey TO fk_spoke_hub')


def downgrade() -> None:
    raise NotImplementedError
