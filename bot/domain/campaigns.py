"""Campaigns, their phases and rules, as immutable values built from YAML definitions."""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.events import Event, default_events, parse_events
from bot.domain.region import LOCALES, OCCITANIE
from bot.domain.region import PARIS as PARIS  # re-exported: the CLI and the app import it here
from bot.errors import CampaignError


class Kind(StrEnum):
    PARTICIPATORY_BUDGET = "participatory_budget"
    CONSULTATION = "consultation"
    POLL = "poll"


class Phase(StrEnum):
    """The phases of a campaign, in the order they happen."""

    INFORMATION = "information"
    SUBMISSION = "submission"
    MODERATION = "moderation"
    VOTE = "vote"
    RESULTS = "results"


class Moment(StrEnum):
    """Where a campaign stands when no phase window holds `now`."""

    UPCOMING = "upcoming"
    BETWEEN = "between"
    CLOSED = "closed"


class BallotMethod(StrEnum):
    SINGLE = "single"  # pick one
    UP_TO = "up_to"  # pick up to N
    BUDGET = "budget"  # pick projects whose costs fit the envelope


# Written so that YAML reads them as text (15_17 would be the number 1517).
AGE_BRACKETS = ("under-15", "15-17", "18-25", "26-34", "35-49", "50-64", "65+")


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    """One phase, from `start` (inclusive) to `end` (exclusive, None = open-ended), aware UTC."""

    phase: Phase
    start: datetime
    end: datetime | None

    def contains(self, now: datetime) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True, slots=True)
class BallotRules:
    method: BallotMethod = BallotMethod.UP_TO
    max_choices: int = 3
    min_share: float = 0.0  # budget method: spend at least this share of the envelope


@dataclass(frozen=True, slots=True)
class ProposalRules:
    max_length: int = 280
    max_per_person: int = 3


@dataclass(frozen=True, slots=True)
class Audience:
    age_brackets: tuple[str, ...] = AGE_BRACKETS
    departements: tuple[str, ...] = OCCITANIE


@dataclass(frozen=True, slots=True)
class SeedProposal:
    ref: str
    title: Mapping[str, str]
    cost: int | None = None
    short: Mapping[str, str] = field(default_factory=dict)  # ≤ SHORT_MAX: lists, buttons


@dataclass(frozen=True, slots=True)
class Campaign:
    slug: str
    kind: Kind
    title: Mapping[str, str]
    summary: Mapping[str, str]
    description: Mapping[str, str]
    phases: tuple[PhaseWindow, ...]
    audience: Audience = Audience()
    proposal_rules: ProposalRules = ProposalRules()
    ballot: BallotRules = BallotRules()
    envelope: int | None = None  # euros; budgets pick winners within it
    seed_proposals: tuple[SeedProposal, ...] = ()
    id: int = 0  # database id, 0 until stored
    contact: str = ""
    # A demo: its dates follow the day it is loaded. Its rules freeze all the same once its
    # vote has opened (`frozen_changes`): what was stored decides, not the file's dates.
    relative_dates: bool = False
    verified_phone: bool = False  # voters need a verified number: one ballot per phone
    declared_events: tuple[Event, ...] | None = None  # `reminders:`; None: the default set
    sending_windows: Mapping[str, str] = field(default_factory=dict)  # channel → window
    # Short titles (≤ SHORT_MAX characters) for lists, buttons and SMS: the campaign's, and
    # its seed proposals' by ref (kept here as stored: the proposals table holds titles).
    short: Mapping[str, str] = field(default_factory=dict)
    seed_shorts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def events(self) -> tuple[Event, ...]:
        """Its announcements and reminders: those declared, else the default set (only
        those whose phase the campaign has)."""
        events = default_events() if self.declared_events is None else self.declared_events
        return tuple(e for e in events if self.window(e.phase) is not None)

    def text(self, name: str, locale: str) -> str:
        texts: Mapping[str, str] = getattr(self, name)
        return texts.get(locale) or texts.get("fr") or ""

    def label(self, locale: str) -> str:
        """Its name in lists and buttons: the short title, else the title cut short."""
        return short_label(self.short, self.title, locale)

    def window(self, phase: Phase) -> PhaseWindow | None:
        return next((w for w in self.phases if w.phase is phase), None)

    def phase_at(self, now: datetime) -> Phase | Moment:
        for window in self.phases:
            if window.contains(now):
                return window.phase
        if now < self.phases[0].start:
            return Moment.UPCOMING
        last = self.phases[-1]
        if last.end is not None and now >= last.end:
            return Moment.CLOSED
        return Moment.BETWEEN

    def is_open(self, phase: Phase, now: datetime) -> bool:
        window = self.window(phase)
        return window is not None and window.contains(now)

    def visible(self, now: datetime) -> bool:
        """Campaigns are shown from their first phase until they close."""
        return self.phase_at(now) not in (Moment.UPCOMING, Moment.CLOSED)


SHORT_MAX = 32  # characters of a short title: a phone's button, a line of an SMS list


def cut(text: str, limit: int = SHORT_MAX) -> str:
    """`text` within `limit` characters: whole, else cut at a word with "...", else cut."""
    if len(text) <= limit:
        return text
    head = text[:limit - 3]
    if text[limit - 3] not in " ,;:.":  # a word cut in two: drop it, unless it is most
        word = head.rsplit(" ", 1)[0]
        head = word if len(word) >= limit // 2 else head
    return head.rstrip(" ,;:.-–") + "..."


def short_label(short: Mapping[str, str], title: Mapping[str, str], locale: str) -> str:
    """The short title in `locale` (else French), else the title in `locale` cut short."""
    chosen = short.get(locale) or (short.get("fr") if not title.get(locale) else None)
    return chosen or cut(title.get(locale) or title.get("fr") or "")


# --- parsing and validation ------------------------------------------------------------------

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_RELATIVE = re.compile(r"^today\s*([+-])\s*(\d+)\s*d?$")
_RELATIVE_NOW = re.compile(r"^now\s*([+-])\s*(\d+)\s*([smhd])$")
_NOW_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _moment(value: object, *, today: date, file: str, where: str, end: bool,
            now: datetime | None = None) -> datetime:
    """A date (Europe/Paris day; an end date is inclusive), a datetime, 'today±N' days, or
    'now±N' seconds (s), minutes (m), hours (h) or days (d) from when the file is loaded
    (demos: a vote that closes a few minutes after `votz campaigns load`)."""
    if isinstance(value, str):
        text = value.strip().lower()
        match = _RELATIVE.match(text)
        moment = _RELATIVE_NOW.match(text)
        if text == "now" or moment:
            base = now or datetime.combine(today, time(12), tzinfo=PARIS)
            if moment:
                step = timedelta(**{_NOW_UNITS[moment.group(3)]: int(moment.group(2))})
                base = base + step if moment.group(1) == "+" else base - step
            return base.astimezone(ZoneInfo("UTC")).replace(microsecond=0)
        if text == "today":
            value = today
        elif match:
            sign = 1 if match.group(1) == "+" else -1
            try:
                value = today + timedelta(days=sign * int(match.group(2)))
            except OverflowError:
                raise CampaignError(file, where, f"{value!r} is too far away") from None
        else:
            try:
                value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
            except ValueError:
                raise CampaignError(file, where, f"{value!r} is not a date (YYYY-MM-DD)") from None
    try:
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=PARIS)
            return aware.astimezone(ZoneInfo("UTC"))
        if isinstance(value, date):
            day = value + timedelta(days=1) if end else value
            return datetime.combine(day, time(0), tzinfo=PARIS).astimezone(ZoneInfo("UTC"))
    except OverflowError:
        raise CampaignError(file, where, f"{value!r} is too far away") from None
    raise CampaignError(file, where, f"{value!r} is not a date (YYYY-MM-DD)")


def _texts(raw: Any, *, file: str, where: str, required: bool = True) -> dict[str, str]:
    if raw is None and not required:
        return {}
    if isinstance(raw, str):
        raw = {"fr": raw}
    if not isinstance(raw, dict):
        raise CampaignError(file, where, "expected a text or a mapping of languages (fr, en, oc)")
    unknown = set(raw) - set(LOCALES)
    if unknown:
        raise CampaignError(file, where, f"unknown language(s): {', '.join(sorted(unknown))}")
    if raw and not str(raw.get("fr") or "").strip():
        raise CampaignError(file, where, "the French text (fr) is required")
    return {k: str(v).strip() for k, v in raw.items() if v}


def _int(raw: Any, *, file: str, where: str, minimum: int = 0) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise CampaignError(file, where, f"expected a whole number ≥ {minimum}, got {raw!r}")
    return raw


_KNOWN_FIELDS = frozenset({
    "slug", "kind", "title", "summary", "description", "audience", "phases",
    "proposals", "ballot", "envelope", "seed_proposals", "contact", "verified_phone",
    "reminders", "sending_window", "short",
})


class _Problems:
    """The problems of one file so far. `with problems:` runs one check; its CampaignError is
    kept and parsing goes on, so one pass names every problem of fields that do not depend
    on one another."""

    def __init__(self) -> None:
        self.found: list[CampaignError] = []

    def add(self, file: str, where: str, problem: str) -> None:
        self.found.append(CampaignError(file, where, problem))

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> bool:
        if isinstance(exc, CampaignError):
            self.found.append(exc)
            return True
        return False


def parse_campaign(raw: Any, *, file: str, today: date, now: datetime | None = None
                   ) -> Campaign:
    """Validate one campaign definition; errors name the file, the field and the problem
    (the first one found: `check_campaign` gives them all)."""
    campaign, problems = check_campaign(raw, file=file, today=today, now=now)
    if problems:
        raise problems[0]
    assert campaign is not None
    return campaign


def check_campaign(raw: Any, *, file: str, today: date, now: datetime | None = None
                   ) -> tuple[Campaign | None, list[CampaignError]]:
    """Validate one campaign definition: (the campaign, []) or (None, every problem found, in
    the order of the checks). A field that depends on another one that is wrong is not
    checked (seed costs without a valid envelope, reminders without valid phases)."""
    if not isinstance(raw, dict):
        return None, [CampaignError(file, "(top)", "a campaign file is a mapping of fields")]
    problems = _Problems()
    for name in sorted(set(raw) - _KNOWN_FIELDS, key=str):
        problems.add(file, str(name), "unknown field")
    slug = ""
    with problems:
        slug = _slug(raw.get("slug"), file=file)
    kind = Kind.CONSULTATION
    with problems:
        kind = _kind(raw.get("kind"), file=file)
    audience = _audience(raw.get("audience"), file=file, problems=problems)
    windows, relative = _phases(raw.get("phases"), file=file, problems=problems, today=today,
                                now=now)
    for name in ("proposals", "ballot"):
        if not isinstance(raw.get(name) or {}, dict):
            problems.add(file, name, "expected a mapping of rules")
    proposal_rules = _proposal_rules(raw.get("proposals"), file=file, problems=problems)
    ballot, envelope, envelope_known = _ballot(raw.get("ballot"), raw.get("envelope"),
                                               file=file, problems=problems)
    seeds = _seeds(raw.get("seed_proposals"), file=file, problems=problems,
                   envelope=envelope if envelope_known else None,
                   max_length=proposal_rules.max_length)
    sending: dict[str, str] = {}
    with problems:
        sending = _sending_windows(raw.get("sending_window"), file=file)
    declared: tuple[Event, ...] | None = None
    with problems:
        declared = parse_events(raw.get("reminders"), file=file, texts=_texts)
    if windows:  # every phase valid: reminders can be anchored on them
        phases_here = {w.phase for w in windows}
        for i, event in enumerate(declared or ()):
            if event.phase not in phases_here:
                problems.add(file, f"reminders[{i}].when",
                             f"the campaign has no {event.phase.value} phase")
    texts: dict[str, dict[str, str]] = {}
    for name in ("title", "summary", "description", "short"):
        texts[name] = {}
        with problems:
            texts[name] = _texts(raw.get(name), file=file, where=name,
                                 required=name not in ("description", "short"))
            if name == "short":
                _check_short(texts[name], file=file, where=name)
    verified_phone = False
    with problems:
        verified_phone = _flag(raw.get("verified_phone", False), file=file,
                               where="verified_phone")
    if problems.found:
        return None, problems.found
    return Campaign(
        slug=slug,
        kind=kind,
        title=texts["title"],
        summary=texts["summary"],
        description=texts["description"],
        phases=tuple(windows),
        audience=audience,
        proposal_rules=proposal_rules,
        ballot=ballot,
        envelope=envelope,
        seed_proposals=tuple(seeds),
        contact=str(raw.get("contact") or ""),
        relative_dates=relative,
        verified_phone=verified_phone,
        declared_events=declared,
        sending_windows=sending,
        short=texts["short"],
        seed_shorts={s.ref: s.short for s in seeds if s.short},
    ), []


def _slug(raw: Any, *, file: str) -> str:
    if not isinstance(raw, str) or not _SLUG.match(raw):
        raise CampaignError(file, "slug", "lowercase letters, digits and dashes (2-63)")
    return raw


def _kind(raw: Any, *, file: str) -> Kind:
    try:
        return Kind(str(raw))
    except ValueError:
        raise CampaignError(
            file, "kind", f"one of {', '.join(k.value for k in Kind)}, got {raw!r}"
        ) from None


def _audience(raw: Any, *, file: str, problems: _Problems) -> Audience:
    audience_raw = raw or {}
    if not isinstance(audience_raw, dict):
        problems.add(file, "audience", "expected a mapping")
        return Audience()
    brackets: tuple[str, ...] = AGE_BRACKETS
    with problems:
        brackets = _brackets(audience_raw.get("age_brackets", AGE_BRACKETS), file=file)
    deps: tuple[str, ...] = OCCITANIE
    with problems:
        deps = _departements(audience_raw.get("departements", OCCITANIE), file=file)
    return Audience(age_brackets=brackets, departements=deps)


def _brackets(raw: Any, *, file: str) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or any(not isinstance(b, str) for b in raw):
        raise CampaignError(file, "audience.age_brackets",
                            f"a list of brackets among {', '.join(AGE_BRACKETS)}")
    brackets = tuple(raw)
    bad = [b for b in brackets if b not in AGE_BRACKETS]
    if bad or not brackets:
        raise CampaignError(
            file, "audience.age_brackets", f"unknown bracket {bad[0] if bad else '(none)'}; "
            f"use {', '.join(AGE_BRACKETS)}",
        )
    return brackets


def _departements(raw: Any, *, file: str) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple):
        raise CampaignError(file, "audience.departements", "a list of codes such as [\"31\"]")
    deps = tuple(str(d).zfill(2) for d in raw)
    if not deps or any(not re.fullmatch(r"\d{2,3}|2[AB]", d) for d in deps):
        raise CampaignError(file, "audience.departements", "département codes such as 31 or 48")
    return deps


def _phases(raw: Any, *, file: str, problems: _Problems, today: date,
            now: datetime | None) -> tuple[list[PhaseWindow], bool]:
    """The phase windows in order and whether any date is relative; no windows at all
    when one of them is wrong (what depends on them is then not checked)."""
    if not isinstance(raw, dict) or not raw:
        problems.add(file, "phases", "expected a mapping of phase → {start, end}")
        return [], False
    windows: list[PhaseWindow] = []
    relative = False
    complete = True
    for name, span in raw.items():
        try:
            phase = Phase(name)
        except ValueError:
            problems.add(file, f"phases.{name}",
                         f"unknown phase; use {', '.join(p.value for p in Phase)}")
            complete = False
            continue
        if not isinstance(span, dict) or "start" not in span:
            problems.add(file, f"phases.{name}", "expected {start: DATE, end: DATE}")
            complete = False
            continue
        relative |= any(isinstance(span.get(k), str)
                        and span[k].strip().lower().startswith(("today", "now"))
                        for k in ("start", "end"))
        start = end = None
        with problems:
            start = _moment(span["start"], today=today, file=file,
                            where=f"phases.{name}.start", end=False, now=now)
        if span.get("end") is not None:
            with problems:
                end = _moment(span["end"], today=today, file=file, where=f"phases.{name}.end",
                              end=True, now=now)
        if start is None or (end is None and span.get("end") is not None):
            complete = False
            continue
        if end is not None and end <= start:
            problems.add(file, f"phases.{name}.end", "ends before it starts")
            complete = False
            continue
        windows.append(PhaseWindow(phase, start, end))
    if not complete:
        return [], relative
    order = list(Phase)
    windows.sort(key=lambda w: order.index(w.phase))
    overlaps = False
    for before, after in itertools.pairwise(windows):
        if before.end is None or before.end > after.start:
            problems.add(
                file, f"phases.{after.phase.value}.start",
                f"overlaps the {before.phase.value} phase (phases follow each other in order)",
            )
            overlaps = True
    return ([] if overlaps else windows), relative


def _proposal_rules(raw: Any, *, file: str, problems: _Problems) -> ProposalRules:
    rules = raw if isinstance(raw, dict) else {}
    max_length = 280
    with problems:
        max_length = _int(rules.get("max_length", 280), file=file,
                          where="proposals.max_length", minimum=10)
        if max_length > 1000:
            max_length = 1000
            raise CampaignError(file, "proposals.max_length", "at most 1000 characters")
    max_per_person = 3
    with problems:
        max_per_person = _int(rules.get("max_per_person", 3), file=file,
                              where="proposals.max_per_person", minimum=1)
    return ProposalRules(max_length=max_length, max_per_person=max_per_person)


def _ballot(raw: Any, raw_envelope: Any, *, file: str, problems: _Problems
            ) -> tuple[BallotRules, int | None, bool]:
    """The ballot rules, the envelope, and whether the envelope is known (valid or absent)."""
    rules = raw if isinstance(raw, dict) else {}
    method: BallotMethod | None = None
    try:
        method = BallotMethod(rules.get("method", "up_to"))
    except ValueError:
        problems.add(file, "ballot.method", f"one of {', '.join(m.value for m in BallotMethod)}")
    max_choices = 1
    if method is not BallotMethod.SINGLE:
        with problems:
            max_choices = _int(rules.get("max_choices", 3), file=file,
                               where="ballot.max_choices", minimum=1)
    min_share = rules.get("min_share", 0.0)
    if isinstance(min_share, bool) or not isinstance(min_share, int | float) \
            or not 0 <= min_share <= 1:
        problems.add(file, "ballot.min_share", "a share between 0 and 1")
        min_share = 0.0
    envelope: int | None = None
    known = True
    if raw_envelope is not None:
        known = False
        with problems:
            envelope = _int(raw_envelope, file=file, where="envelope", minimum=1)
            known = True
    if method is BallotMethod.BUDGET and envelope is None and known:
        problems.add(file, "envelope", "a budget ballot needs an envelope (euros)")
    ballot = BallotRules(method=method or BallotMethod.UP_TO, max_choices=max_choices,
                         min_share=float(min_share))
    return ballot, envelope, known


def _seeds(raw: Any, *, file: str, problems: _Problems, envelope: int | None,
           max_length: int) -> list[SeedProposal]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(file, "seed_proposals", "a list of {ref, title, cost}")
        return []
    seeds: list[SeedProposal] = []
    refs: set[str] = set()
    for i, item in enumerate(raw):
        where = f"seed_proposals[{i}]"
        if not isinstance(item, dict):
            problems.add(file, where, "expected {ref, title, cost}")
            continue
        ref = ""
        if isinstance(item.get("ref"), bool):
            problems.add(file, f"{where}.ref", "quote it: yes/no/on/off read as true/false")
        else:
            ref = str(item.get("ref") or "").strip()
            if not ref or ref in refs:
                problems.add(file, f"{where}.ref", "a unique reference is required")
            refs.add(ref)
        cost = item.get("cost")
        if cost is not None:
            with problems:
                cost = _int(cost, file=file, where=f"{where}.cost", minimum=1)
        elif envelope is not None:
            problems.add(file, f"{where}.cost", "campaigns with an envelope need costs")
        title: dict[str, str] = {}
        with problems:
            title = _texts(item.get("title"), file=file, where=f"{where}.title")
            if len(title["fr"]) > max_length:
                raise CampaignError(file, f"{where}.title", "longer than proposals.max_length")
        short: dict[str, str] = {}
        with problems:
            short = _texts(item.get("short"), file=file, where=f"{where}.short",
                           required=False)
            _check_short(short, file=file, where=f"{where}.short")
        seeds.append(SeedProposal(ref=ref, title=title, cost=cost, short=short))
    return seeds


def _check_short(short: Mapping[str, str], *, file: str, where: str) -> None:
    for locale, text in short.items():
        if len(text) > SHORT_MAX:
            raise CampaignError(file, f"{where}.{locale}",
                                f"{len(text)} characters: a short title has at most "
                                f"{SHORT_MAX}")


def missing_shorts(campaign: Campaign) -> list[tuple[str, str]]:
    """(field, message) for each title longer than SHORT_MAX without a short title in its
    language: lists would show it cut ("Épicerie solidaire à..."). `votz campaigns check`
    reports them; loading accepts them (the cut title is shown)."""
    found = []
    texts = [("", campaign.title, campaign.short)]
    texts += [(f"seed_proposals[{i}].", s.title, s.short)
              for i, s in enumerate(campaign.seed_proposals)]
    for prefix, title, short in texts:
        for locale, text in title.items():
            if len(text) > SHORT_MAX and not short.get(locale):
                found.append((f"{prefix}title.{locale}",
                              f"{len(text)} characters and no short title in this language "
                              f"(short: at most {SHORT_MAX}, for lists, buttons and SMS): "
                              f"it would show as {cut(text)!r}"))
    return found


def _sending_windows(raw: Any, *, file: str) -> dict[str, str]:
    windows_raw = raw or {}
    if not isinstance(windows_raw, dict) or any(
            not isinstance(v, str) for v in windows_raw.values()):
        raise CampaignError(file, "sending_window",
                            'a mapping of channel → window, e.g. {sms: "mon-fri 10:00-18:00"}')
    from bot.delivery.windows import parse_window
    from bot.errors import ConfigError

    for channel, text in windows_raw.items():
        try:
            parse_window(text, where=f"sending_window.{channel}")
        except ConfigError as exc:
            raise CampaignError(file, f"sending_window.{channel}", str(exc)) from None
    return {str(k): v for k, v in windows_raw.items()}


def with_phase(campaign: Campaign, phase: Phase, now: datetime) -> Campaign:
    """The campaign as staff force it into `phase` from `now`: earlier phases end now, the
    phase starts now (keeping its end if that is still ahead), later phases that would have
    started already are dropped (staff move on to them by forcing them in turn)."""
    order = list(Phase)
    windows: list[PhaseWindow] = []
    for window in campaign.phases:
        rank = order.index(window.phase)
        if rank < order.index(phase):
            if window.start >= now:
                continue  # never happened: skipped over
            windows.append(PhaseWindow(window.phase, window.start,
                                       min(window.end, now) if window.end else now))
        elif window.phase is phase:
            continue
        elif window.start > now:
            windows.append(window)
    later = [w.start for w in windows if order.index(w.phase) > order.index(phase)]
    current = campaign.window(phase)
    end = current.end if current is not None and current.end and current.end > now else None
    if later:
        end = min([*([end] if end else []), min(later)])
    windows.append(PhaseWindow(phase, now, end))
    windows.sort(key=lambda w: order.index(w.phase))
    return replace(campaign, phases=tuple(windows))


def _flag(raw: Any, *, file: str, where: str) -> bool:
    if not isinstance(raw, bool):
        raise CampaignError(file, where, "true or false")
    return raw


# --- what cannot change once a vote has opened -------------------------------------------------


def frozen_changes(stored: Campaign, new: Campaign, now: datetime, *,
                   seeds: Sequence[SeedProposal], on_ballot: Collection[str]) -> list[str]:
    """What `new` would change that voters of `stored` already rely on, its vote having
    opened: each as `field (before → after)`.

    `seeds` are the campaign's seed proposals as stored, `on_ballot` the refs of those
    published now. Frozen: the ballot rules and everything that decides who may vote and
    what a valid ballot is, the seed proposals (titles, costs, the set of them), and the
    vote having opened: its dates may move (a vote extended, closed early), but it cannot be
    removed, nor start again later than now. Texts, reminders and other dates may change.
    """
    changes: list[str] = []

    def compare(name: str, before: object, after: object) -> None:
        if before != after:
            changes.append(f"{name} ({_shown(before)} → {_shown(after)})")

    compare("kind", stored.kind, new.kind)
    compare("ballot.method", stored.ballot.method, new.ballot.method)
    compare("ballot.max_choices", stored.ballot.max_choices, new.ballot.max_choices)
    compare("ballot.min_share", stored.ballot.min_share, new.ballot.min_share)
    compare("envelope", stored.envelope, new.envelope)
    compare("audience.age_brackets", stored.audience.age_brackets, new.audience.age_brackets)
    compare("audience.departements", stored.audience.departements,
            new.audience.departements)
    compare("verified_phone", stored.verified_phone, new.verified_phone)
    vote = new.window(Phase.VOTE)
    if vote is None:
        changes.append("phases.vote (removed: the vote has opened)")
    elif vote.start > now:
        changes.append(f"phases.vote.start ({_shown(vote.start)} is later than now: a vote "
                       "that has opened cannot start again)")
    before = {s.ref: s for s in seeds}
    for seed in new.seed_proposals:
        old = before.get(seed.ref)
        if old is None:
            changes.append(f"seed_proposals[{seed.ref}] (added)")
            continue
        if dict(old.title) != dict(seed.title):
            changes.append(f"seed_proposals[{seed.ref}].title")
        compare(f"seed_proposals[{seed.ref}].cost", old.cost, seed.cost)
    kept = {s.ref for s in new.seed_proposals}
    changes.extend(f"seed_proposals[{ref}] (removed: it is on the ballot)"
                   for ref in sorted(set(on_ballot) - kept))
    return changes


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, datetime):
        return value.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, StrEnum):
        return value.value
    return str(value)
