"""What every channel shares: the normalised inbound message, the reply, the sender protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a person, whatever the channel."""

    channel: str
    address: str
    text: str
    choice: str | None = None  # a button's choice id (Telegram); None for typed text
    provider_id: str | None = None  # for de-duplication of provider retries
    locale_hint: str | None = None
    opt_out: str | None = None  # the provider already handled STOP/START (Twilio OptOutType)
    turn: int | None = None  # with `choice`: the reply whose button was pressed (stale check)
    start_payload: str | None = None  # a deep link's parameter (t.me/bot?start=SLUG)
    contact: str | None = None  # a phone number the channel verified (Telegram contact)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class ReplyChoice:
    id: str
    key: str
    label: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A channel-neutral answer: text and the choices offered."""

    text: str
    choices: Sequence[ReplyChoice] = ()
    footer: str = ""  # after the choices, e.g. "SUITE : voir la suite (1/3)"
    turn: int = 0  # which turn of the conversation this is (buttons carry it back)
    ask_contact: str = ""  # a button label: ask the person to share their verified number


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str | None = None


class Sender(Protocol):
    """Delivers one rendered reply; raises `TransientSendError` or `PermanentSendError`."""

    channel: str

    async def send(self, address: str, reply: Reply) -> SendResult: ...


class SendError(Exception):
    """A delivery failed.

        SendError
        ├── TransientSendError   retry later (timeouts, 429, 5xx)
        └── PermanentSendError   give up; the person is unreachable on this channel
    """

    def __init__(self, reason: str, *, retry_after: float | None = None,
                 stop: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.stop = stop  # the person opted out or blocked us: stop messaging them


class TransientSendError(SendError):
    pass


class PermanentSendError(SendError):
    pass


def numbered(reply: Reply) -> str:
    """The reply as plain text with numbered options (SMS and console)."""
    text = reply.text
    if reply.choices:
        text += "\n" + "\n".join(f"{c.key} {c.label}" for c in reply.choices)
    if reply.footer:
        text += "\n" + reply.footer
    return text
