"""Reading what people type: clean text, keywords, and choices by number, code or label.

`match_one` tries, in order: the number or code shown; the label (without case or accents);
a yes/no word for a choice that means yes or no (OUI, OK, d'accord…); a number inside an
option's span (an age, `j'ai 16 ans`) or the span itself (`18-25`); the label with one letter
off in words of 5 letters or more. A guess that fits two options is no match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
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
    """A choice offered at a step: `key` is typed, its place in the list as shown (1…N, the
    engine numbers every list); `id` is stable, `codes` too (p12)."""

    id: str
    key: str
    label: str
    codes: tuple[str, ...] = ()
    code: str = ""  # a public code shown before the label (a proposal's P12), if any
    means: str = ""  # "yes" or "no" when the flow says this choice answers a yes/no question
    span: tuple[int, int] | None = None  # numbers this option stands for (an age bracket)
    detail: str = ""  # the full text behind a short label, shown on request (INFO 3, "3 ?")


def moved(text: str, shown: Sequence[str], now: Sequence[str]) -> bool:
    """Whether a number in `text` meant another option in the list as it was shown (the
    option ids `shown`, in order) than in the list as it is `now`: one withdrawn or moved.
    Numbers that still mean the same (a proposal added at the end) are not."""
    for word in fold(text).split():
        if word.isascii() and word.isdigit() and len(word) <= 9 \
                and 1 <= int(word) <= len(shown):
            n = int(word)
            if n > len(now) or now[n - 1] != shown[n - 1]:
                return True
    return False


def squeeze(folded: str) -> str:
    """A folded text without spaces, so `d'accord`, `d accord` and `daccord` read alike."""
    return folded.replace(" ", "")


# Words around a number that do not change it ("j'ai 16 ans", "I'm 16", "de 18 à 25 ans");
# any other word ("moins de 15", "plus de 65") makes the guess too risky: no match.
_AROUND_NUMBERS = frozenset({"j", "ai", "an", "ans", "i", "m", "im", "am", "year", "years",
                             "old", "yo", "a", "de", "entre", "et", "to", "and", "from",
                             "between", "age", "agee", "aged", "ieu", "soi", "n"})


def _by_span(folded: str, options: Sequence[Option]) -> Option | None:
    """`16`, `j'ai 16 ans`: the option whose span holds it; `18-25`, `18 25`: that span."""
    words = folded.split()
    if any(not w.isdigit() and w not in _AROUND_NUMBERS for w in words):
        return None
    numbers = [int(w) for w in words if w.isdigit() and len(w) <= 3]
    if len(numbers) != sum(w.isdigit() for w in words):
        return None
    if len(numbers) == 1:
        fits = [o for o in options if o.span and o.span[0] <= numbers[0] <= o.span[1]]
    elif len(numbers) == 2:
        fits = [o for o in options if o.span == (numbers[0], numbers[1])]
    else:
        return None
    return fits[0] if len(fits) == 1 else None


def near(typed: str, word: str) -> bool:
    """One letter off (changed, missing, extra, or two swapped), in words of 5+ letters."""
    if typed == word:
        return True
    if len(word) < 5 or abs(len(typed) - len(word)) > 1:
        return False
    i = 0
    while i < min(len(typed), len(word)) and typed[i] == word[i]:
        i += 1
    a, b = typed[i:], word[i:]
    return (a[1:] == b[1:] or a == b[1:] or a[1:] == b
            or (len(a) > 1 and a[:2] == b[1::-1] and a[2:] == b[2:]))


def _near_label(folded: str, label: str) -> bool:
    typed, words = folded.split(), fold(label).split()
    return len(typed) == len(words) and all(near(t, w) for t, w in zip(typed, words, strict=True))


def match_one(
    text: str,
    options: Sequence[Option],
    *,
    choice_id: str | None = None,
    answers: Mapping[str, str] | None = None,
) -> Option | None:
    """The option `text` names, or None; `answers` maps squeezed yes/no words to a meaning."""
    if choice_id is not None:
        return next((o for o in options if o.id == choice_id), None)
    folded = fold(text)
    if not folded:
        return None
    for option in options:
        if folded == option.key or folded in option.codes:
            return option
    for option in options:  # the label shown, or the full title behind a short one
        if folded == fold(option.label) or (option.detail and folded == fold(option.detail)):
            return option
    meaning = (answers or {}).get(squeeze(folded))
    if meaning:
        meant = [o for o in options if o.means == meaning]
        if len(meant) == 1:
            return meant[0]
    spanned = _by_span(folded, options)
    if spanned is not None:
        return spanned
    close = [o for o in options if _near_label(folded, o.label)]
    return close[0] if len(close) == 1 else None


def match_many(text: str, options: Sequence[Option]) -> tuple[list[Option], list[str]]:
    """All options named in `text` (`1 4 5`, `P3, P7 et P12`), and the tokens not understood."""
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
