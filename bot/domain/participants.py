"""Participants: postal codes, départements and who may take part in what."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain.campaigns import Campaign, Phase


class Status(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"  # asked for no more messages (STOP)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the engine knows about the person it talks to."""

    id: int
    locale: str
    consent_at: datetime | None = None
    age_bracket: str | None = None
    postal_code: str | None = None
    departement: str | None = None
    status: Status = Status.ACTIVE
    phone: str | None = None  # verified (SMS number, or shared on Telegram)
    reminders: bool = True  # campaign announcements and reminders (RAPPELS NON: off)

    @property
    def onboarded(self) -> bool:
        return (
            self.consent_at is not None
            and self.age_bracket is not None
            and self.departement is not None
        )


AGE_OPEN_END = 130  # the top of an open-ended bracket (65+)


def age_span(bracket: str) -> tuple[int, int]:
    """The ages a bracket holds: `15-17` → (15, 17), `under-15` → (0, 14), `65+` → (65, 130)."""
    if bracket.startswith("under-"):
        return 0, int(bracket.removeprefix("under-")) - 1
    if bracket.endswith("+"):
        return int(bracket[:-1]), AGE_OPEN_END
    low, high = bracket.split("-")
    return int(low), int(high)


_POSTAL = re.compile(r"^\d{5}$")


def departement_of(postal_code: str) -> str | None:
    """The département of a French postal code, or None when it is not one."""
    code = re.sub(r"\s", "", postal_code)
    if not _POSTAL.match(code) or code.startswith("00"):
        return None
    head = code[:2]
    if head == "20":
        return "2A" if code < "20200" else "2B"
    if head in ("97", "98"):
        return code[:3]
    if head == "96":
        return None
    return head


class Refusal(StrEnum):
    """Why someone may not do something now; each has a translated message."""

    NOT_ONBOARDED = "not_onboarded"
    AGE = "age"
    TERRITORY = "territory"
    PHASE = "phase"
    LIMIT = "limit"
    PHONE = "phone"  # the campaign wants a verified number this channel cannot give


def may_participate(profile: Profile, campaign: Campaign) -> Refusal | None:
    if not profile.onboarded:
        return Refusal.NOT_ONBOARDED
    if profile.age_bracket not in campaign.audience.age_brackets:
        return Refusal.AGE
    if profile.departement not in campaign.audience.departements:
        return Refusal.TERRITORY
    return None


def may_propose(
    profile: Profile, campaign: Campaign, now: datetime, *, already: int
) -> Refusal | None:
    if not campaign.is_open(Phase.SUBMISSION, now):
        return Refusal.PHASE
    refusal = may_participate(profile, campaign)
    if refusal is not None:
        return refusal
    if already >= campaign.proposal_rules.max_per_person:
        return Refusal.LIMIT
    return None


def may_vote(profile: Profile, campaign: Campaign, now: datetime) -> Refusal | None:
    if not campaign.is_open(Phase.VOTE, now):
        return Refusal.PHASE
    return may_participate(profile, campaign)
