"""What staff do, as plain functions the `votz` command and a staff chat can both call.

Each takes the database (and the time, where it matters) and returns values; printing is the
caller's. `measured()` is shared by the broadcast preview and the audit: the channels whose
registry entry says what a message costs there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.channels import registry
from bot.channels.base import Reply

if TYPE_CHECKING:
    from bot.channels.gsm7 import SmsCost

Measure = Callable[[Reply], "SmsCost"]


def measured() -> dict[str, Measure]:
    """Channel name → how to measure a reply, for every channel where sending costs per unit."""
    found: dict[str, Measure] = {}
    for name in registry.names():
        measure = registry.channel(name).measure
        if measure is not None:
            found[name] = measure
    return found
