"""Moderation: the proposals waiting for a decision, what may be wrong with them (contact
details, near-duplicates, reports), and publishing, rejecting or hiding them by code.

A proposal's life (`ProposalStatus`):

    submitted ──publish──> published ──hide (a reason; allowed while its vote is open)──┐
        │                      │  ▲   or the 3rd report by a different participant     │
        │                      │  └──────── publish (reviewed: shown again) ──── hidden <┘
        └──reject (a reason)───┴──> rejected       (never while its vote is open: voters
                                                    may have chosen it; hide it instead)

Every decision is written to `campaign_log` in the transaction that makes it: who (`by`, or
"reports"), when, `proposal.publish` / `proposal.reject` / `proposal.hide`, and a detail such
as "P12 reason=offensive reports=3". A staff decision on a reported proposal dismisses its
reports (counted in the detail): three new reports are needed to hide it again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, func, or_, select

from bot.channels.base import Reply
from bot.conversation.matching import fold
from bot.delivery.outbox import queue_values
from bot.delivery.windows import Windows
from bot.domain.ballots import Proposal, proposal_code
from bot.domain.participants import Status
from bot.errors import ConfigError
from bot.i18n import N_, I18n
from bot.scheduling.events import log_change, sendable_channels
from bot.store.db import Database
from bot.store.repo import (
    ProposalStatus,
    campaign_from_json,
    get_campaign,
    insert_for,
    moderate,
    proposals_with_status,
    vote_opened,
)
from bot.store.tables import campaigns, outbox, participants, proposal_reports, proposals

STATUSES = (ProposalStatus.SUBMITTED, ProposalStatus.PUBLISHED, ProposalStatus.REJECTED,
            ProposalStatus.HIDDEN)
# Why an idea is not published: what its author is told, in their language.
REASONS = {
    "spam": N_("reason.spam"),
    "offensive": N_("reason.offensive"),
    "off_topic": N_("reason.off_topic"),
    "personal_data": N_("reason.personal_data"),
    "duplicate": N_("reason.duplicate"),
    "not_eligible": N_("reason.not_eligible"),
}
# The same reasons as staff read them (the staff chat and `votz proposals review`).
REASON_LABELS_FR = {
    "spam": "spam",
    "offensive": "propos injurieux",
    "off_topic": "hors sujet",
    "personal_data": "données personnelles",
    "duplicate": "doublon",
    "not_eligible": "non éligible",
}
# For staff, in French: what a proposal is, what it holds, why a decision was refused.
STATUS_LABELS_FR = {
    ProposalStatus.SUBMITTED: "soumise",
    ProposalStatus.PUBLISHED: "publiée",
    ProposalStatus.REJECTED: "rejetée",
    ProposalStatus.HIDDEN: "masquée",
}
FLAG_LABELS_FR = {
    "phone": "un numéro de téléphone",
    "email": "une adresse e-mail",
    "url": "un lien",
}
OUTCOMES = {
    ProposalStatus.PUBLISHED: N_("outcome.published"),
    ProposalStatus.REJECTED: N_("outcome.rejected"),
}
# What each decision is logged as (`campaign_log.action`).
ACTIONS = {
    ProposalStatus.PUBLISHED: "proposal.publish",
    ProposalStatus.REJECTED: "proposal.reject",
    ProposalStatus.HIDDEN: "proposal.hide",
}
REPORTS_TO_HIDE = 3  # distinct participants; the one whose report makes it 3 hides it
REPORTS_ACTOR = "reports"  # who hid it, in the log, when reports did


@dataclass(frozen=True, slots=True)
class Notify:
    """How to tell authors: their language's texts, and when a bulk message may leave."""

    i18n: I18n
    windows: Windows
    now: datetime


@dataclass(frozen=True, slots=True)
class Listed:
    proposal: Proposal
    status: str  # a ProposalStatus value


@dataclass(frozen=True, slots=True)
class Moderated:
    status: str  # what the proposals now are
    asked: int  # distinct proposals given
    changed: int  # proposals that exist and now have the status
    # The codes not acted on, each with why ("no such proposal", …), in the order given.
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def complete(self) -> bool:
        return not self.refused and self.changed == self.asked


def parse_codes(codes: Sequence[str]) -> list[int]:
    """Proposal ids from the codes staff type ("P12", "p12" or "12")."""
    try:
        return [int(str(code).strip().lstrip("Pp")) for code in codes]
    except ValueError:
        raise ConfigError(f"proposal codes look like P12: {' '.join(codes)}") from None


def check_reason(reason: str | None) -> None:
    if reason is not None and reason not in REASONS:
        raise ConfigError(f"unknown reason {reason!r}: one of {', '.join(REASONS)}")


async def list_proposals(db: Database, slug: str, *, status: str | None = None) -> list[Listed]:
    """The campaign's proposals in order, optionally only those with `status`."""

    def query(conn: Connection) -> list[Listed]:
        campaign = get_campaign(conn, slug)
        return [Listed(p, s) for p, s in proposals_with_status(conn, campaign.id, status=status)]

    return await db.run(query)


# --- what staff look at before deciding --------------------------------------------------------

# A French number (06 12 34 56 78, 06.12.34.56.78, 0612345678, +33 6 12 34 56 78,
# +33 (0)6…, 0033 6…), or any international one (+ and 8 to 15 digits). Amounts (10 000 €),
# years and postcodes are not: a French number starts with 0 or 33 and a digit 1-9.
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)33[\s.\-]?(?:\(0\)[\s.\-]?)?|0)[1-9](?:[\s.\-]?\d{2}){4}(?!\d)"
    r"|(?<![\w+])\+\d(?:[\s.\-]?\d){7,14}(?!\d)")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# http(s)://…, www.…, and bare domains under a common top-level domain (exemple.fr,
# mairie-mende.gouv.fr, t.me/…): "etc." or "3.5" are no links.
_TLDS = ("fr|com|org|net|eu|info|io|me|co|biz|app|dev|site|online|shop|xyz|tv|ly|gl|be|ch|"
         "ca|de|es|it|uk|us|paris|bzh|alsace|corsica|occitanie")
_URL = re.compile(
    r"(?i)\bhttps?://\S+|\bwww\.[\w\-]+\.\S+"
    rf"|\b(?:[a-z0-9][\w\-]*\.)+(?:{_TLDS})\b(?![\w\-])(?:/\S*)?")


def flags(text: str) -> tuple[str, ...]:
    """What a proposal holds that should not be published as is: "phone", "email", "url"
    (in that order, each once)."""
    found = []
    if _PHONE.search(text):
        found.append("phone")
    if _EMAIL.search(text):
        found.append("email")
    if _URL.search(_EMAIL.sub(" ", text)):  # an address's domain is no link
        found.append("url")
    return tuple(found)


# Titles are compared word by word (Dice coefficient on their words): the same idea comes
# back with the same nouns in another order ("Vélos en prêt", "Prêt de vélos pour tous"), which
# a character-sequence ratio (difflib on whole titles) ranks low while it ranks unrelated
# titles that share letters high. Words are folded (case, accents), singular, short function
# words dropped; two long words one letter apart (missing, extra, changed, swapped) count as
# the same word: a typo ("biblioteque"). That check is a set intersection, not a difflib
# ratio per pair of words: 200 waiting proposals against 2,000 take a few seconds, not 30.
SIMILAR_FROM = 0.4  # "Une fresque sur le mur du gymnase" ~ "Fresque murale": 0.4
_FUNCTION_WORDS = frozenset((
    "a", "au", "aux", "avec", "ce", "ces", "d", "dans", "de", "del", "dels", "des", "du", "e",
    "en", "et", "l", "la", "las", "le", "les", "lo", "los", "o", "ou", "par", "per", "pour",
    "sur", "un", "una", "une", "the", "an", "of", "for", "and", "or", "to", "in", "on",
    "with", "at", "by"))
TYPO_FROM = 5  # letters: shorter words must match exactly


def words(title: str) -> frozenset[str]:
    """The words of a title that carry its meaning, in a comparable form."""
    found = set()
    for word in fold(title).replace("?", " ").split():
        if word in _FUNCTION_WORDS or word.isdigit() or len(word) < 2:
            continue
        if len(word) > 3 and word[-1] in "sx":  # vélos → velo, travaux → travau
            word = word[:-1]
        found.add(word)
    return frozenset(found)


@functools.lru_cache(maxsize=65536)
def _one_off(word: str) -> frozenset[str]:
    """The word and each form of it one letter shorter: two words one letter apart share
    one of these."""
    return frozenset({word, *(word[:i] + word[i + 1:] for i in range(len(word)))})


@functools.lru_cache(maxsize=4096)
def _near(title_words: frozenset[str]) -> frozenset[str]:
    """Every long word of a title, and its forms one letter shorter."""
    return frozenset().union(*(_one_off(w) for w in title_words if len(w) >= TYPO_FROM))


def closeness(one: frozenset[str], other: frozenset[str]) -> float:
    """0 (no word in common) to 1 (the same words)."""
    if not one or not other:
        return 0.0
    total = len(one) + len(other)
    shared = len(one & other)
    mine = [word for word in one - other if len(word) >= TYPO_FROM]
    if mine:
        near = _near(other)
        shared += sum(1 for word in mine if not _one_off(word).isdisjoint(near))
    return min(1.0, 2 * shared / total)


def _closest(proposal: Proposal, among: Iterable[tuple[Proposal, str, frozenset[str]]],
             limit: int) -> list[Listed]:
    mine = words(proposal.text("fr"))
    scored = [(closeness(mine, theirs), other, status) for other, status, theirs in among
              if other.id != proposal.id]
    scored = [s for s in scored if s[0] >= SIMILAR_FROM]
    scored.sort(key=lambda s: (-s[0], s[1].id))
    return [Listed(other, status) for _, other, status in scored[:limit]]


def _campaign_words(conn: Connection, campaign_id: int
                    ) -> list[tuple[Proposal, str, frozenset[str]]]:
    return [(p, status, words(p.text("fr")))
            for p, status in proposals_with_status(conn, campaign_id)]


async def similar(db: Database, proposal_id: int, *, limit: int = 3) -> list[Listed]:
    """The proposals of the same campaign (any status) whose titles are closest to this
    one's, closest first: duplicates to spot before publishing."""
    return await db.run(lambda conn: similar_in(conn, proposal_id, limit=limit))


def similar_in(conn: Connection, proposal_id: int, *, limit: int = 3) -> list[Listed]:
    """`similar`, in the caller's transaction (a proposal being stored, in the pipeline)."""
    row = conn.execute(select(proposals.c.campaign_id).where(proposals.c.id == proposal_id)
                       ).first()
    if row is None:
        raise ConfigError(f"no proposal {proposal_code(proposal_id)}")
    among = _campaign_words(conn, row.campaign_id)
    proposal = next(p for p, _, _ in among if p.id == proposal_id)
    return _closest(proposal, among, limit)


@dataclass(frozen=True, slots=True)
class Pending:
    """A proposal waiting for a staff decision, with what helps to decide."""

    proposal: Proposal
    slug: str  # its campaign's
    campaign_title: str  # in French
    status: str  # submitted, or hidden (by reports, to review)
    flags: tuple[str, ...]  # "phone", "email", "url"
    similar: list[Listed]
    reports: int
    created_at: datetime


async def pending(db: Database, slug: str | None = None) -> list[Pending]:
    """Proposals waiting for a decision, oldest first: submitted ones, and those reports
    hid (until staff publish, reject or hide them). `slug`: one campaign's only."""

    def query(conn: Connection) -> list[Pending]:
        counts = (select(proposal_reports.c.proposal_id, func.count().label("n"))
                  .group_by(proposal_reports.c.proposal_id).subquery())
        reports = func.coalesce(counts.c.n, 0)
        stmt = (select(proposals, campaigns.c.slug, campaigns.c.definition,
                       reports.label("reports"))
                .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
                .outerjoin(counts, counts.c.proposal_id == proposals.c.id)
                .where(or_(proposals.c.status == ProposalStatus.SUBMITTED,
                           (proposals.c.status == ProposalStatus.HIDDEN) & (reports > 0)))
                .order_by(proposals.c.created_at, proposals.c.id))
        if slug is not None:
            known = conn.execute(select(campaigns.c.slug).order_by(campaigns.c.slug)
                                 ).scalars().all()
            if slug not in known:
                raise ConfigError(f"no campaign {slug!r}: one of {', '.join(known) or '(none)'}")
            stmt = stmt.where(campaigns.c.slug == slug)
        found: list[Pending] = []
        among: dict[int, list[tuple[Proposal, str, frozenset[str]]]] = {}
        for row in conn.execute(stmt):
            if row.campaign_id not in among:
                among[row.campaign_id] = _campaign_words(conn, row.campaign_id)
            proposal = next(p for p, _, _ in among[row.campaign_id] if p.id == row.id)
            campaign = campaign_from_json(row.definition, row.campaign_id)
            found.append(Pending(
                proposal=proposal, slug=row.slug, campaign_title=campaign.text("title", "fr"),
                status=row.status, flags=flags(proposal.text("fr")),
                similar=_closest(proposal, among[row.campaign_id], 3),
                reports=int(row.reports), created_at=row.created_at))
        return found

    return await db.run(query)


# --- decisions ---------------------------------------------------------------------------------

NO_SUCH_PROPOSAL = "no such proposal"
VOTE_OPEN = "its vote has opened: it can no longer be rejected, only hidden (with a reason)"
NOT_PUBLISHED = "not published: only a published proposal can be hidden"
BALLOT_FROZEN = "its vote has opened: the ballot can no longer get new proposals"
CHANGED = "decided meanwhile by someone else"
REFUSALS_FR = {
    BALLOT_FROZEN: "son vote a commencé : le bulletin ne peut plus recevoir de proposition",
    NO_SUCH_PROPOSAL: "cette proposition n'existe pas",
    CHANGED: "quelqu'un d'autre vient de la traiter",
    VOTE_OPEN: "son vote a commencé : elle ne peut plus être rejetée, seulement masquée "
               "(avec un motif)",
    NOT_PUBLISHED: "seule une proposition publiée peut être masquée",
}


async def set_status(db: Database, codes: Sequence[str], status: str, *,
                     notify: Notify | None = None, reason: str | None = None,
                     now: datetime | None = None, by: str = "votz",
                     expected: Collection[str] | None = None) -> Moderated:
    """Give the proposals `status` (published, rejected or hidden); with `notify`, each
    author whose idea changed status is told (published, unless it is only shown again after
    being hidden; or rejected, with the reason) in their language, in the same transaction
    as the change and its log line.

    Codes of no proposal are refused ("no such proposal"); so is rejecting a published (or
    hidden) proposal once its campaign's vote has opened at `now` (default: `notify.now`,
    else the current time): voters may have chosen it; it may be hidden instead. Publishing
    a new proposal once the vote has opened is refused too: the ballot is frozen. Hiding
    needs a reason and a published proposal. With `expected` (the status staff saw on a
    card), a proposal whose status is no longer one of them is refused: someone decided
    meanwhile, maybe in another process (the rows are locked while deciding on PostgreSQL;
    SQLite has one writer at a time). The others are acted on."""
    if status not in ACTIONS:
        raise ConfigError(f"unknown decision {status!r}: one of {', '.join(ACTIONS)}")
    check_reason(reason)
    if status == ProposalStatus.HIDDEN and reason is None:
        raise ConfigError(f"hiding needs a reason: one of {', '.join(REASONS)}")
    ids = list(dict.fromkeys(parse_codes(codes)))  # in order, each once
    at = now or (notify.now if notify is not None else datetime.now(UTC))
    shown = (ProposalStatus.PUBLISHED, ProposalStatus.HIDDEN)

    def apply(conn: Connection) -> Moderated:
        query = (select(proposals.c.id, proposals.c.status,
                        campaigns.c.id.label("campaign_id"), campaigns.c.definition)
                 .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
                 .where(proposals.c.id.in_(ids)).order_by(proposals.c.id))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=proposals)
        found = {r.id: r for r in conn.execute(query)}
        refused: list[tuple[str, str]] = []
        acting: list[int] = []
        for proposal_id in ids:
            row = found.get(proposal_id)
            if row is None:
                refused.append((proposal_code(proposal_id), NO_SUCH_PROPOSAL))
            elif expected is not None and row.status not in expected:
                refused.append((proposal_code(proposal_id), CHANGED))
            elif (status == ProposalStatus.REJECTED and row.status in shown
                  and vote_opened(conn, campaign_from_json(row.definition, row.campaign_id),
                                  at) is not None):
                refused.append((proposal_code(proposal_id), VOTE_OPEN))
            elif (status == ProposalStatus.PUBLISHED and row.status not in shown
                  and vote_opened(conn, campaign_from_json(row.definition, row.campaign_id),
                                  at) is not None):
                # Voters who already chose never saw it: the ballot is what it was.
                refused.append((proposal_code(proposal_id), BALLOT_FROZEN))
            elif status == ProposalStatus.HIDDEN and row.status not in shown:
                refused.append((proposal_code(proposal_id), NOT_PUBLISHED))
            else:
                acting.append(proposal_id)
        changing = [i for i in acting if found[i].status != status]
        changed = moderate(conn, acting, status) if acting else 0
        dismissed = dismiss_reports(conn, acting)
        for proposal_id in acting:
            if proposal_id in changing or dismissed.get(proposal_id):
                detail = proposal_code(proposal_id)
                if reason is not None and status != ProposalStatus.PUBLISHED:
                    detail += f" reason={reason}"
                if dismissed.get(proposal_id):
                    detail += f" reports={dismissed[proposal_id]}"
                log_change(conn, found[proposal_id].campaign_id, at, by[:64], ACTIONS[status],
                           detail)
        if notify is not None and status in OUTCOMES:
            # Shown again after being hidden: its author was never told it was hidden.
            news = [i for i in changing if found[i].status != ProposalStatus.HIDDEN
                    or status != ProposalStatus.PUBLISHED]
            tell_authors(conn, news, status, reason, notify)
        return Moderated(status, len(ids), changed, tuple(refused))

    return await db.run(apply)


def dismiss_reports(conn: Connection, proposal_ids: Sequence[int]) -> dict[int, int]:
    """Delete the reports of proposals staff just decided on; how many each had."""
    if not proposal_ids:
        return {}
    counts = {r.proposal_id: int(r.n) for r in conn.execute(
        select(proposal_reports.c.proposal_id, func.count().label("n"))
        .where(proposal_reports.c.proposal_id.in_(list(proposal_ids)))
        .group_by(proposal_reports.c.proposal_id))}
    if counts:
        conn.execute(delete(proposal_reports)
                     .where(proposal_reports.c.proposal_id.in_(list(counts))))
    return counts


def tell_authors(conn: Connection, proposal_ids: Sequence[int], status: str,
                 reason: str | None, notify: Notify) -> int:
    """Queue, for each proposal's author still reachable, what became of their idea (once
    per proposal and outcome: the outbox key is `proposal:ID:STATUS`)."""
    if not proposal_ids:
        return 0
    rows = conn.execute(
        select(proposals.c.id, campaigns.c.id.label("campaign_id"), campaigns.c.definition,
               participants.c.id.label("pid"), participants.c.channel,
               participants.c.address, participants.c.locale)
        .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
        .join(participants, participants.c.id == proposals.c.author_id)
        .where(proposals.c.id.in_(list(proposal_ids)),
               participants.c.consent_at.is_not(None),
               participants.c.channel.in_(sendable_channels()),
               participants.c.status == Status.ACTIVE.value)).all()
    queued = 0
    for row in rows:
        t = notify.i18n[row.locale]
        campaign = campaign_from_json(row.definition, row.campaign_id)
        params = {"code": proposal_code(row.id), "campaign": campaign.text("title", row.locale)}
        if reason is not None:
            params["reason"] = t(REASONS[reason])
        text = t(OUTCOMES[status] if reason is None else N_("outcome.rejected_because"),
                 **params)
        values = queue_values(
            participant_id=row.pid, channel=row.channel, address=row.address,
            reply=Reply(text), now=notify.now, idempotency_key=f"proposal:{row.id}:{status}",
            bulk=True, not_before=notify.windows.next_open(row.channel, notify.now))
        queued += conn.execute(insert_for(conn, outbox).values(**values)
                               .on_conflict_do_nothing()).rowcount or 0
    return queued


Act = Callable[..., Awaitable[Moderated]]  # publish, reject


async def publish(db: Database, codes: Sequence[str], *, notify: Notify | None = None,
                  reason: str | None = None, now: datetime | None = None,
                  by: str = "votz", expected: Collection[str] | None = None) -> Moderated:
    """Publish submitted proposals, or show again hidden ones (their reports dismissed)."""
    return await set_status(db, codes, ProposalStatus.PUBLISHED, notify=notify, now=now, by=by,
                            expected=expected)


async def reject(db: Database, codes: Sequence[str], *, notify: Notify | None = None,
                 reason: str | None = None, now: datetime | None = None,
                 by: str = "votz", expected: Collection[str] | None = None) -> Moderated:
    return await set_status(db, codes, ProposalStatus.REJECTED, notify=notify, reason=reason,
                            now=now, by=by, expected=expected)


async def hide(db: Database, codes: Sequence[str], *, reason: str, by: str,
               now: datetime, expected: Collection[str] | None = None) -> Moderated:
    """Take published proposals out of participants' sight (lists, pages, new ballots),
    also while their vote is open; ballots already cast for them stay counted."""
    return await set_status(db, codes, ProposalStatus.HIDDEN, reason=reason, now=now, by=by,
                            expected=expected)


# --- reports by participants ("SIGNALER P12") ------------------------------------------------


class ReportOutcome:
    COUNTED = "counted"  # a new report
    ALREADY = "already"  # this participant had reported it: nothing changes
    UNAVAILABLE = "unavailable"  # no such proposal, or not (any more) published


@dataclass(frozen=True, slots=True)
class Reported:
    outcome: str  # a ReportOutcome value
    reports: int  # distinct participants who reported it so far
    hidden: bool = False  # this report hid it (the REPORTS_TO_HIDE-th)


def report(conn: Connection, participant_id: int, proposal_id: int, now: datetime) -> Reported:
    """Record one participant's report of a published proposal (once per person); the
    REPORTS_TO_HIDE-th distinct report hides it pending review, logged with actor
    "reports". Runs in the caller's transaction (the conversation's)."""
    query = select(proposals.c.status, proposals.c.campaign_id).where(
        proposals.c.id == proposal_id)
    # PostgreSQL: reports of one proposal one at a time, so that two at once still count 3.
    row = conn.execute(query.with_for_update()).first()
    if row is None or row.status != ProposalStatus.PUBLISHED:
        return Reported(ReportOutcome.UNAVAILABLE, 0)
    added = conn.execute(insert_for(conn, proposal_reports).values(
        proposal_id=proposal_id, participant_id=participant_id, at=now)
        .on_conflict_do_nothing()).rowcount or 0
    count = int(conn.execute(select(func.count()).select_from(proposal_reports).where(
        proposal_reports.c.proposal_id == proposal_id)).scalar_one())
    if not added:
        return Reported(ReportOutcome.ALREADY, count)
    if count < REPORTS_TO_HIDE:
        return Reported(ReportOutcome.COUNTED, count)
    moderate(conn, [proposal_id], ProposalStatus.HIDDEN)
    log_change(conn, row.campaign_id, now, REPORTS_ACTOR, ACTIONS[ProposalStatus.HIDDEN],
               f"{proposal_code(proposal_id)} reports={count}")
    return Reported(ReportOutcome.COUNTED, count, hidden=True)
