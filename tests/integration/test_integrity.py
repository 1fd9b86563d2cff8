"""Integrity of a vote, on SQLite and PostgreSQL: once it has opened, its ballot rules and
proposals cannot change by any path, and a ballot is checked again when it is confirmed."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select, update

from bot.app import App
from bot.domain.campaigns import Phase, PhaseWindow
from bot.errors import FrozenRulesError
from bot.staff.campaigns import force_phase
from bot.store.repo import campaign_proposals, campaign_to_json, get_campaign, moderate
from bot.store.tables import ballots, campaigns
from tests.conftest import FixedClock, Person, RecordingSender, code_of

# Open since 5 March (the clock says 10 March, 11:00 in Paris).
OPEN = """slug: fixed
kind: participatory_budget
title: {fr: Budget aux dates fixes}
summary: {fr: Dates réelles.}
envelope: 1000
phases:
  vote: {start: VOTE_START, end: VOTE_END}
ballot: {method: up_to, max_choices: 2}
seed_proposals:
  - {ref: a, title: {fr: Projet A}, cost: 500}
  - {ref: b, title: {fr: Projet B}, cost: 300}
"""


def definition(start: str = "2026-03-05", end: str = "2026-03-31",
               changes: dict[str, str] | None = None) -> str:
    """The OPEN campaign with its vote from `start` to `end`, texts replaced (old → new)."""
    text = OPEN.replace("VOTE_START", start).replace("VOTE_END", end)
    for old, new in (changes or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text


FEWER = {"max_choices: 2": "max_choices: 1"}


async def load(app: App, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    await app.load_campaigns(path)


async def stored_rules(app: App) -> tuple[int, int | None, list[tuple[str, int | None]]]:
    def read(conn: Connection) -> tuple[int, int | None, list[tuple[str, int | None]]]:
        campaign = get_campaign(conn, "fixed")
        seeds = [(p.title["fr"], p.cost) for p in campaign_proposals(conn, campaign.id)]
        return campaign.ballot.max_choices, campaign.envelope, seeds

    return await app.db.run(read)


KEPT = (2, 1000, [("Projet A", 500), ("Projet B", 300)])


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("2026-03-05", "today-5"),  # the reported bypass: the file now uses relative dates
        ("2026-03-05", "now-2d"),
        ("today-5", "today-5"),  # a demo file, reloaded as is but for its rules
        ("today-5", "2026-03-05"),
    ],
)
async def test_reloading_an_open_vote_cannot_change_its_rules_whatever_its_dates(
        app: App, tmp_path: Path, first: str, then: str) -> None:
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition(start=first, end="today+20"))
    with pytest.raises(FrozenRulesError) as refused:
        await load(app, path, definition(start=then, end="today+20", changes={
            "max_choices: 2": "max_choices: 1", "envelope: 1000": "envelope: 5"}))
    assert "ballot.max_choices (2 → 1)" in str(refused.value)
    assert "envelope (1000 → 5)" in str(refused.value)
    assert await stored_rules(app) == KEPT


async def test_an_open_vote_cannot_be_made_to_start_later_to_unfreeze_it(
        app: App, tmp_path: Path, clock: FixedClock) -> None:
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition())
    for start in ("2026-03-20", "today+3", "now+1h"):
        with pytest.raises(FrozenRulesError, match=re.escape("phases.vote.start (")):
            await load(app, path, definition(start=start))  # the rules alone would pass
        with pytest.raises(FrozenRulesError) as refused:
            await load(app, path, definition(start=start, changes=FEWER))
        assert "ballot.max_choices (2 → 1)" in str(refused.value)
    with pytest.raises(FrozenRulesError, match=re.escape("phases.vote (removed")):
        await load(app, path, definition().replace(
            "  vote: {start: 2026-03-05, end: 2026-03-31}", "  submission: {start: 2026-03-05}"))
    campaign = await app.db.run(lambda c: get_campaign(c, "fixed"))
    assert campaign.is_open(Phase.VOTE, clock())
    assert await stored_rules(app) == KEPT


@pytest.mark.parametrize("confirmed", [True, False], ids=["ballot", "started-ballot"])
async def test_a_vote_pushed_back_after_it_opened_stays_frozen(
        app: App, tmp_path: Path, sender: RecordingSender, confirmed: bool) -> None:
    """A vote whose start was pushed back after people voted (as the former bypass let a
    reload do): its ballots show it opened, whatever its stored dates now say."""
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition())
    voter = Person(app, sender)
    await voter.onboard()
    assert "Projet A" in await voter.say(f"VOTE {code_of(app, 'Projet A')}")
    if confirmed:
        assert "A voté" in await voter.say("1")

    def push_back(conn: Connection) -> None:
        stored = get_campaign(conn, "fixed")
        window = stored.window(Phase.VOTE)
        assert window is not None
        later = replace(stored, phases=(PhaseWindow(Phase.VOTE, window.start + timedelta(
            days=10), window.end),))
        conn.execute(update(campaigns).where(campaigns.c.id == stored.id)
                     .values(definition=campaign_to_json(later)))

    await app.db.run(push_back)
    with pytest.raises(FrozenRulesError, match=re.escape("ballot.max_choices (2 → 1)")):
        await load(app, path, definition(start="2026-03-15", changes=FEWER))
    assert await stored_rules(app) == KEPT


async def test_dates_may_move_and_demos_reload_every_day(app: App, tmp_path: Path,
                                                         clock: FixedClock) -> None:
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition())
    await load(app, path, definition(end="2026-04-10"))  # extended
    await load(app, path, definition(start="2026-03-01", end="2026-04-10"))  # earlier still
    await load(app, path, definition(start="today-5", end="today+20"))  # now relative
    clock.advance(days=1)
    await load(app, path, definition(start="today-5", end="today+20"))  # a day later: moved
    campaign = await app.db.run(lambda c: get_campaign(c, "fixed"))
    window = campaign.window(Phase.VOTE)
    assert window is not None and window.start.date().isoformat() == "2026-03-05"
    await load(app, path, definition(start="today-5", end="today"))  # closes tonight
    assert await stored_rules(app) == KEPT


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"{ref: a, title: {fr: Projet A}": "{ref: a, title: {fr: Projet Z}"},
         "seed_proposals[a].title"),
        ({"cost: 500}": "cost: 900}"}, "seed_proposals[a].cost (500 → 900)"),
        ({"cost: 300}": "cost: 300}\n  - {ref: c, title: {fr: Projet C}, cost: 100}"},
         "seed_proposals[c] (added)"),
        ({"  - {ref: b, title: {fr: Projet B}, cost: 300}\n": ""},
         "seed_proposals[b] (removed: it is on the ballot)"),
        ({"kind: participatory_budget": "kind: poll"}, "kind (participatory_budget → poll)"),
        ({"method: up_to": "method: budget"}, "ballot.method (up_to → budget)"),
        ({"max_choices: 2}": "max_choices: 2, min_share: 0.5}"}, "ballot.min_share (0.0 → 0.5)"),
        ({"envelope: 1000": "verified_phone: true\nenvelope: 1000"},
         "verified_phone (False → True)"),
        ({"envelope: 1000": "audience: {departements: ['48']}\nenvelope: 1000"},
         "audience.departements ("),
        ({"envelope: 1000": "audience: {age_brackets: [18-25]}\nenvelope: 1000"},
         "audience.age_brackets ("),
    ],
)
async def test_each_frozen_field_is_named(app: App, tmp_path: Path, changes: dict[str, str],
                                          named: str) -> None:
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition())
    with pytest.raises(FrozenRulesError) as refused:
        await load(app, path, definition(changes=changes))
    assert named in str(refused.value)
    assert str(refused.value).startswith("fixed: its vote opened on 2026-03-05 00:00, so ")
    assert await stored_rules(app) == KEPT


async def test_rules_and_proposals_may_change_until_the_vote_opens(app: App,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition(start="2026-03-20"))
    await load(app, path, definition(start="2026-03-20", changes={
        "max_choices: 2": "max_choices: 1", "cost: 500}": "cost: 700}"}))
    assert await stored_rules(app) == (1, 1000, [("Projet A", 700), ("Projet B", 300)])


async def test_a_forced_phase_cannot_take_an_open_vote_back(app: App, clock: FixedClock,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "fixed.yaml"
    await load(app, path, definition())
    for phase in (Phase.INFORMATION, Phase.SUBMISSION, Phase.MODERATION):
        with pytest.raises(FrozenRulesError, match=re.escape(
                f"fixed: its vote opened on 2026-03-05 00:00; it cannot go back to its "
                f"{phase.value} phase")):
            await force_phase(app.db, "fixed", phase, clock(), actor="claire",
                              reason="erreur", grace=timedelta(hours=1))
    campaign = await app.db.run(lambda c: get_campaign(c, "fixed"))
    assert campaign.is_open(Phase.VOTE, clock())
    # Results may come early; the rules stay frozen all the same.
    await force_phase(app.db, "fixed", Phase.RESULTS, clock(), actor="claire",
                      reason="atelier", grace=timedelta(hours=1))
    with pytest.raises(FrozenRulesError, match=re.escape("ballot.max_choices (2 → 1)")):
        await load(app, path, definition(changes=FEWER))


# --- a ballot checked again when it is confirmed -----------------------------------------------

EXPRESS = """slug: express
kind: poll
title: {fr: Vote express}
summary: {fr: Un vote court.}
phases:
  vote: {start: now-1h, end: now+10m}
  results: {start: now+10m}
ballot: {method: up_to, max_choices: 2}
seed_proposals:
  - {ref: a, title: {fr: Option A}}
  - {ref: b, title: {fr: Option B}}
"""


async def ballots_in(app: App, slug: str) -> int:
    def count(conn: Connection) -> int:
        campaign = get_campaign(conn, slug)
        return int(conn.execute(select(func.count()).select_from(ballots).where(
            ballots.c.campaign_id == campaign.id)).scalar_one())

    return await app.db.run(count)


async def drafted(app: App, sender: RecordingSender, tmp_path: Path) -> Person:
    """A person who chose Option A in the express vote and has not confirmed yet."""
    await load(app, tmp_path / "express.yaml", EXPRESS)
    person = Person(app, sender, address="+33600000042")
    await person.onboard()
    confirm = await person.say(f"VOTE {code_of(app, 'Option A')}")
    assert "Option A" in confirm and "1" in confirm
    return person


async def test_a_vote_that_closed_before_confirmation_records_nothing(
        app: App, sender: RecordingSender, clock: FixedClock, tmp_path: Path) -> None:
    person = await drafted(app, sender, tmp_path)
    clock.advance(minutes=11)  # the vote closed a minute ago
    answer = await person.say("1")
    assert "Le vote « Vote express » est clos : votre vote n'a pas été enregistré." in answer
    assert "A voté" not in answer
    assert await ballots_in(app, "express") == 0


async def test_a_ballot_still_valid_is_recorded_without_rereading_the_catalog(
        app: App, sender: RecordingSender, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    person = await drafted(app, sender, tmp_path)
    with caplog.at_level(logging.INFO, logger="votz.pipeline"):
        assert "A voté" in await person.say("1")
    assert await ballots_in(app, "express") == 1
    assert "conversation.catalog_stale" not in caplog.text


@pytest.fixture
async def other(app: App, sender: RecordingSender, clock: FixedClock,
                database: tuple[str, str | None]) -> AsyncIterator[App]:
    """A second Votz process on the same database (staff commands run in their own)."""
    second = await App.start(app.settings, senders={"console": sender}, clock=clock,
                             schema=database[1])
    yield second
    await second.close()


async def test_a_proposal_hidden_by_another_process_is_refused_at_confirmation(
        app: App, other: App, sender: RecordingSender, tmp_path: Path) -> None:
    person = await drafted(app, sender, tmp_path)
    hidden = int(code_of(app, "Option A")[1:])
    assert await other.db.run(lambda c: moderate(c, [hidden], "hidden")) == 1
    # This process's catalog still shows it (it is refreshed every 30 s): the confirmation
    # reads what is stored.
    assert hidden in app.pipeline.catalog.proposals
    answer = await person.say("1")
    assert "Un de ces numéros n'est pas un projet soumis au vote." in answer
    assert "Votre vote n'a pas été enregistré." in answer
    assert await ballots_in(app, "express") == 0
    assert hidden not in app.pipeline.catalog.proposals  # and the catalog is current again


async def test_a_vote_closed_by_a_reload_elsewhere_is_refused_at_confirmation(
        app: App, other: App, sender: RecordingSender, tmp_path: Path) -> None:
    person = await drafted(app, sender, tmp_path)
    earlier = Person(app, sender, address="+33600000043")  # cast while the vote was open
    await earlier.onboard()
    await earlier.say(f"VOTE {code_of(app, 'Option B')}")
    assert "A voté" in await earlier.say("1")
    closed = EXPRESS.replace("end: now+10m", "end: now-1m").replace("start: now+10m",
                                                                    "start: now-1m")
    await load(other, tmp_path / "express.yaml", closed)  # staff close it early, elsewhere
    answer = await person.say("1")
    assert "Le vote « Vote express » est clos : votre vote n'a pas été enregistré." in answer
    assert await ballots_in(app, "express") == 1  # the earlier one only
