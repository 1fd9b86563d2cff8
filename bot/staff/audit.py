"""`votz CHANNEL audit`: what every text costs, in every language, where sending costs per unit.

Three parts. The real screens (`screens`): every step of every flow rendered by the engine
itself with the shipped campaigns, as a person on this channel receives it (prompt, numbered
options cut into pages, footer), for each campaign, each page of each list, in fr, en and oc,
for each kind of person (`PERSONAS`: 18-25 in Occitanie, outside Occitanie, 15-17, an
under-15 reader). The walks (`walks`): messages sent from a screen, every reply measured, so
that a notice said before a screen in the same reply is measured with it (a ballot refused,
the list changed, Suivre, RAPPELS NON, a 280-character idea). Then the templates: each flow
step with sample values, every other message alone. The channel's registry entry measures
(for SMS: rendered as sent, GSM-7 or UCS-2, segments). Any reply, screen or text over two
segments fails the audit; French prompts should average at most 1.2 segments. Campaigns in
their results phase get sample results (`sample_results`): as many winners as their rules
allow, from a four-figure count of ballots.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.campaign_files import read_campaigns
from bot.channels import registry
from bot.channels.base import Inbound, Reply, ReplyChoice
from bot.conversation.actions import LANGUAGE_NAMES
from bot.conversation.engine import (
    LIST,
    Context,
    Decision,
    Engine,
    EngineSettings,
    Pick,
    State,
    Turn,
    render,
)
from bot.conversation.flows import FlowSet
from bot.domain.ballots import Proposal
from bot.domain.campaigns import PARIS, Campaign, Phase
from bot.domain.catalog import Catalog
from bot.domain.participants import Profile
from bot.domain.results import CastBallot, Standing
from bot.errors import ConfigError
from bot.i18n import LOCALES, I18n, Msg, PluralMsg, Translator
from bot.staff import Measure, measured

MAX_SEGMENTS = 2
TARGET_MEAN = 1.2

SAMPLES: dict[str, object] = {
    "campaign": "Budget participatif des lycées",
    "title": "Budget participatif des lycées",
    "details": "Proposez et votez pour les projets de votre lycée.",
    "summary": "Proposez et votez pour les projets de votre lycée.",
    "phase": "vote",
    "when": " (jusqu'au 16 octobre 2026)",
    "date": "16 octobre 2026",
    "until": "16 octobre 2026",
    "codes": "P3, P7, P12",
    "code": "P12",
    "max": 3,
    "n": 3,
    "length": 312,
    "rules": "Choisissez jusqu'à 3 projets : envoyez leurs numéros (ex. 1 2).",
    "current": "",
    "choices": "P3 Jardin partagé\nP7 Vélos en prêt\nP12 Fresque",
    "total": "",
    "envelope": "500 000 €",
    "minimum": "250 000 €",
    "text": "Un bus le samedi soir entre les villages et la gare",
    "url": "https://www.laregioncitoyenne.fr/votz/confidentialite",
    "contact": "participation@laregion.fr",
    "language": "Français",
    "consent": "25 nov. 2026 20:11",
    "age": "18-25 ans",
    "postcode": "48000",
    "address": "+33612345678",
    "proposals": 1,
    "ballots": "P3, P7",
    "page": 1,
    "pages": 3,
    "winners": "P3 Jardin partagé\nP7 Vélos en prêt",
}
SAMPLE_OPTIONS = ("Budget participatif des lycées", "Ta Région demain", "Budget des villages")


SAMPLE_ADDRESS = "+33612345678"

# The people the real screens are rendered for: what differs is what they may do (a campaign
# page offers Voter, or says why not; "Voter" lists campaigns to read). "" is the label of the
# first one (screens without a persona in their name).
PERSONAS: dict[str, dict[str, object]] = {
    "": {"age_bracket": "18-25", "postal_code": "31000", "departement": "31"},
    "outside": {"age_bracket": "35-49", "postal_code": "75001", "departement": "75"},
    "15-17": {"age_bracket": "15-17", "postal_code": "31000", "departement": "31"},
    "reader": {"consent_at": None},  # under 15: nothing kept, campaigns to read
}

# An idea at the campaigns' limit (280 characters), echoed before "On l'envoie ?".
LONG_IDEA = (
    "Un bus le samedi soir entre les villages et la gare, avec un arrêt sur chaque place du "
    "marché, des horaires affichés en mairie, une réservation par SMS la veille et des "
    "places pour les vélos, pour que les jeunes rentrent des soirées sans voiture ni danger "
    "sur les routes la nuit !"
)
EMOJI_IDEA = "🚌 Un bus le samedi soir entre les villages et la gare, pour rentrer des soirées 🎉"


@dataclass(frozen=True, slots=True)
class Walk:
    """Messages sent one after the other from a screen (`step`, for each campaign where it
    renders), every reply measured: what is said before a screen in the same reply is part
    of it. In `texts`, `#id` is the number of the option `id` on the screen just received,
    `{all}` every number of the campaign's list (too many, over the envelope), `{idea}` and
    `{emoji}` ideas to send, `{too_long}` one over the limit."""

    step: str
    texts: tuple[str, ...]
    following: bool = False  # the person follows the campaign (Ne plus suivre)
    withdrawn: bool = False  # a proposal withdrawn since the list was shown (list changed)
    deep_link: bool = False  # the campaign came from a poster's link (before onboarding)


WALKS = (
    # Ballot refused (too many, over the envelope), then SUITE: page 1 shortened under the
    # notice, the next pages carrying on from where it ended.
    Walk("vote.choose", ("{all}", "SUITE", "SUITE", "SUITE")),
    Walk("vote.choose", ("1",)),  # under a budget's minimum
    Walk("vote.choose", ("1 98 99", "1 98 99")),  # numbers not on the list, twice (AIDE)
    Walk("vote.choose", ("2",), withdrawn=True),  # "the list has changed" and the list again
    Walk("vote.choose", ("RAPPELS NON", "RAPPELS OUI")),
    Walk("browse.detail", ("VOTE {all}", "VOTE 98 99", "VOTE", "PROPOSER")),
    Walk("browse.detail", ("#follow",)),
    Walk("browse.detail", ("#unfollow",), following=True),
    Walk("browse.detail", ("RAPPELS NON", "RAPPELS OUI")),
    Walk("main.menu", ("VOTE 1 2", "VOTE 1 2 3 4", "VOTE", "PROPOSER", "RAPPELS NON")),
    Walk("onboarding.age", ("1",)),  # under 15: what is kept (nothing), then campaigns
    Walk("onboarding.age", ("1",), deep_link=True),  # the same, from a campaign's poster
    Walk("propose.text", ("{idea}", "2", "{too_long}", "{emoji}")),
)


@dataclass(frozen=True, slots=True)
class AuditLine:
    locale: str
    what: str  # a step reference or a message key
    prompt: bool
    encoding: str
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2): what segments are cut from
    segments: int
    screen: bool = False  # a real screen (`screens`), not a template with sample values


def _sample(template: str, t: Translator) -> dict[str, object]:
    """Plausible values, in the language of the text, for the placeholders of `template`."""
    localised: dict[str, object] = {
        "rules": t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", 3,
                                    example="1 2")),
        "phase": t("phase.vote"),
        "when": t("browse.until", date=SAMPLES["date"]),
        "language": t(LANGUAGE_NAMES[t.locale]),
        "age": t("age.18_25"),
    }
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return {name: localised.get(name, SAMPLES.get(name, "x" * 10)) for name in names}


def audit(i18n: I18n, flows: FlowSet, measure: Measure | None = None) -> list[AuditLine]:
    """Every text measured by `measure` (default: the first channel that charges per unit)."""
    if measure is None:
        channels = measured()
        if not channels:
            raise ConfigError("no channel charges per message: nothing to audit")
        measure = next(iter(channels.values()))
    lines: list[AuditLine] = []
    seen_in_steps: set[str] = set()
    for locale in LOCALES:
        t = i18n[locale]
        for ref, step in flows.steps.items():
            if step.say is None:
                continue
            seen_in_steps.add(step.say)
            template = t(step.say) if "{" not in t(step.say) else t.render(Msg(step.say))
            text = t.render(Msg(step.say, _sample(template, t)))
            if step.choices:
                choices = [ReplyChoice(c.id, str(i), t(c.label))
                           for i, c in enumerate(step.choices, 1)]
            else:
                choices = [ReplyChoice(str(i), str(i), label)
                           for i, label in enumerate(SAMPLE_OPTIONS, 1)] if step.source else []
            lines.append(_line(measure, locale, ref, True, Reply(text, choices)))
    catalog_keys = i18n["fr"].keys()
    for locale in LOCALES:
        t = i18n[locale]
        for key in sorted(catalog_keys - seen_in_steps):
            template = t(key) if "{" not in t(key) else t.render(Msg(key))
            lines.append(_line(measure, locale, key, False,
                               Reply(t.render(Msg(key, _sample(template, t))))))
    return lines


def shipped_catalog(campaigns_dir: Path, now: datetime) -> Catalog:
    """The campaigns of `campaigns_dir` as the conversation would offer them once loaded:
    ids given in order, every seed proposal published (codes from P100: the widest), sample
    results where a campaign shows them (`sample_results`)."""
    campaigns = read_campaigns(campaigns_dir, today=now.astimezone(PARIS).date(), now=now)
    stored = []
    proposals: dict[int, Proposal] = {}
    for number, campaign in enumerate(campaigns, 1):
        stored.append(dataclasses.replace(campaign, id=number))
        for seed in campaign.seed_proposals:
            pid = 100 + len(proposals)
            proposals[pid] = Proposal(id=pid, campaign_id=number, title=seed.title,
                                      cost=seed.cost, ref=seed.ref, short=seed.short)
    catalog = Catalog(campaigns=tuple(stored), proposals=proposals)
    results = sample_results(catalog, now)
    winners = {c: tuple(line.proposal.id for line in s.winners) for c, s in results.items()}
    return dataclasses.replace(catalog, results=results, winners=winners)


def sample_results(catalog: Catalog, now: datetime) -> dict[int, Standing]:
    """Results for each campaign of `catalog` in its results phase, counted by the real tally
    from sample ballots: as many winners as its rules allow (the cheapest proposals voted
    most, so that an envelope holds the most), over a thousand ballots, from the sample
    person's département (31) and from others with fewer than 5 (figures hidden)."""
    results: dict[int, Standing] = {}
    for campaign in catalog.campaigns:
        if campaign.phase_at(now) is not Phase.RESULTS:
            continue
        proposals = catalog.published(campaign.id)
        ranked = sorted(proposals, key=lambda p: (p.cost or 0, p.id))
        ballots = [CastBallot((p.id,), "18-25", "31" if n % 3 else "34")
                   for rank, p in enumerate(ranked) for n in range(100 + 40 * (len(ranked) - rank))]
        ballots += [CastBallot((ranked[0].id,), "26-34", "75")] * 2 if ranked else []
        results[campaign.id] = Standing.of(campaign, proposals, ballots)
    return results


class _Results(dict[str, object]):
    """What the store would answer after applying effects: a code for every value asked."""

    def __missing__(self, key: str) -> object:
        return "P123"


def _context(i18n: I18n, catalog: Catalog, settings: EngineSettings, now: datetime,
             locale: str, persona: str, *, page_segments: int | None,
             verified_address: bool, **profile: object) -> Context:
    """What the engine knows when `persona` writes in `locale`: someone who has voted in
    every campaign they may vote in (a ballot of the longest titles), a reader nowhere."""
    person = {"consent_at": now, "phone": SAMPLE_ADDRESS, **PERSONAS[persona], **profile}
    ballots = {} if person["consent_at"] is None else {
        c.id: _longest(catalog, c) for c in catalog.campaigns}
    return Context(now=now, profile=Profile(id=1, locale=locale, **person),  # type: ignore[arg-type]
                   catalog=catalog, settings=settings, i18n=i18n,
                   ballots={k: v for k, v in ballots.items() if v},
                   page_segments=page_segments, address=SAMPLE_ADDRESS,
                   verified_address=verified_address)


def _named(what: str, persona: str) -> str:
    return f"{what} ({persona})" if persona else what


def screens(i18n: I18n, engine: Engine, catalog: Catalog, measure: Measure, *,
            settings: EngineSettings, now: datetime | None = None,
            page_segments: int | None = 2, verified_address: bool = True,
            personas: tuple[str, ...] = tuple(PERSONAS)) -> list[AuditLine]:
    """Every step of every flow as the engine renders it on this channel: for each locale,
    each of `personas`, each campaign of `catalog` (and none), each page of the step's list.
    A person who has voted in every campaign (their current vote shown), with a ballot of
    the longest proposals drafted and a typical idea written. Identical screens are
    measured once."""
    now = now or datetime.now(UTC)
    lines: list[AuditLine] = []
    for locale in LOCALES:
        seen: set[str] = set()
        for persona in personas:
            ctx = _context(i18n, catalog, settings, now, locale, persona,
                           page_segments=page_segments, verified_address=verified_address)
            lines += _screens(engine, catalog, ctx, measure, persona, seen)
    return lines


def _screens(engine: Engine, catalog: Catalog, ctx: Context, measure: Measure, persona: str,
             seen: set[str]) -> list[AuditLine]:
    lines: list[AuditLine] = []
    for ref, step in engine.flows.steps.items():
        if step.say is None:
            continue
        for campaign in (None, *catalog.campaigns):
            data: dict[str, object] = {"draft": SAMPLES["text"]}
            what = ref
            if campaign is not None:
                data.update(campaign=campaign.slug, ballot=list(ctx.ballots.get(campaign.id, ())))
                what = f"{ref} {campaign.slug}"
            what = _named(what, persona)
            first: tuple[str, ...] | None = None
            for page in range(50):
                turn = Turn(ctx, engine.flows, State(ref, dict(data)))
                turn.page = page
                try:
                    engine.enter(turn, ref)
                except (AssertionError, KeyError, TypeError):
                    break  # this step needs a campaign (or another one): not its screen
                decision = turn.decision()
                shown = tuple(o.id for o in decision.options)
                if page and shown == first:
                    break  # back at the first page: every page seen
                first = shown if first is None else first
                label = what if not page else f"{what} p{page + 1}"
                lines += _measured(decision, ctx, measure, label, seen)
                if decision.state is not None and decision.state.step == ref:
                    asked = [f"{o.key} ?" for o in decision.options if o.detail]
                    for text in ("AIDE", "INFO", *asked):  # help, details
                        lines += _details(engine, decision.state, text, ctx, measure,
                                          f"{what} {text}", seen)
                if decision.footer is None:
                    break  # one page
    return lines


def _measured(decision: Decision, ctx: Context, measure: Measure, what: str,
              seen: set[str]) -> list[AuditLine]:
    """The reply of `decision` measured, unless the same was measured already."""
    if not decision.messages:
        return []
    reply = _reply(decision, ctx.i18n)
    body = reply.text + "|" + "|".join(c.label for c in reply.choices) + reply.footer
    if body in seen:
        return []
    seen.add(body)
    return [dataclasses.replace(_line(measure, ctx.profile.locale, what, False, reply),
                                screen=True)]


def walks(i18n: I18n, engine: Engine, catalog: Catalog, measure: Measure, *,
          settings: EngineSettings, now: datetime | None = None,
          page_segments: int | None = 2, verified_address: bool = True,
          personas: tuple[str, ...] = tuple(PERSONAS)) -> list[AuditLine]:
    """The replies along each of `WALKS`, from each campaign's screen (and none), for each
    locale and persona: `vote.choose vie-etudiante-demo > 1 2 3 4 (outside)`."""
    now = now or datetime.now(UTC)
    lines: list[AuditLine] = []
    for locale in LOCALES:
        seen: set[str] = set()
        for persona in personas:
            for walk in WALKS:
                new = {"age_bracket": None, "postal_code": None, "departement": None} \
                    if walk.step.startswith("onboarding.") else {}
                if new and persona:
                    continue  # before the age is known, every persona is the same
                ctx = _context(i18n, catalog, settings, now, locale, persona,
                               page_segments=page_segments,
                               verified_address=verified_address, **new)
                for campaign in (None, *catalog.campaigns):
                    for what, decision in _walk(engine, catalog, ctx, walk, campaign):
                        lines += _measured(decision, ctx, measure, _named(what, persona), seen)
    return lines


def _walk(engine: Engine, catalog: Catalog, ctx: Context, walk: Walk,
          campaign: Campaign | None) -> Iterator[tuple[str, Decision]]:
    """Each message of `walk` sent from its screen, and the reply to it."""
    data: dict[str, object] = {}
    where = walk.step
    if campaign is not None:
        data = {"deep_link" if walk.deep_link else "campaign": campaign.slug}
        where = f"{walk.step} {campaign.slug}"
        if walk.following:
            ctx = dataclasses.replace(ctx, following={campaign.id: True})
    elif walk.deep_link or walk.following:
        return
    turn = Turn(ctx, engine.flows, State(walk.step, data))
    try:
        engine.enter(turn, walk.step)
    except (AssertionError, KeyError, TypeError):
        return  # this step needs a campaign (or another one)
    decision = turn.decision()
    if decision.state is None or decision.state.step != walk.step:
        return  # not a screen this campaign shows (its vote is over)
    if walk.withdrawn and LIST in decision.state.data:
        listed = decision.state.data[LIST]
        state: State = dataclasses.replace(decision.state, data={
            **decision.state.data, LIST: ["0", *listed]})
    else:
        state = decision.state
    numbers = len(catalog.published(campaign.id)) if campaign is not None else 4
    fills: Mapping[str, str] = {
        "{all}": " ".join(str(n) for n in range(1, numbers + 1)), "{idea}": LONG_IDEA,
        "{too_long}": f"{LONG_IDEA} {LONG_IDEA}", "{emoji}": EMOJI_IDEA}
    for text in walk.texts:
        if text.startswith("#"):
            key = next((o.key for o in decision.options if o.id == text[1:]), None)
            if key is None:
                return  # no such choice here (Suivre on a page already followed)
            text = key
        for name, value in fills.items():
            text = text.replace(name, value)
        try:
            decision = engine.advance(state, Inbound("audit", SAMPLE_ADDRESS, text), ctx)
        except (AssertionError, KeyError, TypeError):
            return
        shown = text if len(text) <= 24 else f"{text[:20]}...({len(text)})"
        yield f"{where} > {shown}", decision
        if decision.state is None:
            return
        state = decision.state


def _details(engine: Engine, state: State, text: str, ctx: Context, measure: Measure,
             what: str, seen: set[str]) -> list[AuditLine]:
    """The answer to AIDE, INFO or `3 ?` at this screen (the help, or the details)."""
    decision = engine.advance(state, Inbound("audit", SAMPLE_ADDRESS, text), ctx)
    return _measured(decision, ctx, measure, what, seen)


def channel_audit(name: str, i18n: I18n, engine: Engine, campaigns_dir: Path,
                  settings: EngineSettings, now: datetime | None = None) -> list[AuditLine]:
    """`votz NAME audit`: the real screens with the campaigns of `campaigns_dir`, paged as
    the channel pages them, then the templates."""
    channel = registry.channel(name)
    if channel.measure is None:
        raise ConfigError(f"{name}: sending costs nothing per message: nothing to audit")
    now = now or datetime.now(UTC)
    catalog = shipped_catalog(campaigns_dir, now)
    can = channel.capabilities
    shown = screens(i18n, engine, catalog, channel.measure, settings=settings, now=now,
                    page_segments=can.page_segments, verified_address=can.verified_address)
    walked = walks(i18n, engine, catalog, channel.measure, settings=settings, now=now,
                   page_segments=can.page_segments, verified_address=can.verified_address)
    return shown + walked + audit(i18n, engine.flows, channel.measure)


def _longest(catalog: Catalog, campaign: Campaign) -> tuple[int, ...]:
    """A valid-looking ballot of the campaign's longest labels (as many as allowed)."""
    published = catalog.published(campaign.id)
    published.sort(key=lambda p: -len(p.label("fr")))
    return tuple(p.id for p in published[:campaign.ballot.max_choices])


def _reply(decision: Decision, i18n: I18n) -> Reply:
    """The reply as the pipeline builds it, with sample values where the store answers."""
    messages = tuple(Msg(m.keys[next(iter(m.keys))], m.params) if isinstance(m, Pick) else m
                     for m in decision.messages)
    decision = dataclasses.replace(decision, messages=messages)
    t = i18n[decision.locale]
    return Reply(render(decision, i18n, _Results()),
                 tuple(ReplyChoice(o.id, o.key, o.label, o.code) for o in decision.options),
                 t.render(decision.footer) if decision.footer else "", decision.turn)


def _line(measure: Measure, locale: str, what: str, prompt: bool, reply: Reply) -> AuditLine:
    cost = measure(reply)
    return AuditLine(locale, what, prompt, cost.encoding, cost.units, cost.segments)


def report(lines: list[AuditLine]) -> tuple[str, bool]:
    """A printable table and whether the audit passes."""
    out = [f"{'lang':4} {'text':40} {'encoding':8} {'units':>5} {'segments':>8}"]
    ok = True
    for line in lines:
        flag = ""
        if line.segments > MAX_SEGMENTS:
            flag, ok = "  <- over 2 segments", False
        out.append(f"{line.locale:4} {line.what:40} {line.encoding:8} {line.units:>5} "
                   f"{line.segments:>8}{flag}")
    for locale in LOCALES:
        shown = [x.segments for x in lines if x.locale == locale and x.screen]
        if shown:
            out.append(f"{locale}: {len(shown)} screens, mean {sum(shown) / len(shown):.2f} "
                       f"segments, max {max(shown)}")
        prompts = [x.segments for x in lines if x.locale == locale and x.prompt]
        if not prompts:
            continue
        mean = sum(prompts) / len(prompts)
        mark = "" if mean <= TARGET_MEAN or locale != "fr" else f"  <- above {TARGET_MEAN}"
        ok = ok and (mean <= TARGET_MEAN or locale != "fr")
        out.append(f"{locale}: {len(prompts)} prompts, mean {mean:.2f} segments per prompt{mark}")
    return "\n".join(out) + "\n", ok


__all__ = ["PERSONAS", "WALKS", "AuditLine", "Walk", "audit", "channel_audit", "report",
           "sample_results", "screens", "shipped_catalog", "walks"]
