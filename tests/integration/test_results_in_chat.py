"""Results in the conversation (#10, item 7), on the console through the real pipeline.

A campaign in its results phase shows its ballots, winners and their votes, and the person's
own département where its counts are not under 5 (as `votz results` publishes them); its
summary never asks to vote once the vote is over. The figures come from the stored ballots,
counted when the catalog loads, not at every message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.app import App, load_engine
from bot.channels.base import Inbound, Reply, numbered
from bot.channels.sms import measure
from bot.conversation.engine import (
    DETAILS,
    Context,
    Decision,
    Engine,
    EngineSettings,
    State,
    Turn,
    render,
)
from bot.domain.campaigns import Phase
from bot.domain.catalog import Catalog
from bot.domain.participants import Profile
from bot.domain.results import CastBallot, Standing
from bot.i18n import I18n
from bot.staff.audit import MAX_SEGMENTS, screens, shipped_catalog
from bot.staff.results import campaign_results
from bot.store.repo import RESULTS_SETTLED
from bot.store.tables import ballots, proposals
from tests.conftest import FixedClock, Person, RecordingSender, code_of

# Twelve voters in the poll "Sondage terminé" (open 40 to 30 days ago): 31 six for Oui,
# 32 four for Oui and one for Non, 34 one for Non. Per département, the 34 (1) is under 5,
# so the next smallest, the 32 (5), is hidden too: only the 31 is shown.
VOTES = [("31000", "Oui")] * 6 + [("32000", "Oui")] * 4 + [("32000", "Non"), ("34000", "Non")]


async def _vote(app: App, sender: RecordingSender, clock: FixedClock,
                votes: list[tuple[str, str]], *, first: int = 0,
                language: str = "1") -> list[Person]:
    people = [Person(app, sender, address=f"+336100{first + n:05d}")
              for n in range(len(votes))]
    for person, (postcode, _) in zip(people, votes, strict=True):
        await person.onboard(postcode=postcode, language=language)
    clock.advance(days=-35)  # back when the poll was open
    for person, (_, title) in zip(people, votes, strict=True):
        await person.say(f"VOTE {code_of(app, title)}")
        await person.say("1")
    clock.advance(days=35)
    return people


async def _page(person: Person, campaigns: str = "CAMPAGNES",
                title: str = "Sondage terminé") -> str:
    await person.say(campaigns)
    return await person.say(title)


async def test_results_show_winners_votes_and_my_departement(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    people = await _vote(app, sender, clock, VOTES)
    await app.refresh_catalog()
    yes, no = code_of(app, "Oui"), code_of(app, "Non")
    page = await _page(people[0])  # in the 31
    assert page.startswith(
        "Sondage terminé\n"
        f"12 votants ont retenu :\n{yes} Oui : 10 voix\n"
        "Dans le 31 : 6 votants, ")
    # "Étape : résultats" would only repeat it; nothing to follow once the vote is over.
    assert page.endswith(f" {yes} (6 voix).\n1 Autres campagnes\n2 Menu")
    assert "C'est fini." not in page  # the summary gives way to the results
    assert no not in page  # not a winner
    # In the 32 (5 ballots, hidden next to the 34's 1) and the 34: not published.
    hidden_32 = await _page(people[6])
    assert "Dans le 32, trop peu de votes pour en publier le détail." in hidden_32
    assert "Dans le 34, trop peu de votes" in await _page(people[11])

    # The same figures as `votz results` (staff), from the same ballots.
    staff = await campaign_results(app.db, "closed")
    assert staff.ballots == 12
    assert [(line.proposal.code, line.votes) for line in staff.lines if line.winner] == \
        [(yes, 10)]
    assert staff.by_departement == {"31": 6, "32": None, "34": None}


async def test_results_are_counted_when_the_catalog_loads(
        sqlite_app: App, sender: RecordingSender, clock: FixedClock) -> None:
    people = await _vote(sqlite_app, sender, clock, [("31000", "Oui")] * 2)
    await sqlite_app.refresh_catalog()
    assert "\n2 votants ont retenu :\n" in await _page(people[0])
    late = await _vote(sqlite_app, sender, clock, [("31000", "Non")], first=50)
    # Not counted again at every message: the page keeps the catalog's figures...
    assert "\n2 votants ont retenu :\n" in await _page(people[0])
    await sqlite_app.refresh_catalog()  # ...until it is reloaded (every 30 s by `votz run`)
    assert "\n3 votants ont retenu :\n" in await _page(late[0])


async def test_a_settled_tally_is_kept_until_its_campaign_or_ballots_change(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    """Results out for a month ("closed"): counted at every reload until RESULTS_SETTLED
    after the campaign was last saved (a reload may have closed its vote early), then kept,
    and counted again when the number of ballots (read at each reload, not the ballots) or
    the published proposals change."""
    await _vote(app, sender, clock, [("31000", "Oui")] * 2)
    await app.refresh_catalog()
    tallies = app.pipeline.tallies
    closed = next(c for c in app.pipeline.catalog.campaigns if c.slug == "closed")
    yes, no = (next(p for p in app.pipeline.catalog.proposals.values()
                    if p.title["fr"] == title) for title in ("Oui", "Non"))

    def winners() -> list[str]:
        return [line.proposal.code for line in app.pipeline.catalog.results[closed.id].winners]

    def all_ballots_for(proposal_id: int) -> Callable[[Any], None]:
        def change(conn: Any) -> None:  # behind Votz's back: never happens in use
            conn.execute(update(ballots).where(ballots.c.campaign_id == closed.id).values(
                choices=str(proposal_id)))
        return change

    # Saved only now (its results out for a month): counted, not kept yet.
    assert app.pipeline.catalog.results[closed.id].ballots == 2 and winners() == [yes.code]
    assert closed.id not in tallies.kept
    await app.db.run(all_ballots_for(no.id))
    await app.refresh_catalog()
    assert winners() == [no.code]  # counted again
    clock.advance(seconds=RESULTS_SETTLED.total_seconds())
    await app.refresh_catalog()
    assert closed.id in tallies.kept

    # Settled: the same number of ballots, changed behind its back, is not counted again...
    await app.db.run(all_ballots_for(yes.id))
    await app.refresh_catalog()
    assert winners() == [no.code]
    # ...one more ballot is (3: the two changed to Oui and a new Non)...
    late = await _vote(app, sender, clock, [("31000", "Non")], first=50)
    await app.refresh_catalog()
    assert app.pipeline.catalog.results[closed.id].ballots == 3 and winners() == [yes.code]
    assert "\n3 votants ont retenu :\n" in await _page(late[0])
    # ...and so is a change of the published proposals (Oui hidden: its votes go).
    await app.db.run(all_ballots_for(no.id))
    await app.db.run(lambda conn: conn.execute(update(proposals).where(
        proposals.c.id == yes.id).values(status="hidden")))
    await app.refresh_catalog()
    assert winners() == [no.code]

    # A campaign whose results came out a minute ago: counted at every reload, kept only
    # once they have been out for RESULTS_SETTLED.
    budget = next(c for c in app.pipeline.catalog.campaigns if c.slug == "budget")
    window = budget.window(Phase.RESULTS)
    assert window is not None
    clock.advance(seconds=(window.start - clock()).total_seconds() + 60)
    await app.refresh_catalog()
    assert budget.id in app.pipeline.catalog.results and budget.id not in tallies.kept
    clock.advance(seconds=RESULTS_SETTLED.total_seconds())
    await app.refresh_catalog()
    assert budget.id in tallies.kept and closed.id in tallies.kept


async def test_one_voter_is_one_votant(sqlite_app: App, sender: RecordingSender,
                                       clock: FixedClock) -> None:
    people = await _vote(sqlite_app, sender, clock, [("31000", "Non")])
    await sqlite_app.refresh_catalog()
    page = await _page(people[0])
    no = code_of(sqlite_app, "Non")
    assert f"\n1 votant a retenu :\n{no} Non : 1 voix\n" \
           "Dans le 31, trop peu de votes" in page


async def test_results_in_english(sqlite_app: App, sender: RecordingSender,
                                  clock: FixedClock) -> None:
    people = await _vote(sqlite_app, sender, clock, [("31000", "Oui")] * 5, language="2")
    await sqlite_app.refresh_catalog()
    yes = code_of(sqlite_app, "Oui")
    page = await _page(people[0], "CAMPAIGNS")
    assert f"\nChosen by 5 voters:\n{yes} Oui: 5 votes\n" \
           "In 31: 5 voters, " in page
    assert f"{yes} came first (5 votes).\n1 Other campaigns" in page


async def load_gap(app: App, tmp_path: Path) -> None:
    """A poll whose vote ended two days ago and whose results come in three days."""
    folder = tmp_path / "gap"
    folder.mkdir()
    (folder / "gap.yaml").write_text("""
slug: gap
kind: poll
title: {fr: Sondage en attente}
summary: {fr: Votez pour votre projet préféré.}
phases:
  vote: {start: today-10, end: today-2}
  results: {start: today+3}
ballot: {method: single}
seed_proposals:
  - {ref: a, title: {fr: Piscine}}
  - {ref: b, title: {fr: Patinoire}}
""", encoding="utf-8")
    await app.load_campaigns(folder)


async def test_a_vote_over_never_asks_to_vote(sqlite_app: App, sender: RecordingSender,
                                              clock: FixedClock, tmp_path: Path) -> None:
    await load_gap(sqlite_app, tmp_path)
    me = Person(sqlite_app, sender)
    await me.onboard()
    waiting = await _page(me, title="Sondage en attente")  # vote over, results not yet out
    assert waiting.startswith("Sondage en attente\nLe vote est terminé : résultats à venir.\n"
                              "Étape : en pause")
    assert "Votez" not in waiting and "Voter" not in waiting
    clock.advance(days=12)  # "Budget des lycées": its vote closed, nobody voted
    await sqlite_app.refresh_catalog()
    page = await _page(me, title="Budget des lycées")
    assert page.startswith("Budget des lycées\n"
                           "Le vote est terminé ; Votz n'a enregistré aucun vote.\n"
                           "1 Autres campagnes")
    assert "Choisissez" not in page


async def test_closed_campaigns_and_consultations_say_what_fits(
        sqlite_app: App, sender: RecordingSender, tmp_path: Path) -> None:
    folder = tmp_path / "ended"
    folder.mkdir()
    (folder / "ended.yaml").write_text("""
slug: ended
kind: poll
title: {fr: Sondage clos}
summary: {fr: Votez pour votre projet préféré.}
phases:
  vote: {start: today-10, end: today-5}
  results: {start: today-4, end: today-1}
ballot: {method: single}
seed_proposals:
  - {ref: a, title: {fr: Piscine}}
  - {ref: b, title: {fr: Patinoire}}
""", encoding="utf-8")
    (folder / "heard.yaml").write_text("""
slug: heard
kind: consultation
title: {fr: Consultation entendue}
summary: {fr: "Merci pour vos idées : la synthèse est en ligne."}
phases:
  submission: {start: today-10, end: today-5}
  results: {start: today-4}
""", encoding="utf-8")
    await sqlite_app.load_campaigns(folder)
    me = Person(sqlite_app, sender)
    await me.onboard()

    async def open_link(slug: str) -> str:  # a poster's link still opens a closed campaign
        before = len(sender.sent)
        await sqlite_app.pipeline.handle(Inbound(channel="console", address=me.address,
                                                 text="/start", start_payload=slug,
                                                 received_at=sqlite_app.clock()))
        await sqlite_app.dispatcher.drain()
        return numbered(sender.sent[before:][-1][1])

    ended = await open_link("ended")
    assert ended.startswith("Sondage clos\nLe vote est terminé.\nÉtape : terminée")
    assert "Votez" not in ended
    heard = await _page(me, title="Consultation entendue")  # results, but never a vote
    assert heard.startswith("Consultation entendue\nMerci pour vos idées : la synthèse est en "
                            "ligne.\nÉtape : résultats")


# --- many winners: the page and its actions in two SMS, the others behind INFO -----------------

SHIPPED = Path(__file__).resolve().parents[2] / "campaigns"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # vie-etudiante-2024 is in its results phase
SETTINGS = EngineSettings(privacy_url="https://www.laregioncitoyenne.fr/votz/confidentialite",
                          contact="participation@laregion.fr")
BIG = "vie-etudiante-2024"


def _many_winners(ballots: int = 1234) -> tuple[Catalog, Standing]:
    """The shipped student-life budget after a real-sized vote, counted by the real tally:
    `ballots` voters picking 3 of its 8 first projects each (the other 4 get no vote), so
    that 8 projects win within the 500 000 € envelope; most voters in the 31."""
    catalog = shipped_catalog(SHIPPED, NOW)
    campaign = next(c for c in catalog.campaigns if c.slug == BIG)
    proposals = catalog.published(campaign.id)
    voted = [p.id for p in proposals[:8]]
    cast = [CastBallot(tuple(voted[(n + k * (1 + n % 3)) % 8] for k in range(3)), "18-25",
                       "31" if n % 4 else "34") for n in range(ballots)]
    standing = Standing.of(campaign, proposals, cast)
    results = {**catalog.results, campaign.id: standing}
    winners = {**catalog.winners, campaign.id: tuple(line.proposal.id for line in
                                                     standing.winners)}
    return replace(catalog, results=results, winners=winners), standing


def _context(catalog: Catalog, locale: str, *, buttons: bool = False) -> Context:
    i18n = I18n()
    profile = Profile(id=1, locale=locale, consent_at=NOW, age_bracket="18-25",
                      postal_code="31000", departement="31")
    return Context(now=NOW, profile=profile, catalog=catalog, settings=SETTINGS, i18n=i18n,
                   page_segments=None if buttons else 2, buttons=buttons,
                   verified_address=not buttons)


def _as_sent(engine: Engine, decision: Decision, ctx: Context) -> str:
    """The reply's text as a phone shows it: messages, numbered options, footer."""
    t = ctx.i18n[decision.locale]
    lines = [render(decision, ctx.i18n, {}), *(f"{o.key} {o.label}" for o in decision.options)]
    if decision.footer is not None:
        lines.append(t.render(decision.footer))
    return "\n".join(lines)


def _results_page(engine: Engine, ctx: Context) -> Decision:
    turn = Turn(ctx, engine.flows, State("browse.detail", {"campaign": BIG}))
    engine.enter(turn, "browse.detail")
    return turn.decision()


def test_many_winners_fit_two_sms_with_the_page_actions() -> None:
    catalog, standing = _many_winners()
    assert standing.ballots == 1234 and len(standing.winners) == 8
    _, engine = load_engine(I18n())
    ctx = _context(catalog, "fr")
    page = _results_page(engine, ctx)
    text = _as_sent(engine, page, ctx)
    named = [line for line in text.split("\n") if re.match(r"P\d+ .* : [\d ]+ voix$", line)]
    assert text.startswith("Vos solutions pour la vie étudiante\n1 234 votants ont retenu :\n")
    assert len(named) == 3 and "\nEt 5 autres : envoyez INFO.\n" in text, text
    # Its actions on the same page (no SUITE), and nothing to follow any more.
    assert [o.label for o in page.options] == ["Autres campagnes", "Menu"]
    assert "SUITE" not in text and "Suivre" not in text
    assert measure(Reply(text)).segments <= MAX_SEGMENTS, (measure(Reply(text)), text)
    # INFO: the five it does not name, with their votes, in two SMS at most.
    assert page.state is not None
    more = engine.advance(page.state, Inbound("sms", "+33600000000", "INFO"), ctx)
    shown = _as_sent(engine, more, ctx)
    assert shown.startswith("Autres projets retenus :\n")
    rest = [line.proposal.code for line in standing.winners[3:]]
    assert [line.split()[0] for line in shown.split("\n")[1:]] == rest
    assert measure(Reply(shown)).segments <= MAX_SEGMENTS, shown


def test_fewer_winners_named_where_three_would_not_fit() -> None:
    """Counts in tens of thousands make each line longer: two named, so that it fits."""
    catalog, standing = _many_winners(123_456)
    _, engine = load_engine(I18n())
    ctx = _context(catalog, "fr")
    page = _results_page(engine, ctx)
    text = _as_sent(engine, page, ctx)
    assert "\nEt 6 autres : envoyez INFO.\n" in text and text.count(" voix\n") == 2
    assert [o.label for o in page.options] == ["Autres campagnes", "Menu"]
    assert measure(Reply(text)).segments <= MAX_SEGMENTS, text
    assert page.state is not None
    more = _as_sent(engine, engine.advance(page.state, Inbound("sms", "+336", "INFO"), ctx), ctx)
    assert measure(Reply(more)).segments <= MAX_SEGMENTS, more
    # All the others, or as many as fit and how many more: none lost without a word.
    listed = re.findall(r"^(P\d+) ", more, re.M)
    tail = re.search(r"\nEt (\d+) autres?\.$", more)
    assert len(listed) + (int(tail.group(1)) if tail else 0) == 6
    assert listed == [line.proposal.code for line in standing.winners[2:2 + len(listed)]]


@pytest.mark.parametrize(("locale", "voters"), [
    ("fr", "1 234 votants ont retenu :"), ("en", "Chosen by 1,234 voters:"),
    ("oc", "1 234 votants an retengut :")])
def test_the_results_page_fits_in_every_language_through_the_audit(
        locale: str, voters: str) -> None:
    """The audit's own screens (`screens`) with these results: the page and its INFO."""
    catalog, _ = _many_winners()
    i18n = I18n()
    _, engine = load_engine(i18n)
    lines = [line for line in screens(i18n, engine, catalog, measure, settings=SETTINGS,
                                      now=NOW, personas=("",))
             if line.locale == locale and line.what.startswith(f"browse.detail {BIG}")]
    assert {line.what for line in lines} >= {f"browse.detail {BIG}",
                                              f"browse.detail {BIG} INFO"}
    assert max(line.segments for line in lines) <= MAX_SEGMENTS, lines
    text = _as_sent(engine, _results_page(engine, _context(catalog, locale)),
                    _context(catalog, locale))
    assert f"\n{voters}\n" in text  # a thousands separator in each language


def test_telegram_names_three_and_details_list_them_all() -> None:
    catalog, standing = _many_winners(12_345)
    _, engine = load_engine(I18n())
    ctx = _context(catalog, "fr", buttons=True)
    page = _results_page(engine, ctx)
    text = render(page, ctx.i18n, {})
    assert "12 345 votants ont retenu :" in text
    assert text.count(" voix\n") == 3  # three winners named (as many as by SMS at most)
    assert "\nEt 5 autres : touchez Détails.\n" in text
    assert [o.label for o in page.options] == ["Autres campagnes", "Menu", "Détails"]
    assert page.state is not None
    details = engine.advance(page.state, Inbound("telegram", "42", "", choice=DETAILS), ctx)
    listed = render(details, ctx.i18n, {})
    assert listed.startswith("Projets retenus :\n")
    assert [code for code in re.findall(r"^(P\d+) ", listed, re.M)] == \
        [line.proposal.code for line in standing.winners]


async def test_nothing_to_follow_once_the_vote_is_over_but_its_results_for_a_voter(
        sqlite_app: App, sender: RecordingSender, clock: FixedClock, tmp_path: Path) -> None:
    await load_gap(sqlite_app, tmp_path)
    voter, other = Person(sqlite_app, sender), Person(sqlite_app, sender, address="+33611110000")
    await voter.onboard()
    await other.onboard()
    clock.advance(days=-5)  # while it was open
    await voter.say(f"VOTE {code_of(sqlite_app, 'Piscine')}")
    await voter.say("1")
    clock.advance(days=5)
    # Results go to voters: following it still brings them, and says so...
    page = await _page(voter, title="Sondage en attente")
    assert "\n1 Suivre cette campagne\n" in page
    followed = await voter.say("1")
    assert followed.startswith(
        "Vous suivez « Sondage en attente » : vous recevrez ses résultats.")
    # ...but someone who did not vote would get nothing: no Suivre.
    assert "Suivre" not in await _page(other, title="Sondage en attente")
