"""`votz doctor`: is this configuration ready to go live? Each check says what it found and,
when something is wrong, what to do; a FAIL blocks going live (exit 1), a WARN does not.

Checked: the settings themselves; the database (reachable, migrated, campaigns loaded and
valid); the translation catalogs (compiled, every message in every language); the flows;
the public URL; each configured channel with its provider (bot/channels/checks.py: the
Telegram token and webhook, the Twilio credentials and the number's incoming webhook); the
public URL reaching Votz (when it runs); the staff accounts.
"""

from __future__ import annotations

import asyncio
import gettext
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from babel.messages.pofile import read_po
from sqlalchemy import select

from bot.channels import registry
from bot.channels.checks import CHECKS, Finding, Level, calls_votz
from bot.config import Settings
from bot.errors import VotzError
from bot.i18n import DOMAIN, LOCALES
from bot.resources import resource_dir
from bot.store.db import Database
from bot.store.tables import campaigns

__all__ = ["Finding", "Level", "examine"]


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


async def _database(settings: Settings) -> list[Finding]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from bot.store.migrate import alembic_config
    from bot.store.repo import campaign_from_json

    db = Database(settings.database_url, busy_seconds=settings.sqlite_busy_seconds)
    where = _masked(settings.database_url)
    try:
        try:
            revision = await asyncio.wait_for(
                db.run(lambda conn: MigrationContext.configure(conn).get_current_revision()),
                timeout=10)
        except Exception as exc:  # any driver's "cannot connect"
            first = str(exc).partition("\n")[0] or type(exc).__name__
            return [Finding(Level.FAIL, "database", f"cannot open {where}: {first} (check "
                            "VOTZ_DATABASE_URL, the server, the password)")]
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        if revision != head:
            return [Finding(Level.OK, "database", f"{where} answers"),
                    Finding(Level.FAIL, "database schema", (
                        f"at revision {revision or 'none'}, not {head}: run `votz db upgrade` "
                        "(votz run also does it on start)"))]
        rows = await db.run(lambda conn: conn.execute(
            select(campaigns.c.id, campaigns.c.slug, campaigns.c.definition)).all())
    finally:
        await db.close()
    found = [Finding(Level.OK, "database", f"{where}, schema up to date")]
    broken = []
    for row in rows:
        try:
            campaign_from_json(row.definition, row.id)
        except (VotzError, KeyError, ValueError) as exc:
            broken.append(f"{row.slug} ({exc})")
    if broken:
        found.append(Finding(Level.FAIL, "campaigns", "stored campaigns Votz cannot read: "
                             + "; ".join(broken) + ": load their files again"))
    elif not rows:
        found.append(Finding(Level.WARN, "campaigns", "no campaign loaded: `votz campaigns "
                             "load FOLDER` (people can only read the help until then)"))
    else:
        found.append(Finding(Level.OK, "campaigns", f"{len(rows)} loaded: "
                             + ", ".join(sorted(r.slug for r in rows))))
    return found


def _catalogs(folder: Path | None = None) -> list[Finding]:
    folder = folder or resource_dir("locales")
    template = folder / f"{DOMAIN}.pot"
    keys: set[str] = set()
    if template.is_file():
        with template.open("rb") as fh:
            # A plural message's id is (singular, plural): gettext looks up the singular.
            keys = {m.id[0] if isinstance(m.id, tuple) else str(m.id)
                    for m in read_po(fh) if m.id}
    problems = []
    for locale in LOCALES:
        mo = folder / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
        if not mo.is_file():
            problems.append(f"{locale}: {mo} missing (compile with `make messages`)")
            continue
        with mo.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)
        missing = sorted(k for k in keys if catalog.gettext(k) == k)
        if missing:
            problems.append(f"{locale}: {len(missing)} untranslated ({', '.join(missing[:3])}"
                            + (", …" if len(missing) > 3 else "") + ")")
    if problems:
        return [Finding(Level.FAIL, "translations", "; ".join(problems))]
    return [Finding(Level.OK, "translations",
                    f"{len(keys)} messages in {', '.join(LOCALES)}, all compiled")]


def _flows() -> list[Finding]:
    from bot.app import load_engine
    from bot.i18n import I18n

    try:
        flows, _ = load_engine(I18n())
    except VotzError as exc:
        return [Finding(Level.FAIL, "flows", str(exc))]
    return [Finding(Level.OK, "flows", f"{len(flows.steps)} dialogue steps valid")]


def _campaign_files(settings: Settings) -> list[Finding]:
    if not settings.campaigns_dir:
        return []
    from datetime import UTC, datetime

    from bot.campaign_files import read_campaigns
    from bot.domain.campaigns import PARIS

    now = datetime.now(UTC)
    try:
        found = read_campaigns(Path(settings.campaigns_dir), today=now.astimezone(PARIS).date(),
                               now=now)
    except VotzError as exc:
        return [Finding(Level.FAIL, "campaign files", f"{exc} (`votz campaigns check "
                        f"{settings.campaigns_dir}` lists every error)")]
    return [Finding(Level.OK, "campaign files", f"{len(found)} valid in {settings.campaigns_dir}")]


def _public_url(settings: Settings, channels: list[str]) -> list[Finding]:
    needed = [name for name in channels if calls_votz(name, settings)]
    if not settings.public_url:
        if needed:
            return [Finding(Level.FAIL, "public URL", (
                "VOTZ_PUBLIC_URL is not set: the providers cannot call Votz "
                f"({', '.join(needed)}); set it to the HTTPS address of this server"))]
        return [Finding(Level.OK, "public URL", "not needed (Telegram polls)")]
    parts = urlsplit(settings.public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [Finding(Level.FAIL, "public URL",
                        f"{settings.public_url!r} is not a URL like https://votz.example.org")]
    if parts.path.strip("/") or settings.public_url.endswith("/"):
        return [Finding(Level.FAIL, "public URL", (
            f"{settings.public_url!r} must be the base address only (no path, no trailing "
            "slash): Twilio signs the exact URL it calls"))]
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not local:
        return [Finding(Level.FAIL, "public URL", (
            f"{settings.public_url} is not HTTPS: Telegram only calls HTTPS webhooks and "
            "Twilio's signatures must not travel in clear"))]
    return [Finding(Level.OK, "public URL", settings.public_url)]


async def _reachable(settings: Settings) -> list[Finding]:
    if not settings.public_url:
        return []
    url = settings.public_url.rstrip("/") + "/healthz"
    try:
        async with httpx.AsyncClient(timeout=5, trust_env=True) as client:
            answer = await client.get(url)
    except httpx.HTTPError as exc:
        return [Finding(Level.WARN, "reachable", (
            f"{url} does not answer ({type(exc).__name__}): fine before the first `votz run`; "
            "once it runs, check the reverse proxy forwards /sms/, /telegram/ and /healthz"))]
    if answer.status_code == 200:
        return [Finding(Level.OK, "reachable", f"{url} answers: a Votz is running there")]
    return [Finding(Level.WARN, "reachable", f"{url} answers {answer.status_code}: "
                    + answer.text[:200])]


def _staff(settings: Settings) -> list[Finding]:
    raw = settings.staff_telegram_ids.replace(",", " ").split()
    wrong = [value for value in raw if not value.lstrip("-").isdigit()]
    if wrong:
        return [Finding(Level.FAIL, "staff", (
            f"VOTZ_STAFF_TELEGRAM_IDS has {', '.join(map(repr, wrong))}: Telegram user ids are "
            "numbers (each staff member asks @userinfobot for theirs)"))]
    if not settings.telegram_token:  # the staff chat rides on the Telegram bot
        return [Finding(Level.WARN, "staff", "no Telegram: staff work from the `votz` "
                        "command only (moderation, broadcasts)")]
    if not raw:
        return [Finding(Level.WARN, "staff", (
            "VOTZ_STAFF_TELEGRAM_IDS is empty: nobody gets the staff chat (new proposals wait "
            "for `votz proposals review`)"))]
    return [Finding(Level.OK, "staff", f"{len(raw)} staff account(s) get the staff chat")]


async def examine(settings: Settings) -> list[Finding]:
    """Every check, in the order an operator fixes things."""
    try:
        channels = [c.name for c in registry.configured(settings)]
    except VotzError as exc:
        return [Finding(Level.FAIL, "settings", str(exc))]
    found: list[Finding] = []
    if not channels:
        found.append(Finding(Level.FAIL, "channels", (
            "neither Telegram (VOTZ_TELEGRAM_TOKEN) nor SMS (VOTZ_TWILIO_ACCOUNT_SID, "
            "VOTZ_TWILIO_AUTH_TOKEN, VOTZ_TWILIO_FROM) is configured: nobody can reach Votz")))
    else:
        found.append(Finding(Level.OK, "channels", ", ".join(channels)))
    found += await _database(settings)
    found += _catalogs()
    found += _flows()
    found += _campaign_files(settings)
    found += _public_url(settings, channels)
    for name in channels:
        check = CHECKS.get(name)
        if check is not None:
            found += await check(settings)
    found += await _reachable(settings)
    found += _staff(settings)
    return found
