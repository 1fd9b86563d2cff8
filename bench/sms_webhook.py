"""Fire concurrent signed Twilio webhooks at `votz run` and print throughput and latency.

    python bench/sms_webhook.py [--seconds 10] [--concurrency 32]

Starts a fake Twilio API (its own process) and `votz run` (SQLite file, example campaigns),
then for a bounded time posts signed inbound SMS from many numbers — each one onboarding,
browsing and voting — waits for every reply to reach the fake Twilio API, and prints
requests/s, p50/p99 latency, errors and whether every message was answered once.
Requests are signed before the clock starts, and sent with aiohttp, so that the load
generator takes as little of the machine's two cores as it can. Only loopback is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402
from bot.testing.server import free_port, wait_http  # noqa: E402
from bot.testing.sms_webhook import signed_form  # noqa: E402

SCRIPT = ["Bonjour", "1", "1", "3", "31000", "1", "1", "MENU", "3", "2", "10 11 12", "1",
          "4", "MENU"]






def prepare(public: str, people: int) -> list[list[tuple[bytes, str]]]:
    """For each simulated person, the signed requests of their conversation."""
    conversations = []
    for person in range(people):
        number = f"+3361{person:07d}"
        requests = []
        for n, text in enumerate(SCRIPT):
            form, headers = signed_form(text, number, public_url=public, auth_token=AUTH_TOKEN,
                                        sid=f"SM{person:016d}{n:016d}")
            requests.append((urlencode(form).encode(), headers["X-Twilio-Signature"]))
        conversations.append(requests)
    return conversations


async def fire(public: str, conversations: list[list[tuple[bytes, str]]], seconds: float,
               concurrency: int) -> tuple[list[float], Counter[str], int]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    accepted = 0
    deadline = time.perf_counter() + seconds
    queue = list(reversed(conversations))
    url = public + "/sms/inbound"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def person() -> None:
            nonlocal accepted
            while queue and time.perf_counter() < deadline:
                for body, signature in queue.pop():
                    if time.perf_counter() >= deadline:
                        return
                    headers = {"X-Twilio-Signature": signature,
                               "Content-Type": "application/x-www-form-urlencoded"}
                    started = time.perf_counter()
                    try:
                        async with session.post(url, data=body, headers=headers) as response:
                            await response.read()
                            status = response.status
                    except aiohttp.ClientError as exc:
                        errors[type(exc).__name__] += 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    if status == 200:
                        accepted += 1
                    else:
                        errors[f"HTTP {status}"] += 1

        await asyncio.gather(*(person() for _ in range(concurrency)))
    return latencies, errors, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="votz-sms-bench-"))
    twilio_port, port = free_port(), free_port()
    twilio_url, public = f"http://127.0.0.1:{twilio_port}", f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    env.update({
        "VOTZ_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "VOTZ_HTTP_PORT": str(port), "VOTZ_PUBLIC_URL": public,
        "VOTZ_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOTZ_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "VOTZ_TWILIO_FROM": "+33756000000", "VOTZ_TWILIO_API_URL": twilio_url,
        "VOTZ_TWILIO_SEGMENTS_PER_SECOND": "100000",
    })
    subprocess.run([sys.executable, "-m", "bot", "campaigns", "load", str(ROOT / "campaigns")],
                   env=env, check=True, cwd=folder, capture_output=True)
    processes = [
        subprocess.Popen([sys.executable, "-m", "bot.testing.fake_twilio", "--quiet",
                          "--port", str(twilio_port)], env=env, cwd=folder,
                         stdout=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=folder,
                         stderr=subprocess.DEVNULL),
    ]
    try:
        wait_http(twilio_url + "/fake/summary")
        wait_http(public + "/healthz")
        conversations = prepare(public, people=int(args.seconds * 120) + args.concurrency)
        started = time.perf_counter()
        latencies, errors, accepted = asyncio.run(
            fire(public, conversations, args.seconds, args.concurrency))
        elapsed = time.perf_counter() - started
        summary: dict[str, int] = {}
        drain_deadline = time.monotonic() + 60
        while time.monotonic() < drain_deadline:
            summary = httpx.get(twilio_url + "/fake/summary").json()
            if summary["messages"] >= accepted:
                break
            time.sleep(0.1)
        drained = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    answered = summary.get("messages", 0)
    verdict = "every message answered once" if answered == accepted else "MISMATCH"
    print(f"webhooks         {len(ms)} in {elapsed:.1f} s, {args.concurrency} concurrent clients")
    print(f"throughput       {len(ms) / elapsed:,.0f} requests/s")
    print(f"latency p50      {statistics.median(ms):.1f} ms")
    print(f"latency p99      {p99:.1f} ms")
    print(f"errors           {sum(errors.values())} {dict(errors) or ''}")
    print(f"replies          {answered} for {accepted} accepted webhooks ({verdict}), "
          f"{summary.get('numbers', 0)} people; all sent {drained:.1f} s after the start")


if __name__ == "__main__":
    main()
