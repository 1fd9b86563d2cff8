"""What a conversation turn asks the store to do; the pipeline applies them in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.participants import Status


@dataclass(frozen=True, slots=True)
class SetLocale:
    locale: str


@dataclass(frozen=True, slots=True)
class GiveConsent:
    privacy_url: str


@dataclass(frozen=True, slots=True)
class SetProfile:
    age_bracket: str | None = None
    postal_code: str | None = None
    departement: str | None = None


@dataclass(frozen=True, slots=True)
class SetPhone:
    phone: str


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: Status


@dataclass(frozen=True, slots=True)
class SetReminders:
    """Campaign announcements and reminders on or off (RAPPELS NON / RAPPELS OUI)."""

    on: bool


@dataclass(frozen=True, slots=True)
class Follow:
    """Follow a campaign (True), or hear nothing more from it (False)."""

    campaign_id: int
    following: bool


@dataclass(frozen=True, slots=True)
class SubmitProposal:
    """Adds a proposal awaiting moderation; its code is returned as `proposal_code`."""

    campaign_id: int
    text: str


@dataclass(frozen=True, slots=True)
class CastBallot:
    """Records (or replaces) the participant's one ballot in the campaign."""

    campaign_id: int
    choices: tuple[int, ...]
    age_bracket: str | None
    departement: str | None
    voter: str = ""  # "phone:+336…" or "participant:ID": one ballot per voter


@dataclass(frozen=True, slots=True)
class StartBallot:
    """A ballot is under way and not confirmed: its draft is (re)dated now, for the nudges.
    Casting the ballot (`CastBallot`) deletes the draft."""

    campaign_id: int


@dataclass(frozen=True, slots=True)
class DropDraft:
    """The person cancelled their ballot: no nudge about it."""

    campaign_id: int


@dataclass(frozen=True, slots=True)
class ReportProposal:
    """SIGNALER P12: the participant reports a published proposal (once); the store's
    answer (`report`: counted, already, unavailable) picks the reply."""

    proposal_id: int


@dataclass(frozen=True, slots=True)
class Erase:
    """Deletes the participant and their conversation; ballots stay, anonymised."""


@dataclass(frozen=True, slots=True)
class Unregister:
    """Erases the participant (as `Erase`), then keeps only what any first message keeps:
    the address and language, and the conversation (someone under 15, reading campaigns)."""


Effect = (SetLocale | GiveConsent | SetProfile | SetPhone | SetStatus | SetReminders | Follow
          | SubmitProposal | CastBallot | StartBallot | DropDraft | ReportProposal | Erase
          | Unregister)
