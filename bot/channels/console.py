"""The console channel: a terminal (or a pipe) talks to Votz as an SMS user would."""

from __future__ import annotations

from typing import TextIO

from bot.channels.base import Reply, SendResult, numbered

CHANNEL = "console"


class ConsoleSender:
    """Prints each reply rendered like an SMS (numbered options)."""

    channel = CHANNEL

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
