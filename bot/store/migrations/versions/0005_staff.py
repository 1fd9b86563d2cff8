"""staff desk: broadcasts (scheduled, cancelled, followed), reports on proposals, staff chat
sessions, send budgets shared by every process

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BROADCAST = "broadcast_id IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("texts", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True)),
        sa.Column("queued", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_by", sa.String(64)),
        sa.Column("staff_chat", sa.String(32)),
        sa.Column("staff_message", sa.String(32)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_broadcasts_due", "broadcasts", ["status", "send_at"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("broadcast_id", Id, nullable=True))
    op.create_index("ix_outbox_broadcast", "outbox", ["broadcast_id", "status"],
                    sqlite_where=sa.text(BROADCAST), postgresql_where=sa.text(BROADCAST))
    op.create_table(
        "proposal_reports",
        sa.Column("proposal_id", Id, sa.ForeignKey("proposals.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("participant_id", Id, sa.ForeignKey("participants.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "staff_sessions",
        sa.Column("chat_id", sa.String(32), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "send_budgets",
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("send_budgets")
    op.drop_table("staff_sessions")
    op.drop_table("proposal_reports")
    op.drop_index("ix_outbox_broadcast", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("broadcast_id")
    op.drop_index("ix_broadcasts_due", table_name="broadcasts")
    op.drop_table("broadcasts")
