"""Reading what people type: clean text, keywords, and choices by number, code or label."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

MAX_INPUT = 20_000  # characters read from one message; proposals have far lower limits

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_SEPARATORS = re.compile(r"[\s,;/+&]+")
_FILLERS = {"et", "and", "e", "puis"}


def clean(text: str) -> str:
    """Printable text: control and direction characters removed, NFC, trimmed."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\t", " "))
    text = _CONTROL.sub("", text)
    text = re.sub(r"[ \u00a0]{2,}", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def fold(text: str) -> str:
    """Case- and accent-insensitive form used for matching (`Arrêt` → `arret`)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    bare = re.sub(r"[^\w?]+", " ", bare)
    return " ".join(bare.split())


@dataclass(frozen=True, slots=True)
class Option:
    """A choice offered at a step: `key` is typed (1, 12), `id` is stable, `codes` too (p12)."""

    id: str
    key: str
    label: str
    codes: tuple[str, ...] = ()
    code: str = ""  # a public code shown before the label (a proposal's P12), if any


def match_one(
    text: str, options: Sequence[Option], *, choice_id: str | None = None
) -> Option | None:
    if choice_id is not None:
        return next((o for o in options if o.id == choice_id), None)
    folded = fold(text)
    if not folded:
        return None
    for option in options:
        if folded == option.key or folded in option.codes:
            return option
    for option in options:
        if folded == fold(option.label):
            return option
    return None


def match_many(text: str, options: Sequence[Option]) -> tuple[list[Option], list[str]]:
    """All options named in `text` (`3 7 12`, `P3, P7 et P12`), and the tokens not understood."""
    whole = match_one(text, options)
    if whole is not None:
        return [whole], []
    found: list[Option] = []
    unknown: list[str] = []
    for token in _SEPARATORS.split(clean(text)):
        folded = fold(token)
        if not folded or folded in _FILLERS:
            continue
        option = next((o for o in options if folded == o.key or folded in o.codes), None)
        if option is None:
            unknown.append(token[:20])
        else:
            found.append(option)
    return found, unknown
