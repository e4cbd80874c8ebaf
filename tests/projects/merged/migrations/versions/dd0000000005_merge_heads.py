"""merge invoices and audit_log

Revision ID: dd0000000005
Revises: dd0000000003, dd0000000004
Create Date: 2024-05-06 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = "dd0000000005"
down_revision: Union[str, Sequence[str], None] = ("dd0000000003", "dd0000000004")
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    pass


def downgrade() -> None:
    """Downgrade schema."""
    pass
