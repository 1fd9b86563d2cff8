"""A fake Telegram Bot API: people send updates, the bot's calls are recorded; errors on demand.

It answers python-telegram-bot on loopback (`/bot<token>/<method>`), queues updates for
`getUpdates` (long polling) or posts them to the registered webhook with its secret token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import time
from collections import deque
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
    at: float = field(default_factory=time.time)  # when it arrived (time.time())

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
    # The bot's messages as they stand now (edits applied): (chat id, message id) → message.
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    _queries: dict[str, int] = field(default_factory=dict)  # callback query id → user id
    # Flood control, as Telegram's: a `sendMessage` that would make more than `limit` free
    # messages in the last second (a sliding window) gets 429 with retry_after; one sent
    # with allow_paid_broadcast counts against `paid_limit` instead (all messages of the
    # last second; 0: paid broadcasts are not enabled, it counts as free). 0: no limit.
    limit: int = 0
    paid_limit: int = 0
    flooded: int = 0  # 429s answered by flood control
    # Each accepted sendMessage: (time.time() on arrival, sent as a paid broadcast).
    arrivals: list[tuple[float, bool]] = field(default_factory=list)
    _free_window: deque[float] = field(default_factory=deque)
    _all_window: deque[float] = field(default_factory=deque)

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

    def says_in_group(self, chat_id: int, user_id: int, text: str, *,
                      chat_type: str = "group", language: str | None = "fr") -> dict[str, Any]:
        """Someone writes in a group (or supergroup) the bot is in."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, "title": "Le groupe"},
            "from": self._user(user_id, language), "text": text}
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._push({"message": message})

    def adds_bot(self, chat_id: int, user_id: int, *, chat_type: str = "group",
                 status: str = "member") -> dict[str, Any]:
        """Someone adds the bot to a group or channel (`status` "kicked": removes it)."""
        member: dict[str, Any] = {"user": BOT, "status": status}
        if status == "kicked":
            member["until_date"] = 0
        return self._push({"my_chat_member": {
            "chat": {"id": chat_id, "type": chat_type, "title": "Le groupe"},
            "from": self._user(user_id, "fr"), "date": int(time.time()),
            "old_chat_member": {"user": BOT, "status": "left"},
            "new_chat_member": member}})

    def presses(self, user_id: int, data: str, message_id: int, *,
                language: str | None = "fr") -> dict[str, Any]:
        query_id = f"cq{next(self._update_ids)}"
        self._queries[query_id] = user_id
        return self._push({"callback_query": {
            "id": query_id, "from": self._user(user_id, language),
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
        """The latest message to this person showing that button now (its edits applied:
        an answered question has lost its buttons, a staff card gained reasons), and the
        button's data."""
        return next(((c, data) for c in reversed(self.sent(user_id))
                     if (data := self.now(c).data_of(label)) is not None), None)

    def now(self, call: Call) -> Call:
        """A sent message as it stands now, its edits applied."""
        key = (int(call.params["chat_id"]), int(call.result["message_id"]))
        return self.message(*key) if key in self.messages else call

    def message(self, chat_id: int, message_id: int) -> Call:
        """A message the bot sent, as it stands after its edits (text and buttons)."""
        current = self.messages[(int(chat_id), int(message_id))]
        return Call("message", {"chat_id": chat_id, "text": current["text"],
                                "reply_markup": current.get("reply_markup")}, current)

    def edits(self, chat_id: int, message_id: int) -> list[Call]:
        """The editMessageText calls that changed this message, in order."""
        return [c for c in self.calls if c.method == "editMessageText"
                and str(c.params["chat_id"]) == str(chat_id)
                and str(c.params["message_id"]) == str(message_id)]

    def answers(self, user_id: int | None = None) -> list[str]:
        """The texts shown to people in answer to their button presses (answerCallbackQuery;
        "" when none)."""
        return [str(c.params.get("text") or "") for c in self.calls
                if c.method == "answerCallbackQuery"
                and (user_id is None
                     or self._queries.get(str(c.params.get("callback_query_id"))) == user_id)]

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
        if method == "sendMessage" and (wait := self._flood(params)) is not None:
            self.calls.append(Call(method + "!flooded", params))
            return JSONResponse({"ok": False, "error_code": 429,
                                 "description": f"Too Many Requests: retry after {wait}",
                                 "parameters": {"retry_after": wait}}, status_code=429)
        try:
            result = self._result(method, params)
        except _Refused as refused:  # as the Bot API answers an edit it cannot make
            self.calls.append(Call(method + "!failed", params))
            return JSONResponse({"ok": False, "error_code": 400,
                                 "description": refused.description}, status_code=400)
        self.calls.append(Call(method, params, result))
        if method == "sendMessage":
            self.last_sent_at = time.monotonic()
            self.first_sent_at = self.first_sent_at or self.last_sent_at
        return JSONResponse({"ok": True, "result": result})

    def _flood(self, params: dict[str, Any]) -> int | None:
        """Seconds to wait if this message would go over a limit (then it is refused), else
        None (and it is counted)."""
        now = time.time()
        paid = bool(self.paid_limit) and params.get("allow_paid_broadcast") in (True, "true")
        for window in (self._free_window, self._all_window):
            while window and window[0] <= now - 1.0:
                window.popleft()
        full = None
        if paid and len(self._all_window) >= self.paid_limit:
            full = self._all_window
        elif not paid and self.limit and len(self._free_window) >= self.limit:
            full = self._free_window
        elif self.paid_limit and len(self._all_window) >= self.paid_limit:
            full = self._all_window
        if full is not None:
            self.flooded += 1
            return max(1, math.ceil(full[0] + 1.0 - now))
        if not paid:
            self._free_window.append(now)
        self._all_window.append(now)
        self.arrivals.append((now, paid))
        return None

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
        if method == "getWebhookInfo":
            return {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                    "pending_update_count": len(self._updates)}
        if method == "sendMessage":
            message = {"message_id": next(self._message_ids), "date": int(time.time()),
                       "chat": {"id": int(params["chat_id"]), "type": "private"},
                       "from": BOT, "text": params.get("text", "")}
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            self.messages[(int(params["chat_id"]), message["message_id"])] = message
            return message
        if method == "editMessageText":
            return self._edit_text(params)
        if method == "editMessageReplyMarkup":
            key = (int(params.get("chat_id") or 0), int(params.get("message_id") or 0))
            if key not in self.messages:
                raise _Refused("Bad Request: message to edit not found")
            if (params.get("reply_markup") or None) == self.messages[key].get("reply_markup"):
                raise _Refused("Bad Request: message is not modified: specified new message "
                               "content and reply markup are exactly the same as a current "
                               "content and reply markup of the message")
            edited = {**self.messages[key], "reply_markup": params.get("reply_markup") or None}
            self.messages[key] = edited
            return edited
        return True

    def _edit_text(self, params: dict[str, Any]) -> dict[str, Any]:
        """As the Bot API: the message must exist and change; without `reply_markup` it
        loses its buttons."""
        key = (int(params.get("chat_id") or 0), int(params.get("message_id") or 0))
        current = self.messages.get(key)
        if current is None:
            raise _Refused("Bad Request: message to edit not found")
        edited = {**current, "text": params.get("text", ""),
                  "reply_markup": params.get("reply_markup") or None,
                  "edit_date": int(time.time())}
        if (edited["text"], edited["reply_markup"]) == (current["text"],
                                                        current.get("reply_markup")):
            raise _Refused("Bad Request: message is not modified: specified new message "
                           "content and reply markup are exactly the same as a current "
                           "content and reply markup of the message")
        self.messages[key] = edited
        return edited

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
        """`GET /fake/sent?chat=ID`: what the bot sent to that person, with the buttons (and,
        under "now", the message as it stands after edits)."""
        chat = request.query_params.get("chat")
        found = []
        for c in self.sent(int(chat) if chat else None):
            entry: dict[str, Any] = {"text": c.text, "buttons": [label for label, _ in c.buttons]}
            now = self.now(c)
            if (now.text, now.buttons) != (c.text, c.buttons):  # edited since: as it is now
                entry["now"] = {"text": now.text, "buttons": [label for label, _ in now.buttons]}
            found.append(entry)
        return JSONResponse(found)

    async def summary(self, request: Request) -> Response:
        sent = self.sent()
        return JSONResponse({"sent": len(sent), "chats": len({c.params["chat_id"] for c in sent}),
                             "first_at": self.first_sent_at, "last_at": self.last_sent_at,
                             "flooded": self.flooded})

    async def recorded_arrivals(self, request: Request) -> Response:
        """`GET /fake/arrivals?since=T`: when each accepted message arrived (time.time()) and
        whether it was a paid broadcast, from T on; and the 429s flood control sent (when
        each of those messages arrived)."""
        since = float(request.query_params.get("since") or 0)
        refused = [c.at for c in self.calls if c.method == "sendMessage!flooded"]
        return JSONResponse({"flooded": self.flooded, "refused": refused,
                             "arrivals": [a for a in self.arrivals if a[0] >= since]})

    def asgi(self) -> Starlette:
        return Starlette(routes=[
            Route("/bot{token}/{method}", self.api, methods=["GET", "POST"]),
            Route("/fake/say", self.inject, methods=["POST"]),
            Route("/fake/press", self.press, methods=["POST"]),
            Route("/fake/sent", self.transcript),
            Route("/fake/summary", self.summary),
            Route("/fake/arrivals", self.recorded_arrivals),
        ])


class _Refused(Exception):
    """A call the Bot API answers with 400 (an edit of a missing or unchanged message)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


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
    import gc

    import uvicorn

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--limit", type=int, default=0, metavar="N",
                        help="429 beyond N messages in any second (default 0: no limit)")
    parser.add_argument("--paid-limit", type=int, default=0, metavar="N",
                        help="N a second for paid broadcasts (allow_paid_broadcast; 0: off)")
    args = parser.parse_args()
    print(f"fake Telegram Bot API on http://127.0.0.1:{args.port} — token {TOKEN}", flush=True)
    fake = FakeTelegram(limit=args.limit, paid_limit=args.paid_limit)
    if args.limit or args.paid_limit:
        # It times arrivals to the millisecond: no pause of its own for a garbage collection
        # (what it keeps, calls and messages, holds no reference cycles).
        gc.disable()
    uvicorn.run(fake.asgi(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
