"""The console channel: a terminal (or a pipe) talks to Votz as an SMS user would."""

from __future__ import annotations

from typing import TextIO

from bot.channels.base import Capabilities, Channel, Reply, SendResult, numbered

CHANNEL = "console"
# Read like an SMS: numbered options, long lists in pages.
CHANNEL_SPEC = Channel(CHANNEL, Capabilities(page_segments=2))


class ConsoleSender:
    """Prints each reply rendered like an SMS (numbered options)."""

    channel = CHANNEL
    rate = 0.0

    def __init__(self, out: TextIO, *, prefix: str = "") -> None:
        self.out = out
        self.prefix = prefix
        self.sent: list[str] = []

    async def send(self, address: str, reply: Reply) -> SendResult:
        text = numbered(reply)
        self.sent.append(text)
        self.out.write(self.prefix + text.replace("\n", "\n" + self.prefix) + "\n\n")
        self.out.flush()
        return SendResult(provider_id=None)

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None
