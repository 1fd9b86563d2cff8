"""The pure conversation engine: `advance(state, inbound, context) -> Decision`.

No I/O, no clock, no awaits: everything it needs arrives in `Context`, everything it wants
done leaves as `effects`. Order of handling for one message:

1. a stopped participant hears nothing but the answer to START (or HELP);
2. a new conversation starts onboarding;
3. global keywords (MENU, AIDE, STOP, LANGUE, ANNULER, RAPPELS NON, VOTE 3 7 12,
   SIGNALER P12) interrupt any step: a keyword is the whole message, one word or a phrase;
   only VOTE and SIGNALER take codes after it. ANNULER at a step that offers its own cancel
   choice is that choice;
4. an idle conversation resumes at the menu with a short notice;
5. otherwise the current step reads the input, runs its action and moves on. An answer it
   cannot read is asked again briefly ("Répondez 1 ou 2."), with AIDE from the second miss in
   a row; the full message stays on screen above it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.channels.base import Inbound
from bot.conversation.effects import Effect, SetStatus
from bot.conversation.flows import KEYWORD_TARGETS, FlowSet, Step
from bot.conversation.matching import MAX_INPUT, Option, clean, fold, match_many, match_one
from bot.domain.campaigns import Campaign
from bot.domain.catalog import Catalog
from bot.domain.participants import Profile, Status
from bot.i18n import N_, I18n, Msg, Translator

MAX_HOPS = 12
_CODE = re.compile(r"p?\d{1,9}")


@dataclass(frozen=True, slots=True)
class State:
    """Where a conversation is: a step reference (`vote.confirm`) and its scratch data."""

    step: str
    data: Mapping[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EngineSettings:
    privacy_url: str
    contact: str
    idle_timeout: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime
    profile: Profile
    catalog: Catalog
    settings: EngineSettings
    i18n: I18n
    ballots: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # campaign id → ids
    following: Mapping[int, bool] = field(default_factory=dict)  # campaign id → follows it
    proposal_counts: Mapping[int, int] = field(default_factory=dict)  # campaign id → count
    page_chars: int | None = None  # characters of options shown at once (SMS); None: all
    asks_contact: bool = False  # the channel can ask for a verified phone number (a button)
    buttons: bool = False  # options are tapped (Telegram), not typed by number
    address: str = ""  # the phone number or account, shown in "my data"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one message: new state (None: forget the conversation), what to say."""

    state: State | None
    messages: tuple[Msg | Pick, ...]
    options: tuple[Option, ...]
    locale: str
    effects: tuple[Effect, ...]
    footer: Msg | None = None  # shown after the options ("SUITE for more")
    turn: int = 0
    ask_contact: bool = False  # the step wants a verified phone number (Telegram's button)

    @property
    def silent(self) -> bool:
        return not self.messages


class Turn:
    """The scratch pad of one `advance` call, handed to actions, views and sources."""

    def __init__(self, ctx: Context, flows: FlowSet, state: State | None) -> None:
        self.ctx = ctx
        self.flows = flows
        self.now = ctx.now
        self.profile = ctx.profile
        self.data: dict[str, Any] = dict(state.data) if state else {}
        self.step = state.step if state else ""
        self.effects: list[Effect] = []
        self.messages: list[Msg | Pick] = []
        self.options: tuple[Option, ...] = ()
        self.footer: Msg | None = None
        self.ask_contact = False
        self.contact: str | None = None
        self.page = 0
        self.forget = False
        # What this turn changed is shown at once (a campaign page after Suivre).
        self.following: dict[int, bool] = dict(ctx.following)
        self.previous_turn = int(state.data.get("_t", 0)) if state else 0
        self.turn_no = self.previous_turn + 1
        self.data.pop("_t", None)
        # Answers not understood in a row at this step; any other turn starts again at 0.
        self.missed = int(self.data.pop("_miss", 0))
        self.keep_turn = False  # a reply without options: the numbers shown before still hold

    @property
    def t(self) -> Translator:
        return self.ctx.i18n[self.profile.locale]

    def notice(self, key: str, /, **params: Any) -> None:
        self.messages.append(Msg(key, params))

    def say(self, msg: Msg | Pick) -> None:
        self.messages.append(msg)

    def effect(self, effect: Effect) -> None:
        self.effects.append(effect)

    def update_profile(self, **changes: Any) -> None:
        self.profile = dataclasses.replace(self.profile, **changes)

    def campaign(self) -> Campaign | None:
        return self.ctx.catalog.by_slug(self.data.get("campaign"))

    def decision(self) -> Decision:
        data = dict(self.data)
        turn_no = self.previous_turn if self.keep_turn else self.turn_no
        if self.messages and not self.keep_turn:
            data["_t"] = self.turn_no  # buttons of this reply carry it back
        elif self.previous_turn:
            data["_t"] = self.previous_turn
        state = None if self.forget else State(self.step, data, self.now)
        return Decision(
            state=state,
            messages=tuple(self.messages),
            options=self.options,
            locale=self.profile.locale,
            effects=tuple(self.effects),
            footer=self.footer,
            turn=turn_no,
            ask_contact=self.ask_contact,
        )


Action = Callable[[Turn, Any], str]
View = Callable[[Turn], dict[str, Any]]
Source = Callable[[Turn], Sequence[Option]]
Shortcut = Callable[[Turn, list[str]], str]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """The Python half of the flows: named actions, views and choice sources."""

    actions: Mapping[str, Action]
    views: Mapping[str, View]
    sources: Mapping[str, Source]
    vote_shortcut: Shortcut
    help: Callable[[Turn], object]
    reminders: Callable[[Turn, bool], object]  # RAPPELS NON / RAPPELS OUI
    report: Callable[[Turn, list[str]], object]  # SIGNALER P12 (the codes typed after it)


class Engine:
    def __init__(self, flows: FlowSet, behaviour: Behaviour) -> None:
        self.flows = flows
        self.behaviour = behaviour

    # --- one message --------------------------------------------------------------------

    def advance(self, state: State | None, inbound: Inbound, ctx: Context) -> Decision:
        turn = Turn(ctx, self.flows, state)
        turn.contact = inbound.contact
        text = clean(inbound.text)[:MAX_INPUT] if inbound.choice is None else ""
        folded = fold(text)
        words = folded.split()
        keyword = self.flows.keywords.get(folded)  # the whole message: AIDE, RAPPELS NON
        if keyword is None and len(words) > 1 and self.flows.keywords.get(words[0]) == "vote" \
                and self._reads_as_vote(state, words):
            keyword = "vote"
        if keyword is None and len(words) > 1 and self.flows.keywords.get(words[0]) == "report" \
                and all(_CODE.fullmatch(word) for word in words[1:]):
            keyword = "report"  # "SIGNALER P12" is never an answer, not even free text

        if inbound.opt_out in ("STOP", "START"):
            # The provider already answered the person (Twilio Advanced Opt-Out): follow, quietly.
            status = Status.STOPPED if inbound.opt_out == "STOP" else Status.ACTIVE
            if turn.profile.status is not status:
                turn.effect(SetStatus(status))
            return turn.decision()

        if turn.profile.status is Status.STOPPED:
            if keyword == "start":
                turn.effect(SetStatus(Status.ACTIVE))
                turn.update_profile(status=Status.ACTIVE)
                turn.notice("start.back")
                self.enter(turn, "main.menu" if turn.profile.onboarded else turn.step
                           or "onboarding.language")
            elif keyword == "help":
                self.behaviour.help(turn)
            return turn.decision()

        if keyword == "stop":
            turn.effect(SetStatus(Status.STOPPED))
            turn.update_profile(status=Status.STOPPED)
            turn.notice("stop.confirm")
            turn.step = "main.menu" if turn.profile.onboarded else "onboarding.language"
            turn.data = {}
            return turn.decision()

        if (inbound.choice is not None and inbound.turn is not None and state is not None
                and inbound.turn != turn.previous_turn):
            # A button from an earlier message: say so, never act on it twice.
            turn.notice("common.stale")
            self.enter(turn, state.step if state.step in self.flows.steps else "main.menu")
            return turn.decision()

        if inbound.start_payload and ctx.catalog.by_slug(inbound.start_payload):
            return self.deep_link(turn, state, inbound.start_payload)

        if state is None or state.step not in self.flows.steps:
            self.enter(turn, "onboarding.language")
            return turn.decision()

        if keyword is not None and keyword != "start":
            self.on_keyword(turn, keyword, words[1:])
            return turn.decision()
        if keyword == "start":
            self.enter(turn, "main.menu" if turn.profile.onboarded else turn.step)
            return turn.decision()

        idle = ctx.settings.idle_timeout
        if (
            state.updated_at is not None
            and ctx.now - state.updated_at > idle
            and turn.profile.onboarded
            and state.step != "main.menu"
        ):
            turn.data = {}
            turn.notice("common.resumed")
            self.enter(turn, "main.menu")
            return turn.decision()

        self.answer(turn, self.flows[state.step], text, inbound.choice)
        return turn.decision()

    def _reads_as_vote(self, state: State | None, words: list[str]) -> bool:
        """`VOTE 3 P7 12` is a command; "Vote électronique…" typed as a proposal is not."""
        if state is not None and state.step in self.flows.steps \
                and self.flows[state.step].input == "text":
            return False
        return all(_CODE.fullmatch(word) for word in words[1:])

    def deep_link(self, turn: Turn, state: State | None, slug: str) -> Decision:
        """A poster's link opens its campaign, after onboarding when needed."""
        if turn.profile.onboarded:
            turn.data = {"campaign": slug}
            self.enter(turn, "browse.detail")
        else:
            turn.data["deep_link"] = slug
            step = state.step if state is not None and state.step in self.flows.steps \
                else "onboarding.language"
            self.enter(turn, step)
        return turn.decision()

    def recover(self, state: State | None, ctx: Context) -> Decision:
        """After an unexpected error: apologise and go back to the menu (or onboarding)."""
        turn = Turn(ctx, self.flows, state)
        turn.notice("common.error")
        self.enter(turn, "main.menu" if turn.profile.onboarded else "onboarding.language")
        return turn.decision()

    def on_keyword(self, turn: Turn, keyword: str, rest: list[str]) -> None:
        onboarded = turn.profile.onboarded
        if keyword == "help":
            self.behaviour.help(turn)
            self.enter(turn, turn.step)
        elif keyword == "more":
            turn.page = int(turn.data.get("_page", 0)) + 1
            self.enter(turn, turn.step)
        elif keyword == "language":
            self.enter(turn, "settings.language" if onboarded else "onboarding.language")
        elif keyword == "report":  # consent is enough (checked there), as is the step
            self.behaviour.report(turn, rest)
            self.enter(turn, turn.step)
        elif not onboarded:
            turn.notice("onboarding.finish_first")
            self.enter(turn, turn.step)
        elif keyword == "menu":
            turn.data = {}
            self.enter(turn, "main.menu")
        elif keyword == "cancel" and any(c.id == "cancel" for c in self.flows[turn.step].choices):
            # The step's own Annuler (a ballot's confirmation): what it cancels, it tidies up.
            self.answer(turn, self.flows[turn.step], "", "cancel")
        elif keyword == "cancel":
            turn.data = {}
            turn.notice("common.cancelled")
            self.enter(turn, "main.menu")
        elif keyword == "vote":
            turn.data = {}
            target = self.behaviour.vote_shortcut(turn, rest) if rest else "vote.start"
            self.enter(turn, target)
        elif keyword in ("reminders_off", "reminders_on"):
            self.behaviour.reminders(turn, keyword == "reminders_on")
            self.enter(turn, turn.step)
        elif keyword in KEYWORD_TARGETS:
            turn.data = {}
            self.enter(turn, KEYWORD_TARGETS[keyword])

    # --- steps ----------------------------------------------------------------------------

    def options(self, turn: Turn, step: Step) -> tuple[Option, ...]:
        if step.source is not None:
            return tuple(self.behaviour.sources[step.source](turn))
        t = turn.t
        return tuple(
            Option(id=c.id, key=str(i), label=t(c.label), means=c.means)
            for i, c in enumerate(step.choices, 1)
        )

    def enter(self, turn: Turn, ref: str) -> None:
        """Move to `ref`, running automatic steps, and prompt there."""
        for _ in range(MAX_HOPS):
            step = self.flows[ref]
            if ref == "main.menu":
                turn.data = {}  # back at the menu, nothing chosen before carries over
            turn.step = ref
            if step.automatic:
                assert step.action is not None
                outcome = self.behaviour.actions[step.action](turn, None)
                if turn.forget:
                    return
                ref = self._target(step, outcome)
                continue
            options = self.options(turn, step)
            if not options and step.input in ("one", "many"):
                turn.notice(step.empty or N_("common.nothing"))
                ref = "main.menu"
                continue
            params = self.behaviour.views[step.view](turn) if step.view else {}
            assert step.say is not None
            turn.say(Msg(step.say, params))
            turn.options = self._page(turn, options)
            turn.ask_contact = step.input == "contact"
            return
        raise RuntimeError(f"flow loop through {ref}")

    def _page(self, turn: Turn, options: tuple[Option, ...]) -> tuple[Option, ...]:
        """The options shown now; every option stays accepted, shown or not."""
        budget = turn.ctx.page_chars
        turn.data.pop("_page", None)
        if budget is None:
            return options
        pages: list[list[Option]] = [[]]
        used = 0
        for option in options:
            width = len(option.key) + len(option.label) + 2
            if pages[-1] and used + width > budget:
                pages.append([])
                used = 0
            pages[-1].append(option)
            used += width
        if len(pages) == 1:
            return options
        page = turn.page % len(pages)
        if page:
            turn.data["_page"] = page
        turn.footer = Msg(N_("common.more"), {"page": page + 1, "pages": len(pages)})
        return tuple(pages[page])

    def reask(self, turn: Turn, step: Step, options: tuple[Option, ...]) -> None:
        """A miss: ask again in one short line naming the numbers on screen (the full message
        is still above it), offering AIDE from the second miss in a row at this step."""
        turn.step = step.ref
        turn.data["_miss"] = turn.missed + 1
        turn.page = int(turn.data.get("_page", 0))
        shown = self._page(turn, options)
        if turn.ctx.buttons:  # buttons carry no number: show them again under the line
            turn.notice(N_("common.reask_buttons_help") if turn.missed
                        else N_("common.reask_buttons"))
            turn.options = shown
            return
        turn.footer = None
        turn.keep_turn = True
        keys = [o.key for o in shown]
        t = turn.t
        if step.input == "many":
            numbers = t("common.reask_several", first=keys[0], last=keys[-1])
        elif len(keys) == 1:
            numbers = keys[0]
        elif len(keys) <= 4:
            numbers = t("common.reask_or", some=", ".join(keys[:-1]), last=keys[-1])
        else:
            numbers = t("common.reask_range", first=keys[0], last=keys[-1])
        turn.notice(N_("common.reask_help") if turn.missed else N_("common.reask"),
                    numbers=numbers)

    def _target(self, step: Step, outcome: str) -> str:
        target = step.target(outcome)
        if target is None:
            raise RuntimeError(f"{step.ref}: no next step for outcome {outcome!r}")
        return target

    def answer(self, turn: Turn, step: Step, text: str, choice: str | None) -> None:
        if step.automatic:  # a conversation saved on an automatic step: run it again
            self.enter(turn, step.ref)
            return
        value: Any
        if step.input == "text":
            value = text
        elif step.input == "contact":
            value = turn.contact
        else:
            options = self.options(turn, step)
            if step.input == "many" and choice is None:
                found, unknown = match_many(text, options)
                if unknown or not found:
                    if unknown:
                        shown = ", ".join(unknown[:3]) + (" ..." if len(unknown) > 3 else "")
                        turn.notice("common.unknown_codes", codes=shown)
                    self.reask(turn, step, options)
                    return
                value = [o.id for o in found]
            else:
                option = match_one(text, options, choice_id=choice, answers=self.flows.answers)
                if option is None:
                    self.reask(turn, step, options)
                    return
                value = [option.id] if step.input == "many" else option.id
        if step.action is None:
            outcome = str(value)
        else:
            outcome = self.behaviour.actions[step.action](turn, value)
        if turn.forget:
            return
        if outcome == "retry":
            self.enter(turn, step.ref)
            return
        self.enter(turn, self._target(step, outcome))


def render(decision: Decision, i18n: I18n, results: Mapping[str, Any]) -> str:
    """The text of a decision, with values the store produced (a proposal's code) filled in."""
    t = i18n[decision.locale]
    parts: list[str] = []
    for said in decision.messages:
        msg = said if isinstance(said, Msg) else Msg(said.keys[results[said.name]], said.params)
        params = {k: results.get(v.name, "") if isinstance(v, Ref) else v
                  for k, v in msg.params.items()}
        parts.append(t.render(dataclasses.replace(msg, params=params)))
    return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class Ref:
    """A message parameter the store fills in after applying effects."""

    name: str


@dataclass(frozen=True, slots=True)
class Pick:
    """A message the store picks after applying effects: `keys[results[name]]`, where the
    engine cannot know the answer (SIGNALER P12: counted, already reported, gone)."""

    name: str
    keys: Mapping[str, str]
    params: Mapping[str, Any] = field(default_factory=dict)
