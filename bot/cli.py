"""The `votz` command: parses arguments, calls the app and `bot.staff`, prints.

Every command that needs the database opens the app with `async with _app(args) as app:`;
what staff do lives in `bot.staff`, so a staff chat can do the same without this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot import logs
from bot.app import App, load_engine
from bot.campaign_files import check_campaigns
from bot.channels.base import Inbound, Sender
from bot.channels.console import CHANNEL, ConsoleSender
from bot.config import Settings
from bot.conversation.engine import EngineSettings
from bot.conversation.flows import mermaid
from bot.domain.campaigns import Phase, missing_shorts
from bot.domain.region import PARIS
from bot.errors import ConfigError, VotzError
from bot.i18n import LOCALES, I18n
from bot.staff import audit, broadcasts, campaigns, measured, moderation, privacy
from bot.staff.results import BREAKDOWNS, FORMATS, campaign_results, format_results
from bot.store.db import normalise_url

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "database_url", None):
        from dataclasses import replace

        settings = replace(settings, database_url=args.database_url)
    return settings


class CannotOpenDatabase(Exception):
    """The database of VOTZ_DATABASE_URL could not be opened (its URL shown password-masked)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot open the database {masked_url(url)}: {reason}")


def masked_url(url: str) -> str:
    """`url` without its password: `postgresql://user:***@host/db`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: mask anything like user:password@
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def _reason(exc: BaseException) -> str:
    """What went wrong opening the database, in one line (the driver's words)."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's exception
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text


# What opening a database raises when it cannot be opened: SQLAlchemy's errors (with the
# driver's inside), the network's (refused, unknown host, timeout), a driver not installed.
OPENING_ERRORS = (SQLAlchemyError, OSError, ImportError)


def _check_url(url: str) -> None:
    """A clear error for a URL that is no SQLite or PostgreSQL database, before opening."""
    try:
        backend = make_url(normalise_url(url)).get_backend_name()
    except SQLAlchemyError:
        raise CannotOpenDatabase(url, "not a database URL (sqlite:///votz.db, "
                                      "postgresql://user@host/db)") from None
    if backend not in ("sqlite", "postgresql"):
        raise CannotOpenDatabase(url, f"{backend} is not supported (use SQLite or PostgreSQL)")


@asynccontextmanager
async def _opening(settings: Settings, manager: AbstractAsyncContextManager[T]
                   ) -> AsyncIterator[T]:
    """Enter `manager` (the app, or the server around it); a database that cannot be opened
    is a `CannotOpenDatabase` (one line, not a traceback). Errors once it is open pass."""
    _check_url(settings.database_url)
    async with AsyncExitStack() as stack:
        try:
            opened = await stack.enter_async_context(manager)
        except OPENING_ERRORS as exc:
            raise CannotOpenDatabase(settings.database_url, _reason(exc)) from exc
        yield opened


def _app(args: argparse.Namespace, *, senders: dict[str, Sender] | None = None
         ) -> AbstractAsyncContextManager[App]:
    """The app for one command: migrated, catalog loaded, closed when the command ends."""
    settings = _settings(args)
    return _opening(settings, App.open(settings, senders=senders))


# --- chat ------------------------------------------------------------------------------------


async def chat(args: argparse.Namespace) -> int:
    async with _app(args, senders={CHANNEL: ConsoleSender(sys.stdout)}) as app:
        if not args.no_demo:
            await app.load_campaigns(app.settings.campaigns_path)
        interactive = sys.stdin.isatty()
        print("Votz — console (Ctrl-D pour quitter / to quit). Écrivez « bonjour ».",
              file=sys.stderr)
        loop = asyncio.get_running_loop()
        await app.dispatcher.drain()
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            text = line.rstrip("\n")
            if not interactive:
                print(f"> {text}")
            await app.pipeline.handle(Inbound(channel=CHANNEL, address=args.address, text=text,
                                              received_at=app.clock()))
            await app.dispatcher.drain()
    return 0


# --- run: the server with every configured channel ----------------------------------------


async def run(args: argparse.Namespace) -> int:
    from bot.server import Server

    settings = _settings(args)
    async with _opening(settings, Server.open(settings)) as server:
        await server.serve()
    return 0


# --- campaigns and proposals -----------------------------------------------------------------


async def campaigns_load(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        for report in await app.load_campaigns(Path(args.path)):
            verb = "created" if report.created else "updated"
            print(f"{report.slug}: {verb}, {report.seeded} proposal(s) added")
    return 0


async def campaigns_list(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        for standing in await campaigns.standings(app.db, app.clock()):
            campaign = standing.campaign
            print(f"{campaign.slug:32} {campaign.kind.value:22} {standing.phase.value:12} "
                  f"{campaign.text('title', 'fr')}")
    return 0


async def campaigns_link(args: argparse.Namespace) -> int:
    """The Telegram deep link of a campaign, and a QR code PNG for posters."""
    async with _app(args) as app:
        poster = await campaigns.poster(app.db, app.settings, args.slug, bot=args.bot,
                                        output=Path(args.output) if args.output else None)
    print(poster.link)
    print(f"QR code: {poster.qr_code}")
    return 0


async def campaigns_phase(args: argparse.Namespace) -> int:
    """Force a campaign into a phase now, with a logged reason."""
    phase = Phase(args.phase)
    async with _app(args) as app:
        grace = timedelta(hours=app.settings.reminder_grace_hours)
        changes = await campaigns.force_phase(app.db, args.slug, phase, app.clock(),
                                              actor=args.by or _who(), reason=args.reason,
                                              grace=grace)
    print(f"{args.slug}: now in its {phase.value} phase (logged)")
    for change in changes:
        print(f"  rescheduled {change}")
    return 0


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "staff"


def _local(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")


async def campaigns_status(args: argparse.Namespace) -> int:
    """Each campaign's phase, its next events and what was sent."""
    async with _app(args) as app:
        found = await campaigns.campaign_status(app.db, app.clock(), app.i18n,
                                                slug=args.slug)
    for status in found:
        print(f"{status.campaign.slug}: {status.phase.value}")
        upcoming = [e for e in status.events if e.status == "pending"]
        done = [e for e in status.events if e.status not in ("pending", "cancelled")]
        for line in upcoming[:3]:
            print(f"  next  {_local(line.due_at)}  {line.event} → {line.target}")
        for line in done:
            sent = ", ".join(f"{n} {s}" for s, n in sorted(line.outbox.items())) or "nothing"
            print(f"  {line.status:9} {line.event}: {line.queued} queued ({sent})"
                  + (f" — {line.note}" if line.note else ""))
        if not upcoming:
            print("  no event ahead")
    return 0


async def reminders_list(args: argparse.Namespace) -> int:
    """A campaign's schedule: when, to whom, how many people and SMS segments, what left."""
    async with _app(args) as app:
        found = await campaigns.campaign_status(app.db, app.clock(), app.i18n, slug=args.slug,
                                                log_lines=10)
    status = found[0]
    print(f"{status.campaign.slug} ({status.phase.value}), times Europe/Paris")
    for line in status.events:
        reach = ", ".join(f"{c} {n}" for c, n in sorted(line.audience.items()))
        segments = " ".join(f"{loc} {n}" for loc, n in line.segments.items())
        sent = ", ".join(f"{n} {s}" for s, n in sorted(line.outbox.items()))
        print(f"{_local(line.due_at)}  {line.event:20} {line.when or '(2 h / 1 week after)':22}"
              f" → {line.target}")
        print(f"    {line.status}" + (f", {line.queued} queued" if line.queued else "")
              + (f" ({sent})" if sent else "") + (f" — {line.note}" if line.note else ""))
        if reach:
            print(f"    would reach now: {reach}")
        if segments:
            print(f"    SMS segments per message: {segments}")
    if status.log:
        print("log:")
        for at, actor, action, detail in status.log:
            print(f"  {_local(at)} {actor} {action}: {detail}")
    return 0


def campaigns_check(args: argparse.Namespace) -> int:
    """Every problem of every campaign file, as file:line:column: field: message; 1 if any."""
    today = datetime.now(PARIS).date()
    i18n = I18n()
    problems = broken = 0
    for checked in check_campaigns(Path(args.path), today=today):
        found = list(checked.problems)
        campaign = checked.campaign
        if campaign is not None:
            for text in campaigns.reminder_problems(campaign, i18n):
                field, _, message = text.partition(": ")
                found.append(checked.problem(field, message))
            found += [checked.problem(field, message)
                      for field, message in missing_shorts(campaign)]
        for problem in found:
            print(problem)
        if campaign is not None and not found:
            kind = "declared" if campaign.declared_events is not None else "default"
            print(f"{campaign.slug}: ok ({len(campaign.seed_proposals)} proposals, "
                  f"{len(campaign.events)} {kind} reminders)")
        problems += len(found)
        broken += bool(found)
    if problems:
        print(f"{problems} problem(s) in {broken} file(s)", file=sys.stderr)
    return 1 if problems else 0


async def proposals_list(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        for listed in await moderation.list_proposals(app.db, args.slug, status=args.status):
            p = listed.proposal
            state = listed.status
            cost = f" {p.cost} €" if p.cost else ""
            print(f"{p.code:6} {state:10}{cost} {p.text('fr')}")
    return 0


async def proposals_moderate(args: argparse.Namespace, act: moderation.Act) -> int:
    moderation.parse_codes(args.ids)  # a clear error before opening anything
    async with _app(args) as app:
        notify = moderation.Notify(app.i18n, app.dispatcher.windows, app.clock())
        done = await act(app.db, args.ids, notify=notify,
                         reason=getattr(args, "reason", None), by=args.by or _who())
    print(f"{done.changed} proposal(s) {done.status} (their authors will be told)")
    for code, why in done.refused:
        print(f"error: {code}: {why}", file=sys.stderr)
    return 0 if done.complete else 1


async def proposals_hide(args: argparse.Namespace) -> int:
    moderation.parse_codes(args.ids)
    async with _app(args) as app:
        done = await moderation.hide(app.db, args.ids, reason=args.reason,
                                     by=args.by or _who(), now=app.clock())
    print(f"{done.changed} proposal(s) hidden (logged; votes already cast still count)")
    for code, why in done.refused:
        print(f"error: {code}: {why}", file=sys.stderr)
    return 0 if done.complete else 1


REVIEW_ANSWERS = {"p": "publier", "r": "rejeter", "m": "masquer", "s": "suivant", "q": "quitter"}
REVIEW_PROMPT = " / ".join(f"[{k}]{w[1:]}" for k, w in REVIEW_ANSWERS.items()) + " ? "


async def _ask(prompt: str) -> str | None:
    """One answer from stdin (a terminal or a pipe); None at its end."""
    print(prompt, end="", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not sys.stdin.isatty():  # piped: show the answer, as a transcript
        print(line.rstrip("\n"))
    return line.strip() if line else None


def _pending_text(item: moderation.Pending, place: str) -> str:
    p = item.proposal
    lines = [f"{place} {p.code} · {item.campaign_title} ({item.slug}) · "
             f"{moderation.STATUS_LABELS_FR[item.status]} le {_local(item.created_at)}",
             f"  « {p.text('fr')} »"]
    if item.flags:
        lines.append("  attention, contient " + ", ".join(
            moderation.FLAG_LABELS_FR[f] for f in item.flags))
    if item.similar:
        lines.append("  semblables : " + " ; ".join(
            f"{s.proposal.code} {s.proposal.text('fr')} "
            f"({moderation.STATUS_LABELS_FR[s.status]})" for s in item.similar))
    if item.reports:
        lines.append(f"  signalée par {item.reports} participant(s)")
    return "\n".join(lines)


async def _ask_reason() -> str | None:
    reasons = list(moderation.REASON_LABELS_FR.items())
    print("Motif :")
    for n, (_, label) in enumerate(reasons, 1):
        print(f"  {n} {label}")
    while True:
        answer = await _ask(f"Numéro du motif (1 à {len(reasons)}) ? ")
        if answer is None:
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(reasons):
            return reasons[int(answer) - 1][0]
        print(f"« {answer} » n'est pas un motif : un numéro de 1 à {len(reasons)}.")


async def proposals_review(args: argparse.Namespace) -> int:
    """An interactive pass over the proposals waiting for a decision, oldest first."""
    by = args.by or _who()
    decided = 0
    async with _app(args) as app:
        waiting = await moderation.pending(app.db, args.slug)
        if not waiting:
            print("Aucune proposition en attente.")
            return 0
        print(f"{len(waiting)} proposition(s) en attente, de la plus ancienne à la plus "
              "récente.")
        for n, item in enumerate(waiting, 1):
            print()
            print(_pending_text(item, f"[{n}/{len(waiting)}]"))
            code = item.proposal.code
            while True:
                answer = await _ask(REVIEW_PROMPT)
                key = (answer or "q").lower()[:1] if (answer or "q").lower() in (
                    *REVIEW_ANSWERS, *REVIEW_ANSWERS.values()) else None
                if key == "q":
                    print(f"{decided} décision(s) prise(s).")
                    return 0
                if key == "s":
                    break
                if key is None:
                    print(f"« {answer} » : répondez " + ", ".join(
                        f"{k} ({w})" for k, w in REVIEW_ANSWERS.items()) + ".")
                    continue
                reason = None
                if key in ("r", "m"):
                    reason = await _ask_reason()
                    if reason is None:
                        print(f"{decided} décision(s) prise(s).")
                        return 0
                notify = moderation.Notify(app.i18n, app.dispatcher.windows, app.clock())
                if key == "p":
                    done = await moderation.publish(app.db, [code], notify=notify, by=by)
                elif key == "r":
                    done = await moderation.reject(app.db, [code], notify=notify,
                                                   reason=reason, by=by)
                else:
                    assert reason is not None
                    done = await moderation.hide(app.db, [code], reason=reason, by=by,
                                                 now=app.clock())
                if done.refused:
                    print(f"{code} : " + moderation.REFUSALS_FR.get(
                        done.refused[0][1], done.refused[0][1]) + ".")
                    continue
                decided += 1
                said = moderation.STATUS_LABELS_FR[done.status]
                why = f" ({moderation.REASON_LABELS_FR[reason]})" if reason else ""
                told = "" if key == "m" else " ; son auteur sera prévenu"
                print(f"{code} {said}{why}{told}.")
                break
    print(f"Fin de la liste : {decided} décision(s) prise(s).")
    return 0


# --- broadcasts ------------------------------------------------------------------------------


def _audience(args: argparse.Namespace) -> broadcasts.Audience:
    return broadcasts.Audience(
        channel=args.channel, campaign=args.campaign,
        departements=tuple(args.departement or ()), ages=tuple(args.age or ()),
        locales=tuple(args.locale or ()), not_voted=args.not_voted)


def _print_preview(seen: broadcasts.Preview) -> None:
    print(f"recipients: {seen.total}")
    for channel, n in sorted(seen.recipients.items()):
        by_locale = ", ".join(f"{locale} {seen.people(channel, locale)}" for locale in LOCALES
                              if seen.people(channel, locale))
        print(f"  {channel:9} {n} ({by_locale})")
    for locale in seen.missing_locales:
        print(f"  no {locale} text: the French text goes to them")
    for channel, costs in seen.costs.items():
        for locale in LOCALES:
            cost, people = costs[locale], seen.people(channel, locale)
            if people:
                print(f"  {channel} {locale}: {cost.encoding}, {cost.segments} segment(s) × "
                      f"{people} = {cost.segments * people}")
        print(f"{channel.upper()} segments in all: {seen.segments(channel)}")
    if seen.costs:
        print(f"estimated cost: {seen.cost:.2f} € (at {seen.price:g} € a segment, "
              "VOTZ_SMS_PRICE_PER_SEGMENT)")


def _confirmed(args: argparse.Namespace, question: str) -> bool:
    """--yes, or a "y" typed at the terminal; never a guess when nobody is there to ask."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("not sent: add --yes to queue it without being asked")
        return False
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in {"y", "yes", "o", "oui"}:
        return True
    print("not sent")
    return False


async def broadcast(args: argparse.Namespace) -> int:
    if args.text is None:
        raise ConfigError("a broadcast needs --text (the French text); or one of: "
                          "votz broadcast list | status ID | cancel ID")
    texts = {"fr": args.text, "en": args.text_en, "oc": args.text_oc}
    async with _app(args) as app:
        now = app.clock()
        at = broadcasts.parse_send_time(args.at, now) if args.at else None
        composed = await broadcasts.compose(app.db, texts, _audience(args), key=args.key,
                                            now=now, at=at)
        seen = await broadcasts.show(app.db, composed, price=app.settings.sms_price_per_segment)
        print(f"audience: {composed.audience.describe()}")
        _print_preview(seen)
        when = f"at {_local(at)}" if at else "now"
        if not seen.total:
            print("nobody to send it to: nothing queued")
            return 1
        if not _confirmed(args, f"Send it to {seen.total} people {when}?"):
            return 0
        made = await broadcasts.create(app.db, composed, by=args.by or _who(), now=now, at=at,
                                       i18n=app.i18n, windows=app.dispatcher.windows)
    if made.created_at < now:
        print(f"broadcast #{made.id} was created before ({_local(made.created_at)}, key "
              f"{made.key}): nothing more queued")
    elif made.status == "scheduled":
        print(f"broadcast #{made.id} scheduled for {_local(made.send_at)}")
    else:
        print(f"broadcast #{made.id}: {made.total} message(s) queued"
              + (f", {made.held} held until the sending window opens" if made.held else ""))
    print(f"follow it: votz broadcast status {made.id} --follow")
    return 0


def _progress_line(p: broadcasts.Progress) -> str:
    return (f"#{p.id} {p.status}: {p.total} queued, {p.sent + p.delivered} sent "
            f"({p.delivered} delivered), {p.failed} failed, {p.cancelled} cancelled, "
            f"{p.remaining} remaining" + (f" ({p.held} held for the sending window)"
                                           if p.held else ""))


async def broadcast_status(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        p = await broadcasts.progress(app.db, args.id, now=app.clock())
        print(f"#{p.id} by {p.created_by}, {_local(p.created_at)}; "
              f"{'sends' if p.status == 'scheduled' else 'sent'} {_local(p.send_at)}")
        print(f"audience: {p.audience.describe()}")
        print(f"text: {p.summary}")
        if not args.follow or p.status in ("done", "cancelled"):
            print(_progress_line(p))
            return 0
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[detail]}"))
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(f"#{p.id}", total=p.total or None, detail="")
            while True:
                bar.update(task, total=p.total or None, completed=p.left + p.cancelled,
                           detail=f"{p.delivered} delivered · {p.failed} failed · "
                                  f"{p.remaining} remaining"
                                  + (f" ({p.held} held)" if p.held else ""))
                if p.status in ("done", "cancelled"):
                    break
                await asyncio.sleep(args.every)
                p = await broadcasts.progress(app.db, args.id, now=app.clock())
        print(_progress_line(p))
    return 0


async def broadcast_cancel(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        p = await broadcasts.cancel(app.db, args.id, by=args.by or _who(), now=app.clock())
    print(_progress_line(p))
    if p.sending:
        print(f"{p.sending} message(s) were already with the provider and may still arrive")
    return 0


async def broadcast_list(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        found = await broadcasts.list_broadcasts(app.db, limit=args.limit, now=app.clock())
    if not found:
        print("no broadcasts yet")
    for p in found:
        print(f"#{p.id:<4} {p.status:9} {_local(p.send_at)}  {p.created_by:12} "
              f"{p.left}/{p.total} sent  {p.audience.describe()}  «{p.summary}»")
    return 0


# --- results -----------------------------------------------------------------------------------


async def results(args: argparse.Namespace) -> int:
    if args.by is not None and args.format != "csv":  # before opening anything
        raise ConfigError("--by works with --format csv (table and JSON include every "
                          "breakdown)")
    async with _app(args) as app:
        tallied = await campaign_results(app.db, args.slug)
    sys.stdout.write(format_results(tallied, args.format, args.by))
    return 0


# --- privacy, flows, channel audits, db --------------------------------------------------------


async def privacy_export(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        data = await privacy.export(app.db, args.channel, args.address)
    if data is None:
        print(f"error: nobody with the address "
              f"{privacy.stored_address(args.channel, args.address)} on {args.channel}",
              file=sys.stderr)
        return 1
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


async def privacy_erase(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        erased = await privacy.erase(app.db, args.channel, args.address, app.clock())
    if not erased:
        print(f"error: nobody with the address "
              f"{privacy.stored_address(args.channel, args.address)} on {args.channel}",
              file=sys.stderr)
        return 1
    print("erased (counted ballots kept, anonymous)")
    return 0


async def privacy_purge(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        purged = await privacy.purge(app.db, app.clock(), days=args.days,
                                     outbox_days=args.outbox_days)
    print(f"{purged.participants} participant(s) without consent forgotten")
    print(f"{purged.messages} sent message(s) deleted")
    return 0


def flows_check(args: argparse.Namespace) -> int:
    flows, _ = load_engine(I18n(), Path(args.path) if args.path else None)
    print(f"{len(flows.steps)} steps, {len(flows.keywords)} keywords: ok")
    return 0


def flows_diagram(args: argparse.Namespace) -> int:
    flows, _ = load_engine(I18n())
    sys.stdout.write(mermaid(flows))
    return 0


def channel_audit(args: argparse.Namespace) -> int:
    i18n = I18n()
    _, engine = load_engine(i18n)
    settings = _settings(args)
    text, ok = audit.report(audit.channel_audit(
        args.command, i18n, engine, settings.campaigns_path,
        EngineSettings(privacy_url=settings.privacy_url, contact=settings.contact)))
    sys.stdout.write(text)
    return 0 if ok else 1


async def db_upgrade(args: argparse.Namespace) -> int:
    async with _app(args):
        pass
    print("schema up to date")
    return 0


async def doctor(args: argparse.Namespace) -> int:
    from bot.staff.doctor import Level, examine

    settings = _settings(args)
    found = await examine(settings)
    marks = {Level.OK: "ok  ", Level.WARN: "warn", Level.FAIL: "FAIL"}
    for finding in found:
        print(f"{marks[finding.level]}  {finding.what}: {finding.text}")
    blocking = [f for f in found if f.level is Level.FAIL]
    warned = [f for f in found if f.level is Level.WARN]
    if blocking:
        print(f"\n{len(blocking)} problem(s) to fix before going live"
              + (f", {len(warned)} warning(s)" if warned else ""))
        return 1
    print("\nready to go live" + (f" ({len(warned)} warning(s) above)" if warned else ""))
    return 0


async def db_copy(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from bot.store.copy import copy_database

    for url in (args.source, args.target):
        _check_url(normalise_url(url))
    source, target = normalise_url(args.source), normalise_url(args.target)
    with Progress(TextColumn("{task.description:18}"), BarColumn(), MofNCompleteColumn()
                  ) as bar:
        tasks: dict[str, Any] = {}

        def moved(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total or 1)
            bar.update(tasks[table], completed=done if total else 1)

        copied = await copy_database(source, target, replace=args.replace, progress=moved)
    different = [c for c in copied if not c.same]
    for c in copied:
        print(f"{c.table:18} {c.rows:>9} rows  {'same' if c.same else 'DIFFERENT'} "
              f"checksum {c.source_checksum[:16]}")
    if different:
        print(f"error: {len(different)} table(s) differ after the copy", file=sys.stderr)
        return 1
    print(f"copied {sum(c.rows for c in copied)} rows from {masked_url(args.source)} to "
          f"{masked_url(args.target)}: every table has the same rows and checksum")
    return 0


class _SendableChannels(Sequence[str]):
    """The channels Votz sends on (never the console), as argparse `choices`: asked for only
    when a value is checked or the help is shown (the channel modules take time to import)."""

    def _names(self) -> list[str]:
        from bot.scheduling.events import sendable_channels

        return sendable_channels()

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, value: object) -> bool:
        return value in self._names()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="votz", description="Votz participation bot")
    p.add_argument("--database-url", help="overrides VOTZ_DATABASE_URL")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="serve the configured channels (HTTP, dispatcher)").set_defaults(
        run=run)

    c = sub.add_parser("chat", help="talk to Votz on the console (the demo)")
    c.add_argument("--as", dest="address", default="console", help="who you are (an address)")
    c.add_argument("--no-demo", action="store_true", help="do not load the example campaigns")
    c.set_defaults(run=chat)

    camp = sub.add_parser("campaigns", help="campaign definitions").add_subparsers(
        dest="action", required=True)
    x = camp.add_parser("load", help="validate and load a YAML file or folder")
    x.add_argument("path")
    x.set_defaults(run=campaigns_load)
    x = camp.add_parser("check", help="validate without loading")
    x.add_argument("path")
    x.set_defaults(run=campaigns_check)
    camp.add_parser("list", help="campaigns and their current phase").set_defaults(
        run=campaigns_list)
    x = camp.add_parser("status", help="each campaign's phase, next events and what was sent")
    x.add_argument("slug", nargs="?")
    x.set_defaults(run=campaigns_status)
    x = camp.add_parser("phase", help="force a campaign into a phase now (logged)")
    x.add_argument("slug")
    x.add_argument("phase", choices=[p.value for p in Phase])
    x.add_argument("--reason", required=True, help="why (kept in the campaign's log)")
    x.add_argument("--by", help="who decides (default: your user name)")
    x.set_defaults(run=campaigns_phase)
    x = camp.add_parser("link", help="Telegram deep link and QR code (PNG) for posters")
    x.add_argument("slug")
    x.add_argument("--bot", help="the bot's username (default: asked from Telegram)")
    x.add_argument("--output", help="PNG file (default: SLUG-telegram.png)")
    x.set_defaults(run=campaigns_link)

    prop = sub.add_parser("proposals", help="moderation").add_subparsers(
        dest="action", required=True)
    x = prop.add_parser("list")
    x.add_argument("slug")
    x.add_argument("--status", choices=moderation.STATUSES)
    x.set_defaults(run=proposals_list)
    for name, act in (("publish", moderation.publish), ("reject", moderation.reject)):
        x = prop.add_parser(name)
        x.add_argument("ids", nargs="+", help="proposal codes (P12 or 12)")
        if act is moderation.reject:
            x.add_argument("--reason", choices=list(moderation.REASONS),
                           help="what the author is told (default: not retained, no reason)")
        x.add_argument("--by", help="who decides, for the log (default: your user name)")
        x.set_defaults(run=lambda a, act=act: proposals_moderate(a, act))
    x = prop.add_parser("hide", help="take published proposals out of sight, also while "
                                     "their vote is open (logged)")
    x.add_argument("ids", nargs="+", help="proposal codes (P12 or 12)")
    x.add_argument("--reason", required=True, choices=list(moderation.REASONS))
    x.add_argument("--by", help="who decides, for the log (default: your user name)")
    x.set_defaults(run=proposals_hide)
    x = prop.add_parser("review", help="decide on waiting proposals one by one (reads stdin)")
    x.add_argument("slug", nargs="?", help="one campaign's (default: every campaign's)")
    x.add_argument("--by", help="who decides, for the log (default: your user name)")
    x.set_defaults(run=proposals_review)

    rem = sub.add_parser("reminders", help="campaign announcements and reminders").add_subparsers(
        dest="action", required=True)
    x = rem.add_parser("list", help="a campaign's schedule, audiences, SMS segments, sent")
    x.add_argument("slug")
    x.set_defaults(run=reminders_list)

    b = sub.add_parser("broadcast", help="announce to participants: preview, confirm, follow",
                       description="votz broadcast --text … previews a broadcast and asks "
                       "before queueing it; list, status ID and cancel ID follow them.")
    b.add_argument("--text", help="the French text (the default for everyone)")
    b.add_argument("--text-en", help="the English text")
    b.add_argument("--text-oc", help="the Occitan text")
    b.add_argument("--campaign", help="only people eligible for this campaign (slug)")
    b.add_argument("--not-voted", metavar="SLUG",
                   help="only people eligible for this campaign who have not voted in it")
    b.add_argument("--channel", choices=_SendableChannels(), metavar="CHANNEL",
                   help="only this channel: %(choices)s (default: every one)")
    b.add_argument("--departement", action="append", metavar="NN",
                   help="only this département (repeat for several)")
    b.add_argument("--age", action="append", metavar="BRACKET",
                   help="only this age bracket, e.g. 18-25 (repeat for several)")
    b.add_argument("--locale", action="append", choices=LOCALES,
                   help="only people using this language (repeat for several)")
    b.add_argument("--at", help="send at this time, Paris time: 18:30, 12/12 18:30, "
                   "2026-12-12 18:30 (default: now)")
    b.add_argument("--key", help="idempotency key (default: from text, audience, time and day)")
    b.add_argument("--by", help="who sends it (default: your user name)")
    b.add_argument("--yes", "--send", dest="yes", action="store_true",
                   help="queue it without asking")
    b.set_defaults(run=broadcast)
    bs = b.add_subparsers(dest="action")
    x = bs.add_parser("list", help="the latest broadcasts and how far they got")
    x.add_argument("--limit", type=int, default=20)
    x.set_defaults(run=broadcast_list)
    x = bs.add_parser("status", help="one broadcast's progress")
    x.add_argument("id", type=int)
    x.add_argument("--follow", action="store_true", help="a progress bar until it is done")
    x.add_argument("--every", type=float, default=1.0, help=argparse.SUPPRESS)
    x.set_defaults(run=broadcast_status)
    x = bs.add_parser("cancel", help="stop a broadcast: what is still queued is not sent")
    x.add_argument("id", type=int)
    x.add_argument("--by", help="who cancels it (default: your user name)")
    x.set_defaults(run=broadcast_cancel)

    r = sub.add_parser("results", help="tally a campaign")
    r.add_argument("slug")
    r.add_argument("--format", choices=FORMATS, default="table")
    r.add_argument("--by", choices=BREAKDOWNS,
                   help="with --format csv only: ballots by age bracket or département "
                        "instead of the tally (table and JSON always include both)")
    r.set_defaults(run=results)

    priv = sub.add_parser("privacy", help="GDPR requests").add_subparsers(
        dest="action", required=True)
    x = priv.add_parser("export", help="everything held about one person, as JSON")
    x.add_argument("channel")
    x.add_argument("address")
    x.set_defaults(run=privacy_export)
    x = priv.add_parser("erase", help="erase one person (ballots stay, anonymous)")
    x.add_argument("channel")
    x.add_argument("address")
    x.set_defaults(run=privacy_erase)
    x = priv.add_parser("purge", help="forget people who never gave consent")
    x.add_argument("--days", type=int, default=7, help="older than this many days")
    x.add_argument("--outbox-days", type=int, default=30,
                   help="delete sent messages older than this many days")
    x.set_defaults(run=privacy_purge)

    fl = sub.add_parser("flows", help="dialogue flows").add_subparsers(
        dest="action", required=True)
    x = fl.add_parser("check", help="validate the flows")
    x.add_argument("path", nargs="?")
    x.set_defaults(run=flows_check)
    fl.add_parser("diagram", help="print a Mermaid diagram").set_defaults(run=flows_diagram)

    for name in measured():  # channels where a message costs per unit (`votz sms audit`)
        s = sub.add_parser(name, help=f"{name.upper()} tools").add_subparsers(
            dest="action", required=True)
        s.add_parser("audit", help=f"encoding and segments of every {name.upper()} text"
                     ).set_defaults(run=channel_audit)

    sub.add_parser("doctor", help="check the configuration before going live (exit 1: "
                   "something blocks)").set_defaults(run=doctor)

    d = sub.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    d.add_parser("upgrade", help="apply migrations").set_defaults(run=db_upgrade)
    x = d.add_parser("copy", help="copy every table to another database (SQLite ⇄ PostgreSQL) "
                     "and verify row counts and checksums")
    x.add_argument("source", help="database URL to copy from (e.g. sqlite:///votz.db)")
    x.add_argument("target", help="database URL to copy to (e.g. postgresql://votz@db/votz)")
    x.add_argument("--replace", action="store_true",
                   help="delete what the target holds first (default: refuse a non-empty one)")
    x.set_defaults(run=db_copy)
    return p


def _log_format() -> str:
    try:
        return Settings.from_env().log_format
    except VotzError:
        return "auto"  # the command itself reports the setting that is wrong


def main(argv: Sequence[str] | None = None) -> int:
    logs.setup(_log_format())
    args = parser().parse_args(argv)
    try:
        outcome: Any = args.run(args)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        sys.stdout.flush()  # here, where a reader that left is caught (below)
        return int(outcome)
    except (VotzError, CannotOpenDatabase) as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `votz proposals list | head`: the reader left; say nothing
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
