"""The Telegram staff chat: moderation, broadcasts and live figures for the Région's team.

Who gets what (`StaffDesk.take`, asked by the Telegram receiver before anything else):

    an update from a chat in VOTZ_STAFF_TELEGRAM_IDS ───> the desk, in French; never the
                                                          participant flows
    a staff command (/stats, /moderation, /diffusion…) ─> "Réservé à l'équipe de la Région."
    or a staff button (callback data `staff:…`) from
    anyone else
    anything else ──────────────────────────────────────> the participant pipeline

One staff update, in this order:
1. per-chat lock (in process): one staff member's presses are handled one after another;
2. seen before (`inbound_seen`, the table the pipeline dedupes participants with)? Nothing;
3. the chat's session (`staff_sessions`, JSON: the broadcast being composed), so whichever
   process gets the next update continues where another left off;
4. the action, through the staff functions the CLI uses too (`bot.staff.moderation`,
   `bot.staff.broadcasts`), each safe to repeat: a broadcast keeps the key it was given
   when composing began, a moderation button carries the status its card showed;
5. one transaction: the update marked seen, the session saved, the replies queued in the
   outbox (channel telegram, no participant, the chat as address);
6. then the direct Bot API calls: the button's answer (answerCallbackQuery) and the edit of
   the pressed message in place (a moderation card's decision, a broadcast's progress).

A reject reason needs no session: each reason button carries the proposal and the status
its card showed, so a press is complete by itself, in any process.

New proposals reach every staff chat as a card queued in the transaction that stores them
(`announce`, the pipeline's `on_proposal`). While broadcasts run, `follow` (a supervised loop
of `votz run`) edits each one's progress message every few seconds and, once it is over,
edits it a last time and posts the final report (once, whichever process gets there first:
`broadcasts.finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, or_, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.error import BadRequest, TelegramError

from bot.channels.base import Reply, ReplyChoice, error_summary, mask_address
from bot.channels.telegram import CHANNEL, STAFF_PREFIX, TelegramRunning, button_data
from bot.delivery.outbox import queue_values
from bot.domain.ballots import proposal_code
from bot.domain.campaigns import AGE_BRACKETS, PARIS, Campaign, Phase
from bot.domain.region import OCCITANIE
from bot.errors import ConfigError, VotzError
from bot.i18n import LOCALES
from bot.scheduling.events import sendable_channels
from bot.staff import broadcasts, moderation
from bot.staff.broadcasts import Audience, Preview, Progress
from bot.staff.figures import figures, figures_text, plural, waiting
from bot.store.repo import (
    ProposalStatus,
    campaign_from_json,
    insert_for,
    load_campaigns,
)
from bot.store.tables import (
    campaign_log,
    campaigns,
    inbound_seen,
    outbox,
    proposal_reports,
    proposals,
    staff_sessions,
)

if TYPE_CHECKING:
    from telegram import Bot

    from bot.app import App
    from bot.channels.base import Running

log = logging.getLogger("votz.staff")

REFUSAL = "Réservé à l'équipe de la Région."
# Typed by staff as /stats…; refused to anyone else (never handed to the participant flows).
STAFF_COMMANDS = frozenset({"stats", "chiffres", "moderation", "diffusion", "equipe"})
PROGRESS_SECONDS = 3.0  # how often a running broadcast's progress message is edited
MAX_CARDS = 10  # proposals shown at once by "Modération"
LOCALE_NAMES = {"fr": "français", "en": "anglais", "oc": "occitan"}
# A status as a moderation button carries it (the card's view of the proposal).
_LETTER = {ProposalStatus.SUBMITTED: "s", ProposalStatus.PUBLISHED: "p",
           ProposalStatus.REJECTED: "r", ProposalStatus.HIDDEN: "h"}
_DONE = {ProposalStatus.PUBLISHED: ("✅", "Publiée"), ProposalStatus.REJECTED: ("❌", "Rejetée"),
         ProposalStatus.HIDDEN: ("🙈", "Masquée")}


def staff_chat_ids(settings_value: str) -> frozenset[int]:
    """The chat ids of VOTZ_STAFF_TELEGRAM_IDS (comma or space separated)."""
    found = set()
    for raw in re.split(r"[,\s]+", settings_value.strip()):
        if not raw:
            continue
        if not raw.lstrip("-").isdigit():
            raise ConfigError(f"VOTZ_STAFF_TELEGRAM_IDS: {raw!r} is not a Telegram chat id "
                              "(a number, e.g. 123456789)")
        found.add(int(raw))
    return frozenset(found)


# --- what came in ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incoming:
    """One update as the desk reads it."""

    update_id: int
    chat: int
    user: int
    name: str  # how the staff member is named in decisions ("Publiée par Marie")
    text: str | None = None  # typed
    data: str | None = None  # a button's callback data
    query_id: str | None = None
    message_id: int | None = None  # the message whose button was pressed

    @property
    def actor(self) -> str:
        return f"telegram:{self.user}"


def _name(user: User | None) -> str:
    if user is None:
        return "?"
    full = " ".join(part for part in (user.first_name, user.last_name) if part)
    return full or (f"@{user.username}" if user.username else str(user.id))


def incoming(update: Update) -> Incoming | None:
    query = update.callback_query
    if query is not None:
        message = query.message
        chat = message.chat.id if message is not None else query.from_user.id
        return Incoming(update.update_id, chat, query.from_user.id, _name(query.from_user),
                        data=query.data or "", query_id=query.id,
                        message_id=message.message_id if message is not None else None)
    message = update.message
    if message is not None:
        user = message.from_user
        return Incoming(update.update_id, message.chat.id, user.id if user else message.chat.id,
                        _name(user), text=message.text or "")
    other = update.effective_chat
    if other is not None:  # joined, left, blocked the bot: nothing to answer
        return Incoming(update.update_id, other.id, other.id, "?")
    return None


def _command(text: str) -> str | None:
    """"stats" for "/stats" or "/stats@votz_bot"; None for what is not a command."""
    if not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@")[0].lower() if len(text) > 1 else ""


def is_staff_request(got: Incoming) -> bool:
    """A staff command or a staff button (refused to anyone not on staff)."""
    if got.data is not None:
        return got.data.startswith(STAFF_PREFIX)
    return _command((got.text or "").strip()) in STAFF_COMMANDS


# --- what goes out ----------------------------------------------------------------------------


def button(label: str, action: str) -> ReplyChoice:
    return ReplyChoice(STAFF_PREFIX + action, "", label)


def markup(choices: Sequence[ReplyChoice]) -> InlineKeyboardMarkup | None:
    """The inline keyboard of an edited message: one button a row, as the sender draws them."""
    if not choices:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(c.label,
                                                       callback_data=button_data(0, c.id))]
                                 for c in choices])


@dataclass(frozen=True, slots=True)
class Edit:
    """A message of the chat rewritten in place."""

    message_id: int
    reply: Reply


@dataclass
class Outcome:
    """What handling one staff update does once its transaction has committed."""

    replies: list[tuple[Reply, str | None]] = field(default_factory=list)  # (reply, key)
    session: dict[str, Any] | None = None  # the new session (None: as it was)
    answer: str | None = None  # shown on the button pressed
    edit: Edit | None = None
    keep_buttons: bool = False  # leave the pressed message's keyboard as it is

    def say(self, text: str, choices: Sequence[ReplyChoice] = (), *,
            key: str | None = None) -> None:
        self.replies.append((Reply(text, tuple(choices)), key))


def paris(moment: datetime, form: str = "%H:%M") -> str:
    return moment.astimezone(PARIS).strftime(form)


def euros(amount: float) -> str:
    return f"{amount:,.2f}".replace(",", " ").replace(".", ",") + " €"


def channel_label(name: str) -> str:
    return name.upper() if len(name) <= 3 else name.capitalize()


# --- sessions -------------------------------------------------------------------------------


def load_session(conn: Connection, chat: int) -> dict[str, Any]:
    raw = conn.execute(select(staff_sessions.c.state)
                       .where(staff_sessions.c.chat_id == str(chat))).scalar()
    return dict(json.loads(raw)) if raw else {}


def save_session(conn: Connection, chat: int, state: Mapping[str, Any], now: datetime) -> None:
    stmt = insert_for(conn, staff_sessions).values(
        chat_id=str(chat), state=json.dumps(dict(state), ensure_ascii=False), updated_at=now)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["chat_id"],
        set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at}))


def staff_names(conn: Connection, actors: Sequence[str]) -> dict[str, str]:
    """"telegram:ID" → the name that staff member last wrote under (their session's)."""
    chats = [a.removeprefix("telegram:") for a in actors if a.startswith("telegram:")]
    if not chats:
        return {}
    rows = conn.execute(select(staff_sessions.c.chat_id, staff_sessions.c.state)
                        .where(staff_sessions.c.chat_id.in_(chats))).all()
    return {f"telegram:{r.chat_id}": name for r in rows
            if (name := json.loads(r.state).get("name"))}


def _who(conn: Connection, actor: str | None) -> str:
    if not actor:
        return "?"
    if actor == moderation.REPORTS_ACTOR:
        return "les signalements"
    return staff_names(conn, [actor]).get(actor) or actor.removeprefix("telegram:")


# --- moderation cards -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    """A proposal as staff moderate it."""

    id: int
    status: str
    title: str
    campaign: Campaign
    flags: tuple[str, ...] = ()
    similar: tuple[tuple[str, str, str], ...] = ()  # (code, title, status)
    reports: int = 0

    @property
    def code(self) -> str:
        return proposal_code(self.id)

    def text(self, *, status: bool = True) -> str:
        lines = [f"Proposition {self.code} · {self.campaign.text('title', 'fr')}",
                 f"« {self.title} »"]
        if status and self.status != ProposalStatus.SUBMITTED:
            lines.append(f"Statut : {_status(self.status)}")
        lines += [f"⚠ contient {moderation.FLAG_LABELS_FR.get(flag, flag)}"
                  for flag in self.flags]
        if self.reports:
            lines.append(f"Signalée {self.reports} fois")
        if self.similar:
            lines.append("Proches : " + " ; ".join(
                f"{code} « {title} » ({_status(status)})"
                for code, title, status in self.similar))
        return "\n".join(lines)

    def choices(self, now: datetime) -> list[ReplyChoice]:
        """Publier / Rejeter while it waits (Publier again for one rejected or hidden);
        Masquer for a published one while its vote is open (no longer Rejeter then)."""
        seen = f"{self.id}:{_LETTER.get(self.status, 'x')}"
        vote_open = self.campaign.is_open(Phase.VOTE, now)
        found = []
        if self.status != ProposalStatus.PUBLISHED:  # a rejection may be undone
            found.append(button("Publier", f"pub:{seen}"))
        if self.status == ProposalStatus.SUBMITTED or (
                self.status in (ProposalStatus.PUBLISHED, ProposalStatus.HIDDEN)
                and not vote_open):
            found.append(button("Rejeter", f"rej:{seen}"))
        if self.status == ProposalStatus.PUBLISHED and vote_open:
            found.append(button("Masquer", f"hide:{seen}"))
        return found

    def reply(self, now: datetime) -> Reply:
        return Reply(self.text(), tuple(self.choices(now)))

    def decided(self, line: str, now: datetime) -> Reply:
        """The card once decided: the decision under it, and only Masquer left (a published
        idea in an open vote); anything else is done from its card again (type its code)."""
        return Reply(f"{self.text(status=False)}\n\n{line}",
                     tuple(c for c in self.choices(now) if c.id.startswith(STAFF_PREFIX + "hide:")))


def _status(status: str) -> str:
    return moderation.STATUS_LABELS_FR.get(status, status)


def _title(raw: str) -> str:
    if raw.startswith("{"):
        texts: dict[str, str] = json.loads(raw)
        return texts.get("fr") or next(iter(texts.values()), "")
    return raw


def read_card(conn: Connection, proposal_id: int) -> Card | None:
    """The proposal's card as it stands, with the proposals close to it."""
    row = conn.execute(
        select(proposals.c.id, proposals.c.title, proposals.c.status,
               campaigns.c.id.label("campaign_id"), campaigns.c.definition)
        .join(campaigns, campaigns.c.id == proposals.c.campaign_id)
        .where(proposals.c.id == proposal_id)).first()
    if row is None:
        return None
    title = _title(row.title)
    reports = conn.execute(select(func.count()).where(
        proposal_reports.c.proposal_id == proposal_id)).scalar_one()
    return Card(row.id, row.status, title, campaign_from_json(row.definition, row.campaign_id),
                flags=moderation.flags(title), reports=int(reports),
                similar=tuple((s.proposal.code, s.proposal.text("fr"), s.status)
                              for s in moderation.similar_in(conn, proposal_id)))


@dataclass(frozen=True, slots=True)
class Decision:
    """The last decision on a proposal, as moderation logged it."""

    actor: str
    at: datetime
    reason: str | None


def last_decision(conn: Connection, proposal_id: int) -> Decision | None:
    code = proposal_code(proposal_id)
    row = conn.execute(
        select(campaign_log.c.actor, campaign_log.c.at, campaign_log.c.detail)
        .where(campaign_log.c.action.in_(list(moderation.ACTIONS.values())),
               or_(campaign_log.c.detail == code, campaign_log.c.detail.startswith(code + " ")))
        .order_by(campaign_log.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    reason = re.search(r"\breason=(\w+)", row.detail)
    return Decision(row.actor, row.at, reason.group(1) if reason else None)


def decided_line(status: str, who: str, at: datetime, reason: str | None = None) -> str:
    mark, word = _DONE.get(status, ("•", _status(status).capitalize()))
    why = f" ({moderation.REASON_LABELS_FR.get(reason, reason)})" if reason else ""
    return f"{mark} {word} par {who} à {paris(at)}{why}"


# --- broadcasts: texts --------------------------------------------------------------------------


def preview_text(texts: Mapping[str, str], audience: Audience, preview: Preview,
                 at: datetime | None) -> str:
    lines = ["Aperçu de la diffusion", f"« {texts['fr']} »"]
    lines += [f"En {LOCALE_NAMES.get(loc, loc)} : « {texts[loc]} »"
              for loc in LOCALES if loc != "fr" and texts.get(loc)]
    lines += ["", f"Public : {audience.describe()}",
              f"Destinataires : {preview.total}"]
    for channel, n in sorted(preview.recipients.items()):
        counts = ", ".join(f"{LOCALE_NAMES.get(loc, loc)} {k}"
                           for loc, k in sorted(preview.by_locale.get(channel, {}).items()) if k)
        lines.append(f"· {channel_label(channel)} : {n} ({counts})")
    for locale in preview.missing_locales:
        lines.append(f"Pas de texte en {LOCALE_NAMES.get(locale, locale)} : "
                     "le français sera envoyé.")
    for channel, costs in sorted(preview.costs.items()):
        people = preview.recipients.get(channel, 0)
        if not people:
            continue
        parts = [f"{costs[loc].segments} segment{'s' if costs[loc].segments > 1 else ''} × "
                 f"{preview.people(channel, loc)}"
                 for loc in LOCALES if preview.people(channel, loc) and loc in costs]
        lines.append(f"{channel_label(channel)} : {' + '.join(parts)} = "
                     f"{preview.segments(channel)} segments, coût estimé {euros(preview.cost)}")
    if at is not None:
        lines.append(f"Envoi prévu le {paris(at, '%d/%m à %H:%M')} (heure de Paris)")
    return "\n".join(lines)


def progress_text(p: Progress) -> str:
    head = f"Diffusion n°{p.id} · « {p.summary} »\nPublic : {p.audience.describe()}"
    if p.status == "scheduled":
        return (f"{head}\nProgrammée pour le {paris(p.send_at, '%d/%m à %H:%M')} "
                "(heure de Paris).")
    lines = [head, f"{p.total} messages : en file {p.queued} · en cours {p.sending} · envoyés "
             f"{p.sent + p.delivered} · remis {p.delivered} · échecs {p.failed} · restants "
             f"{p.remaining}"]
    if p.held:
        lines.append(f"dont {p.held} en attente de la plage d'envoi")
    if p.status == "cancelled":
        lines.append(f"Annulée : {p.cancelled} messages ne partiront pas.")
    return "\n".join(lines)


def report_text(p: Progress, cancelled_by: str | None = None) -> str:
    sent = p.sent + p.delivered
    if p.status == "cancelled":
        return (f"Diffusion n°{p.id} annulée par {cancelled_by or '?'} : {sent} envoyés "
                f"(dont {p.delivered} remis), {p.failed} échecs, {p.cancelled} annulés.")
    return (f"Diffusion n°{p.id} terminée : {p.total} messages, {p.delivered} remis, "
            f"{p.sent} envoyés sans accusé de réception, {p.failed} échecs.")


# --- the desk -------------------------------------------------------------------------------------


MENU = (button("Modération", "mod"), button("Diffusion", "bc"), button("Chiffres", "stats"))
CANCEL = button("Annuler", "cancel")
SKIP = button("Passer", "skip")
AUDIENCES = (("Tout le monde", "all"), ("Public d'une campagne", "campaign"),
             ("N'ont pas encore voté", "not_voted"), ("Un département", "dep"),
             ("Une tranche d'âge", "age"))


class StaffDesk:
    """The staff chat of one `votz run` (see the module docstring)."""

    def __init__(self, app: App, bot: Bot, *, interval: float = PROGRESS_SECONDS) -> None:
        self.app = app
        self.bot = bot
        self.chats = staff_chat_ids(app.settings.staff_telegram_ids)
        self.interval = interval
        self._locks: dict[int, asyncio.Lock] = {}
        self._shown: dict[int, str] = {}  # broadcast id → the progress text last shown
        self._watch: set[int] = set()  # broadcasts followed that `running` may not list
        self._deciding: dict[int, asyncio.Lock] = {}  # proposal id → its decision under way

    # --- routing ----------------------------------------------------------------------------

    async def take(self, update: Update) -> bool:
        got = incoming(update)
        if got is None:
            return False
        if got.chat in self.chats:
            await self.handle(got)
            return True
        if is_staff_request(got):
            await self.refuse(got)
            return True
        return False

    async def refuse(self, got: Incoming) -> None:
        """A staff command or button from someone not on staff: a short refusal, once."""
        now = self.app.clock()
        reply = None if got.query_id else Reply(REFUSAL)

        def store(conn: Connection) -> bool:
            if not self._seen(conn, got, now):
                return False
            if reply is not None:
                self._queue(conn, got.chat, reply, f"staff:refused:{got.update_id}", now)
            return True

        if not await self.app.db.run(store):
            return
        log.info("staff.refused chat=%s", mask_address(str(got.chat)))
        if reply is not None:
            self.app.dispatcher.wake()
        if got.query_id:
            with contextlib.suppress(TelegramError):
                await self.bot.answer_callback_query(got.query_id, text=REFUSAL)

    def _seen(self, conn: Connection, got: Incoming, now: datetime) -> bool:
        """Mark the update seen; False when it was already (a redelivery)."""
        inserted = conn.execute(insert_for(conn, inbound_seen).values(
            channel=CHANNEL, provider_id=str(got.update_id), received_at=now,
        ).on_conflict_do_nothing()).rowcount
        return bool(inserted)

    def _queue(self, conn: Connection, chat: int | str, reply: Reply, key: str | None,
               now: datetime) -> int:
        values = queue_values(participant_id=None, channel=CHANNEL, address=str(chat),
                              reply=reply, now=now, idempotency_key=key)
        return conn.execute(insert_for(conn, outbox).values(**values)
                            .on_conflict_do_nothing()).rowcount or 0

    # --- one update ---------------------------------------------------------------------------

    async def handle(self, got: Incoming) -> None:
        lock = self._locks.setdefault(got.chat, asyncio.Lock())
        async with lock:
            now = self.app.clock()

            def read(conn: Connection) -> dict[str, Any] | None:
                fresh = conn.execute(select(inbound_seen.c.provider_id).where(
                    inbound_seen.c.channel == CHANNEL,
                    inbound_seen.c.provider_id == str(got.update_id))).first() is None
                return load_session(conn, got.chat) if fresh else None

            session = await self.app.db.run(read)
            if session is None:
                return
            if got.data is None and got.text is None:  # blocked, unblocked: nothing to do
                outcome = Outcome()
            else:
                try:
                    outcome = await self.act(got, session, now)
                except VotzError as exc:  # a campaign gone meanwhile, a value refused…
                    log.warning("staff.refused_action chat=%s error=%s",
                                mask_address(str(got.chat)), error_summary(exc))
                    outcome = Outcome(session={}, keep_buttons=True)
                    outcome.say(f"Impossible : {exc}", MENU)
            state = dict(outcome.session if outcome.session is not None else session)
            if got.data is not None or got.text is not None:
                state["name"] = got.name  # how decisions name them to colleagues

            def store(conn: Connection) -> bool:
                if not self._seen(conn, got, now):
                    return False
                save_session(conn, got.chat, state, now)
                for n, (reply, key) in enumerate(outcome.replies):
                    self._queue(conn, got.chat, reply, key or f"staff:{got.update_id}:{n}",
                                now)
                return True

            if not await self.app.db.run(store):
                return
            if outcome.replies:
                self.app.dispatcher.wake()
            await self._direct(got, outcome)

    async def _direct(self, got: Incoming, outcome: Outcome) -> None:
        """The button's answer and the in-place edit (Bot API calls; a failure is logged,
        the decision stands)."""
        try:
            if got.query_id is not None:
                await self.bot.answer_callback_query(got.query_id, text=outcome.answer)
            if got.message_id is None:
                return
            if outcome.edit is not None:
                await self.edit(got.chat, outcome.edit.message_id, outcome.edit.reply)
            elif got.query_id is not None and not outcome.keep_buttons:
                # An answered question loses its buttons, as in the participant flows.
                await self.bot.edit_message_reply_markup(chat_id=got.chat,
                                                         message_id=got.message_id,
                                                         reply_markup=None)
        except TelegramError as exc:
            log.warning("staff.telegram_call_failed chat=%s error=%s", mask_address(str(got.chat)),
                        error_summary(exc))

    async def edit(self, chat: int | str, message_id: int | str, reply: Reply) -> bool:
        """Rewrite a message in place; False when Telegram refused (an unchanged text is
        not an error)."""
        try:
            await self.bot.edit_message_text(reply.text, chat_id=int(chat),
                                             message_id=int(message_id),
                                             reply_markup=markup(reply.choices))
        except BadRequest as exc:
            if "not modified" in exc.message:
                return True
            log.warning("staff.edit_refused chat=%s error=%s", mask_address(str(chat)),
                        error_summary(exc))
            return False
        return True

    async def act(self, got: Incoming, session: dict[str, Any], now: datetime) -> Outcome:
        if got.data is not None:
            if not got.data.startswith(STAFF_PREFIX):  # a participant button from before
                return self._menu(Outcome(session={}))
            return await self.press(got, got.data[len(STAFF_PREFIX):].split(":"), session,
                                    now)
        text = (got.text or "").strip()
        command = _command(text)
        word = (command if command is not None else text).lower()
        if word in ("start", "menu", "equipe", "aide"):
            return await self._menu_with_counts(Outcome(session={}))
        if word in ("annuler", "cancel"):
            out = Outcome(session={})
            out.say("C'est annulé." if session.get("step") else "Rien en cours.")
            return self._menu(out)
        if word in ("stats", "chiffres"):
            return await self.stats(now)
        if word == "moderation":
            return await self.moderation_list(now)
        if word == "diffusion":
            return self.compose_start(got)
        step = session.get("step", "")
        if step.startswith("bc."):
            return await self.compose_typed(got, text, session, now)
        if re.fullmatch(r"[Pp]\d{1,12}", text):  # a proposal's code: its card, to act on it
            return await self.show_card(int(text[1:]), now)
        out = Outcome()
        out.say("Je n'ai pas compris. Choisissez dans le menu, tapez /stats, /moderation, "
                "/diffusion, ou le code d'une proposition (P12).", MENU)
        return out

    async def press(self, got: Incoming, parts: list[str], session: dict[str, Any],
                    now: datetime) -> Outcome:
        match parts:
            case ["menu"]:
                return await self._menu_with_counts(Outcome(session={}))
            case ["stats"]:
                return await self.stats(now)
            case ["mod"]:
                return await self.moderation_list(now)
            case ["bc"]:
                return self.compose_start(got)
            case [("pub" | "rej" | "hide" | "back") as action, pid, seen] if pid.isdigit():
                return await self.moderate(got, action, int(pid), seen, None, now)
            case [("why" | "hwhy") as action, pid, seen, reason] if pid.isdigit():
                return await self.moderate(got, action, int(pid), seen, reason, now)
            case ["stop", bid] if bid.isdigit():
                return await self.stop_broadcast(got, int(bid), now)
            case ["cancel"]:
                out = Outcome(session={})
                out.say("Diffusion abandonnée." if session.get("step") else "Rien en cours.")
                return out
        if session.get("step", "").startswith("bc."):
            return await self.compose_pressed(got, parts, session, now)
        return Outcome(answer="Ce bouton n'est plus valable.", keep_buttons=True)

    def _menu(self, out: Outcome, waiting: int | None = None) -> Outcome:
        label = "Modération" if not waiting else f"Modération ({waiting} en attente)"
        out.say("Équipe Votz : que voulez-vous faire ?",
                (button(label, "mod"), *MENU[1:]))
        return out

    async def _menu_with_counts(self, out: Outcome) -> Outcome:
        count = await self.app.db.run(lambda conn: conn.execute(
            select(func.count()).where(waiting())).scalar_one())
        return self._menu(out, int(count))

    # --- figures ------------------------------------------------------------------------------

    async def stats(self, now: datetime) -> Outcome:
        found = await self.app.db.run(lambda conn: figures(conn, now))
        out = Outcome()
        out.say(figures_text(found, now))
        return out

    # --- moderation ---------------------------------------------------------------------------

    def announce(self, conn: Connection, proposal_id: int, now: datetime) -> None:
        """Queue a new proposal's card to every staff chat (in the transaction that stores
        it: the pipeline's `on_proposal`)."""
        if not self.chats:
            return
        card = read_card(conn, proposal_id)
        if card is None:
            return
        reply = card.reply(now)
        for chat in sorted(self.chats):
            self._queue(conn, chat, Reply("Nouvelle proposition\n" + reply.text,
                                          reply.choices),
                        f"staff:proposal:{proposal_id}:{chat}", now)

    async def moderation_list(self, now: datetime) -> Outcome:
        pending = await moderation.pending(self.app.db)
        out = Outcome()
        if not pending:
            out.say("Aucune proposition à modérer.", MENU)
            return out
        more = len(pending) - MAX_CARDS
        out.say(f"{plural(len(pending), 'proposition')} à modérer"
                + (f" ; les {MAX_CARDS} plus anciennes :" if more > 0 else " :"))
        slugs = sorted({item.slug for item in pending[:MAX_CARDS]})
        found = await self.app.db.run(lambda conn: {s: _campaign(conn, s) for s in slugs})
        for item in pending[:MAX_CARDS]:
            campaign = found[item.slug]
            card = Card(item.proposal.id, item.status, item.proposal.text("fr"), campaign,
                        flags=item.flags, reports=item.reports,
                        similar=tuple((s.proposal.code, s.proposal.text("fr"), s.status)
                                      for s in item.similar))
            out.replies.append((card.reply(now), None))
        return out

    async def show_card(self, proposal_id: int, now: datetime) -> Outcome:
        def read(conn: Connection) -> tuple[Card | None, str | None]:
            card = read_card(conn, proposal_id)
            return card, _decided(conn, card) if card is not None else None

        card, line = await self.app.db.run(read)
        out = Outcome()
        if card is None:
            out.say(f"Pas de proposition {proposal_code(proposal_id)}.")
            return out
        out.say(card.text() + (f"\n\n{line}" if line else ""), card.choices(now))
        return out

    async def moderate(self, got: Incoming, action: str, proposal_id: int, seen: str,
                       reason: str | None, now: datetime) -> Outcome:
        """A moderation button on a card: act once, and show the decision in place."""
        # Two staff members pressing at once: one decides, the other reads the decision (in
        # this process this lock; across processes, the decision is taken only on the
        # status the card showed, checked with the proposal's row locked).
        # (One small lock per proposal moderated here, kept: a few thousand at most.)
        async with self._deciding.setdefault(proposal_id, asyncio.Lock()):
            return await self._moderate(got, action, proposal_id, seen, reason, now)

    async def _moderate(self, got: Incoming, action: str, proposal_id: int, seen: str,
                        reason: str | None, now: datetime) -> Outcome:
        card = await self.app.db.run(lambda conn: read_card(conn, proposal_id))
        out = Outcome(keep_buttons=True)
        if card is None or got.message_id is None:
            out.answer = "Cette proposition n'existe plus."
            return out
        if _LETTER.get(card.status) != seen:
            # Someone decided meanwhile (another staff member, reports): say so, show it.
            line = await self.app.db.run(lambda conn: _decided(conn, card))
            said = line[2:] if line else _status(card.status)
            out.answer = f"Déjà {said[:1].lower()}{said[1:]}."
            out.edit = Edit(got.message_id, card.decided(line or f"Déjà {said}.", now))
            return out
        if action == "back":
            out.edit = Edit(got.message_id, card.reply(now))
            return out
        if action in ("rej", "hide"):
            ask = "rejeter" if action == "rej" else "masquer"
            prefix = "why" if action == "rej" else "hwhy"
            reasons = [button(label, f"{prefix}:{proposal_id}:{seen}:{code}")
                       for code, label in moderation.REASON_LABELS_FR.items()]
            told = ("l'auteur en sera informé dans sa langue" if action == "rej"
                    else "la raison est consignée")
            out.edit = Edit(got.message_id, Reply(
                f"{card.text()}\n\nPourquoi {ask} {card.code} ? ({told})",
                (*reasons, button("Retour", f"back:{proposal_id}:{seen}"))))
            return out
        if reason is not None and reason not in moderation.REASON_LABELS_FR:
            out.answer = "Raison inconnue."
            return out
        done = await self._decide(got, action, card, reason, now)
        shown = await self.app.db.run(lambda conn: read_card(conn, proposal_id)) or card
        if done.refused and done.refused[0][1] == moderation.CHANGED:
            # Decided in another process between reading the card and deciding.
            line = await self.app.db.run(lambda conn: _decided(conn, shown))
            said = line[2:] if line else _status(shown.status)
            out.answer = f"Déjà {said[:1].lower()}{said[1:]}."
            out.edit = Edit(got.message_id, shown.decided(line or f"Déjà {said}.", now))
            return out
        if done.refused:
            out.answer = _refusal(done.refused[0][1])
            out.edit = Edit(got.message_id, shown.reply(now))
            return out
        line = decided_line(shown.status, got.name, now, reason)
        out.answer = line[2:]
        out.edit = Edit(got.message_id, shown.decided(line, now))
        return out

    async def _decide(self, got: Incoming, action: str, card: Card, reason: str | None,
                      now: datetime) -> moderation.Moderated:
        codes, seen = [card.code], (card.status,)  # decided on what the card showed
        if action == "hwhy":
            return await moderation.hide(self.app.db, codes, reason=reason or "",
                                         by=got.actor, now=now, expected=seen)
        notify = moderation.Notify(self.app.i18n, self.app.dispatcher.windows, now)
        if action == "pub":
            return await moderation.publish(self.app.db, codes, notify=notify, by=got.actor,
                                            expected=seen)
        return await moderation.reject(self.app.db, codes, notify=notify, reason=reason,
                                       by=got.actor, expected=seen)

    # --- broadcasts: composing ------------------------------------------------------------------

    def compose_start(self, got: Incoming) -> Outcome:
        # The key is fixed now: confirming twice (a double tap, a redelivered update) sends
        # one broadcast.
        out = Outcome(session={"step": "bc.fr",
                               "draft": {"key": f"tg-{got.chat}-{got.update_id}",
                                         "texts": {}, "audience": {}}})
        out.say("Nouvelle diffusion. Écrivez le message en français.", (CANCEL,))
        return out

    async def compose_typed(self, got: Incoming, text: str, session: dict[str, Any],
                            now: datetime) -> Outcome:
        step = session["step"]
        draft = dict(session.get("draft") or {})
        if step in ("bc.fr", "bc.en", "bc.oc"):
            if not text:
                out = Outcome()
                out.say("Écrivez le texte du message (ou Annuler).", (CANCEL,))
                return out
            draft["texts"] = {**draft.get("texts", {}), step[3:]: text}
            return self._after_text(step, draft)
        if step == "bc.dep":
            wanted = tuple(re.split(r"[,\s]+", text.strip()))
            try:
                checked = broadcasts.checked(Audience(departements=wanted))
            except ConfigError:
                out = Outcome()
                out.say("Département inconnu. Ceux de la Région : "
                        + ", ".join(OCCITANIE) + ".", (CANCEL,))
                return out
            draft["audience"] = {"departements": list(checked.departements)}
            return self._ask_channel(draft)
        if step == "bc.when":
            if text.lower() == "maintenant":
                draft["at"] = None
            else:
                try:
                    at = broadcasts.parse_send_time(text, now)
                except ConfigError:
                    out = Outcome()
                    out.say("Je n'ai pas compris l'heure. Tapez 18:30 ou 12/12 18:30 (heure "
                            "de Paris), ou « maintenant ».", (CANCEL,))
                    return out
                draft["at"] = at.isoformat()
            return await self._ask_confirmation(draft)
        out = Outcome()
        out.say("Utilisez les boutons du dernier message, ou Annuler.", (CANCEL,))
        return out

    def _after_text(self, step: str, draft: dict[str, Any]) -> Outcome:
        if step == "bc.fr":
            out = Outcome(session={"step": "bc.en", "draft": draft})
            out.say("Le même message en anglais ? Écrivez-le, ou passez (le français sera "
                    "envoyé).", (SKIP, CANCEL))
            return out
        if step == "bc.en":
            out = Outcome(session={"step": "bc.oc", "draft": draft})
            out.say("En occitan ? Écrivez-le, ou passez (le français sera envoyé).",
                    (SKIP, CANCEL))
            return out
        out = Outcome(session={"step": "bc.audience", "draft": draft})
        out.say("À qui l'envoyer ?", (*(button(label, f"aud:{kind}")
                                        for label, kind in AUDIENCES), CANCEL))
        return out

    def _ask_channel(self, draft: dict[str, Any]) -> Outcome:
        out = Outcome(session={"step": "bc.channel", "draft": draft})
        out.say("Sur quel canal ?", (button("Tous les canaux", "chan:all"),
                                     *(button(channel_label(name), f"chan:{name}")
                                       for name in sendable_channels()), CANCEL))
        return out

    async def compose_pressed(self, got: Incoming, parts: list[str], session: dict[str, Any],
                              now: datetime) -> Outcome:
        step = session["step"]
        draft = dict(session.get("draft") or {})
        stale = Outcome(answer="Ce bouton n'est plus valable.", keep_buttons=True)
        match parts:
            case ["skip"] if step in ("bc.en", "bc.oc"):
                return self._after_text(step, draft)
            case ["aud", kind] if step == "bc.audience":
                return await self._audience(kind, draft, now)
            case ["camp", number] if step == "bc.campaign" and number.isdigit():
                found = await self.app.db.run(load_campaigns)
                slug = next((c.slug for c in found if c.id == int(number)), None)
                if slug is None:
                    return stale
                draft["audience"] = {draft.pop("pick", "campaign"): slug}
                return self._ask_channel(draft)
            case ["age", bracket] if step == "bc.age" and bracket in AGE_BRACKETS:
                draft["audience"] = {"ages": [bracket]}
                return self._ask_channel(draft)
            case ["chan", name] if step == "bc.channel":
                if name != "all":
                    draft["audience"] = {**draft.get("audience", {}), "channel": name}
                return await self._preview(draft)
            case ["send"] if step in ("bc.preview", "bc.confirm"):
                return await self._send(got, draft, now)
            case ["later"] if step == "bc.preview":
                out = Outcome(session={"step": "bc.when", "draft": draft})
                out.say("À quelle heure l'envoyer ? Tapez 18:30 ou 12/12 18:30 (heure de "
                        "Paris), ou « maintenant ».", (CANCEL,))
                return out
        return stale

    async def _audience(self, kind: str, draft: dict[str, Any], now: datetime) -> Outcome:
        if kind == "all":
            draft["audience"] = {}
            return self._ask_channel(draft)
        if kind in ("campaign", "not_voted"):
            found = await self.app.db.run(load_campaigns)
            shown = [c for c in found if c.visible(now)
                     and (kind == "campaign" or c.window(Phase.VOTE) is not None)]
            out = Outcome(session={"step": "bc.campaign", "draft": {**draft, "pick": kind}})
            out.say("Quelle campagne ?" if shown else "Aucune campagne en cours.",
                    (*(button(c.text("title", "fr"), f"camp:{c.id}") for c in shown),
                     CANCEL))
            return out
        if kind == "dep":
            out = Outcome(session={"step": "bc.dep", "draft": draft})
            out.say("Tapez le numéro du département (31), ou plusieurs (31 48).", (CANCEL,))
            return out
        if kind == "age":
            out = Outcome(session={"step": "bc.age", "draft": draft})
            out.say("Quelle tranche d'âge ?", (*(button(f"{b} ans", f"age:{b}")
                                                  for b in AGE_BRACKETS), CANCEL))
            return out
        return Outcome(answer="Ce bouton n'est plus valable.", keep_buttons=True)

    async def _compose(self, draft: Mapping[str, Any]) -> broadcasts.Broadcast:
        raw = dict(draft.get("audience") or {})
        audience = Audience(channel=raw.get("channel"), campaign=raw.get("campaign"),
                            departements=tuple(raw.get("departements", ())),
                            ages=tuple(raw.get("ages", ())), not_voted=raw.get("not_voted"))
        return await broadcasts.compose(self.app.db, draft.get("texts", {}), audience,
                                        key=draft.get("key"))

    async def _preview(self, draft: dict[str, Any]) -> Outcome:
        broadcast = await self._compose(draft)
        preview = await broadcasts.show(self.app.db, broadcast,
                                        price=self.app.settings.sms_price_per_segment)
        if not preview.total:
            out = Outcome(session={"step": "bc.audience", "draft": draft})
            out.say(f"Personne ne correspond à ce public ({broadcast.audience.describe()}). "
                    "Choisissez-en un autre.",
                    (*(button(label, f"aud:{kind}") for label, kind in AUDIENCES), CANCEL))
            return out
        out = Outcome(session={"step": "bc.preview", "draft": draft})
        out.say(preview_text(broadcast.texts, broadcast.audience, preview, None),
                (button("Envoyer maintenant", "send"), button("Programmer l'envoi", "later"),
                 CANCEL))
        return out

    async def _ask_confirmation(self, draft: dict[str, Any]) -> Outcome:
        broadcast = await self._compose(draft)
        preview = await broadcasts.show(self.app.db, broadcast,
                                        price=self.app.settings.sms_price_per_segment)
        at = datetime.fromisoformat(draft["at"]) if draft.get("at") else None
        out = Outcome(session={"step": "bc.confirm", "draft": draft})
        when = (f"le {paris(at, '%d/%m à %H:%M')} (heure de Paris)" if at is not None
                else "maintenant")
        cost = f" Coût SMS estimé : {euros(preview.cost)}." if preview.cost else ""
        out.say(f"Envoyer « {broadcast.texts['fr'][:60]} » à "
                f"{plural(preview.total, 'destinataire')}, {when} ?{cost}",
                (button("Confirmer l'envoi", "send"), CANCEL))
        return out

    async def _send(self, got: Incoming, draft: dict[str, Any], now: datetime) -> Outcome:
        broadcast = await self._compose(draft)
        at = datetime.fromisoformat(draft["at"]) if draft.get("at") else None
        made = await broadcasts.create(
            self.app.db, broadcast, by=got.actor, now=now, at=at, i18n=self.app.i18n,
            windows=self.app.dispatcher.windows, staff_chat=str(got.chat))
        log.info("staff.broadcast.created id=%s by=%s", made.id, got.actor)
        out = Outcome(session={}, answer="Diffusion lancée." if at is None
                      else "Diffusion programmée.")
        out.replies.append((Reply(progress_text(made), (button("Annuler", f"stop:{made.id}"),)),
                            _progress_key(made.id)))
        self._watch.add(made.id)
        return out

    # --- broadcasts: following ----------------------------------------------------------------

    async def stop_broadcast(self, got: Incoming, broadcast_id: int, now: datetime) -> Outcome:
        """The Annuler button of a progress message: what is still queued never leaves."""
        out = Outcome(keep_buttons=True)
        try:
            before = await broadcasts.progress(self.app.db, broadcast_id, now=now)
        except ConfigError:
            out.answer = "Cette diffusion n'existe plus."
            return out
        if before.status in ("done", "cancelled"):
            out.answer = ("Déjà terminée." if before.status == "done" else "Déjà annulée.")
            return out
        after = await broadcasts.cancel(self.app.db, broadcast_id, by=got.actor, now=now)
        log.info("staff.broadcast.cancelled id=%s by=%s", broadcast_id, got.actor)
        out.answer = f"Annulée : {after.cancelled} messages ne partiront pas."
        if got.message_id is not None:
            out.edit = Edit(got.message_id, Reply(progress_text(after)))
            self._shown[broadcast_id] = progress_text(after)
        self._watch.add(broadcast_id)  # the final report, once what was in flight is done
        return out

    async def follow(self, stopping: asyncio.Event) -> None:
        """The supervised loop: progress edits every `interval` seconds, or less often when
        reading progress takes long (SQLite's one connection is the dispatcher's too): it
        uses at most 1/30 of the time. Counts are read from each broadcast's row (kept by
        triggers), not counted: 0.2 s with 500,000 queued before, a few ms now; what is held
        for a sending window is still counted (a range of an index: long only while many
        are held, when nothing of theirs leaves anyway)."""
        while not stopping.is_set():
            started = time.monotonic()
            await self.refresh()
            pause = max(self.interval, 30 * (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=pause)

    async def refresh(self) -> None:
        """One pass: edit each running broadcast's progress message where it changed; for
        one that is over, the last edit and the final report."""
        now = self.app.clock()
        followed = await broadcasts.running(self.app.db, now=now)
        listed = {p.id for p in followed}
        for broadcast_id in sorted(self._watch - listed):  # cancelled ones are not listed
            try:
                followed.append(await broadcasts.progress(self.app.db, broadcast_id, now=now))
            except ConfigError:
                self._watch.discard(broadcast_id)
        for progress in followed:
            try:
                await self._show(progress, now)
            except TelegramError as exc:
                log.warning("staff.progress.failed broadcast=%s error=%s", progress.id,
                            error_summary(exc))

    async def _show(self, p: Progress, now: datetime) -> None:
        over = p.status in ("done", "cancelled") and p.remaining == 0
        if p.finished_at is not None or (p.staff_chat is None and over):
            # Made elsewhere (the CLI): nobody to tell here, it is only marked finished.
            if p.finished_at is None:
                await broadcasts.finish(self.app.db, p.id, now)
            self._watch.discard(p.id)
            return
        if p.staff_chat is None:
            return
        self._watch.add(p.id)
        message = p.staff_message or await self._progress_message(p)
        if message is None:  # not sent yet: next time
            return
        if over:
            if await broadcasts.finish(self.app.db, p.id, now):
                who = await self.app.db.run(lambda conn: _who(conn, p.cancelled_by))
                await self.edit(p.staff_chat, message, Reply(progress_text(p)))
                report = report_text(p, who)
                await self.app.db.run(lambda conn: self._queue(
                    conn, str(p.staff_chat), Reply(report), f"staff:report:{p.id}", now))
                self.app.dispatcher.wake()
                log.info("staff.broadcast.finished id=%s", p.id)
            self._watch.discard(p.id)
            self._shown.pop(p.id, None)
            return
        text = progress_text(p)
        if self._shown.get(p.id) == text:
            return
        stop = () if p.status == "cancelled" else (button("Annuler", f"stop:{p.id}"),)
        if await self.edit(p.staff_chat, message, Reply(text, stop)):
            self._shown[p.id] = text

    async def _progress_message(self, p: Progress) -> str | None:
        """The id of the progress message, once the dispatcher has sent it (recorded on the
        broadcast for every process)."""
        found = await self.app.db.run(lambda conn: conn.execute(
            select(outbox.c.provider_id).where(
                outbox.c.idempotency_key == _progress_key(p.id))).scalar())
        if found is None or p.staff_chat is None:
            return None
        await broadcasts.set_staff_message(self.app.db, p.id, p.staff_chat, str(found))
        return str(found)

    async def start(self) -> None:
        """Show staff their commands in Telegram's menu (their chats only)."""
        from telegram import BotCommand, BotCommandScopeChat

        commands = [BotCommand("stats", "Chiffres des campagnes"),
                    BotCommand("moderation", "Propositions à modérer"),
                    BotCommand("diffusion", "Envoyer un message"),
                    BotCommand("equipe", "Menu de l'équipe")]
        for chat in sorted(self.chats):
            try:
                await self.bot.set_my_commands(commands, scope=BotCommandScopeChat(chat))
            except TelegramError as exc:  # a staff member who never wrote to the bot
                log.warning("staff.commands_not_set chat=%s error=%s", mask_address(str(chat)),
                            error_summary(exc))


def _progress_key(broadcast_id: int) -> str:
    return f"staff:progress:{broadcast_id}"


def _campaign(conn: Connection, slug: str) -> Campaign:
    from bot.store.repo import get_campaign

    return get_campaign(conn, slug)


def _decided(conn: Connection, card: Card) -> str | None:
    """"❌ Rejetée par Marie à 14:02 (hors sujet)": the decision that gave the card its
    status, if one is logged."""
    found = last_decision(conn, card.id)
    if found is None or card.status == ProposalStatus.SUBMITTED:
        return None
    return decided_line(card.status, _who(conn, found.actor), found.at, found.reason)


def _refusal(why: str) -> str:
    said = moderation.REFUSALS_FR.get(why, why)
    return said[:1].upper() + said[1:] + "."


def attach(app: App, channels: Mapping[str, Running]) -> StaffDesk | None:
    """Give the running Telegram channel its staff desk (and new proposals to announce);
    None when Telegram does not run here."""
    running = next((r for r in channels.values() if isinstance(r, TelegramRunning)), None)
    if running is None:
        return None
    desk = StaffDesk(app, running.receiver.bot)
    running.receiver.staff = desk
    if desk.chats:
        app.pipeline.on_proposal = desk.announce
    return desk
