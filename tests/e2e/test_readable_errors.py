"""`votz run` refuses to start with one line an operator can act on, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bot.testing.fake_telegram import FakeTelegram
from bot.testing.server import LocalServer, free_port


def run(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    env.update({"VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'votz.db'}",
                **{f"VOTZ_{k.upper()}": v for k, v in settings.items()}})
    return subprocess.run([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path, http_port=str(port))
    assert result.returncode == 2
    assert errors(result) == [f"error: cannot listen on 127.0.0.1:{port}: Address already "
                              "in use (another `votz run`? set VOTZ_HTTP_PORT, or stop the "
                              "other process)"]
    assert "Traceback" not in result.stderr


def test_a_bad_telegram_token(tmp_path: Path) -> None:
    with LocalServer(FakeTelegram().asgi()) as telegram:
        result = run(tmp_path, http_port=str(free_port()), telegram_token="999:WRONG",
                     telegram_api_url=telegram.url)
    assert result.returncode == 2
    assert errors(result) == ["error: Telegram refuses VOTZ_TELEGRAM_TOKEN: ask @BotFather for "
                              "the bot's token (/mybots → API Token)"]
    assert "Traceback" not in result.stderr


def test_a_setting_that_is_not_valid(tmp_path: Path) -> None:
    result = run(tmp_path, telegram_mode="push")
    assert result.returncode == 2
    assert errors(result) == ["error: VOTZ_TELEGRAM_MODE must be 'polling' or 'webhook'"]
    webhook = run(tmp_path, telegram_token="1:x", telegram_mode="webhook")
    assert errors(webhook) == ["error: VOTZ_TELEGRAM_MODE=webhook needs VOTZ_PUBLIC_URL"]
