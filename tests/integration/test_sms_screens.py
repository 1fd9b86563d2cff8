"""Every SMS screen within 2 segments: the audit of the real screens (every step of every
flow with the shipped campaigns, each list page, fr/en/oc), and a person's SMS journey
through Twilio (the fake API) with lists cut into pages by segment budget."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import load_engine
from bot.channels.gsm7 import cost
from bot.channels.sms import measure, render
from bot.conversation.engine import Engine, EngineSettings, State, Turn
from bot.i18n import I18n
from bot.staff.audit import (
    LONG_IDEA,
    MAX_SEGMENTS,
    PERSONAS,
    AuditLine,
    Walk,
    _context,
    _reply,
    _walk,
    channel_audit,
    report,
    screens,
    shipped_catalog,
    walks,
)
from bot.store.tables import proposals
from bot.testing.fake_twilio import FakeTwilio
from tests.conftest import FixedClock, code_of
from tests.integration.test_sms import Sms, sms_server
from tests.integration.test_telegram import Telegram, onboard, tg  # noqa: F401

SHIPPED = Path(__file__).resolve().parents[2] / "campaigns"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
SETTINGS = EngineSettings(privacy_url="https://www.laregioncitoyenne.fr/votz/confidentialite",
                          contact="participation@laregion.fr")


@pytest.fixture(scope="module")
def sms_audit() -> tuple[Engine, list[AuditLine]]:
    """`votz sms audit` on the shipped campaigns, run once for the tests that read it."""
    i18n = I18n()
    _, engine = load_engine(i18n)
    return engine, channel_audit("sms", i18n, engine, SHIPPED, SETTINGS, now=NOW)


def test_the_audit_renders_every_real_screen_within_two_segments(
        sms_audit: tuple[Engine, list[AuditLine]]) -> None:
    engine, lines = sms_audit
    text, ok = report(lines)
    assert ok, text
    shown = [line for line in lines if line.screen]
    assert {line.locale for line in shown} == {"fr", "en", "oc"}
    assert max(line.segments for line in shown) <= MAX_SEGMENTS
    whats = {line.what for line in shown if line.locale == "fr"}
    # Every step of every flow, for each shipped campaign, and each page of a long list.
    # The help (AIDE) and the details (INFO, "3 ?") at each screen too.
    assert {"vote.choose vie-etudiante-demo", "vote.choose vie-etudiante-demo p2",
            "browse.detail consultation-jeunes", "vote.confirm budget-rural-demo",
            "onboarding.consent", "main.menu", "browse.list",
            "vote.choose vie-etudiante-demo 3 ?", "browse.detail consultation-jeunes INFO",
            "main.menu AIDE"} <= whats  # (an identical screen is measured once)
    steps = {what.split()[0] for what in whats}
    assert steps == {ref for ref, step in engine.flows.steps.items() if step.say}


async def test_help_on_a_full_screen_comes_alone_and_the_numbers_hold(sms: Sms) -> None:
    phone = Phone(sms)
    menu = await phone.onboard()
    assert (await phone.text("AIDE")).endswith("6 Aide")  # help and the menu fit: both
    listing = await phone.text(number_of(menu, "Voter"))
    choose = await phone.text(number_of(listing, "Démo - Vie étudiante"))
    helped = await phone.text("AIDE")  # with the vote's first page it would take 3
    assert "Contact : participation@laregion.fr" in helped
    assert "Jusqu'à 3 projets" not in helped and not numbered(helped)
    confirm = await phone.text("1")
    assert confirm.startswith("Votre vote :\nP") and numbered(choose)[1] in confirm


def test_the_audit_fails_on_a_real_screen_over_two_segments() -> None:
    i18n = I18n()
    _, engine = load_engine(i18n)
    # Unpaged, the 12 projects of the student-life vote take one long screen.
    lines = screens(i18n, engine, shipped_catalog(SHIPPED, NOW), measure, settings=SETTINGS,
                    now=NOW, page_segments=None)
    text, ok = report(lines)
    assert not ok
    assert re.search(r"vote\.choose vie-etudiante-demo .*<- over 2 segments", text)


@pytest.fixture
async def sms(tmp_path: Path, clock: FixedClock,
              fake_twilio: tuple[FakeTwilio, str]) -> AsyncIterator[Sms]:
    """SMS through the fake Twilio API, with the shipped campaigns."""
    async with sms_server(tmp_path, clock, fake_twilio, SHIPPED,
                          "participation@laregion.fr") as found:
        yield found


class Phone:
    """One person texting; every reply is checked to fit 2 segments."""

    def __init__(self, sms: Sms) -> None:
        self.sms = sms
        self.segments: list[int] = []

    async def text(self, body: str) -> str:
        reply = await self.sms.text(body)
        assert reply, body
        self.segments.append(cost(reply).segments)
        assert self.segments[-1] <= 2, (body, reply)
        return reply

    async def onboard(self) -> str:
        """French, consent, 18-25, Toulouse: the menu."""
        for body in ("Bonjour", "1", "oui", "18-25"):
            await self.text(body)
        return await self.text("31000")


def numbered(reply: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d+) (.+)$", reply, re.M)}


def number_of(reply: str, label: str) -> str:
    found = [n for n, text in numbered(reply).items() if text.startswith(label)]
    assert len(found) == 1, (label, reply)
    return str(found[0])


async def test_a_long_vote_list_comes_in_pages_numbered_on(sms: Sms) -> None:
    phone = Phone(sms)
    menu = await phone.onboard()
    listing = await phone.text(number_of(menu, "Voter"))
    first = await phone.text(number_of(listing, "Démo - Vie étudiante"))
    assert "SUITE : voir la suite (1/" in first
    pages = [first]
    while "revenir au début" not in pages[-1]:
        pages.append(await phone.text("SUITE"))
        assert pages[-1].startswith("Suite de la liste :")
        assert len(pages) <= 6
    last = pages[-1]
    assert "voir la suite" not in last
    assert f"({len(pages)}/{len(pages)})" in last
    numbers = [n for page in pages for n in numbered(page)]
    assert numbers == list(range(1, 13))  # 1…12 across the pages, in order
    everything = {n: text for page in pages for n, text in numbered(page).items()}
    assert everything[3] == "Logement d'urgence à Toulouse"  # the short title
    assert all(len(text) <= 32 for text in everything.values())

    details = await phone.text("3 ?")
    assert details == ("3 Logement d'urgence à Toulouse : 6 chambres meublées pour "
                       "étudiants sans logement, jusqu'à 3 mois (90 000 €)")
    confirm = await phone.text("1 3")  # the numbers still hold after the details
    grocery = code_of(sms.app, "Épicerie solidaire à Toulouse : produits du quotidien à "
                               "petits prix sur le campus")
    housing = code_of(sms.app, "Logement d'urgence à Toulouse : 6 chambres meublées pour "
                               "étudiants sans logement, jusqu'à 3 mois")
    assert f"{grocery} Épicerie solidaire à Toulouse\n{housing} Logement d'urgence à " \
           "Toulouse" in confirm
    assert "A voté" in await phone.text("1")


async def test_the_campaign_page_fits_and_its_description_is_behind_info(sms: Sms) -> None:
    phone = Phone(sms)
    menu = await phone.onboard()
    listing = await phone.text(number_of(menu, "Campagnes"))
    page = await phone.text(number_of(listing, "Mobilité et loisirs des jeunes"))
    assert page.startswith("Ta Région demain : mobilité et loisirs des jeunes\n")
    assert "Pas de bus le soir" not in page
    assert page.endswith("INFO : en savoir plus")
    more = await phone.text("INFO")
    assert more.startswith("Ta Région demain : mobilité et loisirs des jeunes\n"
                           "Pas de bus le soir, permis trop cher")
    # The page's numbers still hold: 1 is still its first action.
    assert "280 caractères" in await phone.text("1")


# --- the same details on Telegram: a button, through the fake Bot API --------------------------


async def test_telegram_details_button_shows_full_titles(tg: Telegram) -> None:  # noqa: F811
    menu = await onboard(tg)
    listing = await tg.presses(menu, "Voter")
    assert listing is not None
    choose = await tg.presses(listing, "Budget des lycées")
    assert choose is not None
    garden = code_of(tg.app, "Jardin partagé")
    assert f"{garden} Jardin partagé" in [label for label, _ in choose.buttons]
    assert [label for label, _ in choose.buttons][-1] == "Détails"
    details = await tg.presses(choose, "Détails")
    assert details is not None
    assert "• Jardin partagé (20 000 €)\n• Épicerie solidaire (30 000 €)" in details.text
    assert "Détails" in [label for label, _ in details.buttons]  # the list's buttons again
    # They still work: a press ticks a project in place, no "stale" notice, no new message.
    assert await tg.presses(details, f"{garden} Jardin partagé") is None
    assert f"✓ {garden} Jardin partagé" in " ".join(
        label for label, _ in tg.fake.now(details).buttons)


# --- what is said before a screen, in the same reply (#10 review, items 1 to 3) -------------


def test_the_audit_walks_notices_into_screens_for_each_persona(
        sms_audit: tuple[Engine, list[AuditLine]]) -> None:
    _, lines = sms_audit
    text, ok = report(lines)
    assert ok, text
    whats = {line.what for line in lines if line.screen and line.locale == "fr"}
    for persona in ("outside", "15-17", "reader"):
        assert any(what.endswith(f"({persona})") for what in whats), persona
    assert "browse.detail vie-etudiante-demo (outside)" in whats
    assert len(LONG_IDEA) == 280
    assert {"vote.choose vie-etudiante-demo > 1 2 3 4 5 6 7 8 9 10...(26)",  # too many
            "vote.choose budget-rural-demo > 1 2 3 4 5 6",  # over the envelope
            "vote.choose budget-rural-demo > SUITE",  # the page after a shortened first
            "onboarding.age > 1",  # under 15: nothing kept, campaigns to read
            } <= whats
    assert any(what.startswith("propose.text ") and what.endswith(f"> {LONG_IDEA[:20]}...(280)")
               for what in whats)  # the idea's confirmation
    assert max(line.segments for line in lines if line.screen) <= MAX_SEGMENTS


def _walked(walk: Walk, slug: str | None, persona: str = "", locale: str = "fr") -> list[str]:
    """The replies along `walk` from the campaign `slug`'s screen, as sent by SMS."""
    i18n = I18n()
    _, engine = load_engine(i18n)
    catalog = shipped_catalog(SHIPPED, NOW)
    new = {"age_bracket": None, "postal_code": None, "departement": None} \
        if walk.step.startswith("onboarding.") else {}
    ctx = _context(i18n, catalog, SETTINGS, NOW, locale, persona, page_segments=2,
                   verified_address=True, **new)
    campaign = catalog.by_slug(slug) if slug else None
    return [render(_reply(decision, i18n))
            for _, decision in _walk(engine, catalog, ctx, walk, campaign)]


@pytest.mark.parametrize("locale", ["fr", "en", "oc"])
def test_each_notice_comes_with_its_screen_within_two_segments(locale: str) -> None:
    too_many, *pages = _walked(Walk("vote.choose", ("{all}", "SUITE", "SUITE", "SUITE")),
                               "vie-etudiante-demo", locale=locale)
    changed, = _walked(Walk("vote.choose", ("2",), withdrawn=True), "vie-etudiante-demo",
                       locale=locale)
    reader, = _walked(Walk("onboarding.age", ("1",)), None, locale=locale)
    follow, = _walked(Walk("browse.detail", ("#follow",)), "consultation-jeunes",
                      locale=locale)
    for reply in (too_many, *pages, changed, reader, follow):
        assert cost(reply).segments <= 2, reply
    assert numbered(too_many) and numbered(changed) and numbered(reader)
    # Suivre: the notice and every action of the page (its text is just above).
    assert list(numbered(follow)) == [1, 2, 3, 4]


def test_suite_carries_on_from_a_first_page_shortened_by_a_notice() -> None:
    too_many, *pages = _walked(Walk("vote.choose", ("{all}", "SUITE", "SUITE", "SUITE")),
                               "vie-etudiante-demo")
    alone = _walked(Walk("vote.choose", ("SUITE",)), "vie-etudiante-demo")[0]
    assert too_many.startswith("C'est trop : 3 projets au maximum.\n\nDémo - Vie étudiante")
    shown = [too_many]
    for page in pages:
        shown.append(page)
        if "revenir au début" in page:
            break
    numbers = [n for page in shown for n in numbered(page)]
    assert numbers == list(range(1, 13))  # no gap, no repeat
    # The notice took room: page 1 holds fewer than when it comes alone (SUITE from page 1
    # alone goes on after its last number).
    assert len(numbered(too_many)) < min(numbered(alone)) - 1


def test_the_audit_fails_on_a_notice_and_screen_over_two_segments() -> None:
    i18n = I18n()
    _, engine = load_engine(i18n)
    # Unpaged, "C'est trop" and the 12 projects of the student-life vote take 3 segments.
    lines = walks(i18n, engine, shipped_catalog(SHIPPED, NOW), measure, settings=SETTINGS,
                  now=NOW, page_segments=None, personas=("",))
    text, ok = report(lines)
    assert not ok
    assert re.search(r"vote\.choose vie-etudiante-demo > 1 2 3 .*<- over 2 segments", text)


@pytest.mark.parametrize("persona", list(PERSONAS))
def test_a_campaign_page_never_pages_its_actions(persona: str) -> None:
    i18n = I18n()
    _, engine = load_engine(i18n)
    catalog = shipped_catalog(SHIPPED, NOW)
    for locale in ("fr", "en", "oc"):
        ctx = _context(i18n, catalog, SETTINGS, NOW, locale, persona, page_segments=2,
                       verified_address=True)
        for campaign in catalog.campaigns:
            turn = Turn(ctx, engine.flows, State("browse.detail", {"campaign": campaign.slug}))
            engine.enter(turn, "browse.detail")
            reply = render(_reply(turn.decision(), i18n))
            assert "SUITE" not in reply and "SEGUIDA" not in reply and "MORE" not in reply
            assert cost(reply).segments <= 2, reply


async def test_notices_on_a_campaign_page_by_sms(sms: Sms) -> None:
    phone = Phone(sms)
    menu = await phone.onboard()
    listing = await phone.text(number_of(menu, "Campagnes"))
    assert "Détails : INFO 1" in listing
    page = await phone.text(number_of(listing, "Mobilité et loisirs des jeunes"))
    followed = await phone.text(number_of(page, "Suivre cette campagne"))
    assert followed.startswith("Vous suivez")
    assert [label for label in numbered(followed).values()] == [
        "Proposer une idée", "Ne plus suivre", "Autres campagnes", "Menu"]
    # RAPPELS NON: the notice alone (with the page it would take 3 SMS), the numbers hold.
    off = await phone.text("RAPPELS NON")
    assert off.startswith("C'est noté") and not numbered(off)
    unfollowed = await phone.text(number_of(followed, "Ne plus suivre"))
    assert unfollowed.startswith("Vous ne recevrez plus")
    assert "Suivre cette campagne" in numbered(unfollowed).values()


async def test_a_long_idea_is_echoed_short_with_all_its_choices(sms: Sms) -> None:
    phone = Phone(sms)
    menu = await phone.onboard()
    await phone.text(number_of(menu, "Proposer une idée"))
    confirm = await phone.text(LONG_IDEA)
    assert list(numbered(confirm).values()) == ["Envoyer", "Modifier", "Annuler"]
    assert "SUITE" not in confirm and LONG_IDEA[:60] in confirm and "...\"" in confirm
    assert LONG_IDEA not in confirm
    assert (await phone.text("1")).startswith("Merci")
    stored = await sms.app.db.run(lambda c: c.execute(
        proposals.select().with_only_columns(proposals.c.title)
        .where(proposals.c.status == "submitted")).scalars().all())
    assert [json.loads(title) for title in stored] == [{"fr": LONG_IDEA}]  # only the echo cut


async def test_a_miss_names_the_whole_list_not_the_page(sms: Sms) -> None:
    phone = Phone(sms)
    menu = await phone.onboard()
    listing = await phone.text(number_of(menu, "Voter"))
    first = await phone.text(number_of(listing, "Démo - Vie étudiante"))
    assert max(numbered(first)) < 12  # a first page
    assert await phone.text("zzz") == ("Je ne reconnais pas : zzz.\n\n"
                                       "Répondez par un ou plusieurs numéros de 1 à 12.")
