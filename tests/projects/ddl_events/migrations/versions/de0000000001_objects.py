"""types, a domain, a function, a serial, foreign keys, inheritance, partitions

Revision ID: de0000000001
Revises: 
"""

from alembic import op

revision = "de0000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')")
    op.execute('CREATE DOMAIN posint AS integer CHECK (VALUE > 0)')
    op.execute("CREATE FUNCTION pick() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1'")
    op.execute("CREATE TABLE hub (id serial PRIMARY KEY, code text UNIQUE, feeling mood DEFAULT 'ok', qty posint, pickme integer DEFAULT pick() CHECK (pickme < 100))")
    op.execute('CREATE TABLE spoke (id integer PRIMARY KEY, hub_id integer REFERENCES hub (id), hub_code text REFERENCES hub (code))')
    op.execute('CREATE INDEX ix_spoke_hub ON spoke (hub_id)')
    op.execute('CREATE TABLE animal (id integer, name text)')
    op.execute('CREATE TABLE dog (bark text) INHERITS (animal)')
    op.execute('CREATE TABLE measure (at date NOT NULL, v integer) PARTITION BY RANGE (at)')
    op.execute("CREATE TABLE measure_2026 PARTITION OF measure FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    op.execute('CREATE SCHEMA side')
    op.execute('CREATE TABLE side.gauge (id integer PRIMARY KEY, hub_id integer REFERENCES public.hub (id))')


def downgrade() -> None:
    raise NotImplementedError
