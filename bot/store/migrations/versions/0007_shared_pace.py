"""a channel's send budget knows when several processes send, and how unevenly

Two `votz run` on one database share a channel's slots; each hands a slot out up to LATE
after its instant, and the time from a handout to the provider varies more on a busy
machine than the pace's margin allows (at 1,000/s, 8 ms): measured, six 429s in 20 s with
two processes. The row now says who reserved last (`holder`, a name drawn by each process),
until when several processes count as sending (`shared_until`), and the largest spread of
the time their sends take (`spread`, seconds) with when it was reported (`spread_at`):
while several send, slots are spaced wider by that much (see `bot.delivery.ratelimit`).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send_budgets") as batch:
        batch.add_column(sa.Column("holder", sa.String(16), nullable=True))
        batch.add_column(sa.Column("shared_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("spread", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("spread_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("send_budgets") as batch:
        batch.drop_column("spread_at")
        batch.drop_column("spread")
        batch.drop_column("shared_until")
        batch.drop_column("holder")
