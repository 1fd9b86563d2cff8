"""The channel registry: every channel Votz speaks, and what the core may ask of each.

Adding a channel is one module that defines a `Channel` and one line in `CHANNELS`. Outside
`bot/channels/`, nothing spells a channel's name: the core asks `channel(name)` for its
capabilities, its address rules and its cost, and `configured(settings)` for the channels a
`votz run` starts.
"""

from __future__ import annotations

from bot.channels import console, sms, telegram
from bot.channels.base import Capabilities, Channel
from bot.config import Settings
from bot.errors import ConfigError

CHANNELS: dict[str, Channel] = {c.name: c for c in (console.CHANNEL_SPEC, sms.CHANNEL_SPEC,
                                                    telegram.CHANNEL_SPEC)}


def names() -> list[str]:
    return list(CHANNELS)


def channel(name: str) -> Channel:
    """The channel called `name`; a clear error for a name Votz does not know."""
    found = CHANNELS.get(name)
    if found is None:
        raise ConfigError(f"unknown channel {name!r}: one of {', '.join(CHANNELS)}")
    return found


def capabilities(name: str) -> Capabilities:
    found = CHANNELS.get(name)
    return found.capabilities if found is not None else Capabilities()


def configured(settings: Settings) -> list[Channel]:
    """The channels these settings ask `votz run` to start (checked: ConfigError if half-set)."""
    return [c for c in CHANNELS.values() if c.configured(settings)]
