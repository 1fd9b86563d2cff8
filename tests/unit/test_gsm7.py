"""SMS cost: encodings, segments, GSM-friendly typography, and the audit of every text."""

from __future__ import annotations

import pytest

from bot.app import load_engine
from bot.channels.gsm7 import cost, sms_safe
from bot.channels.sms import normalise_number
from bot.i18n import I18n
from bot.staff.audit import AuditLine, audit, report


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # € is an extension character: two septets
        ("€" * 81, "GSM-7", 2),
        ("é" * 160, "GSM-7", 1),
        ("ê" * 70, "UCS-2", 1),
        ("ê" * 71, "UCS-2", 2),
        ("🙂" * 35, "UCS-2", 1),  # an emoji takes two UTF-16 units
        ("🙂" * 36, "UCS-2", 2),
    ],
)
def test_encoding_and_segments(text: str, encoding: str, segments: int) -> None:
    measured = cost(text)
    assert (measured.encoding, measured.segments) == (encoding, segments)


def test_typography_becomes_gsm7() -> None:
    text = "« L’été – c’est ça… » 500\u202f000\u00a0€ Œuvre"
    assert sms_safe(text) == "\"L'été - c'est ca...\" 500 000 € OEuvre"
    assert cost(sms_safe(text)).encoding == "GSM-7"
    assert sms_safe("Vòstra lenga ? Qué volètz far ? Ajuda") == "Vòstra lenga ? Qué volètz far ? Ajuda"
    assert sms_safe("Bonjour 🙂") == "Bonjour 🙂"  # kept: UCS-2 rather than losing it


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("06 12 34 56 78", "+33612345678"), ("0756123456", "+33756123456"),
     ("+33612345678", "+33612345678"), ("0033612345678", "+33612345678"),
     ("+447400123456", "+447400123456"), ("01 42 34 56 78", None), ("3620", None),
     ("not a number", None), ("", None)],
)
def test_phone_numbers_are_normalised_and_must_be_mobiles(raw: str, e164: str | None) -> None:
    assert normalise_number(raw) == e164


def test_every_sms_text_fits_and_french_prompts_are_short() -> None:
    i18n = I18n()
    flows, _ = load_engine(i18n)
    lines = audit(i18n, flows)
    assert {line.locale for line in lines} == {"fr", "en", "oc"}
    assert max(line.segments for line in lines) <= 2
    text, ok = report(lines)
    assert ok, text
    french = [line.segments for line in lines if line.locale == "fr" and line.prompt]
    assert sum(french) / len(french) <= 1.2


def test_the_audit_fails_on_a_long_text() -> None:
    lines = [AuditLine("fr", "x", True, "GSM-7", 400, 3), AuditLine("en", "x", True, "GSM-7", 1, 1),
             AuditLine("oc", "x", True, "GSM-7", 1, 1)]
    text, ok = report(lines)
    assert not ok
    assert "<- over 2 segments" in text
