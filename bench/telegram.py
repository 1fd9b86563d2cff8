"""Updates handled per second, end to end: fake Bot API → bot → sendMessage back to the fake.

    python bench/telegram.py [--users 300]

Runs the same dialogue (onboarding, menu, vote, confirm, back to the menu: 10 messages per
person) through Votz (`votz run`, polling, every step committed to SQLite) and through a peer
bot written the way python-telegram-bot's documentation teaches (ConversationHandler +
PicklePersistence, bench/peer/ptb_bot.py), each against a fresh fake Bot API in its own
process. Every person's messages are queued at once; the clock stops when the last reply
reaches the fake. Prints both figures and the ratio. Only loopback is used.
"""

from __future__ import annotations

import argparse
import os
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

SCRIPT = ["Bonjour", "1", "1", "3", "31000", "3", "2", "10 11 12", "1", "MENU"]






def run(name: str, command: list[str], env: dict[str, str], users: int, folder: Path,
        ready: str | None) -> tuple[float, int]:
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
        print(f"{name:6} {sent} replies to {expected} updates in {elapsed:.1f} s: "
              f"{sent / elapsed:,.0f} updates/s")
        return sent / elapsed, sent
    finally:
        for process in (bot, fake):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="votz-tg-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    port = free_port()
    env.update({"VOTZ_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
                "VOTZ_TELEGRAM_TOKEN": TOKEN, "VOTZ_HTTP_PORT": str(port),
                "VOTZ_TELEGRAM_MESSAGES_PER_SECOND": "100000",
                "VOTZ_TELEGRAM_CHAT_INTERVAL": "0"})
    subprocess.run([sys.executable, "-m", "bot", "campaigns", "load", str(ROOT / "campaigns")],
                   env=env, cwd=folder, check=True, capture_output=True)
    votz, _ = run("votz", [sys.executable, "-m", "bot", "run"], env, args.users, folder,
                  f"http://127.0.0.1:{port}/healthz")
    peer, _ = run("peer", [sys.executable, str(ROOT / "bench" / "peer" / "ptb_bot.py"),
                           "--api-url", "{api}", "--data", str(folder / "peer.pickle")],
                  env, args.users, folder, None)
    print(f"ratio  Votz / peer = {votz / peer:.2f}")


if __name__ == "__main__":
    main()
