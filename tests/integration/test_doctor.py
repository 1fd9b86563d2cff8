"""`votz doctor` against the fake Bot API and the fake Twilio: green with good settings, and
each broken setting named with what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.testing.fake_telegram import TOKEN, FakeTelegram
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer, free_port

ROOT = Path(__file__).resolve().parents[2]
SENDER = "+33756000000"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTelegram, str, FakeTwilio, str]]:
    telegram, twilio = FakeTelegram(), FakeTwilio()
    with LocalServer(telegram.asgi()) as t, LocalServer(twilio.asgi()) as s:
        yield telegram, t.url, twilio, s.url


def doctor(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    env.update({f"VOTZ_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run([sys.executable, "-m", "bot", "doctor"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def loaded_database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'votz.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    loaded = subprocess.run([sys.executable, "-m", "bot", "--database-url", url, "campaigns",
                             "load", str(ROOT / "campaigns")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert loaded.returncode == 0, loaded.stderr
    return url


def test_good_settings_are_ready_to_go_live(
        tmp_path: Path, fakes: tuple[FakeTelegram, str, FakeTwilio, str]) -> None:
    telegram, telegram_url, twilio, twilio_url = fakes
    public = f"http://127.0.0.1:{free_port()}"
    twilio.incoming[SENDER] = f"{public}/sms/inbound#rc=3&rp=5xx,rt,ct"
    telegram.webhook = {"url": f"{public}/telegram/webhook", "secret": "x"}
    result = doctor(
        tmp_path, database_url=loaded_database(tmp_path), public_url=public,
        telegram_token=TOKEN, telegram_api_url=telegram_url, telegram_mode="webhook",
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_from=SENDER,
        twilio_api_url=twilio_url, staff_telegram_ids="1001, 1002")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "ok    channels: sms, telegram" in lines
    assert any(line.startswith("ok    database: sqlite:///") for line in lines)
    assert "ok    Telegram token: the bot is @votz_region_bot" in lines
    assert f"ok    Telegram webhook: points at {public}/telegram/webhook" in lines
    assert "ok    Twilio credentials: account 'Région (fake)' (active)" in lines
    assert f"ok    Twilio sender: {SENDER} receives SMS at {public}/sms/inbound" in lines
    assert "ok    staff: 2 staff account(s) get the staff chat" in lines
    assert any(line.startswith("ok    translations:") for line in lines)
    assert any(line.startswith("warn  reachable:") for line in lines)  # not running yet
    assert lines[-1] == "ready to go live (1 warning(s) above)"


def test_each_broken_setting_is_named_with_its_fix(
        tmp_path: Path, fakes: tuple[FakeTelegram, str, FakeTwilio, str]) -> None:
    _, telegram_url, twilio, twilio_url = fakes
    twilio.incoming[SENDER] = "https://elsewhere.example.org/sms"
    result = doctor(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'never-migrated.db'}",
        telegram_token="999:WRONG", telegram_api_url=telegram_url,
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token="wrong", twilio_from=SENDER,
        twilio_api_url=twilio_url, staff_telegram_ids="claire")
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL  database schema: at revision none" in out and "votz db upgrade" in out
    assert "FAIL  public URL: VOTZ_PUBLIC_URL is not set" in out
    assert "FAIL  Telegram token: Telegram refuses the token: ask @BotFather" in out
    assert "FAIL  Twilio credentials: Twilio refuses the account SID and auth token" in out
    assert "FAIL  staff: VOTZ_STAFF_TELEGRAM_IDS has 'claire'" in out
    assert out.rstrip().splitlines()[-1].startswith("5 problem(s) to fix before going live")
    assert "Traceback" not in result.stderr

    # The credentials right, the number's webhook wrong; no channel at all.
    sender = doctor(tmp_path, public_url="https://votz.example.org",
                    twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                    twilio_from=SENDER, twilio_api_url=twilio_url)
    assert ("FAIL  Twilio sender: incoming messages to +33756000000 go to "
            "https://elsewhere.example.org/sms: set 'A message comes in' to POST "
            "https://votz.example.org/sms/inbound#rc=3&rp=5xx,rt,ct") in sender.stdout
    unknown = doctor(tmp_path, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                     twilio_from="+33799999999", twilio_api_url=twilio_url,
                     public_url="http://votz.example.org")
    assert "FAIL  Twilio sender: +33799999999 is not a number of this account" in unknown.stdout
    assert "FAIL  public URL: http://votz.example.org is not HTTPS" in unknown.stdout
    nothing = doctor(tmp_path)
    assert "FAIL  channels: neither Telegram" in nothing.stdout
    wrong_db = doctor(tmp_path, database_url="postgresql://votz:s3cret@127.0.0.1:1/votz")
    assert "FAIL  database: cannot open postgresql://votz:***@127.0.0.1:1/votz" in \
        wrong_db.stdout
    assert "s3cret" not in wrong_db.stdout + wrong_db.stderr
