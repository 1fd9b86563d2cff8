"""A new person's SMS journey, as they receive it: every reply rendered as sent, its segments.

    python bench/sms_journey.py [--quiet] [--locale fr] [TEXT ...]

Runs Votz in process on a fresh SQLite file with the shipped campaigns (`campaigns/`, the
demo ones dated relative to today), as one SMS number, and sends the journey's messages one
by one: onboarding, the campaign list and a campaign page, a vote and a change of vote, an
idea, STOP. Each reply is printed as the phone shows it (GSM-7 folding, numbered options,
pages), followed by its encoding, characters and segments; the summary gives the count of
replies, the mean and the maximum segments, and the segments in all. Figures are printed,
never asserted (the audit test, `votz sms audit`, holds the 2-segment limit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from bot.app import App  # noqa: E402
from bot.channels.base import Inbound  # noqa: E402
from bot.channels.sms import measure, render  # noqa: E402
from bot.config import Settings  # noqa: E402


# Onboarding (language, consent, age, postal code), the campaigns and one campaign's page,
# the vote on the student-life demo (pick 1 and 3 of its list, the grocery and the housing:
# P10 and P12), a change of vote (2, the reuse shop: P11), an idea, STOP. Lists are numbered
# 1…N as shown.
def _journey(hello: str, language: str, yes: str, idea: str) -> list[str]:
    """The same steps in every language: only the greeting, the language's number, "yes"
    and the idea are written in it."""
    return [hello, language, yes, "18-25", "31000",
            "1", "2", "1",
            "MENU", "3", "2", "1 3", "1",
            "VOTE", "2", "2", "1",
            "MENU", "2", idea, "1",
            "STOP"]


JOURNEY = {
    "fr": _journey("Bonjour", "1", "oui", "Un bus le samedi soir entre les villages et la gare"),
    "en": _journey("Hello", "2", "yes",
                   "A Saturday night bus between the villages and the station"),
    "oc": _journey("Adieu", "3", "òc", "Un bus lo dissabte al ser entre los vilatges e la gara"),
}


async def journey(texts: list[str], quiet: bool) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(Settings.from_env({}, dotenv=None),
                           database_url=f"sqlite:///{tmp}/journey.db")
        async with App.open(settings) as app:
            await app.load_campaigns(ROOT / "campaigns")
            counts = []
            for n, text in enumerate(texts, 1):
                handled = await app.handle(Inbound("sms", "+33612345678", text,
                                                   provider_id=f"journey-{n}"))
                if handled.reply is None:
                    continue
                body = render(handled.reply)
                cost = measure(handled.reply)
                counts.append(cost.segments)
                if not quiet:
                    print(f"> {text}")
                    print(body)
                    print(f"  [{cost.encoding}, {cost.units} units, "
                          f"{cost.segments} segment{'s' * (cost.segments > 1)}]\n")
            return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("texts", nargs="*", help="the messages to send (default: the journey)")
    parser.add_argument("--locale", default="fr", choices=sorted(JOURNEY))
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    args = parser.parse_args()
    counts = asyncio.run(journey(args.texts or JOURNEY[args.locale], args.quiet))
    print(f"replies {len(counts)}  mean {statistics.mean(counts):.2f} segments  "
          f"max {max(counts)}  total {sum(counts)}  "
          f"over 2: {sum(c > 2 for c in counts)}")


if __name__ == "__main__":
    main()
