"""Translations (gettext catalogs compiled by Babel) and locale-aware formatting.

Message ids are stable keys (`menu.prompt`); every language, French included, translates
them, so a missing translation is visible and tests can insist on complete catalogs.
"""

from __future__ import annotations

import functools
import gettext
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from bot.domain.region import LOCALES as LOCALES  # re-exported: the languages we speak
from bot.domain.region import PARIS
from bot.errors import TranslationError
from bot.resources import resource_dir

DOMAIN = "messages"


def N_(key: str) -> str:
    """Mark a message key for extraction without translating it yet."""
    return key


@dataclass(frozen=True, slots=True)
class Msg:
    """A message to show: a catalog key, its parameters, and a count for plurals."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    plural: str | None = None
    n: int | None = None


def PluralMsg(singular: str, plural: str, n: int, **params: Any) -> Msg:
    return Msg(singular, {"n": n, **params}, plural=plural, n=n)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class Translator:
    """One language: translate keys, format dates and amounts."""

    def __init__(self, locale: str, catalog: gettext.NullTranslations) -> None:
        self.locale = locale
        self._catalog = catalog

    def __call__(self, key: str, /, **params: Any) -> str:
        return self.render(Msg(key, params))

    def render(self, msg: Msg) -> str:
        if msg.plural is not None and msg.n is not None:
            template = self._catalog.ngettext(msg.key, msg.plural, msg.n)
        else:
            template = self._catalog.gettext(msg.key)
        # User text only ever arrives as a value, never as part of the template.
        return template.format(**msg.params) if msg.params else template

    def keys(self) -> set[str]:
        """The message keys this language's catalog holds (a plural under its singular)."""
        # GNUTranslations keeps its messages in `_catalog`: (key, n) for plural forms.
        messages = getattr(self._catalog, "_catalog", {})
        return {key[0] if isinstance(key, tuple) else key for key in messages if key}

    def date(self, moment: datetime) -> str:
        return format_date(moment.astimezone(PARIS), "d MMMM y", locale=self.locale)

    def day(self, moment: datetime) -> str:
        """The day without its year (17 novembre): short, for announcements and reminders."""
        return format_date(moment.astimezone(PARIS), "d MMMM", locale=self.locale)

    def datetime(self, moment: datetime) -> str:
        return format_datetime(moment.astimezone(PARIS), "d MMM y HH:mm", locale=self.locale)

    def euros(self, amount: int) -> str:
        return _euros(self.locale, amount)

    def number(self, n: int) -> str:
        """A count with the language's thousands separator: 1 234 (fr, oc), 1,234 (en)."""
        return _grouped(self.locale, n)


@functools.lru_cache(maxsize=4096)
def _euros(locale: str, amount: int) -> str:
    """Babel's formatting is slow and the same project costs are shown to everyone: cached."""
    grouped = _grouped(locale, amount)
    return f"€{grouped}" if locale == "en" else f"{grouped} €"


# Babel has no number symbols of its own for Occitan (it would write 1,234, where a comma
# is the decimal mark): written as in French, 1 234.
NUMBER_LOCALES = {"oc": "fr"}


@functools.lru_cache(maxsize=4096)
def _grouped(locale: str, n: int) -> str:
    # Plain spaces: a narrow no-break space would make an SMS cost twice as much.
    grouped = format_decimal(n, locale=NUMBER_LOCALES.get(locale, locale))
    return grouped.replace("\u202f", " ").replace("\xa0", " ")


class I18n:
    """All the compiled catalogs, loaded once; refuses to start when one is missing."""

    def __init__(self, locales_dir: Path | None = None, *, default: str = "fr") -> None:
        folder = locales_dir or resource_dir("locales")
        self.default = default
        self._translators: dict[str, Translator] = {}
        for locale in LOCALES:
            mo = folder / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
            if not mo.is_file():
                raise TranslationError(
                    f"{mo} is missing: compile the catalogs with `make messages`"
                )
            with mo.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)
            self._translators[locale] = Translator(locale, catalog)

    def __getitem__(self, locale: str) -> Translator:
        return self._translators.get(locale) or self._translators[self.default]

    def has(self, key: str) -> bool:
        """True when every language translates `key` (gettext returns the key when not)."""
        return all(t(key) != key for t in self._translators.values())


# --- extraction of keys from flow files (a Babel extractor; see babel.cfg) -----------------

_FLOW_KEY = re.compile(r"^\s*-?\s*(?:say|label|notice|empty):\s*([a-z][a-z0-9_.]+)\s*$")


def extract_flows(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Yield the message keys a flow file names in `say`, `label`, `notice` and `empty`."""
    for lineno, raw in enumerate(fileobj.read().decode("utf-8").splitlines(), start=1):
        for part in raw.split("{", 1)[-1].split(","):
            match = _FLOW_KEY.match(part.strip().rstrip("}"))
            if match:
                yield lineno, "N_", match.group(1), []
