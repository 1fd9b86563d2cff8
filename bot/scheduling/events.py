"""Campaign events in the database: planned from the campaign's dates, fired into the outbox.

    campaigns load / phase override ─> plan(): one `campaign_events` row per event, its due
                                       time and the campaign's dates version; changed dates
                                       are logged and reschedule what is pending
    scheduler tick ─> fire_due(): each due event, in its own transaction, locked (SKIP
                      LOCKED on PostgreSQL): its whole audience is queued by one
                      INSERT … SELECT, the row marked done; missed by more than the grace
                      period: skipped and logged
                 ─> nudge_unfinished(): ballots started and not confirmed, 2 h after they
                      were left and a week later (24 h apart at least, never in the last 6 h
                      of the vote)

Every message has an idempotency key `event:CAMPAIGN:EVENT:VERSION:PARTICIPANT`: a replayed
tick, a restart in the middle of one, or a second process queues nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import String as SqlString
from sqlalchemy import text as sql_text

from bot.channels import registry
from bot.channels.base import Reply
from bot.delivery.outbox import OutboxStatus, encode_choices
from bot.delivery.windows import Windows, parse_window
from bot.domain.campaigns import Campaign, Phase
from bot.domain.events import (
    OUTCOME_TARGETS,
    Event,
    Target,
    dates_version,
    fill,
)
from bot.domain.participants import Status
from bot.domain.region import LOCALES
from bot.domain.results import SUPPRESS_BELOW, local_figures, tally
from bot.i18n import N_, I18n, Msg, PluralMsg
from bot.store.repo import (
    campaign_from_json,
    campaign_proposals,
    counted_ballots,
    insert_for,
)
from bot.store.tables import (
    ballot_drafts,
    ballots,
    campaign_events,
    campaign_log,
    follows,
    outbox,
    participants,
    proposals,
)
from bot.store.tables import campaigns as campaigns_table

log = logging.getLogger("votz.scheduling")

PENDING, DONE, SKIPPED, CANCELLED, RECURRING = (
    "pending", "done", "skipped", "cancelled", "recurring")
NUDGES = "unfinished-ballots"  # the recurring row of a campaign's ballot nudges
NUDGE_AFTER = (timedelta(hours=2), timedelta(days=7))  # after the ballot was left
NUDGE_GAP = timedelta(hours=24)
NUDGE_QUIET_BEFORE_CLOSE = timedelta(hours=6)
HINT_EVERY = timedelta(days=30)
ONCE = "once"  # the version part of the keys of results: one push per campaign, ever
ANALYZE_AFTER = 10_000  # rows queued at once, after which PostgreSQL's statistics are renewed
TEMPLATES = {
    "submission-opens": N_("event.submission_opens"),
    "submission-closing": N_("event.submission_closing"),
    "vote-opens": N_("event.vote_opens"),
    "vote-closing": N_("event.vote_closing"),
    "results": N_("event.results"),
}
# The same, for a phase without an end date (no "until …").
OPEN_ENDED = {
    "submission-opens": N_("event.submission_opens_open"),
    "vote-opens": N_("event.vote_opens_open"),
}
# The reminders before a phase closes count the days left: "plus qu'un jour", "3 jours".
COUNTDOWN_PLURALS = {msg.key: msg.plural for msg in (
    PluralMsg("event.submission_closing", "event.submission_closing_plural", 0),
    PluralMsg("event.vote_closing", "event.vote_closing_plural", 0),
)}
HINT = N_("event.hint")  # the opt-out hint at the end of a bulk SMS
UNFINISHED = N_("event.unfinished")
UNFINISHED_OPEN = N_("event.unfinished_open")


# --- planning --------------------------------------------------------------------------------


def log_change(conn: Connection, campaign_id: int | None, now: datetime, actor: str,
               action: str, detail: str) -> None:
    conn.execute(campaign_log.insert().values(campaign_id=campaign_id, at=now, actor=actor,
                                              action=action, detail=detail[:2000]))
    log.info("campaign.%s campaign=%s actor=%s %s", action, campaign_id, actor, detail)


def plan(conn: Connection, campaign: Campaign, now: datetime, *, grace: timedelta,
         actor: str = "votz") -> list[str]:
    """Bring the campaign's `campaign_events` rows in line with its dates; return what
    changed, in words (also logged in `campaign_log`)."""
    version = dates_version(campaign)
    query = select(campaign_events).where(campaign_events.c.campaign_id == campaign.id)
    if conn.dialect.name == "postgresql":
        # Waits for a tick firing one of them: its status is then read as committed (done),
        # not as it was before (pending), which would plan it again under new keys.
        query = query.with_for_update()
    rows = {r.event: r for r in conn.execute(query)}
    past: list[str] = []
    changes: list[str] = []
    wanted: dict[str, datetime] = {}
    events_by_id = {e.id: e for e in campaign.events}
    for event in campaign.events:
        due = event.due(campaign)
        if due is not None:
            wanted[event.id] = due
    for event_id, due in wanted.items():
        row = rows.get(event_id)
        if row is None:
            late = due < now - grace
            # (Nothing if another process planned it meanwhile: its row stands.)
            conn.execute(insert_for(conn, campaign_events).values(
                campaign_id=campaign.id, event=event_id, due_at=due, version=version,
                status=SKIPPED if late else PENDING,
                note="already past when the campaign was loaded" if late else None)
                .on_conflict_do_nothing(index_elements=["campaign_id", "event"]))
            if late:
                past.append(event_id)
            continue
        if row.due_at == due and row.version == version:
            continue
        values: dict[str, Any] = {"version": version, "due_at": due}
        once = events_by_id[event_id].results and row.status == DONE  # results: once, ever
        if once:
            values = {"version": version}
        elif row.status in (PENDING, CANCELLED) and due >= now - grace:
            values["status"] = PENDING
        elif row.status in (DONE, SKIPPED) and due > now and row.due_at != due:
            values.update(status=PENDING, done_at=None, queued=0, note=None)  # new date ahead
        if row.due_at != due and not once:
            changes.append(f"{event_id}: {row.due_at.isoformat()} → {due.isoformat()}"
                           + (" (planned again)" if values.get("status") == PENDING
                              and row.status != PENDING else ""))
        conn.execute(update(campaign_events).where(campaign_events.c.id == row.id)
                     .values(**values))
    for event_id, row in rows.items():
        if event_id not in wanted and event_id != NUDGES and row.status == PENDING:
            conn.execute(update(campaign_events).where(campaign_events.c.id == row.id)
                         .values(status=CANCELLED, note="no longer in the campaign"))
            changes.append(f"{event_id}: cancelled (no longer in the campaign)")
    vote = campaign.window(Phase.VOTE)
    if vote is not None and NUDGES not in rows:
        conn.execute(insert_for(conn, campaign_events).values(
            campaign_id=campaign.id, event=NUDGES, due_at=vote.start, version=version,
            status=RECURRING).on_conflict_do_nothing(index_elements=["campaign_id", "event"]))
    if changes:
        log_change(conn, campaign.id, now, actor, "rescheduled", "; ".join(changes))
    if past:
        log_change(conn, campaign.id, now, actor, "skipped",
                   f"already past when loaded, not sent: {', '.join(past)}")
    return changes


def plan_unplanned(conn: Connection, now: datetime, *, grace: timedelta) -> list[str]:
    """Plan the campaigns that have no events yet: those loaded before Votz had a scheduler
    (a database upgraded from an earlier version). Returns their slugs."""
    rows = conn.execute(select(campaigns_table.c.id, campaigns_table.c.definition).where(
        ~exists().where(campaign_events.c.campaign_id == campaigns_table.c.id))).all()
    planned = []
    for row in rows:  # usually none: one indexed query per tick
        campaign = campaign_from_json(row.definition, row.id)
        if campaign.events:
            plan(conn, campaign, now, grace=grace, actor="scheduler")
            planned.append(campaign.slug)
    return planned


# --- who hears an event ----------------------------------------------------------------------


def sendable_channels() -> list[str]:
    """Channels `votz run` can send on (the console is a person at a terminal: never)."""
    return [name for name in registry.names() if registry.channel(name).open is not None]


def _not_unfollowing(campaign_id: int) -> ColumnElement[bool]:
    return ~exists().where(follows.c.participant_id == participants.c.id,
                           follows.c.campaign_id == campaign_id,
                           follows.c.following.is_(False))


def _has_ballot(campaign: Campaign) -> ColumnElement[bool]:
    own = exists().where(ballots.c.participant_id == participants.c.id,
                         ballots.c.campaign_id == campaign.id)
    if not campaign.verified_phone:
        return own
    # One ballot per verified phone: cast from the other channel counts too.
    return or_(own, exists().where(ballots.c.campaign_id == campaign.id,
                                   ballots.c.voter == literal("phone:") + participants.c.phone))


def audience(campaign: Campaign, target: Target) -> ColumnElement[bool]:
    """Who hears an event for `target`: consenting, not stopped, on a channel Votz sends on,
    not unfollowing the campaign, reminders on (except for outcomes of what they did)."""
    conditions: list[ColumnElement[bool]] = [
        participants.c.consent_at.is_not(None),
        participants.c.status == Status.ACTIVE.value,
        participants.c.channel.in_(sendable_channels()),
        _not_unfollowing(campaign.id),
    ]
    if target not in OUTCOME_TARGETS:
        conditions.append(participants.c.reminders.is_(True))
    eligible = and_(participants.c.age_bracket.in_(campaign.audience.age_brackets),
                    participants.c.departement.in_(campaign.audience.departements))
    match target:
        case Target.ELIGIBLE:
            conditions.append(eligible)
        case Target.FOLLOWERS:
            conditions.append(exists().where(follows.c.participant_id == participants.c.id,
                                             follows.c.campaign_id == campaign.id,
                                             follows.c.following.is_(True)))
        case Target.AUTHORS:
            conditions.append(exists().where(proposals.c.author_id == participants.c.id,
                                             proposals.c.campaign_id == campaign.id))
        case Target.UNFINISHED:
            conditions.append(exists().where(ballot_drafts.c.participant_id == participants.c.id,
                                             ballot_drafts.c.campaign_id == campaign.id))
            conditions.append(~_has_ballot(campaign))
        case Target.NOT_VOTED:
            conditions.append(eligible)
            conditions.append(~_has_ballot(campaign))
        case Target.VOTERS:
            conditions.append(exists().where(ballots.c.participant_id == participants.c.id,
                                             ballots.c.campaign_id == campaign.id))
    return and_(*conditions)


def audience_size(conn: Connection, campaign: Campaign, target: Target) -> dict[str, int]:
    """How many people each channel would reach now."""
    rows = conn.execute(select(participants.c.channel, func.count())
                        .where(audience(campaign, target)).group_by(participants.c.channel))
    return {channel: n for channel, n in rows}


# --- what they hear ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """One text of an event, for the people `condition` selects (a language, a
    département); `hinted` adds the opt-out hint on the channels that get one."""

    condition: ColumnElement[bool]
    text: str
    hinted: Mapping[str, str]  # channel → text with the hint, where it adds no segment
    locale: str = ""


def _last_day(campaign: Campaign, phase: Phase, i18n: I18n, locale: str) -> str:
    window = campaign.window(phase)
    if window is None or window.end is None:
        return ""
    return i18n[locale].day(window.end - timedelta(seconds=1))


def event_text(event: Event, campaign: Campaign, i18n: I18n, locale: str,
               *, extra: Mapping[str, str] | None = None) -> str:
    """The event's text in `locale`: declared, else the default template, else French."""
    t = i18n[locale]
    values = {"campaign": campaign.text("title", locale),
              "date": _last_day(campaign, event.phase, i18n, locale)}
    declared = event.texts.get(locale)
    if declared:
        text = fill(declared, values)
    elif event.id in TEMPLATES:
        days = max(1, round(-event.offset.total_seconds() / 86400))
        template = TEMPLATES[event.id]
        if not values["date"]:
            template = OPEN_ENDED.get(event.id, template)
        text = t.render(Msg(template, {"days": days, **values},
                            plural=COUNTDOWN_PLURALS.get(template), n=days))
    else:
        text = fill(event.texts["fr"], {
            "campaign": campaign.text("title", "fr"),
            "date": _last_day(campaign, event.phase, i18n, "fr")})
    if extra:
        text = " ".join([text, *(v for v in extra.values() if v)])
    return text


def hint_channels() -> dict[str, Any]:
    """Channels where a bulk message ends with the opt-out hint (those paid per segment),
    with how to measure a message there."""
    found = {}
    for name in sendable_channels():
        measure = registry.channel(name).measure
        if measure is not None:
            found[name] = measure
    return found


def hinted(text: str, locale: str, i18n: I18n) -> dict[str, str]:
    """The text with the opt-out hint, on each channel where it costs no extra segment."""
    hint = i18n[locale](HINT)
    result = {}
    for channel, measure in hint_channels().items():
        longer = f"{text}\n{hint}"
        if measure(Reply(longer)).segments <= measure(Reply(text)).segments:
            result[channel] = longer
    return result


def event_variants(event: Event, campaign: Campaign, i18n: I18n,
                   results: ResultsText | None = None) -> list[Variant]:
    variants = []
    for locale in LOCALES:
        by_locale = participants.c.locale == locale
        if results is None:
            text = event_text(event, campaign, i18n, locale)
            variants.append(Variant(by_locale, text, hinted(text, locale, i18n), locale))
            continue
        for dep in campaign.audience.departements:
            text = results_message(event, campaign, i18n, locale, results, dep)
            variants.append(Variant(and_(by_locale, participants.c.departement == dep), text,
                                    hinted(text, locale, i18n), locale))
        text = results_message(event, campaign, i18n, locale, results, None)
        elsewhere = or_(participants.c.departement.is_(None),
                        participants.c.departement.not_in(campaign.audience.departements))
        variants.append(Variant(and_(by_locale, elsewhere), text, hinted(text, locale, i18n),
                                locale))
    return variants


MAX_SEGMENTS = 2  # what any SMS may cost


def results_message(event: Event, campaign: Campaign, i18n: I18n, locale: str,
                    results: ResultsText, dep: str | None) -> str:
    """The results for a voter of `dep`: the winners with the start of their titles, or
    their codes only when the titles would take the SMS beyond two segments."""
    local = results.local(i18n, locale, dep) if dep else ""
    text = event_text(event, campaign, i18n, locale,
                      extra={"winners": results.winners(i18n, locale), "local": local})
    if all(measure(Reply(text)).segments <= MAX_SEGMENTS
           for measure in hint_channels().values()):
        return text
    return event_text(event, campaign, i18n, locale, extra={
        "winners": results.winners(i18n, locale, titles=False), "local": local})


@dataclass(frozen=True, slots=True)
class ResultsText:
    """The results as one voter hears them: the winners, then their own département."""

    campaign: Campaign
    winner_codes: tuple[str, ...]
    winner_titles: Mapping[str, Mapping[str, str]]  # code → locale → title
    local_figures: Mapping[str, tuple[int, str | None, int | None]]  # dep → voters, top, votes

    def winners(self, i18n: I18n, locale: str, *, titles: bool = True) -> str:
        """The first three winners, with the start of their titles (or codes only)."""
        t = i18n[locale]
        if not self.winner_codes:
            return t("event.results_none")
        named = {code: by_locale.get(locale) or by_locale["fr"]
                 for code, by_locale in self.winner_titles.items()}
        shown = [f"{code} {_short(named[code])}" if titles else code
                 for code in self.winner_codes[:3]]
        more = len(self.winner_codes) - len(shown)
        # A title cut short ends with "…": not followed by the sentence's full stop.
        text = t("event.results_winners", winners=", ".join(shown)).replace("….", "…")
        if more:
            text += " " + t.render(PluralMsg("event.results_more", "event.results_more_plural",
                                             more, count=more))
        return text

    def local(self, i18n: I18n, locale: str, dep: str) -> str:
        t = i18n[locale]
        voters, top, votes = self.local_figures.get(dep, (0, None, None))
        if voters < SUPPRESS_BELOW or top is None or votes is None:
            return t("event.results_local_hidden", dep=dep)
        return t("event.results_local", dep=dep, voters=t.number(voters), top=top,
                 votes=t.number(votes))


def _short(title: str, limit: int = 32) -> str:
    """The start of a title, cut between words."""
    if len(title) <= limit:
        return title
    cut = title[:limit - 1]
    if " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:–-") + "…"


def results_text(conn: Connection, campaign: Campaign) -> ResultsText:
    published = campaign_proposals(conn, campaign.id, status="published")
    cast_ballots = counted_ballots(conn, campaign.id)
    results = tally(campaign, published, cast_ballots)
    winners = [line.proposal for line in results.lines if line.winner]
    # Each département's voters and first proposal (the conversation shows the same).
    local = {dep: (figures.voters or 0, figures.top.code if figures.top else None,
                   figures.top_votes)
             for dep, figures in local_figures(campaign, published, cast_ballots).items()}
    return ResultsText(campaign, tuple(p.code for p in winners),
                       {p.code: dict(p.title) for p in winners}, local)


# --- queueing, set-based ---------------------------------------------------------------------


def queue_audience(conn: Connection, *, key_prefix: str | None, who: ColumnElement[bool],
                   variants: Sequence[Variant], now: datetime, windows: Windows,
                   campaign: Campaign | None = None, not_after: datetime | None = None,
                   broadcast_id: int | None = None) -> int:
    """Queue one bulk message to everyone `who` selects, in one INSERT … SELECT (the text
    by language and département: `variants`, whose conditions never overlap; the opt-out
    hint where it is due; each channel's sending window); then mark who got the hint.
    Returns how many rows were queued. With `not_after`, people on a channel whose window
    opens only at or after it get nothing (a "vote closes soon" that would leave once the
    vote closed). `broadcast_id` marks the rows of a staff broadcast."""
    hint_due = or_(participants.c.hint_at.is_(None),
                   participants.c.hint_at < now - HINT_EVERY)
    branches: list[tuple[ColumnElement[bool], Any]] = []
    hinted_people: list[ColumnElement[bool]] = []
    for variant in variants:  # conditions of variants never overlap
        for channel, longer in variant.hinted.items():
            condition = and_(variant.condition, participants.c.channel == channel, hint_due)
            branches.append((condition, literal(longer)))
            hinted_people.append(condition)
        branches.append((variant.condition, literal(variant.text)))
    fallback = variants[-1].text if variants else ""
    text: Any = case(*branches, else_=literal(fallback)) if branches else literal(fallback)
    leave_at = leaving(windows, now, campaign)
    if not_after is not None:
        who = and_(who, participants.c.channel.in_(
            [channel for channel, at in leave_at.items() if at < not_after]))
    leaves = [(participants.c.channel == channel, literal(at, outbox.c.next_attempt_at.type))
              for channel, at in leave_at.items()]
    next_attempt: Any = case(*leaves, else_=literal(now, outbox.c.next_attempt_at.type))
    # No key: the caller queues the audience once by other means (a staff broadcast's row).
    key: Any = (literal(key_prefix) + cast(participants.c.id, SqlString) if key_prefix
                else null())
    query = select(
        participants.c.id, participants.c.channel, participants.c.address, text,
        literal(encode_choices(())), literal(OutboxStatus.QUEUED.value), literal(0),
        next_attempt, key, literal(now, outbox.c.created_at.type),
        literal(now, outbox.c.updated_at.type), true(),
        literal(broadcast_id, outbox.c.broadcast_id.type),
    ).where(who)
    stmt = insert_for(conn, outbox).from_select(
        ["participant_id", "channel", "address", "text", "choices", "status", "attempts",
         "next_attempt_at", "idempotency_key", "created_at", "updated_at", "bulk",
         "broadcast_id"], query,
    ).on_conflict_do_nothing()
    queued = conn.execute(stmt).rowcount or 0
    if hinted_people and queued:
        conn.execute(update(participants).where(who, or_(*hinted_people))
                     .values(hint_at=now))
    return queued


def leaving(windows: Windows, now: datetime, campaign: Campaign | None) -> dict[str, datetime]:
    """When a bulk message queued now would leave, on each channel Votz sends on (the
    channel's window, narrowed by the campaign's own)."""
    narrower = {c: parse_window(w) for c, w in campaign.sending_windows.items()} \
        if campaign is not None else {}
    return {c: windows.next_open(c, now, narrower.get(c)) for c in sendable_channels()}


# --- firing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fired:
    id: int  # the campaign_events row
    campaign: str
    event: str
    status: str  # done or skipped
    queued: int
    late: timedelta


def _next_due(now: datetime, skip: Collection[int]) -> Select[Any]:
    """The most overdue pending event, leaving out those in `skip`."""
    return (select(campaign_events).where(campaign_events.c.status == PENDING,
                                          campaign_events.c.due_at <= now,
                                          campaign_events.c.id.not_in(list(skip)))
            .order_by(campaign_events.c.due_at, campaign_events.c.id).limit(1))


def _lock_due(conn: Connection, now: datetime, skip: frozenset[int]) -> Any:
    query = _next_due(now, skip)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return conn.execute(query).first()


def fire_next(conn: Connection, now: datetime, *, i18n: I18n, windows: Windows,
              grace: timedelta, skip: frozenset[int] = frozenset()) -> Fired | None:
    """Fire the most overdue pending event (None: nothing due). Its audience is queued and
    the event marked done in this one transaction, which also reads the campaign (so a
    campaign reloaded meanwhile is seen as it is now)."""
    row = _lock_due(conn, now, skip)
    if row is None:
        return None
    definition = conn.execute(select(campaigns_table.c.definition).where(
        campaigns_table.c.id == row.campaign_id)).scalar()
    campaign = campaign_from_json(definition, row.campaign_id) if definition else None
    event = next((e for e in campaign.events if e.id == row.event), None) if campaign else None
    late = now - row.due_at
    if campaign is None or event is None or dates_version(campaign) != row.version:
        # Not planned for the campaign as it is (`plan` runs with every change: a row left
        # behind by a definition changed some other way).
        conn.execute(update(campaign_events).where(campaign_events.c.id == row.id)
                     .values(status=CANCELLED, note="stale: the campaign changed"))
        return Fired(row.id, str(row.campaign_id), row.event, CANCELLED, 0, late)
    if late > grace:
        note = f"missed by {_human(late)} (grace {_human(grace)}): not sent"
        conn.execute(update(campaign_events).where(campaign_events.c.id == row.id)
                     .values(status=SKIPPED, done_at=now, note=note))
        log_change(conn, campaign.id, now, "scheduler", "skipped", f"{event.id}: {note}")
        return Fired(row.id, campaign.slug, event.id, SKIPPED, 0, late)
    results = results_text(conn, campaign) if event.results else None
    window = campaign.window(event.phase)
    # Results are pushed once whatever dates change later; closing reminders never leave
    # once what they announce has closed.
    version = ONCE if event.results else row.version
    queued = queue_audience(
        conn, key_prefix=f"event:{campaign.id}:{event.id}:{version}:",
        who=audience(campaign, event.target),
        variants=event_variants(event, campaign, i18n, results), now=now, windows=windows,
        campaign=campaign, not_after=window.end if window and event.closing() else None)
    if queued >= ANALYZE_AFTER and conn.dialect.name == "postgresql":
        # The planner's statistics predate these rows: without fresh ones, the dispatcher's
        # next claims walk every pending row per candidate (1 s each with 190,000 queued,
        # 30-70 ms after ANALYZE, which takes 0.2 s; bench/reminders.py).
        conn.execute(sql_text("ANALYZE outbox"))
    sent_note = f"sent {_human(late)} late" if late > timedelta(minutes=1) else None
    conn.execute(update(campaign_events).where(campaign_events.c.id == row.id)
                 .values(status=DONE, done_at=now, queued=row.queued + queued, note=sent_note))
    log.info("event.fired campaign=%s event=%s queued=%d late_s=%d", campaign.slug, event.id,
             queued, late.total_seconds())
    return Fired(row.id, campaign.slug, event.id, DONE, queued, late)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def nudge_unfinished(conn: Connection, campaign: Campaign, now: datetime, *, i18n: I18n,
                     windows: Windows) -> int:
    """Remind those who started a ballot and left it: 2 hours after, then a week after;
    24 hours apart at least; never in the last 6 hours of the vote. Returns how many."""
    vote = campaign.window(Phase.VOTE)
    if vote is None or not vote.contains(now):
        return 0
    if vote.end is not None and now >= vote.end - NUDGE_QUIET_BEFORE_CLOSE:
        return 0
    waiting = conn.execute(select(ballot_drafts.c.participant_id).where(
        ballot_drafts.c.campaign_id == campaign.id,
        ballot_drafts.c.nudges < len(NUDGE_AFTER),
        ballot_drafts.c.updated_at <= now - NUDGE_AFTER[0]).limit(1)).first()
    if waiting is None:
        return 0  # the common case, answered from the drafts' index (no participant scan)
    lock = select(campaign_events.c.id, campaign_events.c.queued).where(
        campaign_events.c.campaign_id == campaign.id, campaign_events.c.event == NUDGES)
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update(skip_locked=True)
    row = conn.execute(lock).first()
    if row is None:
        return 0  # not planned yet, or another process is nudging this campaign now
    total = 0
    texts = []
    for locale in LOCALES:
        text = i18n[locale](UNFINISHED if vote.end else UNFINISHED_OPEN,
                            campaign=campaign.text("title", locale),
                            date=_last_day(campaign, Phase.VOTE, i18n, locale))
        texts.append(Variant(participants.c.locale == locale, text,
                             hinted(text, locale, i18n), locale))
    leave_at = leaving(windows, now, campaign)
    quiet_from = vote.end - NUDGE_QUIET_BEFORE_CLOSE if vote.end else None
    # A nudge that could only leave in the vote's last hours is not sent (nor counted).
    channels = [c for c, at in leave_at.items() if quiet_from is None or at < quiet_from]
    for number, after in enumerate(NUDGE_AFTER):
        due = and_(ballot_drafts.c.campaign_id == campaign.id,
                   ballot_drafts.c.nudges == number,
                   ballot_drafts.c.updated_at <= now - after,
                   or_(ballot_drafts.c.nudged_at.is_(None),
                       ballot_drafts.c.nudged_at <= now - NUDGE_GAP))
        who = and_(audience(campaign, Target.UNFINISHED),
                   exists().where(due, ballot_drafts.c.participant_id == participants.c.id),
                   participants.c.channel.in_(channels))
        stamp = int(now.timestamp())
        queued = queue_audience(
            conn, key_prefix=f"nudge:{campaign.id}:{number + 1}:{stamp}:", who=who,
            variants=texts, now=now, windows=windows, campaign=campaign)
        if queued:  # the same people, in the same transaction
            conn.execute(update(ballot_drafts).where(
                due, ballot_drafts.c.participant_id.in_(select(participants.c.id).where(who)),
            ).values(nudges=number + 1, nudged_at=now))
        total += queued
    if total:
        conn.execute(update(campaign_events).where(campaign_events.c.id == row.id)
                     .values(queued=row.queued + total, done_at=now))
    return total


def due_now(conn: Connection, now: datetime, skip: Collection[int]) -> int | None:
    """The event row the next `fire_next` would take (to set aside one that fails)."""
    found = conn.execute(_next_due(now, skip)).first()
    return int(found.id) if found is not None else None


def next_due(conn: Connection, now: datetime) -> datetime | None:
    """When the next pending event is due (for the scheduler's exact-time job)."""
    found: datetime | None = conn.execute(
        select(func.min(campaign_events.c.due_at)).where(
            campaign_events.c.status == PENDING)).scalar()
    return found

