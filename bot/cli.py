"""The `votz` command: chat (the console demo), campaigns, proposals, results, flows, db."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import App, load_engine, read_campaigns
from bot.channels.base import Inbound
from bot.channels.console import CHANNEL, ConsoleSender
from bot.config import Settings
from bot.conversation.flows import mermaid
from bot.domain.campaigns import PARIS
from bot.domain.results import Results, tally
from bot.errors import ConfigError, VotzError
from bot.i18n import I18n
from bot.store.repo import (
    ProposalStatus,
    campaign_proposals,
    counted_ballots,
    erase_address,
    get_campaign,
    load_campaigns,
    moderate,
    participant_export,
    purge_outbox,
    purge_unconsented,
)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "database_url", None):
        from dataclasses import replace

        settings = replace(settings, database_url=args.database_url)
    return settings


# --- chat ------------------------------------------------------------------------------------


async def chat(args: argparse.Namespace) -> int:
    settings = _settings(args)
    sender = ConsoleSender(sys.stdout)
    app = await App.open(settings, senders={CHANNEL: sender})
    try:
        if not args.no_demo:
            await app.load_campaigns(settings.campaigns_path)
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
    finally:
        await app.close()
    return 0


# --- run: the server with every configured channel ----------------------------------------


async def run(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.channels.sms import CHANNEL as SMS
    from bot.channels.sms import TwilioSender
    from bot.channels.telegram import CHANNEL as TELEGRAM
    from bot.channels.telegram import TelegramReceiver, TelegramSender, make_bot
    from bot.web import create_web_app

    settings = _settings(args)
    log = logging.getLogger("votz.run")
    logging.getLogger("votz").setLevel(logging.INFO)
    senders: dict[str, Any] = {}
    if settings.twilio_account_sid or settings.twilio_auth_token:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ConfigError("set both VOTZ_TWILIO_ACCOUNT_SID and VOTZ_TWILIO_AUTH_TOKEN")
        if not (settings.twilio_from or settings.twilio_messaging_service_sid):
            raise ConfigError("set VOTZ_TWILIO_FROM or VOTZ_TWILIO_MESSAGING_SERVICE_SID")
        senders[SMS] = TwilioSender(settings)
    bot = None
    if settings.telegram_token:
        if settings.telegram_mode == "webhook" and not settings.public_url:
            raise ConfigError("VOTZ_TELEGRAM_MODE=webhook needs VOTZ_PUBLIC_URL")
        bot = make_bot(settings)
        senders[TELEGRAM] = TelegramSender(
            bot, rate=settings.telegram_messages_per_second,
            per_chat_interval=settings.telegram_chat_interval)
    app = await App.open(settings, senders=senders)
    receiver = None
    if bot is not None:
        receiver = TelegramReceiver(bot, settings, app.pipeline.handle, app.i18n, app.clock)
    web = create_web_app(app, telegram=receiver)
    server = uvicorn.Server(uvicorn.Config(
        web, host=settings.http_host, port=settings.http_port, log_level="warning",
        access_log=False, lifespan="off"))
    stop = asyncio.Event()

    async def refresh_catalog() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=30)
            await app.refresh_catalog()

    tasks = [asyncio.create_task(app.dispatcher.run(stop)),
             asyncio.create_task(refresh_catalog())]
    base = f"http://{settings.http_host}:{settings.http_port}"
    if SMS in senders:
        sender = settings.twilio_messaging_service_sid or settings.twilio_from
        log.info("channel.sms.started from=%s inbound=%s/sms/inbound", sender,
                 settings.public_url or base)
    if receiver is not None:
        await receiver.start()
        me = await receiver.bot.get_me()
        log.info("channel.telegram.started bot=@%s mode=%s", me.username,
                 settings.telegram_mode)
    if not senders:
        log.warning("run.no_channel: set VOTZ_TWILIO_* (SMS) or VOTZ_TELEGRAM_TOKEN")
    log.info("http.started url=%s", base)
    try:
        await server.serve()
    finally:
        stop.set()
        if receiver is not None:
            await receiver.stop()
        app.dispatcher.wake()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sender_ in senders.values():
            await sender_.close()
        await app.close()
    return 0


# --- campaigns and proposals -----------------------------------------------------------------


async def campaigns_load(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        for report in await app.load_campaigns(Path(args.path)):
            verb = "created" if report.created else "updated"
            print(f"{report.slug}: {verb}, {report.seeded} proposal(s) added")
    finally:
        await app.close()
    return 0


async def campaigns_list(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        now = app.clock()
        for campaign in await app.db.run(load_campaigns):
            phase = campaign.phase_at(now)
            print(f"{campaign.slug:32} {campaign.kind.value:22} {phase.value:12} "
                  f"{campaign.text('title', 'fr')}")
    finally:
        await app.close()
    return 0


async def campaigns_link(args: argparse.Namespace) -> int:
    """The Telegram deep link of a campaign, and a QR code PNG for posters."""
    import qrcode
    from qrcode.image.pure import PyPNGImage

    settings = _settings(args)
    username = args.bot
    if not username:
        if not settings.telegram_token:
            raise ConfigError("give --bot USERNAME or set VOTZ_TELEGRAM_TOKEN")
        from bot.channels.telegram import make_bot

        bot = make_bot(settings)
        async with bot:
            username = (await bot.get_me()).username
    app = await App.open(settings)
    try:
        await app.db.run(lambda conn: get_campaign(conn, args.slug))  # it must exist
    finally:
        await app.close()
    link = f"https://t.me/{username.lstrip('@')}?start={args.slug}"
    output = Path(args.output or f"{args.slug}-telegram.png")
    image = qrcode.make(link, image_factory=PyPNGImage, box_size=12, border=4)
    with output.open("wb") as fh:
        image.save(fh)
    print(link)
    print(f"QR code: {output}")
    return 0


def campaigns_check(args: argparse.Namespace) -> int:
    today = datetime.now(PARIS).date()
    for campaign in read_campaigns(Path(args.path), today=today):
        print(f"{campaign.slug}: ok ({len(campaign.seed_proposals)} proposals)")
    return 0


async def proposals_list(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        def query(conn):  # type: ignore[no-untyped-def]
            campaign = get_campaign(conn, args.slug)
            return campaign_proposals(conn, campaign.id, status=args.status)

        for p in await app.db.run(query):
            state = "published" if p.published else "-"
            cost = f" {p.cost} €" if p.cost else ""
            print(f"{p.code:6} {state:10}{cost} {p.text('fr')}")
    finally:
        await app.close()
    return 0


async def proposals_moderate(args: argparse.Namespace, status: str) -> int:
    app = await App.open(_settings(args))
    try:
        try:
            ids = [int(str(i).strip().lstrip("Pp")) for i in args.ids]
        except ValueError:
            raise ConfigError(f"proposal codes look like P12: {' '.join(args.ids)}") from None
        changed = await app.db.run(lambda conn: moderate(conn, ids, status))
        print(f"{changed} proposal(s) {status}")
    finally:
        await app.close()
    return 0 if changed == len(ids) else 1


# --- broadcasts ------------------------------------------------------------------------------


async def broadcast(args: argparse.Namespace) -> int:
    import hashlib

    from bot.delivery.broadcasts import Audience, preview, queue_broadcast

    texts = {"fr": args.text, "en": args.text_en or "", "oc": args.text_oc or ""}
    app = await App.open(_settings(args))
    try:
        campaign = None
        if args.campaign:
            campaign = await app.db.run(lambda conn: get_campaign(conn, args.campaign))
        audience = Audience(channel=args.channel, campaign=campaign)
        seen = await app.db.run(lambda conn: preview(conn, audience, texts))
        for channel, n in sorted(seen.recipients.items()):
            print(f"{channel:9} {n} recipient(s)")
        for locale in ("fr", "en", "oc"):
            people = seen.sms_recipients_by_locale.get(locale, 0)
            print(f"sms {locale}:   {seen.sms_encoding[locale]}, {seen.sms_segments[locale]} "
                  f"segment(s) × {people} recipient(s) = {seen.sms_segments[locale] * people}")
        print(f"SMS segments in all: {seen.total_sms_segments}")
        if not args.send:
            print("preview only: add --send to queue it")
            return 0
        key = args.key or hashlib.sha256(
            json.dumps([texts, args.channel, args.campaign]).encode()).hexdigest()[:16]
        now = app.clock()
        queued = await app.db.run(lambda conn: queue_broadcast(conn, key, audience, texts, now))
        print(f"queued {queued} message(s) (broadcast key {key}; sending it again queues "
              "nothing more)")
    finally:
        await app.close()
    return 0


# --- results -----------------------------------------------------------------------------------


def format_results(results: Results, fmt: str, by: str | None = None) -> str:
    lines = results.lines
    if fmt == "json":
        return json.dumps({
            "campaign": results.campaign.slug,
            "ballots": results.ballots,
            "envelope": results.campaign.envelope,
            "envelope_used": results.envelope_used,
            "proposals": [{"code": line.proposal.code, "title": line.proposal.text("fr"),
                           "cost": line.proposal.cost, "votes": line.votes,
                           "winner": line.winner} for line in lines],
            "by_age_bracket": results.by_age,
            "by_departement": results.by_departement,
            "suppressed_below": 5,
        }, ensure_ascii=False, indent=2)
    if fmt == "csv" and by is not None:
        # One table per file, as open data wants it; "<5" where a cell is hidden.
        out = io.StringIO()
        writer = csv.writer(out)
        column, counts = (("age_bracket", results.by_age) if by == "age"
                          else ("departement", results.by_departement))
        writer.writerow([column, "ballots"])
        for key, count in counts.items():
            writer.writerow([key, "<5" if count is None else count])
        return out.getvalue()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["code", "title", "cost", "votes", "winner"])
        for line in lines:
            writer.writerow([line.proposal.code, line.proposal.text("fr"),
                             line.proposal.cost or "", line.votes, int(line.winner)])
        return out.getvalue()
    out_lines = [f"{results.campaign.text('title', 'fr')} — {results.ballots} ballot(s)"]
    if results.campaign.envelope is not None:
        out_lines.append(f"envelope {results.campaign.envelope} €, "
                         f"winners use {results.envelope_used} €")
    out_lines.append(f"{'code':6} {'votes':>6} {'cost':>9}  win  title")
    for line in lines:
        cost = str(line.proposal.cost or "")
        mark = " *  " if line.winner else "    "
        out_lines.append(f"{line.proposal.code:6} {line.votes:>6} {cost:>9} {mark} "
                         f"{line.proposal.text('fr')}")

    def cells(name: str, data: dict[str, int | None]) -> str:
        shown = ", ".join(f"{k}: {'<5' if v is None else v}" for k, v in data.items())
        return f"{name}: {shown or '-'}"

    out_lines.append(cells("by age bracket", dict(results.by_age)))
    out_lines.append(cells("by département", dict(results.by_departement)))
    return "\n".join(out_lines) + "\n"


async def results(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        def query(conn):  # type: ignore[no-untyped-def]
            campaign = get_campaign(conn, args.slug)
            return tally(campaign, campaign_proposals(conn, campaign.id),
                         counted_ballots(conn, campaign.id))

        sys.stdout.write(format_results(await app.db.run(query), args.format, args.by))
    finally:
        await app.close()
    return 0


# --- privacy, flows, db ------------------------------------------------------------------------


async def privacy_export(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        data = await app.db.run(lambda conn: participant_export(conn, args.channel,
                                                                args.address))
    finally:
        await app.close()
    if data is None:
        print("no such participant", file=sys.stderr)
        return 1
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


async def privacy_erase(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        now = app.clock()
        erased = await app.db.run(
            lambda conn: erase_address(conn, args.channel, args.address, now))
    finally:
        await app.close()
    print("erased (counted ballots kept, anonymous)" if erased else "no such participant")
    return 0 if erased else 1


async def privacy_purge(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    try:
        now = app.clock()
        before = now - timedelta(days=args.days)
        sent_before = now - timedelta(days=args.outbox_days)
        count = await app.db.run(lambda conn: purge_unconsented(conn, before, now))
        messages = await app.db.run(lambda conn: purge_outbox(conn, sent_before))
    finally:
        await app.close()
    print(f"{count} participant(s) without consent forgotten")
    print(f"{messages} sent message(s) deleted")
    return 0


def flows_check(args: argparse.Namespace) -> int:
    flows, _ = load_engine(I18n(), Path(args.path) if args.path else None)
    print(f"{len(flows.steps)} steps, {len(flows.keywords)} keywords: ok")
    return 0


def sms_audit(args: argparse.Namespace) -> int:
    from bot.channels.sms_audit import audit, report

    i18n = I18n()
    flows, _ = load_engine(i18n)
    text, ok = report(audit(i18n, flows))
    sys.stdout.write(text)
    return 0 if ok else 1


def flows_diagram(args: argparse.Namespace) -> int:
    flows, _ = load_engine(I18n())
    sys.stdout.write(mermaid(flows))
    return 0


async def db_upgrade(args: argparse.Namespace) -> int:
    app = await App.open(_settings(args))
    await app.close()
    print("schema up to date")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="votz", description="Votz participation bot")
    p.add_argument("--database-url", help="overrides VOTZ_DATABASE_URL")
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
    x = camp.add_parser("link", help="Telegram deep link and QR code (PNG) for posters")
    x.add_argument("slug")
    x.add_argument("--bot", help="the bot's username (default: asked from Telegram)")
    x.add_argument("--output", help="PNG file (default: SLUG-telegram.png)")
    x.set_defaults(run=campaigns_link)

    prop = sub.add_parser("proposals", help="moderation").add_subparsers(
        dest="action", required=True)
    x = prop.add_parser("list")
    x.add_argument("slug")
    x.add_argument("--status", choices=["submitted", "published", "rejected"])
    x.set_defaults(run=proposals_list)
    for name, status in (("publish", ProposalStatus.PUBLISHED),
                         ("reject", ProposalStatus.REJECTED)):
        x = prop.add_parser(name)
        x.add_argument("ids", nargs="+", help="proposal codes (P12 or 12)")
        x.set_defaults(run=lambda a, s=status: proposals_moderate(a, s))

    b = sub.add_parser("broadcast", help="announce to participants (preview, then --send)")
    b.add_argument("--text", required=True, help="the French text (the default for everyone)")
    b.add_argument("--text-en", help="the English text")
    b.add_argument("--text-oc", help="the Occitan text")
    b.add_argument("--campaign", help="only people eligible for this campaign (slug)")
    b.add_argument("--channel", help="only this channel (sms, console, ...)")
    b.add_argument("--key", help="idempotency key (default: derived from text and audience)")
    b.add_argument("--send", action="store_true", help="queue it (default: preview only)")
    b.set_defaults(run=broadcast)

    r = sub.add_parser("results", help="tally a campaign")
    r.add_argument("slug")
    r.add_argument("--format", choices=["table", "csv", "json"], default="table")
    r.add_argument("--by", choices=["age", "departement"],
                   help="CSV of ballots by age bracket or département instead of the tally "
                        "(table and JSON always include both)")
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

    s = sub.add_parser("sms", help="SMS tools").add_subparsers(dest="action", required=True)
    s.add_parser("audit", help="encoding and segments of every SMS text").set_defaults(
        run=sms_audit)

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
    except VotzError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
