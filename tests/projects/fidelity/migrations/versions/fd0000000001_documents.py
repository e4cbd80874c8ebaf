"""documents: every kind of object whose heal must match a clean upgrade exactly

Generated and identity columns, a collation, comments, a deferrable unique constraint, an
exclusion constraint, covering, partial, expression and sorted indexes, a foreign key with
MATCH FULL and deferrable ON DELETE CASCADE, a serial key in a table whose name has a quote.
SQLite gets what it has of these: a generated column, COLLATE NOCASE, unnamed inline foreign
key and unique constraint, expression and partial indexes.

Revision ID: fd0000000001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "fd0000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()


def _postgresql() -> None:
    op.execute("CREATE TYPE doc_state AS ENUM ('draft', 'final')")
    op.create_table(
        "documents",
        sa.Column(
            "id",
            sa.BigInteger,
            sa.Identity(always=False, start=100, increment=5),
            primary_key=True,
        ),
        sa.Column("code", sa.String(20, collation="C"), nullable=False),
        sa.Column("title", sa.Text, comment="the title"),
        sa.Column("price", sa.Numeric(10, 2), nullable=False, server_default="0"),
        sa.Column("qty", sa.Integer, nullable=False, server_default="1"),
        sa.Column("total", sa.Numeric(12, 2), sa.Computed("price * qty", persisted=True)),
        sa.Column("data", postgresql.JSONB),
        sa.Column("valid_during", postgresql.TSRANGE),
        sa.Column(
            "state",
            postgresql.ENUM(name="doc_state", create_type=False),
            server_default="draft",
        ),
        sa.CheckConstraint("qty >= 0", name="ck_documents_qty"),
        comment="documents of every kind",
    )
    op.execute(
        "ALTER TABLE documents ADD CONSTRAINT uq_documents_code UNIQUE (code) "
        "DEFERRABLE INITIALLY DEFERRED"
    )
    op.execute(
        "ALTER TABLE documents ADD CONSTRAINT ex_documents_valid_during "
        "EXCLUDE USING gist (valid_during WITH &&)"
    )
    op.execute("CREATE INDEX ix_documents_code_incl ON documents (code) INCLUDE (title)")
    op.execute("CREATE INDEX ix_documents_open ON documents (title) WHERE qty > 0")
    op.execute("CREATE INDEX ix_documents_key ON documents ((data ->> 'key'))")
    op.execute(
        "CREATE INDEX ix_documents_title_desc ON documents "
        "(title COLLATE \"C\" DESC NULLS LAST, code text_pattern_ops)"
    )
    op.create_table(
        "lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("document_id", sa.BigInteger, nullable=False),
        sa.Column("code", sa.String(20, collation="C"), nullable=False),
    )
    op.execute(
        "ALTER TABLE lines ADD CONSTRAINT fk_lines_document FOREIGN KEY (document_id) "
        "REFERENCES documents (id) MATCH FULL ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"
    )
    op.create_table(
        "o'rders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text),
    )


def _sqlite() -> None:
    op.execute(
        "CREATE TABLE documents ("
        " id INTEGER PRIMARY KEY,"
        " code VARCHAR(20) COLLATE NOCASE NOT NULL UNIQUE,"
        " title TEXT,"
        " price NUMERIC NOT NULL DEFAULT 0,"
        " qty INTEGER NOT NULL DEFAULT 1 CHECK (qty >= 0),"
        " total NUMERIC GENERATED ALWAYS AS (price * qty) VIRTUAL,"
        " data JSON)"
    )
    op.execute("CREATE INDEX ix_documents_open ON documents (title) WHERE qty > 0")
    op.execute("CREATE INDEX ix_documents_key ON documents (json_extract(data, '$.key'))")
    op.execute(
        "CREATE TABLE lines ("
        " id INTEGER PRIMARY KEY,"
        " document_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,"
        " code VARCHAR(20) NOT NULL)"
    )
    op.execute("CREATE INDEX ix_lines_document ON lines (document_id)")
    op.execute(
        "CREATE TRIGGER lines_touch AFTER INSERT ON lines BEGIN "
        "UPDATE documents SET qty = qty WHERE id = NEW.document_id; END"
    )


def downgrade() -> None:
    raise NotImplementedError
