"""The `votz` command: parses arguments, calls the app and `bot.staff`, prints.

Every command that needs the database opens the app with `async with _app(args) as app:`;
what staff do lives in `bot.staff`, so a staff chat can do the same without this module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
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

from bot.app import App, load_engine, read_campaigns
from bot.channels.base import Inbound, Sender
from bot.channels.console import CHANNEL, ConsoleSender
from bot.config import Settings
from bot.conversation.flows import mermaid
from bot.domain.campaigns import Phase
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
    today = datetime.now(PARIS).date()
    i18n = I18n()
    ok = True
    for campaign in read_campaigns(Path(args.path), today=today):
        kind = "declared" if campaign.declared_events is not None else "default"
        print(f"{campaign.slug}: ok ({len(campaign.seed_proposals)} proposals, "
              f"{len(campaign.events)} {kind} reminders)")
        for problem in campaigns.reminder_problems(campaign, i18n):
            ok = False
            print(f"  {problem}")
    return 0 if ok else 1


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
                         reason=getattr(args, "reason", None))
    print(f"{done.changed} proposal(s) {done.status} (their authors will be told)")
    for code, why in done.refused:
        print(f"error: {code}: {why}", file=sys.stderr)
    return 0 if done.complete else 1


# --- broadcasts ------------------------------------------------------------------------------


async def broadcast(args: argparse.Namespace) -> int:
    texts = {"fr": args.text, "en": args.text_en, "oc": args.text_oc}
    async with _app(args) as app:
        composed = await broadcasts.compose(app.db, texts, campaign=args.campaign,
                                            channel=args.channel, key=args.key)
        seen = await broadcasts.show(app.db, composed)
        for channel, n in sorted(seen.recipients.items()):
            print(f"{channel:9} {n} recipient(s)")
        for channel, costs in seen.costs.items():
            for locale in LOCALES:
                cost, people = costs[locale], seen.people(channel, locale)
                print(f"{channel} {locale}:   {cost.encoding}, {cost.segments} segment(s) × "
                      f"{people} recipient(s) = {cost.segments * people}")
            print(f"{channel.upper()} segments in all: {seen.segments(channel)}")
        if not args.send:
            print("preview only: add --send to queue it")
            return 0
        queued = await broadcasts.send(app.db, composed, app.clock(), i18n=app.i18n,
                                       windows=app.dispatcher.windows)
    print(f"queued {queued} message(s) (broadcast key {composed.key}; sending it again queues "
          "nothing more)")
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
    flows, _ = load_engine(i18n)
    text, ok = audit.report(audit.audit(i18n, flows, measured()[args.command]))
    sys.stdout.write(text)
    return 0 if ok else 1


async def db_upgrade(args: argparse.Namespace) -> int:
    async with _app(args):
        pass
    print("schema up to date")
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
        x.set_defaults(run=lambda a, act=act: proposals_moderate(a, act))

    rem = sub.add_parser("reminders", help="campaign announcements and reminders").add_subparsers(
        dest="action", required=True)
    x = rem.add_parser("list", help="a campaign's schedule, audiences, SMS segments, sent")
    x.add_argument("slug")
    x.set_defaults(run=reminders_list)

    b = sub.add_parser("broadcast", help="announce to participants (preview, then --send)")
    b.add_argument("--text", required=True, help="the French text (the default for everyone)")
    b.add_argument("--text-en", help="the English text")
    b.add_argument("--text-oc", help="the Occitan text")
    b.add_argument("--campaign", help="only people eligible for this campaign (slug)")
    b.add_argument("--channel", choices=_SendableChannels(), metavar="CHANNEL",
                   help="only this channel: %(choices)s (default: every one)")
    b.add_argument("--key", help="idempotency key (default: derived from text and audience)")
    b.add_argument("--send", action="store_true", help="queue it (default: preview only)")
    b.set_defaults(run=broadcast)

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

    d = sub.add_parser("db", help="database").add_subparsers(dest="action", required=True)
    d.add_parser("upgrade", help="apply migrations").set_defaults(run=db_upgrade)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    try:
        outcome: Any = args.run(args)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        return int(outcome)
    except (VotzError, CannotOpenDatabase) as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
