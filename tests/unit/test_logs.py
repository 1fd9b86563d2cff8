"""bot/logs.py: JSON lines a machine parses, readable lines on a terminal, no personal data."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot import logs


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_an_event_line_splits_into_its_name_and_fields() -> None:
    assert logs.split_message("outbox.retry id=42 reason=twilio 429 too many") == (
        "outbox.retry", {"id": "42", "reason": "twilio 429 too many"}, "")
    assert logs.split_message("scheduler.started") == ("scheduler.started", {}, "")
    assert logs.split_message("run.stopped (in flight: 2) sends=3") == (
        "run.stopped", {"sends": "3"}, "(in flight: 2)")
    assert logs.split_message("Application startup complete.") == (
        None, {}, "Application startup complete.")


def test_json_lines_parse_and_mask_numbers(restore_logging: None) -> None:
    out = io.StringIO()
    logs.setup("auto", stream=out, level=logging.INFO)  # not a terminal: JSON
    log = logging.getLogger("votz.test")
    log.warning("sms.failed to=%s reason=%s", "+33612345678", "21610 unsubscribed")
    log.info("uvicorn said hello to 06 12 34 56 78")
    try:
        raise ValueError("bad row\n[parameters: ('+33612345678', 'Mon idée secrète')]")
    except ValueError:
        log.exception("outbox.sender_error id=%s", 7)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "sms.failed" and lines[0]["level"] == "warning"
    assert lines[0]["data"] == {"to": "+33•••••••78", "reason": "21610 unsubscribed"}
    assert lines[1]["message"] == "uvicorn said hello to •• •• •• •• 78"
    assert lines[2]["error"].startswith("ValueError: bad row at test_logs.py:")
    text = out.getvalue()
    assert "612345678" not in text and "secrète" not in text


def test_readable_lines_where_asked(restore_logging: None) -> None:
    out = io.StringIO()
    logs.setup("text", stream=out)
    logging.getLogger("votz.test").warning("channel.sms.started from=%s", "+33756000000")
    line = out.getvalue().strip()
    assert line.endswith("WARNING votz.test channel.sms.started from=+33•••••••00")
