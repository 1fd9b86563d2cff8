"""Catalogs: complete in fr, en and oc, fresh against the code and flows, compiled."""

from __future__ import annotations

import gettext
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.i18n import LOCALES, I18n, placeholders

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"notice": None, "N_": None, "t": None, "PluralMsg": (1, 2)}


def extracted_keys() -> set[str]:
    """What `make messages` would extract from the code and the flows today."""
    method_map = [("bot/**.py", "python"), ("flows/**.yaml", "bot.i18n:extract_flows")]
    keys: set[str] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(ROOT), method_map, keywords=KEYWORDS
    ):
        keys.add(message[0] if isinstance(message, tuple) else message)
    return keys


def catalog(locale: str):  # type: ignore[no-untyped-def]
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def key(message) -> str:  # type: ignore[no-untyped-def]
    return message.id[0] if isinstance(message.id, tuple | list) else message.id


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_matches_the_code_and_flows(locale: str) -> None:
    keys = {key(m) for m in catalog(locale) if m.id}
    wanted = extracted_keys()
    assert sorted(wanted - keys) == [], "missing: run `make messages` and translate"
    assert sorted(keys - wanted) == [], "obsolete: run `make messages`"


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_is_fully_translated_with_the_same_placeholders(locale: str) -> None:
    french = {key(m): m.string for m in catalog("fr") if m.id}
    for message in catalog(locale):
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple | list) else [message.string]
        assert all(strings), f"{locale}: {key(message)} is not translated"
        assert not message.fuzzy, f"{locale}: {key(message)} is fuzzy"
        reference = french[key(message)]
        reference = reference[-1] if isinstance(reference, tuple | list) else reference
        for text in strings:
            assert placeholders(text) <= placeholders(reference) | {"n"}, (locale, key(message))


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalog_is_up_to_date(locale: str) -> None:
    buffer = io.BytesIO()
    write_mo(buffer, catalog(locale))
    buffer.seek(0)
    fresh = gettext.GNUTranslations(buffer)
    mo = ROOT / "locales" / locale / "LC_MESSAGES" / "messages.mo"
    with mo.open("rb") as fh:
        shipped = gettext.GNUTranslations(fh)
    assert shipped._catalog == fresh._catalog, "stale .mo: run `make messages`"  # type: ignore[attr-defined]


def test_plural_rules() -> None:
    i18n = I18n()
    from bot.i18n import PluralMsg

    for locale in ("fr", "oc"):
        t = i18n[locale]
        one = t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", 1,
                                  example="1 2"))
        two = t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", 2,
                                  example="1 2"))
        zero = t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", 0,
                                  example="1 2"))
        # n > 1 is plural in French and Occitan: 0 and 1 take the singular.
        assert one.replace("1", "0") == zero
        assert two != one.replace("1", "2")
    assert "Plural-Forms: nplurals=2; plural=(n > 1);" in (
        ROOT / "locales/oc/LC_MESSAGES/messages.po").read_text()


def test_dates_and_amounts_per_language() -> None:
    i18n = I18n()
    moment = datetime(2024, 10, 16, 21, 59, tzinfo=UTC)  # 23:59 in Paris
    assert i18n["fr"].date(moment) == "16 octobre 2024"
    assert i18n["en"].date(moment) == "16 October 2024"
    assert i18n["oc"].date(moment) == "16 d’octòbre 2024"
    assert i18n["fr"].euros(500000) == "500 000 €"
    assert i18n["en"].euros(500000) == "€500,000"


def test_startup_fails_without_compiled_catalogs(tmp_path: Path) -> None:
    from bot.errors import TranslationError

    with pytest.raises(TranslationError, match="make messages"):
        I18n(tmp_path)


def test_a_translator_lists_the_keys_its_catalog_holds() -> None:
    """What the SMS audit measures beyond the flows' steps: every key of the catalog, each
    plural under its singular, and never the catalog's header."""
    with (ROOT / "locales" / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po)
    keys = I18n()["fr"].keys()
    assert keys == {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
    assert {"browse.results_no_ballots", "browse.results_winners"} <= keys
    assert "browse.results_winners_plural" not in keys and "" not in keys
