"""Moderation (issue #12): flags and near-duplicates, proposals waiting for a decision,
decisions logged with who and when, hiding (also while a vote is open), and reports by
participants ("SIGNALER P12": the 3rd distinct one hides it pending review).

The storage tests run on SQLite and PostgreSQL (the `app` fixture)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Connection, func, select

from bot.app import App
from bot.errors import ConfigError
from bot.staff import moderation
from bot.staff.results import campaign_results, format_results
from bot.store.db import Database
from bot.store.repo import ProposalStatus, get_campaign
from bot.store.tables import campaign_log, outbox, participants, proposal_reports, proposals
from tests.conftest import FixedClock, Person, RecordingSender, code_of

# --- flags and closeness: pure ---------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Appelez-moi au 06 12 34 56 78",
    "mon numéro 06.12.34.56.78 le soir",
    "0612345678",
    "06-12-34-56-78",
    "+33 6 12 34 56 78",
    "+33612345678",
    "0033 6 12 34 56 78",
    "+33 (0)6 12 34 56 78",
    "fixe : 05 61 33 50 50",
    "UK friends: +44 20 7946 0958",
])
def test_phone_numbers_are_flagged(text: str) -> None:
    assert moderation.flags(text) == ("phone",)


@pytest.mark.parametrize("text", [
    "Un budget de 10 000 € pour 2026",
    "Code postal 31000, 48000 ou 12000",
    "Un bus à 18 h 30 tous les 15 jours",
    "1 200 000 habitants, 13 départements",
    "Une piste de 3.5 km, etc. Le reste",
    "Le bus 06 passe à 12 h",
    "Des cours de code à l'école",
])
def test_ordinary_texts_are_not_flagged(text: str) -> None:
    assert moderation.flags(text) == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("écrivez à jean.dupont@exemple.fr", ("email",)),
    ("JEAN+votz@mairie-mende.gouv.fr", ("email",)),
    ("voir https://exemple.org/projet?id=3", ("url",)),
    ("voir http://localhost:8080", ("url",)),
    ("sur www.monprojet.com", ("url",)),
    ("sur exemple.fr", ("url",)),
    ("sur Exemple.FR/page", ("url",)),
    ("rejoignez t.me/jardin_partage", ("url",)),
    ("la mairie-mende.gouv.fr le dit", ("url",)),
    ("06 12 34 56 78, jean@exemple.fr ou exemple.fr", ("phone", "email", "url")),
])
def test_emails_and_links_are_flagged(text: str, expected: tuple[str, ...]) -> None:
    assert moderation.flags(text) == expected


@pytest.mark.parametrize(("one", "other"), [
    ("Vélos en prêt", "Prêt de vélos pour les lycéens"),  # another order, plural, accents
    ("Bibliothèque de rue", "Une biblioteque"),  # a typo: one letter missing
    ("Éclairage solaire", "Eclairrage"),  # one letter too many
    ("Jardin partagé", "JARDINS PARTAGÉS"),
])
def test_close_titles(one: str, other: str) -> None:
    assert moderation.closeness(moderation.words(one), moderation.words(other)) \
        >= moderation.SIMILAR_FROM


@pytest.mark.parametrize(("one", "other"), [
    ("Fresque murale", "Épicerie solidaire"),
    ("Des bancs dans le parc de la mairie", "Des arbres dans la cour du lycée"),  # only "de…"
    ("Jardin partagé", "Jardin d'enfants, toboggans, balançoires et bac à sable"),
])
def test_distant_titles(one: str, other: str) -> None:
    assert moderation.closeness(moderation.words(one), moderation.words(other)) \
        < moderation.SIMILAR_FROM


# --- helpers ---------------------------------------------------------------------------------


async def submit(app: App, slug: str, title: str, *, at: datetime) -> str:
    """A proposal as if just sent in by someone: its code."""

    def insert(conn: Connection) -> int:
        campaign = get_campaign(conn, slug)
        return int(conn.execute(proposals.insert().values(
            campaign_id=campaign.id, title=json.dumps({"fr": title}), status="submitted",
            created_at=at).returning(proposals.c.id)).scalar_one())

    return f"P{await app.db.run(insert)}"


async def status_of(app: App, code: str) -> str:
    return str(await app.db.run(lambda conn: conn.execute(
        select(proposals.c.status).where(proposals.c.id == int(code[1:]))).scalar_one()))


async def log_lines(app: App) -> list[tuple[str, str, str, datetime]]:
    rows = await app.db.run(lambda conn: conn.execute(
        select(campaign_log.c.actor, campaign_log.c.action, campaign_log.c.detail,
               campaign_log.c.at)
        .where(campaign_log.c.action.like("proposal.%")).order_by(campaign_log.c.id)).all())
    return [(r.actor, r.action, r.detail, r.at) for r in rows]


async def reports_of(app: App, code: str) -> int:
    return int(await app.db.run(lambda conn: conn.execute(
        select(func.count()).select_from(proposal_reports)
        .where(proposal_reports.c.proposal_id == int(code[1:]))).scalar_one()))


async def ballot_options(person: Person) -> str:
    """What "VOTE" offers in the lycées' budget (the proposals one may choose)."""
    await person.say("VOTE")  # two campaigns are voting: which one?
    options = await person.say("Budget des lycées")
    assert "Jardin partagé" in options, options
    await person.say("MENU")
    return options


async def people(app: App, sender: RecordingSender, n: int, *, language: str = "1"
                 ) -> list[Person]:
    found = []
    for i in range(n):
        person = Person(app, sender, address=f"+3361000000{i}")
        await person.onboard(language=language)
        found.append(person)
    return found


# --- what staff see before deciding ----------------------------------------------------------


async def test_pending_oldest_first_with_flags_similar_and_reports(
        app: App, clock: FixedClock) -> None:
    t = clock()
    # Sent in out of id order: the oldest first is by when they arrived.
    later = await submit(app, "pick", "Des vélos en prêt pour tous, infos au 06 12 34 56 78",
                         at=t - timedelta(hours=1))
    older = await submit(app, "pick", "Une fresque sur le mur du gymnase",
                         at=t - timedelta(days=2))
    other = await submit(app, "ideas", "Un bus le samedi soir, voir bus-samedi.fr",
                         at=t - timedelta(days=1))

    waiting = await moderation.pending(app.db)
    assert [w.proposal.code for w in waiting] == [older, other, later]
    first = waiting[2]
    assert (first.slug, first.campaign_title, first.status, first.reports) == \
        ("pick", "Budget des lycées", "submitted", 0)
    assert first.flags == ("phone",)
    assert first.created_at == t - timedelta(hours=1)
    assert [(s.proposal.text("fr"), s.status) for s in first.similar] == \
        [("Vélos en prêt", "published")]
    assert waiting[0].flags == () and waiting[1].flags == ("url",)
    assert [s.proposal.text("fr") for s in waiting[0].similar] == ["Fresque murale"]

    only = await moderation.pending(app.db, "pick")
    assert [w.proposal.code for w in only] == [older, later]
    with pytest.raises(ConfigError, match="no campaign 'pik': one of archived, budget, "
                                          "closed, ideas, pick"):
        await moderation.pending(app.db, "pik")

    # The vote of "pick" is open: its ballot takes no new proposal (voters have chosen).
    late = await moderation.publish(app.db, [older], by="alice")
    assert late.refused == ((older, moderation.BALLOT_FROZEN),) and late.changed == 0
    # Decided: no longer waiting.
    await moderation.reject(app.db, [older], reason="duplicate", by="alice")
    await moderation.reject(app.db, [later], reason="personal_data", by="alice")
    assert [w.proposal.code for w in await moderation.pending(app.db)] == [other]


async def test_similar_finds_close_titles_in_the_same_campaign_only(
        app: App, clock: FixedClock) -> None:
    code = await submit(app, "pick", "Un jardin partagé au lycée", at=clock())
    await submit(app, "ideas", "Jardin partagé", at=clock())  # another campaign
    close = await submit(app, "pick", "Jardins partagés pour les élèves", at=clock())
    found = await moderation.similar(app.db, int(code[1:]))
    assert [(s.proposal.code, s.status) for s in found] == [
        (code_of(app, "Jardin partagé"), "published"), (close, "submitted")]
    assert len(await moderation.similar(app.db, int(code[1:]), limit=1)) == 1
    with pytest.raises(ConfigError, match="no proposal P9999"):
        await moderation.similar(app.db, 9999)


# --- decisions, logged -----------------------------------------------------------------------


async def test_every_decision_is_logged_with_who_when_and_why(
        app: App, clock: FixedClock) -> None:
    t = clock()
    first = await submit(app, "ideas", "Un foyer ouvert le dimanche", at=t)
    second = await submit(app, "ideas", "Des casiers au lycée", at=t)
    published = code_of(app, "Vélos en prêt")

    await moderation.publish(app.db, [first], by="alice", now=t)
    await moderation.reject(app.db, [second], reason="off_topic", by="bob",
                            now=t + timedelta(minutes=1))
    await moderation.hide(app.db, [published], reason="offensive", by="carole",
                          now=t + timedelta(minutes=2))
    # Asked again: nothing changes, nothing more is logged.
    await moderation.publish(app.db, [first], by="alice", now=t + timedelta(minutes=3))

    assert await log_lines(app) == [
        ("alice", "proposal.publish", first, t),
        ("bob", "proposal.reject", f"{second} reason=off_topic", t + timedelta(minutes=1)),
        ("carole", "proposal.hide", f"{published} reason=offensive",
         t + timedelta(minutes=2)),
    ]
    assert [await status_of(app, c) for c in (first, second, published)] == \
        ["published", "rejected", "hidden"]


async def test_a_decision_taken_on_a_status_already_changed_is_refused(
        app: App, clock: FixedClock, database: tuple[str, str | None]) -> None:
    """Two staff members, in two processes, decide on the same card (seen as "submitted"):
    the first decision stands, the second is refused as taken meanwhile, not applied over
    it (the author would hear "published" then "not retained")."""
    t = clock()
    code = await submit(app, "ideas", "Un foyer ouvert le dimanche", at=t)
    other = Database(database[0], schema=database[1])  # another `votz run`
    try:
        first, second = await asyncio.gather(
            moderation.publish(app.db, [code], by="alice", now=t, expected=("submitted",)),
            moderation.reject(other, [code], reason="off_topic", by="bob", now=t,
                              expected=("submitted",)))
    finally:
        await other.close()
    outcomes = sorted([(first.changed, first.refused), (second.changed, second.refused)])
    assert outcomes == [(0, ((code, moderation.CHANGED),)), (1, ())]
    stood = "published" if first.changed else "rejected"
    assert await status_of(app, code) == stood
    assert len(await log_lines(app)) == 1
    # Without `expected` (the CLI, staff naming a code on purpose) the change is made.
    again = await moderation.reject(app.db, [code], reason="off_topic", by="carole", now=t)
    assert again.refused == () and await status_of(app, code) == "rejected"


async def test_open_vote_refuses_rejection_and_allows_hiding(
        app: App, clock: FixedClock) -> None:
    voted = code_of(app, "Fresque murale")  # "pick": its vote is open
    done = await moderation.reject(app.db, [voted, "P9999"], reason="offensive", by="alice",
                                   now=clock())
    assert done.refused == ((voted, moderation.VOTE_OPEN), ("P9999", "no such proposal"))
    assert "only hidden" in moderation.VOTE_OPEN
    assert done.changed == 0 and await status_of(app, voted) == "published"
    assert await log_lines(app) == []

    hidden = await moderation.hide(app.db, [voted], reason="offensive", by="alice",
                                   now=clock())
    assert (hidden.status, hidden.changed, hidden.complete) == ("hidden", 1, True)
    # Hidden, it still cannot be rejected while the vote is open.
    again = await moderation.reject(app.db, [voted], by="alice", now=clock())
    assert again.refused == ((voted, moderation.VOTE_OPEN),)
    assert await status_of(app, voted) == "hidden"


async def test_hide_needs_a_known_reason_and_a_published_proposal(
        app: App, clock: FixedClock) -> None:
    waiting = await submit(app, "ideas", "Un foyer ouvert le dimanche", at=clock())
    done = await moderation.hide(app.db, [waiting, "P9999"], reason="spam", by="alice",
                                 now=clock())
    assert done.refused == ((waiting, moderation.NOT_PUBLISHED), ("P9999", "no such proposal"))
    assert await status_of(app, waiting) == "submitted"
    with pytest.raises(ConfigError, match="unknown reason 'rude': one of spam, offensive, "
                                          "off_topic, personal_data, duplicate, not_eligible"):
        await moderation.hide(app.db, [waiting], reason="rude", by="alice", now=clock())
    with pytest.raises(ConfigError, match="hiding needs a reason"):
        await moderation.set_status(app.db, [waiting], ProposalStatus.HIDDEN, by="alice")
    with pytest.raises(ConfigError, match="unknown decision 'submitted'"):
        await moderation.set_status(app.db, [waiting], ProposalStatus.SUBMITTED)
    assert set(moderation.REASON_LABELS_FR) == set(moderation.REASONS)


# --- hidden: out of participants' sight, ballots still counted ---------------------------------


async def test_a_hidden_proposal_leaves_lists_and_ballots_but_its_votes_count(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    mural, garden = code_of(app, "Fresque murale"), code_of(app, "Jardin partagé")
    one, two = await people(app, sender, 2)
    for person, ballot in ((one, f"{mural} {garden}"), (two, mural)):
        assert (await person.say(f"VOTE {ballot}")).startswith("Votre vote :")
        assert (await person.say("1")).startswith("A voté : ")

    await moderation.hide(app.db, [mural], reason="offensive", by="alice", now=clock())
    await app.refresh_catalog()

    assert "Fresque murale" not in await ballot_options(one)
    assert (await two.say(f"VOTE {mural}")).startswith(f"Je ne reconnais pas : {mural}.")
    staff = {listed.proposal.code: listed.status
             for listed in await moderation.list_proposals(app.db, "pick")}
    assert staff[mural] == "hidden"

    results = await campaign_results(app.db, "pick")
    lines = {line.proposal.code: line for line in results.lines}
    assert results.ballots == 2
    assert (lines[mural].votes, lines[mural].winner, lines[mural].proposal.hidden) == \
        (2, False, True)  # the most voted, but hidden: no winner while hidden
    assert (lines[garden].votes, lines[garden].winner) == (1, True)
    assert f"{mural},Fresque murale,50000,2,0,1" in format_results(results, "csv")
    assert format_results(results, "csv").splitlines()[0] == \
        "code,title,cost,votes,winner,hidden"
    shown = json.loads(format_results(results, "json"))["proposals"]
    assert [p["hidden"] for p in shown if p["code"] == mural] == [True]
    assert "Fresque murale [hidden]" in format_results(results, "table")

    # Published again after review: back in the lists.
    await moderation.publish(app.db, [mural], by="alice", now=clock())
    await app.refresh_catalog()
    assert "Fresque murale" in await ballot_options(one)


async def test_authors_hear_of_publication_once_not_of_hiding(
        app: App, clock: FixedClock) -> None:
    code = await submit(app, "ideas", "Un foyer ouvert le dimanche", at=clock())

    def by_sms(conn: Connection) -> None:  # its author, reachable by SMS
        author = conn.execute(participants.insert().values(
            channel="sms", address="+33600001001", locale="fr", status="active",
            consent_at=clock(), created_at=clock()).returning(participants.c.id)).scalar_one()
        conn.execute(proposals.update().where(proposals.c.id == int(code[1:]))
                     .values(author_id=author))

    await app.db.run(by_sms)

    async def told() -> list[str]:
        return list(await app.db.run(lambda conn: conn.execute(
            select(outbox.c.text).where(outbox.c.idempotency_key.like(f"proposal:{code[1:]}:%"))
        ).scalars().all()))

    notify = moderation.Notify(app.i18n, app.dispatcher.windows, clock())
    await moderation.publish(app.db, [code], notify=notify, by="alice")
    assert [text.startswith(f"Votre idée {code}") for text in await told()] == [True]
    await app.db.run(lambda conn: conn.execute(outbox.delete()))  # as `privacy purge` does
    await moderation.hide(app.db, [code], reason="offensive", by="alice", now=clock())
    await moderation.publish(app.db, [code], notify=notify, by="alice")  # shown again
    assert await told() == []


# --- reports by participants -----------------------------------------------------------------


async def test_three_distinct_reports_hide_a_proposal_pending_review(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    mural = code_of(app, "Fresque murale")
    one, two, three, four = await people(app, sender, 4)

    assert (await one.say(f"SIGNALER {mural}")).startswith(
        f"Merci, votre signalement de {mural} est bien noté. L'équipe va examiner cette idée.")
    assert (await one.say(f"signaler {mural.lower()}")).startswith(
        f"Vous avez déjà signalé {mural}, merci : c'est bien noté, inutile de le refaire.")
    assert await reports_of(app, mural) == 1
    assert (await two.say(f"Signaler {mural}")).startswith("Merci, votre signalement")
    assert await status_of(app, mural) == "published"
    assert await log_lines(app) == []

    clock.advance(minutes=5)
    assert (await three.say(f"SIGNALER {mural}")).startswith("Merci, votre signalement")
    assert await status_of(app, mural) == "hidden"
    assert await log_lines(app) == [("reports", "proposal.hide", f"{mural} reports=3",
                                     clock())]
    # Out of sight at once in this process (no catalog reload needed).
    assert int(mural[1:]) not in app.pipeline.catalog.proposals
    assert "Fresque murale" not in await ballot_options(four)
    assert (await four.say(f"SIGNALER {mural}")).startswith(
        f"Aucune idée publiée n'a le code {mural}.")
    assert await reports_of(app, mural) == 3

    waiting = await moderation.pending(app.db, "pick")
    assert [(w.proposal.code, w.status, w.reports) for w in waiting] == \
        [(mural, "hidden", 3)]

    # Reviewed and shown again: the reports are dismissed; 3 new ones would hide it again.
    await moderation.publish(app.db, [mural], by="alice", now=clock())
    assert await status_of(app, mural) == "published"
    assert await reports_of(app, mural) == 0
    assert (await log_lines(app))[-1][:3] == ("alice", "proposal.publish", f"{mural} reports=3")
    assert await moderation.pending(app.db, "pick") == []
    await app.refresh_catalog()
    assert (await one.say(f"SIGNALER {mural}")).startswith("Merci, votre signalement")
    assert await status_of(app, mural) == "published"


async def test_staff_hiding_a_reported_proposal_closes_its_review(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    mural = code_of(app, "Fresque murale")
    for person in await people(app, sender, 3):
        await person.say(f"SIGNALER {mural}")
    assert [w.proposal.code for w in await moderation.pending(app.db)] == [mural]
    done = await moderation.hide(app.db, [mural], reason="offensive", by="alice", now=clock())
    assert done.changed == 1
    assert await moderation.pending(app.db) == []
    assert (await log_lines(app))[-1][:3] == \
        ("alice", "proposal.hide", f"{mural} reason=offensive reports=3")


async def test_what_cannot_be_reported_is_answered_clearly(
        app: App, sender: RecordingSender, clock: FixedClock) -> None:
    waiting = await submit(app, "pick", "Une idée pas encore relue", at=clock())
    (person,) = await people(app, sender, 1)
    for text, answer in [
        ("SIGNALER P9999", "Aucune idée publiée n'a le code P9999."),
        (f"SIGNALER {waiting}", f"Aucune idée publiée n'a le code {waiting}."),
        ("SIGNALER", "Pour signaler une idée publiée, envoyez SIGNALER suivi de son code, "
                     "ex. SIGNALER P12."),
        ("SIGNALER P1 P2", "Pour signaler une idée publiée"),
    ]:
        assert (await person.say(text)).startswith(answer), text
    assert await app.db.run(lambda conn: conn.execute(
        select(func.count()).select_from(proposal_reports)).scalar_one()) == 0

    # Before consenting: nothing recorded; the consent question (too long to come again
    # with the answer in two SMS segments) still holds: "1" accepts.
    newcomer = Person(app, sender, address="+33699999999")
    await newcomer.say("bonjour")
    await newcomer.say("1")
    answer = await newcomer.say(f"SIGNALER {code_of(app, 'Fresque murale')}")
    assert answer == "Pour signaler une idée, terminons d'abord votre inscription."
    assert (await newcomer.say("1")).startswith("Vous avez :")
    assert await app.db.run(lambda conn: conn.execute(
        select(func.count()).select_from(proposal_reports)).scalar_one()) == 0


async def test_reports_in_english_and_occitan(app: App, sender: RecordingSender) -> None:
    mural = code_of(app, "Fresque murale")
    english = Person(app, sender, address="+33620000001")
    await english.onboard(language="2")
    assert (await english.say(f"REPORT {mural}")).startswith(
        f"Thank you, your report of {mural} has been noted.")
    assert (await english.say(f"report {mural}")).startswith(
        f"You have already reported {mural}")
    occitan = Person(app, sender, address="+33620000002")
    await occitan.onboard(language="3")
    assert (await occitan.say(f"SENHALAR {mural}")).startswith(
        f"Mercés, vòstre senhalament de {mural} es plan notat.")
    assert (await occitan.say("SENHALAR P9999")).startswith(
        "Cap d'idèa publicada a pas lo còdi P9999.")
    assert "REPORT P12" in await english.say("HELP")
    assert await reports_of(app, mural) == 2
