"""Drive simulated participants through the real pipeline and print throughput and latency.

    python bench/inbound.py [--participants 2000] [--concurrency 16] [--database-url URL]

Each participant onboards, browses, proposes an idea and votes for three projects (about
fifteen messages) on a fresh SQLite file with the shipped campaigns. Every message goes
through `Pipeline.handle`: dedupe, participant, state, engine, domain writes, outbox row,
commit. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# The project, not this folder, first: bench/telegram.py would shadow the `telegram` package.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bot.app import App  # noqa: E402
from bot.channels.base import Inbound, Reply, SendResult  # noqa: E402
from bot.config import Settings  # noqa: E402


class NullSender:
    rate = 0.0  # no pacing
    channel = "sms"

    async def send(self, address: str, reply: Reply) -> SendResult:
        return SendResult(provider_id=None)

    def cost(self, reply: Reply) -> int:
        return 1

    async def close(self) -> None:
        return None


def script(codes: list[str], rng: random.Random) -> list[str]:
    vote = " ".join(rng.sample(codes, 3))
    return [
        "Bonjour", "1", "1", "3", rng.choice(["31000", "48000", "34000", "09100", "81000"]),
        "1", "1", "MENU",
        "2", f"Une idée numéro {rng.randrange(10**6)} pour les jeunes du village", "1",
        f"VOTE {vote}", "1",
        "4", "MENU",
    ]


async def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="votz-bench-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    settings = replace(Settings.from_env({}, dotenv=None), database_url=url)
    app = await App.start(settings, senders={"sms": NullSender()})
    await app.load_campaigns(settings.campaigns_path)
    demo = app.pipeline.catalog.by_slug("vie-etudiante-demo")
    assert demo is not None
    codes = [p.code for p in app.pipeline.catalog.published(demo.id)]
    rng = random.Random(42)
    scripts = {f"+336{n:08d}": script(codes, rng) for n in range(args.participants)}
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for address in scripts:
        queue.put_nowait(address)
    sequence = 0

    async def participant_worker() -> None:
        nonlocal sequence
        while not queue.empty():
            address = queue.get_nowait()
            for text in scripts[address]:
                sequence += 1
                message = Inbound(channel="sms", address=address, text=text,
                                  provider_id=f"SM{sequence:010d}")
                started = time.perf_counter()
                handled = await app.pipeline.handle(message)
                latencies.append(time.perf_counter() - started)
                assert handled.reply is not None, (address, text)

    stop = asyncio.Event()
    dispatcher = asyncio.create_task(app.dispatcher.run(stop)) if args.dispatch else None
    started = time.perf_counter()
    await asyncio.gather(*(participant_worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    stop.set()
    if dispatcher is not None:
        await dispatcher
    await app.close()

    latencies.sort()
    ms = [x * 1000 for x in latencies]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = "dispatcher on" if args.dispatch else "pipeline only"
    print(f"database         {url.split('://')[0]}  ({mode})")
    print(f"participants     {args.participants}  concurrency {args.concurrency}")
    print(f"messages         {len(ms)} in {elapsed:.2f} s")
    print(f"throughput       {len(ms) / elapsed:,.0f} messages/s")
    print(f"latency p50      {statistics.median(ms):.2f} ms")
    print(f"latency p99      {p99:.2f} ms")
    print(f"latency max      {ms[-1]:.2f} ms")
    print(f"peak RSS         {rss_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="participants talking at the same time")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--no-dispatch", dest="dispatch", action="store_false",
                        help="measure the pipeline alone, without the dispatcher draining")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
