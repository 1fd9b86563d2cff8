"""SMS over Twilio: signed webhooks in, the real twilio SDK out to a local fake Twilio API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.app import App
from bot.channels.base import Reply, TransientSendError
from bot.channels.sms import EMPTY_TWIML, TOO_MANY_PAUSE, TwilioSender
from bot.config import Settings
from bot.server import Server
from bot.store.tables import outbox, participants
from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.conftest import CAMPAIGNS, FixedClock, Proxy, code_of

PUBLIC = "https://votz.example.org"
MOBILE = "+33612345678"


@dataclass
class Sms:
    app: App
    client: httpx.AsyncClient
    fake: FakeTwilio
    sids: int = 0

    async def post(self, path: str, params: dict[str, str], *, sign_url: str | None = None,
                   signature: str | None = None) -> httpx.Response:
        url = sign_url if sign_url is not None else PUBLIC + path
        if signature is None:
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        return await self.client.post(path, data=params, headers=headers)

    async def text(self, body: str, *, number: str = "0612345678", sid: str | None = None,
                   **extra: str) -> str:
        """Send an SMS as `number`; return Votz's reply (empty when it stays silent)."""
        if sid is None:
            self.sids += 1
            sid = f"SMin{self.sids:030d}"
        before = len(self.fake.messages)
        response = await self.post("/sms/inbound", {
            "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": number,
            "To": "+33756000000", "Body": body, **extra})
        assert response.status_code == 200
        assert response.text == EMPTY_TWIML
        await self.app.dispatcher.drain()
        replies = [m.body for m in self.fake.messages[before:]]
        assert len(replies) <= 1, replies
        return replies[0] if replies else ""


@asynccontextmanager
async def sms_server(tmp_path: Path, clock: FixedClock, fake_twilio: tuple[FakeTwilio, str],
                     campaigns: Path, contact: str) -> AsyncIterator[Sms]:
    """`votz run`'s server with SMS through the fake Twilio API, `campaigns` loaded."""
    fake, url = fake_twilio
    settings = replace(
        Settings.from_env({}, dotenv=None), database_url=f"sqlite:///{tmp_path / 'sms.db'}",
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
        twilio_from="+33756000000", twilio_api_url=url, public_url=PUBLIC,
        twilio_segments_per_second=10_000, contact=contact,
    )
    async with Server.open(settings, clock=clock) as server:
        await server.app.load_campaigns(campaigns)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.web),
                                     base_url=PUBLIC) as client:
            yield Sms(server.app, client, fake)


@pytest.fixture
async def sms(tmp_path: Path, clock: FixedClock,
              fake_twilio: tuple[FakeTwilio, str]) -> AsyncIterator[Sms]:
    async with sms_server(tmp_path, clock, fake_twilio, CAMPAIGNS,
                          "participation@example.org") as found:
        yield found


async def onboard(sms: Sms, number: str = "0612345678") -> str:
    for body in ("Bonjour", "1", "1", "3"):
        await sms.text(body, number=number)
    return await sms.text("31000", number=number)


async def test_full_conversation_by_sms(sms: Sms) -> None:
    welcome = await sms.text("Bonjour")
    assert welcome.startswith("Bonjour ! Avec Votz")
    assert sms.fake.messages[0].to == MOBILE  # 06 12 34 56 78 → E.164
    assert sms.fake.messages[0].sender == "+33756000000"
    assert sms.fake.messages[0].status_callback == PUBLIC + "/sms/status"
    for body in ("1", "1", "3"):
        await sms.text(body)
    menu = await sms.text("31000")
    assert menu.endswith("1 Campagnes\n2 Proposer une idée\n3 Voter\n4 Mes données\n"
                         "5 Réglages\n6 Aide")
    await sms.text("MENU")
    assert "Proposer" in menu
    assert (await sms.text("2")).startswith('Décrivez votre idée pour "Tes idées pour la Région"')
    confirm = await sms.text("Un bus le dimanche vers Mende")
    assert '"Un bus le dimanche vers Mende"' in confirm  # « » made GSM-7
    assert "Merci ! Idée bien arrivée, code P" in await sms.text("1")  # no ç: GSM-7 as written
    garden = code_of(sms.app, "Jardin partagé")
    assert (await sms.text(f"vote {garden}")).startswith(f"Votre vote :\n{garden}")
    assert (await sms.text("1")).startswith(f"A voté : {garden}.")


@pytest.mark.parametrize(
    ("sign_url", "signature"),
    [
        (None, "bm90IGEgc2lnbmF0dXJl"),                 # forged
        (None, ""),                                    # missing
        ("http://127.0.0.1:8080/sms/inbound", None),   # signed for another URL
        (PUBLIC + "/sms/status", None),                # signed for another route
    ],
)
async def test_unsigned_or_forged_webhooks_are_refused(sms: Sms, sign_url: str | None,
                                                       signature: str | None) -> None:
    params = {"MessageSid": "SMforged", "From": "0612345678", "Body": "Bonjour"}
    response = await sms.post("/sms/inbound", params, sign_url=sign_url, signature=signature)
    assert response.status_code == 403
    await sms.app.dispatcher.drain()
    assert sms.fake.messages == []
    assert await sms.app.db.run(lambda c: c.execute(select(participants)).all()) == []
    status = await sms.post("/sms/status", {"MessageSid": "x", "MessageStatus": "delivered"},
                            signature="forged")
    assert status.status_code == 403


async def test_twilio_retries_are_processed_once(sms: Sms) -> None:
    assert await sms.text("Bonjour", sid="SMdup")
    assert await sms.text("Bonjour", sid="SMdup") == ""
    assert await sms.text("Bonjour", sid="SMdup") == ""
    assert len(sms.fake.messages) == 1


async def test_delivery_reports_update_the_outbox(sms: Sms) -> None:
    await sms.text("Bonjour")
    await sms.text("1")
    first, second = sms.fake.messages
    assert (await sms.post("/sms/status", {"MessageSid": first.sid, "MessageStatus": "sent"}
                           )).status_code == 204
    await sms.post("/sms/status", {"MessageSid": first.sid, "MessageStatus": "delivered"})
    await sms.post("/sms/status", {"MessageSid": first.sid, "MessageStatus": "sent"})  # late
    await sms.post("/sms/status", {"MessageSid": second.sid, "MessageStatus": "undelivered",
                                   "ErrorCode": "30003"})
    await sms.post("/sms/status", {"MessageSid": "SMunknown", "MessageStatus": "delivered"})
    rows = await sms.app.db.run(lambda c: c.execute(
        select(outbox.c.provider_id, outbox.c.status, outbox.c.failure_reason)
        .order_by(outbox.c.id)).all())
    assert [tuple(r) for r in rows] == [
        (first.sid, "delivered", None),
        (second.sid, "failed", "provider undelivered 30003"),
    ]


async def test_rate_limit_and_server_errors_are_retried(sms: Sms, clock: FixedClock) -> None:
    sms.fake.fail_next(429, 20429)
    sms.fake.fail_next(503, 20503)
    assert await sms.text("Bonjour") == ""
    row = await sms.app.db.run(lambda c: c.execute(select(outbox)).mappings().one())
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert row["failure_reason"].startswith("twilio 429 20429")
    clock.advance(seconds=2)
    await sms.app.dispatcher.drain()
    row = await sms.app.db.run(lambda c: c.execute(select(outbox)).mappings().one())
    assert (row["status"], row["attempts"]) == ("queued", 2)
    clock.advance(seconds=4)
    await sms.app.dispatcher.drain()
    assert [m.body[:7] for m in sms.fake.messages] == ["Bonjour"]
    assert sms.fake.requests == 3


async def test_twilio_429_pauses_the_channel(sms: Sms) -> None:
    """Twilio's 429 (20429) comes without Retry-After: the sender still asks the dispatcher
    to pause SMS in every process, not only to retry this message later."""
    sender = sms.app.dispatcher.channels["sms"].sender
    sms.fake.fail_next(429, 20429)
    with pytest.raises(TransientSendError) as refused:
        await sender.send("+33612345678", Reply("Bonjour"))
    assert refused.value.retry_after == TOO_MANY_PAUSE > 0
    sms.fake.fail_next(503, 20503)
    with pytest.raises(TransientSendError) as failed:
        await sender.send("+33612345678", Reply("Bonjour"))
    assert failed.value.retry_after is None  # a server error is this message's alone


async def test_opted_out_recipient_is_marked_stopped(sms: Sms) -> None:
    await onboard(sms)
    sms.fake.fail_next(400, 21610)
    assert await sms.text("MENU") == ""
    status = await sms.app.db.run(lambda c: c.execute(select(participants.c.status)).scalar())
    assert status == "stopped"
    assert await sms.text("1") == ""  # silence until START
    assert (await sms.text("START")).startswith("Bon retour !")


async def test_twilio_opt_out_signal_stops_quietly(sms: Sms) -> None:
    await onboard(sms)
    assert await sms.text("STOP", OptOutType="STOP") == ""
    status = await sms.app.db.run(lambda c: c.execute(select(participants.c.status)).scalar())
    assert status == "stopped"
    assert await sms.text("START", OptOutType="START") == ""
    assert (await sms.text("MENU")).startswith("Que voulez-vous faire ?")


@pytest.mark.parametrize("word", ["STOP", "stop", "Arret", "ARRET", "ARRÊT", "arrêt", "STOPALL",
                                  "UNSUBSCRIBE", "Desinscription", "DÉSINSCRIPTION"])
async def test_stop_in_every_spelling(sms: Sms, word: str) -> None:
    await onboard(sms)
    assert await sms.text(word) == ("C'est noté, vous ne recevrez plus de messages. "
                                    "Pour revenir, envoyez START ou REPRENDRE.")
    assert await sms.text("Bonjour") == ""


@pytest.mark.parametrize("word", ["START", "start", "REPRENDRE", "Reprendre"])
async def test_start_in_every_spelling(sms: Sms, word: str) -> None:
    await onboard(sms)
    await sms.text("STOP")
    assert (await sms.text(word)).startswith("Bon retour ! Vous recevrez à nouveau")


@pytest.mark.parametrize("word", ["AIDE", "aide", "HELP", "Help", "INFO", "info"])
async def test_help_in_every_spelling(sms: Sms, word: str) -> None:
    await onboard(sms)
    reply = await sms.text(word)
    assert "participation@example.org" in reply
    assert reply.endswith("6 Aide")


@pytest.mark.parametrize("number", ["0142345678", "+33142345678", "36179", "hello", ""])
async def test_senders_that_are_not_mobiles_get_no_flow(sms: Sms, number: str) -> None:
    assert await sms.text("Bonjour", number=number) == ""
    assert await sms.app.db.run(lambda c: c.execute(select(participants)).all()) == []


async def test_health_and_metrics(sms: Sms) -> None:
    await sms.text("Bonjour")
    health = (await sms.client.get("/healthz")).json()
    assert health["status"] == "ok" and "problems" not in health
    assert set(health["scheduler"]) == {"running", "last_tick", "ticks", "last_error"}
    await sms.text("Bonjour", sid="SM" + "7" * 32)
    await sms.text("Bonjour", sid="SM" + "7" * 32)  # Twilio's retry: a duplicate
    forged = await sms.client.post("/sms/inbound", data={"From": "0612345678", "Body": "x"})
    assert forged.status_code == 403
    metrics = (await sms.client.get("/metrics")).text
    assert "votz_sms_inbound_total 2.0" in metrics
    assert 'votz_inbound_messages_total{channel="sms",outcome="handled"} 2.0' in metrics
    assert 'votz_inbound_messages_total{channel="sms",outcome="duplicate"} 1.0' in metrics
    assert 'votz_webhook_refused_total{channel="sms",reason="signature"} 1.0' in metrics
    assert 'votz_outbox_messages{status="sent"} 2.0' in metrics
    assert 'votz_outbound_messages_total{channel="sms",outcome="sent"} 2.0' in metrics
    assert 'votz_send_seconds_count{channel="sms"} 2.0' in metrics
    assert 'votz_outbox_oldest_due_seconds{kind="reply"} 0.0' in metrics
    assert "# TYPE votz_send_seconds histogram" in metrics


async def test_twilio_calls_go_through_the_proxy_from_the_environment(
        http_proxy: Proxy, tmp_path: Path) -> None:
    http_proxy.body = {"sid": "SM" + "0" * 32, "status": "queued"}
    settings = replace(
        Settings.from_env({}, dotenv=None), twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN, twilio_from="+33756000000",
        twilio_api_url="http://api.twilio.invalid")  # never resolved: only the proxy answers
    sender = TwilioSender(settings)
    try:
        sent = await sender.send("+33612345678", Reply("Bonjour"))
    finally:
        await sender.close()
    assert sent.provider_id == "SM" + "0" * 32
    assert http_proxy.seen == [f"POST http://api.twilio.invalid/2010-04-01/Accounts/"
                               f"{ACCOUNT_SID}/Messages.json HTTP/1.1"]
