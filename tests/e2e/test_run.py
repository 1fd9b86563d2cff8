"""`votz run` as an operator starts it: real HTTP in, the twilio SDK out to a local fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer, free_port
from bot.testing.sms_webhook import signed_form

ROOT = Path(__file__).resolve().parents[2]


def log_events(stderr: str) -> list[dict[str, Any]]:
    """`votz run`'s log, not on a terminal: one JSON object per line, every line."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def logged(stderr: str, event: str, /, **data: str) -> int:
    """How many lines log `event` with these fields."""
    return sum(1 for line in log_events(stderr) if line.get("event") == event
               and all(line.get("data", {}).get(k) == v for k, v in data.items()))




def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll a real process (bounded); the only waiting in the suite, for subprocesses."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_votz(tmp_path: Path, settings: dict[str, str]) -> subprocess.Popen[str]:
    """Load the example campaigns, then start `votz run` with these VOTZ_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    env.update({"VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", **settings})
    load = subprocess.run([sys.executable, "-m", "bot", "campaigns", "load",
                           str(ROOT / "campaigns")], env=env, capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert load.returncode == 0, load.stderr
    return subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_votz_run_holds_a_conversation_by_sms(tmp_path: Path) -> None:
    fake = FakeTwilio()
    with LocalServer(fake.asgi()) as twilio:
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        server = start_votz(tmp_path, {
            "VOTZ_HTTP_PORT": str(port), "VOTZ_PUBLIC_URL": public,
            "VOTZ_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOTZ_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VOTZ_TWILIO_FROM": "+33756000000", "VOTZ_TWILIO_API_URL": twilio.url,
        })
        try:
            def healthy() -> bool:
                try:
                    return httpx.get(public + "/healthz").status_code == 200
                except httpx.TransportError:
                    return server.poll() is None and False
            wait_for(healthy, "votz run to answer /healthz")
            replies = []
            for n, text in enumerate(["Bonjour", "1", "1", "3", "31000", "3", "2"]):
                form, headers = signed_form(text, "06 12 34 56 78", public_url=public,
                                            auth_token=AUTH_TOKEN, sid=f"SMe2e{n:029d}")
                answer = httpx.post(public + "/sms/inbound", data=form, headers=headers)
                assert answer.status_code == 200
                assert answer.text.endswith("<Response></Response>")
                wait_for(lambda n=n: len(fake.messages) > n, f"the reply to {text!r}")
                replies.append(fake.messages[-1].body)
            forged = httpx.post(public + "/sms/inbound", data={"From": "0612345678",
                                                                "Body": "x"})
            assert forged.status_code == 403
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=20)
    assert all(m.to == "+33612345678" for m in fake.messages)
    assert replies[0].startswith("Bonjour ! Avec Votz")
    assert replies[4].startswith("Merci, c'est tout bon !")
    assert replies[5].startswith("Voter pour quelle campagne ?")
    assert "1 Démo - Budget des villages" in replies[5]  # short title; – made GSM-7
    assert replies[6].startswith("Démo - Vie étudiante\nJusqu'à 3 projets")
    assert logged(stderr, "channel.sms.started", **{"from": "+33•••••••00"}) == 1
    assert logged(stderr, "sms.webhook.signature_invalid") == 1
    # No phone number and nothing people wrote in the log.
    for secret in ("0612345678", "612345678", "06 12 34 56 78", "Bonjour", "31000"):
        assert secret not in stderr


def test_votz_run_serves_telegram_by_polling(tmp_path: Path) -> None:
    from bot.testing.fake_telegram import TOKEN, FakeTelegram

    fake = FakeTelegram()
    with LocalServer(fake.asgi()) as telegram:
        server = start_votz(tmp_path, {
            "VOTZ_HTTP_PORT": str(free_port()), "VOTZ_TELEGRAM_TOKEN": TOKEN,
            "VOTZ_TELEGRAM_API_URL": telegram.url, "VOTZ_TELEGRAM_CHAT_INTERVAL": "0",
        })
        try:
            wait_for(lambda: any(c.method == "getUpdates" or c.method == "deleteWebhook"
                                 for c in fake.calls), "the bot to start polling")
            fake.says(42, "/start vie-etudiante-demo", language="fr")
            wait_for(lambda: len(fake.sent(42)) == 1, "the welcome")
            welcome = fake.sent(42)[0]
            data = dict(welcome.buttons)["Français"]
            fake.presses(42, data, welcome.result["message_id"])
            wait_for(lambda: len(fake.sent(42)) == 2, "the consent question")
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=20)
    assert fake.sent(42)[1].text.startswith("Pour participer")
    assert logged(stderr, "channel.telegram.started", bot="@votz_region_bot",
                  mode="polling") == 1
    commands = [c for c in fake.calls if c.method == "setMyCommands"]
    assert len(commands) == 4


def test_votz_run_serves_telegram_by_webhook(tmp_path: Path) -> None:
    """As the README tries it: the fake Bot API driven over HTTP, Votz registering its webhook."""
    import httpx

    from bot.testing.fake_telegram import TOKEN, FakeTelegram

    fake = FakeTelegram()
    port = free_port()
    with LocalServer(fake.asgi()) as telegram:
        server = start_votz(tmp_path, {
            "VOTZ_HTTP_PORT": str(port), "VOTZ_TELEGRAM_TOKEN": TOKEN,
            "VOTZ_TELEGRAM_API_URL": telegram.url, "VOTZ_TELEGRAM_CHAT_INTERVAL": "0",
            "VOTZ_TELEGRAM_MODE": "webhook", "VOTZ_PUBLIC_URL": f"http://127.0.0.1:{port}",
        })
        try:
            wait_for(lambda: bool(fake.webhook), "the webhook to be registered")
            said = httpx.post(telegram.url + "/fake/say", json=[[42, "/start"]]).json()
            assert said["webhook_statuses"] == [200]
            wait_for(lambda: len(fake.sent(42)) == 1, "the welcome")
            pressed = httpx.post(telegram.url + "/fake/press", json=[[42, "Français"]]).json()
            assert pressed["webhook_statuses"] == [200]
            wait_for(lambda: len(fake.sent(42)) == 2, "the consent question")
            missing = httpx.post(telegram.url + "/fake/press", json=[[42, "Deutsch"]])
            assert missing.status_code == 404
            transcript = httpx.get(telegram.url + "/fake/sent", params={"chat": 42}).json()
            forged = httpx.post(f"http://127.0.0.1:{port}/telegram/webhook",
                                json={"update_id": 99})
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=20)
    assert fake.webhook["url"] == f"http://127.0.0.1:{port}/telegram/webhook"
    assert transcript[0]["buttons"] == ["Français", "English", "Occitan"]
    assert transcript[1]["text"].startswith("Pour participer")
    assert forged.status_code == 403
    assert logged(stderr, "channel.telegram.started", bot="@votz_region_bot",
                  mode="webhook") == 1
