"""verified phone numbers and one ballot per voter

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
    with op.batch_alter_table("ballots") as batch:
        batch.add_column(sa.Column("voter", sa.String(length=80), nullable=True))
    op.execute("UPDATE participants SET phone = address WHERE channel = 'sms'")
    op.execute("UPDATE ballots SET voter = 'participant:' || CAST(participant_id AS VARCHAR) "
               "WHERE participant_id IS NOT NULL")
    with op.batch_alter_table("ballots") as batch:
        batch.create_unique_constraint("uq_ballots_campaign_voter", ["campaign_id", "voter"])


def downgrade() -> None:
    with op.batch_alter_table("ballots") as batch:
        batch.drop_constraint("uq_ballots_campaign_voter", type_="unique")
        batch.drop_column("voter")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("phone")
