"""A fake Twilio REST API: records messages, answers like Twilio, fails on request.

Each accepted create request is recorded when it arrives (Twilio would send that SMS even if
the caller never reads the answer) with wall-clock timestamps (`time.time()`, comparable
across processes): `arrived_at`, and `answered_at` once the answer is written, after the
optional `latency`. A send can so be "in flight" long enough for a fault experiment to kill
the caller in the middle of it (`bench/faults.py`, `tests/e2e/test_faults.py`).

With `limit`, it refuses (429, Twilio error 20429) a message that would make more than
`limit` segments arrive within the last second (a sliding window), and counts those refusals.

    GET /fake/summary     how many messages, requests, numbers, 429s
    GET /fake/messages    every message: to, body, sid, sender, segments, arrived_at,
                          answered_at
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.channels.gsm7 import cost

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"


@dataclass
class SentSms:
    sid: str
    to: str
    body: str
    sender: str
    status_callback: str | None
    arrived_at: float = 0.0  # time.time() when the create request arrived
    answered_at: float | None = None  # time.time() when its answer was sent (after latency)
    segments: int = 1

    def as_json(self) -> dict[str, object]:
        return {"to": self.to, "body": self.body, "sid": self.sid, "sender": self.sender,
                "segments": self.segments, "arrived_at": self.arrived_at,
                "answered_at": self.answered_at}


@dataclass
class FakeTwilio:
    """Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json`, on loopback."""

    messages: list[SentSms] = field(default_factory=list)
    # (HTTP status, Twilio code, message) of the next create requests to fail
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    requests: int = 0
    echo: bool = False  # print each message (when run by hand)
    latency: float = 0.0  # seconds each accepted create request waits before its answer
    limit: float = 0.0  # segments in any second beyond which a message gets 429 (0: none)
    flooded: int = 0  # 429s answered for going over `limit`
    _window: deque[tuple[float, int]] = field(default_factory=deque)  # (arrival, segments)
    _in_window: int = 0  # segments in `_window`
    # The account's numbers (`votz doctor` asks): number → its "A message comes in" URL.
    incoming: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, code: int, message: str | None = None) -> None:
        """The next create request fails like Twilio (`message` defaults to "fake error
        CODE"; Twilio's own often quote the number: "The 'To' number +336… is not valid")."""
        self.failures.append((status, code, message or f"fake error {code}"))

    def to(self, number: str) -> list[str]:
        return [m.body for m in self.messages if m.to == number]

    async def create(self, request: Request) -> Response:
        form = await request.form()
        arrived = time.time()
        with self._lock:
            self.requests += 1
            if request.path_params["sid"] != ACCOUNT_SID:
                return JSONResponse({"code": 20404, "message": "not found", "status": 404},
                                    status_code=404)
            if self.failures:
                status, code, text = self.failures.pop(0)
                return JSONResponse({"code": code, "message": text,
                                     "more_info": "", "status": status}, status_code=status)
            segments = cost(str(form["Body"])).segments
            if self._over_limit(arrived, segments):
                self.flooded += 1
                return JSONResponse({"code": 20429, "message": "Too Many Requests",
                                     "more_info": "https://www.twilio.com/docs/errors/20429",
                                     "status": 429}, status_code=429)
            sid = f"SM{next(self._ids):032x}"
            sender = str(form.get("From") or form.get("MessagingServiceSid") or "")
            callback = form.get("StatusCallback")
            message = SentSms(sid, str(form["To"]), str(form["Body"]), sender,
                              str(callback) if callback else None, arrived_at=arrived,
                              segments=segments)
            self.messages.append(message)
            if self.echo:
                print(f"--- SMS to {form['To']} ---\n{form['Body']}\n", flush=True)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        message.answered_at = time.time()
        return JSONResponse({"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued",
                             "to": form["To"], "from": sender, "body": form["Body"],
                             "num_segments": "1", "direction": "outbound-api"},
                            status_code=201)

    def _over_limit(self, now: float, segments: int) -> bool:
        """Whether `segments` more now would go over `limit` in the last second (if not,
        they are counted)."""
        if not self.limit:
            return False
        while self._window and self._window[0][0] <= now - 1.0:
            self._in_window -= self._window.popleft()[1]
        if self._in_window + segments > self.limit:
            return True
        self._window.append((now, segments))
        self._in_window += segments
        return False

    async def summary(self, request: Request) -> Response:
        """`GET /fake/summary`: how many messages, to how many numbers (for benchmarks)."""
        return JSONResponse({"messages": len(self.messages), "requests": self.requests,
                             "numbers": len({m.to for m in self.messages}),
                             "flooded": self.flooded})

    async def recorded(self, request: Request) -> Response:
        """`GET /fake/messages`: every message recorded, in arrival order, with its times."""
        with self._lock:
            messages = [m.as_json() for m in self.messages]
        return JSONResponse(messages)

    def _authorised(self, request: Request) -> bool:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        return (request.path_params["sid"] == ACCOUNT_SID
                and request.headers.get("Authorization") == f"Basic {expected}")

    async def account(self, request: Request) -> Response:
        """`GET /2010-04-01/Accounts/{sid}.json` (credentials checked, as Twilio does)."""
        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401},
                                status_code=401)
        return JSONResponse({"sid": ACCOUNT_SID, "friendly_name": "Région (fake)",
                             "status": "active", "type": "Full"})

    async def numbers(self, request: Request) -> Response:
        """`GET …/IncomingPhoneNumbers.json?PhoneNumber=…`: the account's numbers."""
        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401},
                                status_code=401)
        wanted = request.query_params.get("PhoneNumber")
        found = [{"sid": f"PN{n:032x}", "phone_number": number, "sms_url": url,
                  "sms_method": "POST", "capabilities": {"sms": True, "voice": False}}
                 for n, (number, url) in enumerate(self.incoming.items())
                 if wanted in (None, number)]
        return JSONResponse({"incoming_phone_numbers": found, "page": 0,
                             "page_size": 50, "next_page_uri": None, "uri": request.url.path})

    def asgi(self) -> Starlette:
        return Starlette(routes=[
            Route("/2010-04-01/Accounts/{sid}.json", self.account),
            Route("/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", self.numbers),
            Route("/2010-04-01/Accounts/{sid}/Messages.json", self.create, methods=["POST"]),
            Route("/fake/summary", self.summary),
            Route("/fake/messages", self.recorded),
        ])


def main() -> None:
    """`python -m bot.testing.fake_twilio --port 8081`: a fake Twilio that prints each SMS."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--quiet", action="store_true", help="do not print each message")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long before answering each send (default 0)")
    parser.add_argument("--limit", type=float, default=0.0, metavar="SEGMENTS",
                        help="429 (20429) beyond this many segments in any second (0: none)")
    parser.add_argument("--number", action="append", default=[], metavar="NUMBER=URL",
                        help="a number of the account and its incoming webhook (votz doctor "
                             "checks it), e.g. +33756000000=https://votz.example.org/sms/inbound")
    args = parser.parse_args()
    fake = FakeTwilio(echo=not args.quiet, latency=args.latency, limit=args.limit,
                      incoming=dict(n.split("=", 1) for n in args.number))
    print(f"fake Twilio API on http://{args.host}:{args.port} — account {ACCOUNT_SID}, "
          f"auth token {AUTH_TOKEN}", flush=True)
    uvicorn.run(fake.asgi(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
