"""As a new user tries it: a vote that closes moments after `votz campaigns load` sends its
"closing soon" reminder, then its results, to a Telegram and an SMS participant during
`votz run` (real APScheduler, real clock, fake Bot API and fake Twilio on this machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from bot.testing.fake_telegram import TOKEN, FakeTelegram
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer, free_port
from bot.testing.sms_webhook import signed_form
from tests.e2e.test_run import ROOT, logged, wait_for

EXPRESS = (ROOT / "examples" / "vote-express.yaml").read_text(encoding="utf-8")
# The example's minutes, in seconds: the vote closes 40 s after loading, the reminder 25 s
# before that (time enough for both people to sign up and vote first).
FAST = (EXPRESS.replace("end: now+6m", "end: now+40s")
        .replace("start: now+6m", "start: now+40s").replace("vote.end - 3m", "vote.end - 25s"))


def test_votz_run_sends_the_reminder_then_the_results_on_both_channels(tmp_path: Path) -> None:
    assert FAST != EXPRESS
    (tmp_path / "express.yaml").write_text(FAST, encoding="utf-8")
    twilio, telegram = FakeTwilio(), FakeTelegram()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with LocalServer(twilio.asgi()) as twilio_server, \
            LocalServer(telegram.asgi()) as telegram_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
        env.update({
            "VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
            "VOTZ_HTTP_PORT": str(port), "VOTZ_PUBLIC_URL": public,
            "VOTZ_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOTZ_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VOTZ_TWILIO_FROM": "+33756000000", "VOTZ_TWILIO_API_URL": twilio_server.url,
            "VOTZ_TELEGRAM_TOKEN": TOKEN, "VOTZ_TELEGRAM_API_URL": telegram_server.url,
            "VOTZ_TELEGRAM_CHAT_INTERVAL": "0",
            # Whatever the hour the tests run at: no SMS sending window here (tested apart).
            "VOTZ_SMS_SENDING_WINDOW": "", "VOTZ_SCHEDULER_SECONDS": "2",
        })
        load = subprocess.run([sys.executable, "-m", "bot", "campaigns", "load",
                               str(tmp_path / "express.yaml")], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False)
        assert load.returncode == 0, load.stderr
        server = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(c.method in ("getUpdates", "deleteWebhook")
                                 for c in telegram.calls), "votz run to poll Telegram")

            def healthy() -> bool:
                try:
                    return httpx.get(public + "/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(healthy, "votz run to answer /healthz")
            for n, text in enumerate(["Bonjour", "1", "1", "3", "48000", "VOTE P2", "1"]):
                form, headers = signed_form(text, "06 12 34 56 78", public_url=public,
                                            auth_token=AUTH_TOKEN, sid=f"SMx{n:031d}")
                assert httpx.post(public + "/sms/inbound", data=form,
                                  headers=headers).status_code == 200
                wait_for(lambda n=n: len(twilio.messages) > n, f"the SMS reply to {text!r}")
            for n, text in enumerate(["/start", "1", "1", "2", "31000", "VOTE P1", "1"]):
                telegram.says(77, text)
                wait_for(lambda n=n: len(telegram.sent(77)) > n, f"the reply to {text!r}")
            assert "A voté" in twilio.messages[-1].body
            assert "A voté" in telegram.sent(77)[-1].text
            health = httpx.get(public + "/healthz").json()
            assert health["status"] == "ok" and health["scheduler"]["running"]
            assert health["scheduler"]["ticks"] >= 1

            wait_for(lambda: len(twilio.messages) == 8 and len(telegram.sent(77)) == 8,
                     "the closing-soon reminder", timeout=40)
            wait_for(lambda: len(twilio.messages) == 9 and len(telegram.sent(77)) == 9,
                     "the results", timeout=40)
        except AssertionError as exc:
            server.terminate()
            raise AssertionError(f"{exc}\n--- votz run said:\n{server.communicate(timeout=20)[1]}"
                                 ) from None
        finally:
            if server.poll() is None:
                server.terminate()
            _, stderr = server.communicate(timeout=20)
    sms = [m.body for m in twilio.messages]
    chat = [c.text for c in telegram.sent(77)]
    assert sms[7].startswith("« Vote express » ferme dans 3 minutes") or \
        sms[7].startswith('"Vote express" ferme dans 3 minutes'), sms[7]
    assert sms[7].endswith("\nStop rappels : RAPPELS NON")  # the SMS opt-out hint
    assert chat[7].startswith("« Vote express » ferme dans 3 minutes")
    assert "RAPPELS NON" not in chat[7]  # Telegram has buttons and settings for that
    assert sms[8].startswith("Vote express : les résultats. Retenus : P")
    assert chat[8].startswith("Vote express : les résultats. Retenus : P")
    assert "P2" in sms[8] or "P1" in sms[8]
    assert logged(stderr, "scheduler.started") == 1
    assert logged(stderr, "event.fired", campaign="vote-express", event="closing-soon") == 1
    assert logged(stderr, "event.fired", campaign="vote-express", event="results") == 1
