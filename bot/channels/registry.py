"""The channel registry: every channel Votz speaks, and what the core may ask of each.

Adding a channel is one module that defines `CHANNEL_SPEC` and one line in `MODULES`. Outside
`bot/channels/`, nothing spells a channel's name: the core asks `channel(name)` for its
capabilities, its address rules and its cost, and `configured(settings)` for the channels a
`votz run` starts.
"""

from __future__ import annotations

import importlib

from bot.channels.base import Capabilities, Channel
from bot.config import Settings
from bot.errors import ConfigError

# name → the module defining its `CHANNEL_SPEC`, imported when first asked for (the SDKs of
# SMS and Telegram take a second to import; the console demo needs neither).
MODULES = {
    "console": "bot.channels.console",
    "sms": "bot.channels.sms",
    "telegram": "bot.channels.telegram",
}
_loaded: dict[str, Channel] = {}


def names() -> list[str]:
    return list(MODULES)


def channel(name: str) -> Channel:
    """The channel called `name`; a clear error for a name Votz does not know."""
    found = _loaded.get(name)
    if found is None:
        if name not in MODULES:
            raise ConfigError(f"unknown channel {name!r}: one of {', '.join(MODULES)}")
        found = _loaded[name] = importlib.import_module(MODULES[name]).CHANNEL_SPEC
        assert found.name == name, (found.name, name)
    return found


def capabilities(name: str) -> Capabilities:
    return channel(name).capabilities if name in MODULES else Capabilities()


def configured(settings: Settings) -> list[Channel]:
    """The channels these settings ask `votz run` to start (checked: ConfigError if half-set)."""
    return [c for c in map(channel, MODULES) if c.configured(settings)]
