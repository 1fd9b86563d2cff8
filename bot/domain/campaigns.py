"""Campaigns, their phases and rules, as immutable values built from YAML definitions."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
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
    relative_dates: bool = False  # a demo: dates follow the day it is loaded, nothing freezes
    verified_phone: bool = False  # voters need a verified number: one ballot per phone
    declared_events: tuple[Event, ...] | None = None  # `reminders:`; None: the default set
    sending_windows: Mapping[str, str] = field(default_factory=dict)  # channel → window

    @property
    def events(self) -> tuple[Event, ...]:
        """Its announcements and reminders: those declared, else the default set (only
        those whose phase the campaign has)."""
        events = default_events() if self.declared_events is None else self.declared_events
        return tuple(e for e in events if self.window(e.phase) is not None)

    def text(self, name: str, locale: str) -> str:
        texts: Mapping[str, str] = getattr(self, name)
        return texts.get(locale) or texts.get("fr") or ""

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


def parse_campaign(raw: Any, *, file: str, today: date, now: datetime | None = None
                   ) -> Campaign:
    """Validate one campaign definition; errors name the file, the field and the problem."""
    if not isinstance(raw, dict):
        raise CampaignError(file, "(top)", "a campaign file is a mapping of fields")
    known = {
        "slug", "kind", "title", "summary", "description", "audience", "phases",
        "proposals", "ballot", "envelope", "seed_proposals", "contact", "verified_phone",
        "reminders", "sending_window",
    }
    unknown = set(raw) - known
    if unknown:
        raise CampaignError(file, sorted(unknown)[0], "unknown field")
    slug = raw.get("slug")
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise CampaignError(file, "slug", "lowercase letters, digits and dashes (2-63)")
    try:
        kind = Kind(str(raw.get("kind")))
    except ValueError:
        raise CampaignError(
            file, "kind", f"one of {', '.join(k.value for k in Kind)}, got {raw.get('kind')!r}"
        ) from None

    audience_raw = raw.get("audience") or {}
    if not isinstance(audience_raw, dict):
        raise CampaignError(file, "audience", "expected a mapping")
    raw_brackets = audience_raw.get("age_brackets", AGE_BRACKETS)
    if not isinstance(raw_brackets, list | tuple) or any(
        not isinstance(b, str) for b in raw_brackets
    ):
        raise CampaignError(file, "audience.age_brackets",
                            f"a list of brackets among {', '.join(AGE_BRACKETS)}")
    brackets = tuple(raw_brackets)
    bad = [b for b in brackets if b not in AGE_BRACKETS]
    if bad or not brackets:
        raise CampaignError(
            file, "audience.age_brackets", f"unknown bracket {bad[0] if bad else '(none)'}; "
            f"use {', '.join(AGE_BRACKETS)}",
        )
    raw_deps = audience_raw.get("departements", OCCITANIE)
    if not isinstance(raw_deps, list | tuple):
        raise CampaignError(file, "audience.departements", "a list of codes such as [\"31\"]")
    deps = tuple(str(d).zfill(2) for d in raw_deps)
    if not deps or any(not re.fullmatch(r"\d{2,3}|2[AB]", d) for d in deps):
        raise CampaignError(file, "audience.departements", "département codes such as 31 or 48")

    phases_raw = raw.get("phases")
    if not isinstance(phases_raw, dict) or not phases_raw:
        raise CampaignError(file, "phases", "expected a mapping of phase → {start, end}")
    windows: list[PhaseWindow] = []
    relative = False
    for name, span in phases_raw.items():
        try:
            phase = Phase(name)
        except ValueError:
            raise CampaignError(
                file, f"phases.{name}", f"unknown phase; use {', '.join(p.value for p in Phase)}"
            ) from None
        if not isinstance(span, dict) or "start" not in span:
            raise CampaignError(file, f"phases.{name}", "expected {start: DATE, end: DATE}")
        relative |= any(isinstance(span.get(k), str)
                        and span[k].strip().lower().startswith(("today", "now"))
                        for k in ("start", "end"))
        start = _moment(span["start"], today=today, file=file, where=f"phases.{name}.start",
                        end=False, now=now)
        end = None
        if span.get("end") is not None:
            end = _moment(span["end"], today=today, file=file, where=f"phases.{name}.end",
                          end=True, now=now)
            if end <= start:
                raise CampaignError(file, f"phases.{name}.end", "ends before it starts")
        windows.append(PhaseWindow(phase, start, end))
    order = list(Phase)
    windows.sort(key=lambda w: order.index(w.phase))
    for before, after in itertools.pairwise(windows):
        if before.end is None or before.end > after.start:
            raise CampaignError(
                file, f"phases.{after.phase.value}.start",
                f"overlaps the {before.phase.value} phase (phases follow each other in order)",
            )

    for name in ("proposals", "ballot"):
        if not isinstance(raw.get(name) or {}, dict):
            raise CampaignError(file, name, "expected a mapping of rules")
    proposals_raw = raw.get("proposals") or {}
    proposal_rules = ProposalRules(
        max_length=_int(proposals_raw.get("max_length", 280), file=file,
                        where="proposals.max_length", minimum=10),
        max_per_person=_int(proposals_raw.get("max_per_person", 3), file=file,
                            where="proposals.max_per_person", minimum=1),
    )
    if proposal_rules.max_length > 1000:
        raise CampaignError(file, "proposals.max_length", "at most 1000 characters")

    ballot_raw = raw.get("ballot") or {}
    try:
        method = BallotMethod(ballot_raw.get("method", "up_to"))
    except ValueError:
        raise CampaignError(
            file, "ballot.method", f"one of {', '.join(m.value for m in BallotMethod)}"
        ) from None
    max_choices = 1 if method is BallotMethod.SINGLE else _int(
        ballot_raw.get("max_choices", 3), file=file, where="ballot.max_choices", minimum=1)
    min_share = ballot_raw.get("min_share", 0.0)
    if isinstance(min_share, bool) or not isinstance(min_share, int | float) \
            or not 0 <= min_share <= 1:
        raise CampaignError(file, "ballot.min_share", "a share between 0 and 1")
    envelope = raw.get("envelope")
    if envelope is not None:
        envelope = _int(envelope, file=file, where="envelope", minimum=1)
    if method is BallotMethod.BUDGET and envelope is None:
        raise CampaignError(file, "envelope", "a budget ballot needs an envelope (euros)")

    seeds: list[SeedProposal] = []
    refs: set[str] = set()
    for i, item in enumerate(raw.get("seed_proposals") or []):
        where = f"seed_proposals[{i}]"
        if not isinstance(item, dict):
            raise CampaignError(file, where, "expected {ref, title, cost}")
        if isinstance(item.get("ref"), bool):
            raise CampaignError(file, f"{where}.ref", "quote it: yes/no/on/off read as true/false")
        ref = str(item.get("ref") or "").strip()
        if not ref or ref in refs:
            raise CampaignError(file, f"{where}.ref", "a unique reference is required")
        refs.add(ref)
        cost = item.get("cost")
        if cost is not None:
            cost = _int(cost, file=file, where=f"{where}.cost", minimum=1)
        if envelope is not None and cost is None:
            raise CampaignError(file, f"{where}.cost", "campaigns with an envelope need costs")
        title = _texts(item.get("title"), file=file, where=f"{where}.title")
        if len(title["fr"]) > proposal_rules.max_length:
            raise CampaignError(file, f"{where}.title", "longer than proposals.max_length")
        seeds.append(SeedProposal(ref=ref, title=title, cost=cost))

    windows_raw = raw.get("sending_window") or {}
    if not isinstance(windows_raw, dict) or any(
            not isinstance(v, str) for v in windows_raw.values()):
        raise CampaignError(file, "sending_window",
                            'a mapping of channel → window, e.g. {sms: "mon-fri 10:00-18:00"}')
    for channel, text in windows_raw.items():
        from bot.delivery.windows import parse_window
        from bot.errors import ConfigError

        try:
            parse_window(text, where=f"sending_window.{channel}")
        except ConfigError as exc:
            raise CampaignError(file, f"sending_window.{channel}", str(exc)) from None

    declared = parse_events(raw.get("reminders"), file=file, texts=_texts)
    phases_here = {w.phase for w in windows}
    for i, event in enumerate(declared or ()):
        if event.phase not in phases_here:
            raise CampaignError(file, f"reminders[{i}].when",
                                f"the campaign has no {event.phase.value} phase")

    return Campaign(
        slug=slug,
        kind=kind,
        title=_texts(raw.get("title"), file=file, where="title"),
        summary=_texts(raw.get("summary"), file=file, where="summary"),
        description=_texts(raw.get("description"), file=file, where="description",
                           required=False),
        phases=tuple(windows),
        audience=Audience(age_brackets=brackets, departements=deps),
        proposal_rules=proposal_rules,
        ballot=BallotRules(method=method, max_choices=max_choices, min_share=float(min_share)),
        envelope=envelope,
        seed_proposals=tuple(seeds),
        contact=str(raw.get("contact") or ""),
        relative_dates=relative,
        verified_phone=_flag(raw.get("verified_phone", False), file=file,
                             where="verified_phone"),
        declared_events=declared,
        sending_windows={str(k): v for k, v in windows_raw.items()},
    )


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
