"""outbox: who claimed a row, rows sent whatever the status, per-person order, queue order

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PENDING = "status IN ('queued', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("unconditional", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_index("ix_outbox_pending_person", "outbox", ["channel", "address", "id"],
                    sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_queue", "outbox", ["status", "channel", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_queue", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["status", "channel", "next_attempt_at"])
    op.drop_index("ix_outbox_pending_person", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("unconditional")
        batch.drop_column("claimed_by")
