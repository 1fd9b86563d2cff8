"""A fake Telegram Bot API: people send updates, the bot's calls are recorded; errors on demand.

It answers python-telegram-bot on loopback (`/bot<token>/<method>`), queues updates for
`getUpdates` (long polling) or posts them to the registered webhook with its secret token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456:FAKE-telegram-token"
BOT = {"id": 123456, "is_bot": True, "first_name": "Votz", "username": "votz_region_bot",
       "can_join_groups": False, "can_read_all_group_messages": False,
       "supports_inline_queries": False}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of the inline keyboard sent with this message."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", [])
                for b in row]

    def data_of(self, label: str) -> str | None:
        """The callback data of the button labelled `label` (or ending with it: "P7 Bancs"
        for "Bancs"), if this message has one."""
        return next((data for text, data in self.buttons
                     if text == label or text.endswith(" " + label)), None)


@dataclass
class FakeTelegram:
    calls: list[Call] = field(default_factory=list)
    failures: list[tuple[str, int, str, dict[str, Any]]] = field(default_factory=list)
    webhook: dict[str, str] = field(default_factory=dict)
    first_sent_at: float = 0.0
    last_sent_at: float = 0.0
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what people do -------------------------------------------------------------------

    def _user(self, user_id: int, language: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        if language:
            user["language_code"] = language
        return user

    def says(self, user_id: int, text: str, *, language: str | None = "fr") -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"}, "from": self._user(user_id, language),
            "text": text}
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._push({"message": message})

    def presses(self, user_id: int, data: str, message_id: int, *,
                language: str | None = "fr") -> dict[str, Any]:
        return self._push({"callback_query": {
            "id": f"cq{next(self._update_ids)}", "from": self._user(user_id, language),
            "chat_instance": str(user_id), "data": data,
            "message": {"message_id": message_id, "date": int(time.time()),
                        "chat": {"id": user_id, "type": "private"}, "text": "…"},
        }})

    def shares_contact(self, user_id: int, phone: str, *, own: bool = True) -> dict[str, Any]:
        """The person taps "share my number" (or forwards someone else's contact)."""
        return self._push({"message": {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"}, "from": self._user(user_id, "fr"),
            "contact": {"phone_number": phone, "first_name": "X",
                        "user_id": user_id if own else user_id + 1}}})

    def blocks(self, user_id: int) -> dict[str, Any]:
        member = {"user": BOT, "status": "kicked", "until_date": 0}
        return self._push({"my_chat_member": {
            "chat": {"id": user_id, "type": "private"}, "from": self._user(user_id, None),
            "date": int(time.time()), "old_chat_member": {"user": BOT, "status": "member"},
            "new_chat_member": member}})

    def _push(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update = {"update_id": next(self._update_ids), **body}
            self._updates.append(update)
        return update

    async def deliver_webhook(self) -> list[int]:
        """Post queued updates to the webhook (as Telegram would); return the HTTP statuses."""
        with self._lock:
            pending, self._updates = self._updates, []
        statuses = []
        async with httpx.AsyncClient(timeout=60) as client:
            for n, update in enumerate(pending):
                headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook.get("secret", "")}
                try:
                    response = await client.post(self.webhook["url"], json=update,
                                                 headers=headers)
                except httpx.HTTPError:  # kept for the next delivery, as Telegram retries
                    with self._lock:
                        self._updates[:0] = pending[n:]
                    raise
                statuses.append(response.status_code)
        return statuses

    # --- what the bot did -----------------------------------------------------------------

    def sent(self, user_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == "sendMessage"
                and (user_id is None or str(c.params["chat_id"]) == str(user_id))]

    def button(self, user_id: int, label: str) -> tuple[Call, str] | None:
        """The latest message to this person with that button, and the button's data."""
        return next(((c, data) for c in reversed(self.sent(user_id))
                     if (data := c.data_of(label)) is not None), None)

    def fail_next(self, method: str, code: int, description: str,
                  parameters: dict[str, Any] | None = None) -> None:
        self.failures.append((method, code, description, parameters or {}))

    # --- the API ----------------------------------------------------------------------------

    async def api(self, request: Request) -> Response:
        if request.path_params["token"] != TOKEN:
            return JSONResponse({"ok": False, "error_code": 401,
                                 "description": "Unauthorized"}, status_code=401)
        method = request.path_params["method"]
        if request.headers.get("content-type", "").startswith("application/json"):
            raw = await request.json()
        else:
            # Form fields, and uploaded files as their bytes.
            async with request.form() as form:
                raw = {k: v if isinstance(v, str) else await v.read()
                       for k, v in form.multi_items()}
        params = {k: _decode(v) for k, v in raw.items()}
        for n, (failing, code, description, parameters) in enumerate(self.failures):
            if failing == method:
                del self.failures[n]
                self.calls.append(Call(method + "!failed", params))
                body: dict[str, Any] = {"ok": False, "error_code": code,
                                        "description": description}
                if parameters:
                    body["parameters"] = parameters
                return JSONResponse(body, status_code=code)
        if method == "getUpdates":
            return JSONResponse({"ok": True, "result": await self._get_updates(params)})
        result = self._result(method, params)
        self.calls.append(Call(method, params, result))
        if method == "sendMessage":
            self.last_sent_at = time.monotonic()
            self.first_sent_at = self.first_sent_at or self.last_sent_at
        return JSONResponse({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 100))  # as the Bot API: 1–100
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 5)
        while True:
            with self._lock:
                if self._updates and self._updates[0]["update_id"] < offset:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.005)

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT
        if method == "setWebhook":
            self.webhook = {"url": params["url"], "secret": params.get("secret_token", "")}
            return True
        if method == "deleteWebhook":
            self.webhook = {}
            return True
        if method in ("sendMessage", "editMessageText"):
            message = {"message_id": next(self._message_ids), "date": int(time.time()),
                       "chat": {"id": int(params["chat_id"]), "type": "private"},
                       "from": BOT, "text": params.get("text", "")}
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            return message
        return True

    async def inject(self, request: Request) -> Response:
        """`POST /fake/say` with [[user id, text], ...]: people write, in this order.

        With a webhook registered, the updates are posted to it (one at a time, as Telegram
        does) before this answers; otherwise they wait for `getUpdates`."""
        for user_id, text in await request.json():
            self.says(int(user_id), str(text))
        if self.webhook:
            statuses = await self.deliver_webhook()
            return JSONResponse({"ok": True, "webhook_statuses": statuses})
        return JSONResponse({"ok": True})

    async def press(self, request: Request) -> Response:
        """`POST /fake/press` with [[user id, button label], ...]: people tap that button (see
        `button`)."""
        taps = []
        for user_id, label in await request.json():  # all found, or none pressed
            found = self.button(int(user_id), label)
            if found is None:
                return JSONResponse({"ok": False, "description":
                                     f"no button {label!r} sent to {user_id}"}, status_code=404)
            taps.append((int(user_id), *found))
        pressed = []
        for user_id, call, data in taps:
            self.presses(user_id, data, call.result["message_id"])
            pressed.append(data)
        body: dict[str, Any] = {"ok": True, "pressed": pressed}
        if self.webhook:
            body["webhook_statuses"] = await self.deliver_webhook()
        return JSONResponse(body)

    async def transcript(self, request: Request) -> Response:
        """`GET /fake/sent?chat=ID`: what the bot sent to that person, with the buttons."""
        chat = request.query_params.get("chat")
        return JSONResponse([{"text": c.text, "buttons": [label for label, _ in c.buttons]}
                             for c in self.sent(int(chat) if chat else None)])

    async def summary(self, request: Request) -> Response:
        sent = self.sent()
        return JSONResponse({"sent": len(sent), "chats": len({c.params["chat_id"] for c in sent}),
                             "first_at": self.first_sent_at, "last_at": self.last_sent_at})

    def asgi(self) -> Starlette:
        return Starlette(routes=[
            Route("/bot{token}/{method}", self.api, methods=["GET", "POST"]),
            Route("/fake/say", self.inject, methods=["POST"]),
            Route("/fake/press", self.press, methods=["POST"]),
            Route("/fake/sent", self.transcript),
            Route("/fake/summary", self.summary),
        ])


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def main() -> None:
    """`python -m bot.testing.fake_telegram --port 8082`: a fake Bot API on loopback."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8082)
    args = parser.parse_args()
    print(f"fake Telegram Bot API on http://127.0.0.1:{args.port} — token {TOKEN}", flush=True)
    uvicorn.run(FakeTelegram().asgi(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
