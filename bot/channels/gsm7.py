"""SMS cost: GSM-7 or UCS-2, how many segments, and text made GSM-friendly before sending.

One SMS holds 160 GSM-7 characters (153 per part when concatenated) or 70 UCS-2 characters
(67 per part). A single character outside GSM-7 — a curly apostrophe, a « guillemet », a
narrow no-break space, a ç — turns the whole message into UCS-2 and can double its cost, so
`sms_safe` replaces them as a careful writer would (like Twilio's "smart encoding").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each costs two septets

_REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u02bc": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "«": '"', "»": '"', "\u2033": '"',
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2011": "-", "\u2010": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " ",
    "\u2002": " ", "\u2003": " ", "\u200b": "", "\u2022": "-", "\u00b7": ".",
    "œ": "oe", "Œ": "OE", "æ": "ae", "\t": " ",
    "ç": "c", "È": "E", "Ê": "E", "Ë": "E", "À": "A", "Â": "A", "Î": "I", "Ï": "I",
    "Ô": "O", "Û": "U", "Ù": "U", "Ò": "O", "Ó": "O", "Í": "I", "Ú": "U",
}


_GUILLEMETS = re.compile("«[ \u00a0\u202f]?|[ \u00a0\u202f]?»")


@dataclass(frozen=True, slots=True)
class SmsCost:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def cost(text: str) -> SmsCost:
    """Encoding and number of segments Twilio will bill for `text`."""
    if is_gsm7(text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    if units == 0:
        return SmsCost(encoding, 0, 1)
    segments = 1 if units <= single else -(-units // part)
    return SmsCost(encoding, units, segments)


def sms_safe(text: str) -> str:
    """Replace typography and letters outside GSM-7 by their closest GSM-7 spelling.

    Anything without a GSM-7 form (emoji, other scripts) is kept: the message then goes as
    UCS-2 rather than lose what the person wrote.
    """
    text = _GUILLEMETS.sub('"', text)
    out: list[str] = []
    for char in text:
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            out.append(char)
        elif char in _REPLACEMENTS:
            out.append(_REPLACEMENTS[char])
        else:
            bare = "".join(c for c in unicodedata.normalize("NFD", char)
                           if not unicodedata.combining(c))
            out.append(bare if bare and is_gsm7(bare) else char)
    return "".join(out)
