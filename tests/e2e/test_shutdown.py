"""`votz run` stopped by SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C) under load.

It stops taking work, lets the sends under way finish, gives back what it could not send,
and exits 0 within VOTZ_SHUTDOWN_SECONDS; nothing stays `sending`, and a restart sends the
rest once.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from bot.testing.server import LocalServer, free_port
from bot.testing.sms_webhook import signed_form
from tests.e2e.test_run import start_votz, wait_for

PEOPLE = 30


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_under_load_stops_cleanly_and_loses_nothing(tmp_path: Path,
                                                             signum: int) -> None:
    fake = FakeTwilio(latency=0.3)  # each send is in flight for a while
    with LocalServer(fake.asgi()) as twilio:
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        settings = {
            "VOTZ_HTTP_PORT": str(port), "VOTZ_PUBLIC_URL": public,
            "VOTZ_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOTZ_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VOTZ_TWILIO_FROM": "+33756000000", "VOTZ_TWILIO_API_URL": twilio.url,
            "VOTZ_SHUTDOWN_SECONDS": "5", "VOTZ_INSTANCE": "test-host:1",
        }
        server = start_votz(tmp_path, settings)
        try:
            wait_for(lambda: _healthy(public), "votz run to answer /healthz")
            for n in range(PEOPLE):
                form, headers = signed_form("Bonjour", f"+336120000{n:02d}", public_url=public,
                                            auth_token=AUTH_TOKEN, sid=f"SMstop{n:028d}")
                assert httpx.post(public + "/sms/inbound", data=form,
                                  headers=headers).status_code == 200
            wait_for(lambda: len(fake.messages) >= 3, "the first replies")
            signalled_at = time.monotonic()
            server.send_signal(signum)
            _, err = server.communicate(timeout=20)
            took = time.monotonic() - signalled_at
        finally:
            if server.poll() is None:
                server.kill()
                server.communicate()
        assert server.returncode == 0, err
        assert took < 5 + 3, took  # VOTZ_SHUTDOWN_SECONDS and a margin
        assert "run.stopped" in err
        with sqlite3.connect(tmp_path / "run.db") as conn:
            statuses = dict(conn.execute(
                "SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        assert "sending" not in statuses, statuses
        sent_before = len(fake.messages)
        assert statuses.get("sent", 0) == sent_before  # each send that left was recorded
        # A restart sends the rest, once.
        again = start_votz(tmp_path, settings)
        try:
            wait_for(lambda: len(fake.messages) >= PEOPLE, "every reply after the restart")
        finally:
            again.terminate()
            again.communicate(timeout=20)
    numbers = [m.to for m in fake.messages]
    assert len(numbers) == PEOPLE and len(set(numbers)) == PEOPLE


def _healthy(public: str) -> bool:
    try:
        return httpx.get(public + "/healthz").status_code == 200
    except httpx.TransportError:
        return False
