"""A fake Twilio REST API: records messages, answers like Twilio, fails on request."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"


@dataclass
class SentSms:
    sid: str
    to: str
    body: str
    sender: str
    status_callback: str | None


@dataclass
class FakeTwilio:
    """Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json`, on loopback."""

    messages: list[SentSms] = field(default_factory=list)
    failures: list[tuple[int, int]] = field(default_factory=list)  # (HTTP status, Twilio code)
    requests: int = 0
    echo: bool = False  # print each message (when run by hand)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, code: int) -> None:
        self.failures.append((status, code))

    def to(self, number: str) -> list[str]:
        return [m.body for m in self.messages if m.to == number]

    async def create(self, request: Request) -> Response:
        form = await request.form()
        with self._lock:
            self.requests += 1
            if request.path_params["sid"] != ACCOUNT_SID:
                return JSONResponse({"code": 20404, "message": "not found", "status": 404},
                                    status_code=404)
            if self.failures:
                status, code = self.failures.pop(0)
                return JSONResponse({"code": code, "message": f"fake error {code}",
                                     "more_info": "", "status": status}, status_code=status)
            sid = f"SM{next(self._ids):032x}"
            sender = str(form.get("From") or form.get("MessagingServiceSid") or "")
            callback = form.get("StatusCallback")
            self.messages.append(SentSms(sid, str(form["To"]), str(form["Body"]), sender,
                                         str(callback) if callback else None))
            if self.echo:
                print(f"--- SMS to {form['To']} ---\n{form['Body']}\n", flush=True)
        return JSONResponse({"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued",
                             "to": form["To"], "from": sender, "body": form["Body"],
                             "num_segments": "1", "direction": "outbound-api"},
                            status_code=201)

    async def summary(self, request: Request) -> Response:
        """`GET /fake/summary`: how many messages, to how many numbers (for benchmarks)."""
        return JSONResponse({"messages": len(self.messages), "requests": self.requests,
                             "numbers": len({m.to for m in self.messages})})

    def asgi(self) -> Starlette:
        return Starlette(routes=[
            Route("/2010-04-01/Accounts/{sid}/Messages.json", self.create, methods=["POST"]),
            Route("/fake/summary", self.summary),
        ])


def main() -> None:
    """`python -m bot.testing.fake_twilio --port 8081`: a fake Twilio that prints each SMS."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--quiet", action="store_true", help="do not print each message")
    args = parser.parse_args()
    fake = FakeTwilio(echo=not args.quiet)
    print(f"fake Twilio API on http://{args.host}:{args.port} — account {ACCOUNT_SID}, "
          f"auth token {AUTH_TOKEN}", flush=True)
    uvicorn.run(fake.asgi(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
