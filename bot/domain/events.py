"""What a campaign says on its own: announcements and reminders tied to its phases' dates.

An event is declared in the campaign's YAML under `reminders:` (or comes from the default
set when none is declared):

    reminders:
      - id: vote-closing
        when: vote.end - 2d          # a phase's start or end, then offsets in d, h, m, s
        audience: not_voted          # see Target
        text: {fr: "…", en: "…"}     # French required; {campaign} and {date} are filled in

An event anchored on a plain date (midnight in Europe/Paris, as `vote: {start: 2026-05-04}`
gives) with no hour of its own leaves at 10:00 that day, not at midnight. Languages without a
text get the default template of the same event id when it has one, else the French text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot.domain.region import LOCALES, PARIS
from bot.errors import CampaignError

if TYPE_CHECKING:
    from bot.domain.campaigns import Campaign, Phase

DATE_HOUR = time(10)  # when an event anchored on a plain date leaves
PLACEHOLDERS = ("campaign", "date")
_WHEN = re.compile(r"^([a-z]+)\.(start|end)((?:\s*[+-]\s*\d+\s*[dhms])*)$")
_OFFSET = re.compile(r"([+-])\s*(\d+)\s*([dhms])")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


class Target(StrEnum):
    """Who hears an event (always: consenting, not stopped, not unfollowing the campaign)."""

    ELIGIBLE = "eligible"  # everyone the campaign's audience (age, département) includes
    FOLLOWERS = "followers"  # those who chose to follow it
    AUTHORS = "authors"  # those who proposed an idea in it
    UNFINISHED = "unfinished"  # those who started a ballot and did not confirm it
    NOT_VOTED = "not_voted"  # eligible people without a ballot
    VOTERS = "voters"  # those who voted (results: the winners and their département's figures)


# Sent whatever the person's RAPPELS setting: what they did themselves comes back to them.
OUTCOME_TARGETS = frozenset({Target.VOTERS})


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    phase: Phase
    edge: str  # "start" or "end"
    offset: timedelta
    target: Target
    texts: Mapping[str, str] = field(default_factory=dict)  # locale → text (may be empty)
    results: bool = False  # carries the winners and the person's département's figures
    when: str = ""  # as written

    def due(self, campaign: Campaign) -> datetime | None:
        """When it happens for `campaign` (aware UTC), or None if the phase has no such edge."""
        window = campaign.window(self.phase)
        if window is None:
            return None
        anchor = window.start if self.edge == "start" else window.end
        if anchor is None:
            return None
        local = anchor.astimezone(PARIS)
        days = timedelta(days=self.offset.days)
        rest = self.offset - days
        if local.time() == time(0) and rest == timedelta(0):
            # A date, not a moment: at a decent hour on that day, not at midnight.
            day = (local + days).date()
            return datetime.combine(day, DATE_HOUR, tzinfo=PARIS).astimezone(anchor.tzinfo)
        # Days keep the hour on the clock (across a change to summer time, "vote.end - 2d"
        # is still 18:00 when the vote ends at 18:00); hours and minutes are elapsed time.
        return (local + days).astimezone(anchor.tzinfo) + rest

    def closing(self) -> bool:
        return self.edge == "end"


def dates_version(campaign: Campaign) -> str:
    """A short digest of the campaign's dates: a message's key includes it, so a campaign
    whose dates change may announce again what was planned for the old dates."""
    text = "|".join(f"{w.phase.value}:{w.start.isoformat()}:{w.end.isoformat() if w.end else ''}"
                    for w in campaign.phases)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_events() -> tuple[Event, ...]:
    """The default set of a participatory budget (and of any campaign declaring none)."""
    from bot.domain.campaigns import Phase

    return (
        Event("submission-opens", Phase.SUBMISSION, "start", timedelta(0), Target.ELIGIBLE,
              when="submission.start"),
        Event("submission-closing", Phase.SUBMISSION, "end", -timedelta(days=3),
              Target.ELIGIBLE, when="submission.end - 3d"),
        Event("vote-opens", Phase.VOTE, "start", timedelta(0), Target.ELIGIBLE,
              when="vote.start"),
        Event("vote-closing", Phase.VOTE, "end", -timedelta(days=2), Target.NOT_VOTED,
              when="vote.end - 2d"),
        Event("results", Phase.RESULTS, "start", timedelta(0), Target.VOTERS, results=True,
              when="results.start"),
    )


RESERVED_IDS = frozenset({"unfinished-ballots"})  # the nudges' row in campaign_events
DEFAULT_IDS = frozenset({"submission-opens", "submission-closing", "vote-opens",
                         "vote-closing", "results"})  # the ids of default_events()


def parse_events(raw: Any, *, file: str, texts: Any) -> tuple[Event, ...] | None:
    """The `reminders:` list of a campaign file (None when absent: the default set).

    `texts` reads a mapping of languages (the campaign parser's `_texts`)."""
    from bot.domain.campaigns import Phase

    if raw is None:
        return None
    if not isinstance(raw, list):
        raise CampaignError(file, "reminders", "a list of {id, when, audience, text}")
    events: list[Event] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"reminders[{i}]"
        if not isinstance(item, dict):
            raise CampaignError(file, where, "expected {id, when, audience, text}")
        unknown = set(item) - {"id", "when", "audience", "text", "results"}
        if unknown:
            raise CampaignError(file, f"{where}.{sorted(unknown)[0]}", "unknown field")
        event_id = str(item.get("id") or "")
        if not _ID.match(event_id) or event_id in seen or event_id in RESERVED_IDS:
            raise CampaignError(file, f"{where}.id",
                                "a unique id: lowercase letters, digits and dashes"
                                + (f" ({event_id!r} is Votz's own)"
                                   if event_id in RESERVED_IDS else ""))
        seen.add(event_id)
        when = str(item.get("when") or "").strip().lower()
        match = _WHEN.match(when)
        if match is None:
            raise CampaignError(file, f"{where}.when",
                                f"{when!r}: write PHASE.start or PHASE.end, then offsets "
                                "such as - 2d or + 10h")
        try:
            phase = Phase(match.group(1))
        except ValueError:
            raise CampaignError(file, f"{where}.when", f"unknown phase {match.group(1)!r}; "
                                f"use {', '.join(p.value for p in Phase)}") from None
        offset = timedelta(0)
        for sign, amount, unit in _OFFSET.findall(match.group(3)):
            step = timedelta(**{_UNITS[unit]: int(amount)})
            offset += step if sign == "+" else -step
        try:
            target = Target(str(item.get("audience") or ""))
        except ValueError:
            raise CampaignError(file, f"{where}.audience",
                                f"one of {', '.join(t.value for t in Target)}") from None
        results = item.get("results", event_id == "results")
        if not isinstance(results, bool):
            raise CampaignError(file, f"{where}.results", "true or false")
        found = texts(item.get("text"), file=file, where=f"{where}.text",
                      required=event_id not in DEFAULT_IDS)
        for locale, text in found.items():
            _check_placeholders(text, file=file, where=f"{where}.text.{locale}")
        if results and target is not Target.VOTERS:
            raise CampaignError(file, f"{where}.audience", "results go to voters")
        events.append(Event(event_id, phase, match.group(2), offset, target, found, results,
                            when))
    return tuple(events)


def _check_placeholders(text: str, *, file: str, where: str) -> None:
    for name in re.findall(r"\{([^{}]*)\}", text):
        if name not in PLACEHOLDERS:
            raise CampaignError(file, where, f"unknown placeholder {{{name}}}; use "
                                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))


def fill(text: str, values: Mapping[str, str]) -> str:
    """A declared text with its placeholders filled in (only known ones exist)."""
    return re.sub(r"\{(campaign|date)\}", lambda m: values.get(m.group(1), ""), text)


def event_to_json(event: Event) -> dict[str, Any]:
    return {"id": event.id, "phase": event.phase.value, "edge": event.edge,
            "offset": event.offset.total_seconds(), "target": event.target.value,
            "texts": dict(event.texts), "results": event.results, "when": event.when}


def event_from_json(raw: Mapping[str, Any]) -> Event:
    from bot.domain.campaigns import Phase

    return Event(raw["id"], Phase(raw["phase"]), raw["edge"],
                 timedelta(seconds=raw["offset"]), Target(raw["target"]),
                 {k: v for k, v in raw["texts"].items() if k in LOCALES}, raw["results"],
                 raw.get("when", ""))
