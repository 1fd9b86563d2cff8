"""What every channel shares: inbound message, reply, capabilities, sender, delivery report.

The core never names a channel: it asks the registry (`bot.channels.registry`) for a
channel's `Capabilities`, and hands replies to its `Sender`. A channel reports what happened
to a message (sent, delivered, failed, the person opted out) as typed values, never as its
provider's words.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from bot.domain.participants import Status

if TYPE_CHECKING:
    from collections import Counter

    from starlette.routing import BaseRoute

    from bot.channels.gsm7 import SmsCost
    from bot.config import Settings
    from bot.i18n import I18n


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
    message_id: str | None = None  # with `choice`: the message whose button was pressed
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class ReplyChoice:
    """One option: `id` comes back when chosen, `key` is typed (1, 12), `code` is shown
    before the label where the option has a public code (a proposal's P12), else ""."""

    id: str
    key: str
    label: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A channel-neutral answer: text and the choices offered."""

    text: str
    choices: Sequence[ReplyChoice] = ()
    footer: str = ""  # after the choices, e.g. "SUITE : voir la suite (1/3)"
    turn: int = 0  # which turn of the conversation this is (buttons carry it back)
    ask_contact: str = ""  # a button label: ask the person to share their verified number
    bulk: bool = False  # not an answer (a broadcast, a reminder): set by the outbox's claim
    edit: str = ""  # the message this reply replaces in place (a selection's buttons), if any
    # The pressed message this reply answers (not edited in place): its buttons go just
    # before the reply is sent, in order after any edit of it still queued.
    clears: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the core needs to know about a channel to talk on it."""

    page_chars: int | None = None  # characters of options shown at once; None: all at once
    # SMS segments one reply may take (the whole screen, measured as sent): lists are cut
    # into pages that fit. Takes over from page_chars.
    page_segments: int | None = None
    buttons: bool = False  # options are tapped, not typed
    verified_address: bool = False  # the address is a phone number the network verified
    asks_contact: bool = False  # people can share a verified phone number on request


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str | None = None


class Sender(Protocol):
    """Delivers one rendered reply; raises `TransientSendError` or `PermanentSendError`.

    `rate` is how many units per second the provider accepts (0: no limit) and `cost` how
    many units one reply takes (SMS segments); the dispatcher paces each channel with them.
    """

    channel: str
    rate: float

    def cost(self, reply: Reply) -> int: ...

    async def send(self, address: str, reply: Reply) -> SendResult: ...

    async def close(self) -> None: ...


class DeliveryState(StrEnum):
    """What a provider's delivery report says, in Votz's words."""

    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"  # queued, sent, ringing...: nothing to record yet


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A provider's report on a message it accepted; `participant_status` when the report
    also says something about the person (an SMS opt-out)."""

    provider_id: str
    state: DeliveryState
    reason: str | None = None
    participant_status: Status | None = None


class SendError(Exception):
    """A delivery failed.

        SendError
        ├── TransientSendError   retry later (timeouts, 429, 5xx)
        └── PermanentSendError   give up; the person is unreachable on this channel
    """

    def __init__(self, reason: str, *, retry_after: float | None = None,
                 participant_status: Status | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        # The person opted out or blocked us: the status they now have (STOPPED).
        self.participant_status = participant_status


class TransientSendError(SendError):
    pass


class PermanentSendError(SendError):
    pass


class Accepted(Protocol):
    """What the core says about an inbound message it was handed."""

    @property
    def duplicate(self) -> bool: ...

    @property
    def reply(self) -> Reply | None: ...  # the answer queued, if any

    @property
    def notice(self) -> str: ...  # a short notice answering a button press (not queued)


class Host(Protocol):
    """What a running channel may use of the Votz process that hosts it."""

    i18n: I18n
    clock: Callable[[], datetime]

    @property
    def metrics(self) -> Counter[str]: ...  # counters by name (bot/metrics.py exposes them)

    async def handle(self, inbound: Inbound) -> Accepted: ...

    async def report(self, report: DeliveryReport) -> bool: ...


@dataclass
class Running:
    """A channel started by `votz run`: its sender, its web routes, its own loops."""

    sender: Sender
    routes: Sequence[BaseRoute] = ()
    start: Callable[[], Awaitable[str]] | None = None  # returns the `channel.X.started` line
    stop: Callable[[], Awaitable[None]] | None = None
    # Long-running loops the server supervises (name → loop run until the event is set).
    loops: Mapping[str, Callable[[asyncio.Event], Awaitable[None]]] = field(
        default_factory=dict)


@dataclass(frozen=True)
class Channel:
    """One channel as the core sees it."""

    name: str
    capabilities: Capabilities
    # The canonical form of an address people or staff type ("06 12…" → "+336…"), or None.
    normalise_address: Callable[[str], str | None] = field(default=lambda raw: raw.strip())
    # What one reply costs on this channel (SMS segments), where sending costs per unit.
    measure: Callable[[Reply], SmsCost] | None = None
    # Whether the settings ask `votz run` to start it, and how to start it.
    configured: Callable[[Settings], bool] = field(default=lambda settings: False)
    open: Callable[[Settings, Host], Running] | None = None


def numbered(reply: Reply) -> str:
    """The reply as plain text with numbered options (SMS and console)."""
    text = reply.text
    if reply.choices:
        text += "\n" + "\n".join(f"{c.key} {c.label}" for c in reply.choices)
    if reply.footer:
        text += "\n" + reply.footer
    return text


# A phone number (+33612345678, 06 12 34 56 78) or a Telegram chat id (a private chat's id is
# the person's user id): six digits or more, not inside a longer word (a message SID).
_ADDRESS = re.compile(r"(?<![\w+-])(?:[+0]\d(?:[ .]?\d){7,}|[+-]?\d{6,})(?!\w)")


def _masked(found: re.Match[str]) -> str:
    text = found.group()
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    kept = set(digits[-2:]) | (set(digits[:2]) if text.startswith("+") else set())
    return "".join("•" if ch.isdigit() and i not in kept else ch for i, ch in enumerate(text))


def mask_address(text: str) -> str:
    """`text` with every address in it masked, for logs and stored failure reasons: a phone
    number keeps its first two digits and last two (+33•••••••78), a chat id its last two."""
    return _ADDRESS.sub(_masked, text)


def error_summary(exc: BaseException) -> str:
    """What a log line may say about an error: its type and first line, addresses masked (a
    database error's next lines quote the statement's parameters: addresses, message texts)."""
    first_line = str(exc).partition("\n")[0]
    return mask_address(f"{type(exc).__name__}: {first_line}")
