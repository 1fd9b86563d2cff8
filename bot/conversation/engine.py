"""The pure conversation engine: `advance(state, inbound, context) -> Decision`.

No I/O, no clock, no awaits: everything it needs arrives in `Context`, everything it wants
done leaves as `effects`. Order of handling for one message:

1. a stopped participant hears nothing but the answer to START (or HELP);
2. a new conversation starts onboarding;
3. global keywords (MENU, AIDE, STOP, LANGUE, ANNULER, RAPPELS NON, VOTE 1 4,
   SIGNALER P12) interrupt any step: a keyword is the whole message, one word or a phrase;
   only VOTE and SIGNALER take codes after it. ANNULER at a step that offers its own cancel
   choice is that choice;
4. an idle conversation resumes at the menu with a short notice;
5. otherwise the current step reads the input, runs its action and moves on. An answer it
   cannot read is asked again briefly ("Répondez 1 ou 2."), with AIDE from the second miss in
   a row; the full message stays on screen above it. On buttons, a step that picks several
   options (a ballot of up to 3, a budget) ticks or unticks one per press, the same message
   edited in place, until its DONE button ("Valider (2/3)"); a press over a rule gets a
   short notice instead of a message (`Decision.toast`).

Every list is numbered 1…N as shown (across pages), whatever its ids; the ids behind the
numbers are kept with the turn (`LIST` in the state data). A number typed under a list that
has changed since it was shown is handled like a stale button: "this list has changed", and
the list again; codes (P12) and labels still name their option.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.channels.base import Inbound
from bot.channels.gsm7 import cost, sms_safe
from bot.conversation.effects import Effect, SetStatus
from bot.conversation.flows import KEYWORD_TARGETS, FlowSet, Step
from bot.conversation.matching import (
    MAX_INPUT,
    Option,
    clean,
    fold,
    match_many,
    match_one,
    moved,
)
from bot.domain.campaigns import Campaign
from bot.domain.catalog import Catalog
from bot.domain.participants import Profile, Status
from bot.i18n import N_, I18n, Msg, Translator

MAX_HOPS = 12
DETAILS = "_details"  # the id of the Details button (Telegram): the page's full titles
# State data: the option ids of the list on screen, in order (number n is ids[n - 1]).
LIST = "_list"
_CODE = re.compile(r"p?\d{1,9}")
# Buttons at a step that picks several options: each press toggles one, kept under PICKED
# in the state's data until the DONE button ("Valider (2/3)") hands them to the step's action.
PICKED = "_picked"
DONE = "_done"


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
    # SMS segments one screen may take (prompt, numbered options, footer, measured as GSM-7
    # or UCS-2): long lists are cut into pages that fit. Takes over from page_chars.
    page_segments: int | None = None
    asks_contact: bool = False  # the channel can ask for a verified phone number (a button)
    buttons: bool = False  # options are tapped (Telegram), not typed by number
    address: str = ""  # the phone number or account, shown in "my data"
    verified_address: bool = False  # the address is a phone number (SMS), not an account id


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
    edit: bool = False  # the reply replaces the message whose button was pressed
    toast: Msg | None = None  # a short notice answering a press, instead of any message

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
        self.edit = False  # the reply replaces the message whose button was pressed
        self.toast: Msg | None = None  # a press refused with a short notice (no message)

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

    @property
    def reader(self) -> bool:
        """Someone under 15 reading campaigns: no consent kept, in the browse flow only."""
        return self.profile.consent_at is None and self.step.startswith("browse.")

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
            edit=self.edit,
            toast=self.toast,
        )


Action = Callable[[Turn, Any], str]
View = Callable[[Turn], dict[str, Any]]
Source = Callable[[Turn], Sequence[Option]]
Shortcut = Callable[[Turn, list[str]], str]


@dataclass(frozen=True, slots=True)
class Selection:
    """What a step that picks several options makes of a selection under way (buttons):
    `toggles` when presses toggle options (more than one may be picked), `refusal` when the
    selection breaks a rule (over the limit or the envelope), `progress` for the DONE button
    ("2/3", "45 000 €")."""

    toggles: bool = False
    refusal: Msg | None = None
    progress: str = ""


def _no_selection(turn: Turn, ids: Sequence[str]) -> Selection:
    return Selection()


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
    # What INFO (or the Details button) shows at a step beyond its options' details: a
    # campaign's description on its page; None where the step has nothing more.
    more: Callable[[Turn], Msg | None] = lambda turn: None
    # A multi-choice step on buttons: whether presses toggle, and what a selection breaks.
    selection: Callable[[Turn, Sequence[str]], Selection] = _no_selection
    # Sources whose options are a step's own fixed choices (a campaign page's actions), like
    # a step's listed choices: shown whole, never cut into pages.
    whole: frozenset[str] = frozenset()


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
            elif keyword in ("help", "info"):
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
            # A button from an earlier message: never acted on twice, and answered with a
            # short notice only. The question in course is the last message already; showing
            # it again sent a second screen after a double tap on Valider.
            turn.toast = Msg(N_("common.stale"))
            turn.step = state.step if state.step in self.flows.steps else "main.menu"
            turn.keep_turn = True  # the last message's buttons still hold
            return turn.decision()

        if inbound.start_payload and ctx.catalog.by_slug(inbound.start_payload):
            return self.deep_link(turn, state, inbound.start_payload)

        if state is None or state.step not in self.flows.steps:
            self.enter(turn, "onboarding.language")
            return turn.decision()

        if self.details(turn, state, inbound, keyword, words):
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
        if turn.profile.onboarded or turn.reader:
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
        if keyword in ("help", "info"):  # INFO where there are no details: the help
            self.behaviour.help(turn)
            self.again(turn)
        elif keyword == "more":
            turn.page = int(turn.data.get("_page", 0)) + 1
            self.enter(turn, turn.step)
        elif keyword == "language":
            self.enter(turn, "settings.language" if onboarded else "onboarding.language")
        elif keyword == "report":  # consent is enough (checked there), as is the step
            self.behaviour.report(turn, rest)
            self.again(turn)
        elif not onboarded and turn.reader:
            # Under 15: campaigns to read, nothing else (nothing about them is stored).
            if keyword not in ("menu", "campaigns", "cancel"):
                turn.notice(N_("browse.reader_only"))
            turn.data = {}
            self.enter(turn, "browse.list")
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
            # VOTER typed on a campaign's page votes in that campaign (if its vote is open),
            # and VOTE 1 4 typed under a list of its proposals means that list's numbers.
            turn.data = {k: v for k, v in turn.data.items() if k in ("campaign", LIST)}
            target = self.behaviour.vote_shortcut(turn, rest) if rest else "vote.start"
            turn.data.pop(LIST, None)
            self.enter(turn, target)
        elif keyword in ("reminders_off", "reminders_on"):
            self.behaviour.reminders(turn, keyword == "reminders_on")
            self.again(turn)
        elif keyword == "propose":  # on a campaign's page: that campaign, if it takes ideas
            turn.data = {k: v for k, v in turn.data.items() if k == "campaign"}
            self.enter(turn, KEYWORD_TARGETS[keyword])
        elif keyword in KEYWORD_TARGETS:
            turn.data = {}
            self.enter(turn, KEYWORD_TARGETS[keyword])

    # --- steps ----------------------------------------------------------------------------

    def options(self, turn: Turn, step: Step) -> tuple[Option, ...]:
        if step.source is not None:
            # Every list is numbered 1…N as shown, whatever its source: a number is a place
            # in this list, never an id (codes like P12 and labels still name an option).
            found = self.behaviour.sources[step.source](turn)
            return tuple(dataclasses.replace(o, key=str(i)) for i, o in enumerate(found, 1))
        t = turn.t
        return tuple(
            Option(id=c.id, key=str(i), label=t(c.label), means=c.means)
            for i, c in enumerate(step.choices, 1)
        )

    def enter(self, turn: Turn, ref: str, *, fit: bool = True) -> None:
        """Move to `ref`, running automatic steps, and prompt there. With a segment budget
        (SMS), what was said before the prompt in this reply (a notice) is part of the
        screen: a list's first page is cut shorter to leave it room, and where the step's own
        choices cannot be cut (a campaign page after Suivre), the notice comes with the
        choices alone, the page's text being just above. `fit=False`: the screen as it is
        shown alone (`again` decides what to send)."""
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
            if step.source is not None:  # what each number means, for the answer to it
                turn.data[LIST] = [o.id for o in options]
            else:
                turn.data.pop(LIST, None)
            options = self._marked(turn, step, options)
            params = self.behaviour.views[step.view](turn) if step.view else {}
            assert step.say is not None
            prompt = Msg(step.say, params)
            turn.say(prompt)
            fit = fit and turn.ctx.page_segments is not None
            turn.options = self._page(turn, options, self._said(turn) if fit else None)
            if fit and len(turn.messages) > 1 and not self._fits(turn):
                turn.messages.remove(prompt)
                turn.options = self._page(turn, options, self._said(turn))
            if turn.data.get("_page") and prompt in turn.messages \
                    and turn.ctx.page_segments is not None:
                # SUITE: the list goes on under a one-line header; its prompt was on page 1.
                turn.messages[turn.messages.index(prompt)] = Msg(N_("common.continued"))
            turn.ask_contact = step.input == "contact"
            return
        raise RuntimeError(f"flow loop through {ref}")

    def again(self, turn: Turn) -> None:
        """After a notice that leaves the person where they are (AIDE, SIGNALER): the step
        again under it, when both fit the channel's segment budget; else the notice alone,
        the screen still above it and its numbers holding (SMS: 2 segments at most)."""
        said, data, effects = list(turn.messages), dict(turn.data), list(turn.effects)
        step = turn.step
        self.enter(turn, turn.step, fit=False)
        if turn.forget or self._fits(turn):
            return
        turn.messages[:], turn.data, turn.effects[:] = said, data, effects
        turn.step, turn.options, turn.footer, turn.keep_turn = step, (), None, True

    # --- details one step away: INFO 3, "3 ?", the Details button ------------------------

    def details(self, turn: Turn, state: State, inbound: Inbound, keyword: str | None,
                words: list[str]) -> bool:
        """Answer a request for details, if this message is one: `INFO 3` or `3 ?` names an
        option of the list on screen (its full title, cost, description); INFO alone, or the
        Details button, at a step that has more (a campaign's page: its description). The
        list stays on screen and its numbers hold: only the details are sent."""
        step = self.flows[state.step]
        if step.input not in ("one", "many"):
            return False
        pressed = inbound.choice == DETAILS
        named = None
        if not pressed and len(words) == 2 and (
                self.flows.keywords.get(words[0]) == "info" or words[1] == "?"):
            named = words[0] if words[1] == "?" else words[1]
        elif not pressed and len(words) == 1 and words[0].endswith("?") and words[0] != "?":
            named = words[0][:-1]
        if not pressed and named is None and keyword != "info":
            return False
        turn.step = step.ref
        turn.page = int(turn.data.get("_page", 0))
        options = self.options(turn, step)
        shown: Sequence[Option] = []
        listed = turn.data.get(LIST) if step.source is not None else None
        if named is not None and listed is not None \
                and moved(named, listed, [o.id for o in options]):
            # "2 ?" meant what the list showed as 2, which has moved since (a proposal
            # withdrawn): as for a number typed in answer, the list again, up to date.
            turn.notice(N_("common.list_changed"))
            turn.page = 0
            self.enter(turn, step.ref)
            return True
        if named is not None:
            option = next((o for o in options if named == o.key or named in o.codes), None)
            if option is None:
                return False
            if option.detail and option.detail != option.label:
                shown = [option]
            else:  # nothing more about this option (an action): as INFO alone
                named = None
        if named is None:
            more = self.behaviour.more(turn)
            if more is None and not pressed:
                return False  # INFO alone where there is nothing more: the help
            if more is not None:
                turn.say(more)
            shown = [o for o in self._page(turn, options) if o.id != DETAILS] \
                if pressed else []
        if shown:  # one line each; buttons show no number: a bullet instead
            t = turn.t
            turn.notice(N_("common.text"), text="\n".join(
                t("common.detail", number="•" if turn.ctx.buttons else o.key,
                  text=o.detail or o.label) for o in shown))
        if not turn.messages:
            return False
        if turn.ctx.buttons:  # a new message: its buttons are the list's, still valid
            turn.options = self._page(turn, self._marked(turn, step, options))
        turn.footer = None
        turn.keep_turn = True
        return True

    def _prompt(self, turn: Turn) -> str:
        """The current step's prompt as shown (what every page of its list starts with)."""
        step = self.flows[turn.step]
        if step.say is None:
            return ""
        params = self.behaviour.views[step.view](turn) if step.view else {}
        return turn.t.render(Msg(step.say, params))

    def _hints(self, turn: Turn, options: Sequence[Option]) -> list[str]:
        """What the footer says besides SUITE: how to ask for details, where there are."""
        t = turn.t
        detailed = [o for o in options if o.detail and o.detail != o.label]
        hints = [t("common.details_hint", key=detailed[0].key)] if detailed else []
        if self.behaviour.more(turn) is not None:
            hints.append(t("common.more_hint"))
        return hints

    def _page(self, turn: Turn, options: tuple[Option, ...],
              said: str | None = None) -> tuple[Option, ...]:
        """The options shown now; every option stays accepted, shown or not.

        SMS (and the console, which reads like it): pages cut so that each whole reply, what
        it says before the options, the numbered options and the footer, fits
        `page_segments`. The first page starts with `said` (all this reply says before the
        options: a notice, then the prompt; the prompt alone by default), the next ones with
        one line ("Suite de la liste :"). A notice before a list makes its first page shorter:
        where that page ended is kept (`_first`), so that SUITE carries on from there with no
        gap or repeat. A step's own fixed choices (listed in its flow, or from a `whole`
        source: a campaign page's actions) are never cut: the hints leave the footer first.
        Buttons (Telegram): every option at once, and a Details button where labels are
        short titles of longer ones.
        """
        turn.data.pop("_page", None)
        first = turn.data.pop("_first", None)
        if turn.ctx.page_segments is None:
            shown = self._page_by_chars(turn, options)
            if turn.ctx.buttons and (self.behaviour.more(turn) is not None or any(
                    o.detail and o.detail != o.label for o in shown)):
                shown += (Option(id=DETAILS, key="?", label=turn.t("common.details_button")),)
            return shown
        t, limit = turn.t, turn.ctx.page_segments
        head = self._prompt(turn) if said is None else said
        continued = t("common.continued")

        def fits(page: Sequence[Option], footer: Sequence[str], head: str = head) -> bool:
            lines = [head, *(f"{o.key} {o.label}" for o in page), *footer]
            return cost(sms_safe("\n".join(lines))).segments <= limit

        hints = self._hints(turn, options)
        step = self.flows[turn.step]
        if step.source is None or step.source in self.behaviour.whole or fits(options, hints):
            if not fits(options, hints):
                hints = []  # the choices first: INFO and "INFO 1" work without their hint
            turn.footer = Msg(N_("common.text"), {"text": "\n".join(hints)}) if hints else None
            return options
        more = max(t("common.more", page=99, pages=99), t("common.more_last", page=99, pages=99),
                   key=len)

        def end(start: int, head: str) -> int:
            """Where a page that starts at `start` under `head` ends: as many as fit."""
            stop = start + 1
            while stop < len(options) and fits(
                    options[start:stop + 1],
                    [more, *self._hints(turn, options[start:stop + 1])], head):
                stop += 1
            return stop

        def pages(first_end: int) -> list[int]:
            """Where each page ends, the first one ending at `first_end`."""
            ends = [first_end]
            while ends[-1] < len(options):
                ends.append(end(ends[-1], continued))
            return ends

        ends = pages(min(first, len(options)) if first and turn.page else end(0, head))
        page = turn.page % len(ends)
        if page == 0 and first and turn.page:  # back at the start: page 1 under the prompt
            ends = pages(end(0, head))
        turn.data["_first"] = ends[0]
        if page:
            turn.data["_page"] = page
        shown = options[ends[page - 1] if page else 0:ends[page]]
        last = page == len(ends) - 1
        footer = [*self._hints(turn, shown),  # SUITE last: what comes next
                  t(N_("common.more_last") if last else N_("common.more"),
                    page=page + 1, pages=len(ends))]
        turn.footer = Msg(N_("common.text"), {"text": "\n".join(footer)})
        return shown

    def _said(self, turn: Turn) -> str:
        """What this reply says before its options, as measured: a message the store picks
        after applying effects counts as its longest wording."""
        t = turn.t
        return "\n\n".join(
            t.render(m) if isinstance(m, Msg)
            else max((t.render(Msg(key, m.params)) for key in m.keys.values()), key=len)
            for m in turn.messages)

    def _fits(self, turn: Turn) -> bool:
        """Whether the reply as it stands (messages, options, footer) fits the channel's
        segment budget (SMS: 2 segments); always, on a channel without one."""
        if turn.ctx.page_segments is None:
            return True
        lines = [self._said(turn), *(f"{o.key} {o.label}" for o in turn.options)]
        if turn.footer is not None:
            lines.append(turn.t.render(turn.footer))
        return cost(sms_safe("\n".join(lines))).segments <= turn.ctx.page_segments

    def _page_by_chars(self, turn: Turn, options: tuple[Option, ...]) -> tuple[Option, ...]:
        """Pages of at most `page_chars` characters of options (a channel without a
        segment budget)."""
        budget = turn.ctx.page_chars
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
        last = page == len(pages) - 1
        turn.footer = Msg(N_("common.more_last") if last else N_("common.more"),
                          {"page": page + 1, "pages": len(pages)})
        return tuple(pages[page])

    def reask(self, turn: Turn, step: Step, options: tuple[Option, ...]) -> None:
        """A miss: ask again in one short line naming the list's numbers, all of them, from
        any page (the full message is still above it), offering AIDE from the second miss in
        a row at this step."""
        turn.step = step.ref
        turn.data["_miss"] = turn.missed + 1
        if turn.ctx.buttons:  # buttons carry no number: show them again under the line
            turn.page = int(turn.data.get("_page", 0))
            turn.notice(N_("common.reask_buttons_help") if turn.missed
                        else N_("common.reask_buttons"))
            turn.options = self._page(turn, self._marked(turn, step, options))
            return
        turn.footer = None
        turn.keep_turn = True  # the page shown stays where it is (`_page`, `_first`)
        keys = [o.key for o in options]  # the whole list: each number holds, on any page
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

    def _marked(self, turn: Turn, step: Step, options: tuple[Option, ...]
                ) -> tuple[Option, ...]:
        """Buttons of a selection under way: ✓ before the picked ones, then DONE."""
        if step.input != "many" or not turn.ctx.buttons:
            return options
        picked = [i for i in turn.data.get(PICKED, ()) if any(o.id == i for o in options)]
        if picked:  # as shown now: a tick withdrawn before this list was drawn is not kept
            turn.data[PICKED] = picked
        else:
            turn.data.pop(PICKED, None)
        selection = self.behaviour.selection(turn, picked)
        if not selection.toggles:
            return options
        marked = tuple(dataclasses.replace(o, code=f"✓ {o.code}".rstrip()) if o.id in picked
                       else o for o in options)
        if not picked:
            return marked
        done = Option(id=DONE, key="", label=turn.t("common.validate",
                                                    progress=selection.progress))
        return (*marked, done)

    def _toggle(self, turn: Turn, step: Step, options: tuple[Option, ...],
                choice: str) -> list[str] | None:
        """A press at a step that picks several options, on buttons: the option is picked or
        unpicked and the same message shown again, edited in place (None); a press over a
        rule is refused with a short notice (None); DONE, or a press where only one may be
        picked, gives what is chosen. A ticked option withdrawn since the list was shown, or
        the one pressed, is never dropped silently: the list is shown again, up to date,
        with the other ticks, and the press is not acted on (as a stale button)."""
        ids = {o.id for o in options}
        before = list(turn.data.pop(PICKED, ()))
        picked = [i for i in before if i in ids]
        if len(picked) < len(before) or (choice != DONE and choice not in ids
                                         and choice in turn.data.get(LIST, ())):
            if picked:
                turn.data[PICKED] = picked
            turn.notice(N_("common.list_changed"))
            self.enter(turn, step.ref)
            return None
        if choice == DONE and picked:
            # Kept: shown ticked again if the step asks again (under a budget's minimum)
            # or the person comes back to change it.
            turn.data[PICKED] = picked
            return picked
        option = match_one("", options, choice_id=choice)
        if option is None:  # not on the list now (DONE with nothing picked): asked again
            if picked:
                turn.data[PICKED] = picked
            return None
        if not self.behaviour.selection(turn, picked).toggles:
            return [option.id]
        if option.id in picked:
            picked.remove(option.id)
        else:
            refusal = self.behaviour.selection(turn, [*picked, option.id]).refusal
            if refusal is not None:
                turn.data[PICKED] = picked
                turn.step = step.ref
                turn.toast = refusal
                turn.keep_turn = True
                return None
            picked.append(option.id)
        if picked:
            turn.data[PICKED] = picked
        turn.edit = True
        turn.keep_turn = True  # the same message, edited: its other buttons still hold
        self.enter(turn, step.ref)
        return None

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
            shown = turn.data.get(LIST) if step.source is not None else None
            if choice is None and shown is not None \
                    and moved(text, shown, [o.id for o in options]):
                # The list changed since it was shown (a proposal withdrawn) and a number
                # typed no longer means what the person saw: handled like a stale button,
                # say so and show the list again. Codes and labels always name their option.
                turn.notice(N_("common.list_changed"))
                self.enter(turn, step.ref)
                return
            if step.input == "many" and choice is not None and turn.ctx.buttons:
                toggled = self._toggle(turn, step, options, choice)
                if toggled is None:
                    if not turn.messages and turn.toast is None:
                        self.reask(turn, step, options)
                    return
                value = toggled
            elif step.input == "many" and choice is None:
                found, unknown = match_many(text, options)
                if unknown or not found:
                    if unknown:
                        shown = ", ".join(unknown[:3]) + (" ..." if len(unknown) > 3 else "")
                        turn.notice("common.unknown_codes", codes=shown)
                    self.reask(turn, step, options)
                    return
                # Typed numbers are the whole answer at once, as by SMS: ticks made before
                # on buttons give way to them, and the reply says so.
                ticked = turn.data.pop(PICKED, None)
                value = [o.id for o in found]
                if ticked and set(ticked) != set(value):
                    turn.notice(N_("common.typed_replaces_ticks"))
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
