"""Logs an operator can read and a machine can parse, free of personal data.

Votz writes each log line as an event name and its fields: `outbox.retry id=42 reason=…`.
On a terminal they stay readable lines; elsewhere (systemd's journal, a container, a file)
each is one JSON object:

    {"ts": "2026-12-03T16:20:01.512Z", "level": "warning", "logger": "votz.dispatcher",
     "event": "outbox.retry", "data": {"id": "42", "reason": "twilio 429"}}

In both forms every phone number and chat id is masked (`+33••••••78`), whoever logged it
(Votz, uvicorn, python-telegram-bot), and a traceback keeps its frames and the exception's
type and first line, masked: never a statement's parameters, where message texts would be.
Votz's own lines never carry what people wrote.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import IO, Any

from bot.channels.base import mask_address

FORMATS = ("auto", "json", "text")
_EVENT = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")
_FIELD = re.compile(r"(?:^|\s)([a-z_][a-z0-9_]*)=")


def split_message(message: str) -> tuple[str | None, dict[str, str], str]:
    """("outbox.retry", {"id": "42", …}, "") from "outbox.retry id=42 …"; the text that is
    not `key=value` comes back as the third item."""
    head, _, rest = message.partition(" ")
    if not _EVENT.match(head):
        return None, {}, message
    fields: dict[str, str] = {}
    found = list(_FIELD.finditer(rest))
    before = rest[:found[0].start()].strip() if found else rest.strip()
    for n, match in enumerate(found):
        end = found[n + 1].start() if n + 1 < len(found) else len(rest)
        fields[match.group(1)] = rest[match.end():end].strip()
    return head, fields, before


def _exception(record: logging.LogRecord) -> str | None:
    if not record.exc_info or record.exc_info[1] is None:
        return None
    exc = record.exc_info[1]
    frames = traceback.extract_tb(exc.__traceback__)
    where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                       for f in reversed(frames[-6:]))
    first = str(exc).partition("\n")[0]
    return mask_address(f"{type(exc).__name__}: {first}" + (f" at {where}" if where else ""))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = mask_address(record.getMessage())
        event, fields, text = split_message(message)
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if event is not None:
            line["event"] = event
        if fields:
            line["data"] = fields
        if text:
            line["message"] = text
        error = _exception(record)
        if error is not None:
            line["error"] = error
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        masked = logging.makeLogRecord(record.__dict__)
        masked.msg, masked.args = mask_address(record.getMessage()), None
        masked.exc_info, masked.exc_text = None, None
        line = super().format(masked)
        error = _exception(record)
        return line if error is None else f"{line}\n  {error}"


def setup(form: str = "auto", *, stream: IO[str] | None = None,
          level: int = logging.WARNING) -> logging.Handler:
    """Send every log record to `stream` (stderr) as JSON or as readable lines ("auto":
    readable on a terminal, JSON elsewhere); returns the handler installed."""
    if form not in FORMATS:
        form = "auto"
    out = stream if stream is not None else sys.stderr
    as_json = form == "json" or (form == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
