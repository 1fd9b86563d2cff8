"""Updates handled per second, end to end: fake Bot API → bot → sendMessage back to the fake.

    python bench/telegram.py [--users 300] [--rounds 3]

Runs the same dialogue (onboarding, menu, vote, confirm, back to the menu: 10 messages per
person) through Votz (`votz run`, polling, every step committed to SQLite) and through a peer
bot written the way python-telegram-bot's documentation teaches (ConversationHandler +
PicklePersistence, bench/peer/ptb_bot.py), each against a fresh fake Bot API in its own
process. Every person's messages are queued at once; the clock stops when the last reply
reaches the fake. The bots run in turn, `--rounds` times each (this machine's noise is large);
prints every run, what Votz's database holds afterwards, the medians and their ratio. Only
loopback is used.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.testing.fake_telegram import TOKEN  # noqa: E402
from bot.testing.server import free_port, wait_http  # noqa: E402

# Votes with the list's own numbers (1…N as shown): 1 2 3 of the student-life demo are its
# first three projects (P10, P11, P12). Every step is typed, as the peer bot reads it; the
# taps that tick projects on buttons are not part of this comparison.
SCRIPT = ["Bonjour", "1", "1", "3", "31000", "3", "2", "1 2 3", "1", "MENU"]


def run(name: str, command: list[str], env: dict[str, str], users: int, folder: Path,
        ready: str | None) -> float | None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    fake = subprocess.Popen([sys.executable, "-m", "bot.testing.fake_telegram", "--port",
                             str(port)], stdout=subprocess.DEVNULL, cwd=folder, env=env)
    bot = None
    try:
        wait_http(api + "/fake/summary")
        env = {**env, "VOTZ_TELEGRAM_API_URL": api}
        bot = subprocess.Popen([part.replace("{api}", api) for part in command], env=env,
                               cwd=folder, stdout=subprocess.DEVNULL,
                               stderr=None if os.environ.get("BENCH_VERBOSE") else
                               subprocess.DEVNULL)
        if ready:
            wait_http(ready)
        time.sleep(1.0)  # let the bot start polling
        expected = users * len(SCRIPT)
        # Each person's messages in order; people interleaved.
        messages = [[1000 + u, text] for text in SCRIPT for u in range(users)]
        started = time.monotonic()
        httpx.post(api + "/fake/say", json=messages, timeout=60)
        summary: dict[str, float] = {}
        deadline = time.monotonic() + float(os.environ.get("BENCH_TIMEOUT", "300"))
        while time.monotonic() < deadline:
            summary = httpx.get(api + "/fake/summary").json()
            if summary["sent"] >= expected:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        sent = int(summary.get("sent", 0))
        if sent < expected:  # not a figure: left out of the medians
            print(f"{name:6} TIMED OUT: {sent} replies to {expected} updates in {elapsed:.1f} s")
            return None
        print(f"{name:6} {sent} replies to {expected} updates in {elapsed:.1f} s: "
              f"{sent / elapsed:,.0f} updates/s")
        return sent / elapsed
    finally:
        for process in (bot, fake):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def prepare(env: dict[str, str]) -> tuple[Path, dict[str, str], str]:
    """A fresh folder and SQLite file with the example campaigns, and Votz's environment."""
    folder = Path(tempfile.mkdtemp(prefix="votz-tg-bench-"))
    port = free_port()
    env = {**env, "VOTZ_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
           "VOTZ_HTTP_PORT": str(port)}
    subprocess.run([sys.executable, "-m", "bot", "campaigns", "load", str(ROOT / "campaigns")],
                   env=env, cwd=folder, check=True, capture_output=True)
    return folder, env, f"http://127.0.0.1:{port}/healthz"


def persisted(folder: Path, users: int) -> bool:
    """What Votz's database holds after a run: each step was committed, not kept in memory."""
    with sqlite3.connect(folder / "bench.db") as db:
        ballots, = db.execute("SELECT count(*) FROM ballots").fetchone()
        states, = db.execute("SELECT count(*) FROM conversations").fetchone()
        sent, = db.execute("SELECT count(*) FROM outbox WHERE status = 'sent'").fetchone()
    ok = (states, ballots, sent) == (users, users, users * len(SCRIPT))
    print(f"       in its database: {states} conversations, {ballots} ballots, {sent} replies "
          f"sent{'' if ok else ' — NOT what the dialogue should leave'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each bot, in turn (the machine's noise is large)")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    base.update({"VOTZ_TELEGRAM_TOKEN": TOKEN,
                 # Telegram's pacing (30/s, 1/s per chat) is switched off for both bots.
                 "VOTZ_TELEGRAM_MESSAGES_PER_SECOND": "100000",
                 "VOTZ_TELEGRAM_CHAT_INTERVAL": "0"})
    pairs: list[tuple[float, float]] = []
    complete = True
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}/{args.rounds}")
        folder, env, ready = prepare(base)
        peer = [sys.executable, str(ROOT / "bench" / "peer" / "ptb_bot.py"),
                "--api-url", "{api}", "--data", str(folder / "peer.pickle")]
        bots = {"votz": ([sys.executable, "-m", "bot", "run"], env, ready),
                "peer": (peer, base, None)}
        # Which bot goes first alternates, so neither always gets the fresher machine.
        order = ("votz", "peer") if round_ % 2 else ("peer", "votz")
        rates = {name: run(name, bots[name][0], bots[name][1], args.users, folder,
                           bots[name][2]) for name in order}
        complete = persisted(folder, args.users) and complete
        votz_rate, peer_rate = rates["votz"], rates["peer"]
        if votz_rate is None or peer_rate is None:
            complete = False
            continue
        pairs.append((votz_rate, peer_rate))
    if not pairs:
        print("no round completed")
        return 1
    votz = statistics.median(v for v, _ in pairs)
    peer = statistics.median(p for _, p in pairs)
    ratios = [v / p for v, p in pairs]
    print(f"median votz {votz:,.0f} updates/s, peer {peer:,.0f} updates/s "
          f"({len(pairs)} complete round(s) of {args.rounds})")
    print(f"ratio  Votz / peer = {votz / peer:.2f} (median; per round "
          f"{min(ratios):.2f}–{max(ratios):.2f})")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
