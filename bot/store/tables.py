"""The schema, as SQLAlchemy Core tables (migrations in `migrations/versions` create it)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()
_PENDING = "status IN ('queued', 'sending')"
_INACTIVE = "status <> 'active'"
_BROADCAST = "broadcast_id IS NOT NULL"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite stores them as naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")

participants = Table(
    "participants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("address", String(64), nullable=False),
    Column("locale", String(5), nullable=False),
    Column("status", String(16), nullable=False),
    Column("consent_at", UTCDateTime()),
    Column("privacy_url", String(255)),
    Column("age_bracket", String(16)),
    Column("postal_code", String(5)),
    Column("departement", String(3)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("phone", String(20)),  # E.164, verified: the SMS number, or shared on Telegram
    # Campaign announcements and reminders (RAPPELS NON turns them off; STOP stops all).
    Column("reminders", Boolean, nullable=False, server_default=true()),
    # When a bulk message last carried the opt-out hint (shown at most once in 30 days).
    Column("hint_at", UTCDateTime()),
    UniqueConstraint("channel", "address", name="uq_participants_channel_address"),
    # The few who stopped: a claim checks "has this person stopped?" for each candidate row
    # (PostgreSQL: 1.5-3 ms a claim with 200,000 participants, instead of a scan of them all).
    Index("ix_participants_inactive", "id", sqlite_where=text(_INACTIVE),
          postgresql_where=text(_INACTIVE)),
)

conversations = Table(
    "conversations",
    metadata,
    Column(
        "participant_id", Id, ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("step", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

inbound_seen = Table(
    "inbound_seen",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("provider_id", String(64), primary_key=True),
    Column("received_at", UTCDateTime(), nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("definition", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

proposals = Table(
    "proposals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("ref", String(64)),
    Column("author_id", Id, ForeignKey("participants.id", ondelete="SET NULL")),
    Column("title", Text, nullable=False),
    Column("cost", Integer),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("campaign_id", "ref", name="uq_proposals_campaign_ref"),
    Index("ix_proposals_author", "author_id", "campaign_id"),
)

ballots = Table(
    "ballots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("participant_id", Id, ForeignKey("participants.id", ondelete="SET NULL")),
    Column("choices", String(512), nullable=False),
    Column("age_bracket", String(16)),
    Column("departement", String(3)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Who the ballot counts for: "phone:+336…" where a campaign wants verified numbers (so
    # one person has one ballot across SMS and Telegram), else "participant:ID".
    Column("voter", String(80)),
    UniqueConstraint("participant_id", "campaign_id", name="uq_ballots_participant_campaign"),
    UniqueConstraint("campaign_id", "voter", name="uq_ballots_campaign_voter"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("participant_id", Id, ForeignKey("participants.id", ondelete="CASCADE")),
    Column("channel", String(16), nullable=False),
    Column("address", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("choices", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("provider_id", String(64)),
    Column("failure_reason", String(255)),
    Column("idempotency_key", String(128), unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("claimed_by", String(64)),  # the instance sending it (status sending)
    # Sent whatever the person's status: the answer to what a stopped person wrote (STOP).
    Column("unconditional", Boolean, nullable=False, server_default=false()),
    # Not an answer to the person (an announcement, a reminder, a broadcast, an outcome):
    # held outside the channel's sending window, and never holds up a reply behind it.
    Column("bulk", Boolean, nullable=False, server_default=false()),
    # The staff broadcast it belongs to: its progress is counted, its cancel applied, here.
    Column("broadcast_id", Id),
    # The queue in order: a claim walks it by id and stops at its limit (with next_attempt_at
    # first, SQLite sorted every due row before each claim: 13 ms with 6,000 queued, 0.6 ms).
    # Replies and bulk rows apart: replies are claimed first, bulk rows only in the window.
    Index("ix_outbox_queue", "status", "channel", "bulk", "id"),
    # Per-person order: is an older row to this address still queued or sending?
    Index("ix_outbox_pending_person", "channel", "address", "id",
          sqlite_where=text(_PENDING), postgresql_where=text(_PENDING)),
    # A person's rows: cancelled when they stop, deleted when they are erased.
    Index("ix_outbox_participant", "participant_id"),
    # A broadcast's rows by status; those held for a sending window are a range of it.
    Index("ix_outbox_broadcast", "broadcast_id", "status", "next_attempt_at",
          sqlite_where=text(_BROADCAST), postgresql_where=text(_BROADCAST)),
)

# What a campaign's dates make happen (announcements, reminders, results), one row per event;
# `version` is the campaign's dates when it was planned (part of each message's key).
campaign_events = Table(
    "campaign_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("version", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # pending, done, skipped
    Column("done_at", UTCDateTime()),
    Column("queued", Integer, nullable=False, server_default="0"),
    Column("note", String(255)),
    UniqueConstraint("campaign_id", "event", name="uq_campaign_events_event"),
    Index("ix_campaign_events_due", "status", "due_at"),
)

# Who changed what in a campaign and why: phase overrides, date changes, skipped events.
campaign_log = Table(
    "campaign_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE")),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_campaign_log_campaign", "campaign_id", "id"),
)

# Following a campaign (True) or not wanting its messages (False); no row: eligible people
# hear its announcements, only followers hear what is sent to followers.
follows = Table(
    "follows",
    metadata,
    Column("participant_id", Id, ForeignKey("participants.id", ondelete="CASCADE"),
           primary_key=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("following", Boolean, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_follows_campaign", "campaign_id", "following"),
)

# A ballot started and not confirmed: nudged 2 hours after it was left, then a week later.
ballot_drafts = Table(
    "ballot_drafts",
    metadata,
    Column("participant_id", Id, ForeignKey("participants.id", ondelete="CASCADE"),
           primary_key=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("nudges", Integer, nullable=False, server_default="0"),
    Column("nudged_at", UTCDateTime()),
    Index("ix_ballot_drafts_campaign", "campaign_id", "nudges"),
)

# A staff broadcast: its texts and audience, when it is to be queued, and what became of it.
# Its messages are the outbox rows with its id in `outbox.broadcast_id` (their counts by status
# are kept on its row; cancelling turns those still queued into `cancelled`).
broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # scheduled, queued, cancelled
    Column("texts", Text, nullable=False),  # JSON: locale → text
    Column("audience", Text, nullable=False),  # JSON: the filters it was composed with
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("send_at", UTCDateTime(), nullable=False),
    Column("queued_at", UTCDateTime()),
    Column("queued", Integer, nullable=False, server_default="0"),
    Column("cancelled_at", UTCDateTime()),
    Column("cancelled_by", String(64)),
    # The staff chat message showing its progress, edited in place.
    Column("staff_chat", String(32)),
    Column("staff_message", String(32)),
    Column("finished_at", UTCDateTime()),  # when its final report was made
    # Its outbox rows in each status, kept by triggers on outbox (migration 0006): progress is
    # read here, not counted (0.2 s with 500,000 rows on SQLite, the dispatcher's connection).
    *(Column(f"count_{status}", Integer, nullable=False, server_default="0")
      for status in ("queued", "sending", "sent", "delivered", "failed", "cancelled")),
    Index("ix_broadcasts_due", "status", "send_at"),
)

# "SIGNALER P12": one report per person and proposal; 3 hide it pending review.
proposal_reports = Table(
    "proposal_reports",
    metadata,
    Column("proposal_id", Id, ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True),
    Column("participant_id", Id, ForeignKey("participants.id", ondelete="CASCADE"),
           primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
)

# What a staff member is doing in the staff chat (composing a broadcast, giving a reason): any
# process serving the bot picks the conversation up where another left it.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("chat_id", String(32), primary_key=True),
    Column("state", Text, nullable=False),  # JSON
    Column("updated_at", UTCDateTime(), nullable=False),
)

# A channel's send rate shared by every process sending on it (a token bucket in the
# database): two `votz run` together stay under the provider's limit.
send_budgets = Table(
    "send_budgets",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("holder", String(16)),  # the process that reserved last (a name it drew)
    Column("shared_until", UTCDateTime()),  # several processes send until then
    Column("spread", Float, nullable=False, server_default="0"),  # seconds, see ratelimit
    Column("spread_at", UTCDateTime()),  # when that spread was reported
)
