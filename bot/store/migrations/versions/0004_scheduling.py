"""scheduling: campaign events, their log, follows, unfinished ballots, reminder preferences,
bulk rows in the outbox

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INACTIVE = "status <> 'active'"
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("reminders", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("hint_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("bulk", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.drop_index("ix_outbox_queue", table_name="outbox")
    op.create_index("ix_outbox_queue", "outbox", ["status", "channel", "bulk", "id"])
    op.create_table(
        "campaign_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True)),
        sa.Column("queued", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("note", sa.String(255)),
        sa.UniqueConstraint("campaign_id", "event", name="uq_campaign_events_event"),
    )
    op.create_index("ix_campaign_events_due", "campaign_events", ["status", "due_at"])
    op.create_table(
        "campaign_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("campaigns.id", ondelete="CASCADE")),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_campaign_log_campaign", "campaign_log", ["campaign_id", "id"])
    op.create_table(
        "follows",
        sa.Column("participant_id", Id, sa.ForeignKey("participants.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("following", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_follows_campaign", "follows", ["campaign_id", "following"])
    op.create_table(
        "ballot_drafts",
        sa.Column("participant_id", Id, sa.ForeignKey("participants.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("nudges", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("nudged_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_ballot_drafts_campaign", "ballot_drafts", ["campaign_id", "nudges"])
    op.create_index("ix_outbox_participant", "outbox", ["participant_id"])
    op.create_index("ix_participants_inactive", "participants", ["id"],
                    sqlite_where=sa.text(INACTIVE), postgresql_where=sa.text(INACTIVE))


def downgrade() -> None:
    op.drop_index("ix_participants_inactive", table_name="participants")
    op.drop_index("ix_outbox_participant", table_name="outbox")
    op.drop_table("ballot_drafts")
    op.drop_table("follows")
    op.drop_table("campaign_log")
    op.drop_table("campaign_events")
    op.drop_index("ix_outbox_queue", table_name="outbox")
    op.create_index("ix_outbox_queue", "outbox", ["status", "channel", "id"])
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("bulk")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("hint_at")
        batch.drop_column("reminders")
