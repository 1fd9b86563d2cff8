"""Post an inbound SMS to Votz as Twilio would, signed with the auth token.

    python -m bot.testing.sms_webhook --from 0612345678 "Bonjour"

Uses VOTZ_PUBLIC_URL (the URL Twilio signs) and VOTZ_TWILIO_AUTH_TOKEN; posts to
VOTZ_HTTP_HOST:VOTZ_HTTP_PORT unless --url says otherwise.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import httpx
from twilio.request_validator import RequestValidator

from bot.config import Settings


def signed_form(body: str, sender: str, *, public_url: str, auth_token: str,
                sid: str | None = None, to: str = "+33756000000"
                ) -> tuple[dict[str, str], dict[str, str]]:
    """(form fields, headers) of a Twilio inbound-SMS webhook for `public_url`/sms/inbound."""
    params = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32,
              "From": sender, "To": to, "Body": body, "NumMedia": "0"}
    url = public_url.rstrip("/") + "/sms/inbound"
    signature = RequestValidator(auth_token).compute_signature(url, params)
    return params, {"X-Twilio-Signature": signature}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text")
    parser.add_argument("--from", dest="sender", default="0612345678")
    parser.add_argument("--url", help="where to post (default: VOTZ_HTTP_HOST:PORT)")
    args = parser.parse_args()
    settings = Settings.from_env()
    local = args.url or f"http://{settings.http_host}:{settings.http_port}"
    public = settings.public_url or local
    form, headers = signed_form(args.text, args.sender, public_url=public,
                                auth_token=settings.twilio_auth_token)
    try:
        response = httpx.post(local.rstrip("/") + "/sms/inbound", data=form, headers=headers)
    except httpx.TransportError as exc:
        sys.exit(f"error: cannot reach Votz at {local} ({exc}): is `votz run` started?")
    print(response.status_code, response.text)


if __name__ == "__main__":
    main()
