"""The bot's own words, read in the catalogs: plural forms wherever a count is shown, one
register (vous) in French, French SMS copy spelled within GSM-7, every keyword a message names
being one that works, STOP naming the word that brings people back, the idea prompt saying
how to leave without two colons in a row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from babel.messages.pofile import read_po

from bot.channels.gsm7 import cost, is_gsm7, sms_safe
from bot.i18n import LOCALES, I18n, Msg, PluralMsg, placeholders

ROOT = Path(__file__).resolve().parents[2]

# Placeholders that hold a number of things.
COUNTS = {"n", "max", "days", "count", "voters", "votes", "length"}
# Counts that are never 0 or 1, so a plural noun after them is always right.
ALWAYS_MANY = {
    "propose.too_long": "length > max >= 10 (proposals.max_length has a minimum of 10)",
    "propose.text": "max >= 10 (proposals.max_length has a minimum of 10)",
    "event.results_local": "voters and votes >= 5: smaller figures are never published",
    # Shown only where presses toggle projects, which needs max_choices > 1 (vote.py _toggles).
    "vote.full": "max >= 2: only a multi-choice ballot on buttons refuses a press as full",
    "vote.rules_up_to_buttons": "n >= 2: a single choice has its own rules (rules_single_buttons)",
}
# French copy that is never sent by SMS (Telegram's command menu and its contact button).
TELEGRAM_ONLY = {
    "telegram.cmd.start", "telegram.cmd.campaigns", "telegram.cmd.propose", "telegram.cmd.vote",
    "telegram.cmd.help", "telegram.cmd.language", "telegram.cmd.mydata", "telegram.cmd.stop",
    "vote.share_phone", "vote.need_phone",
}
# French SMS copy that keeps a letter GSM-7 lacks (â ê î ô û ç), and why.
GSM7_EXCEPTIONS = {
    "lang.fr": "the language's own name, Français, shown to people choosing it",
    # French has no other word for âge, and these must name it:
    "refusal.age": "the refusal names its reason (the person's age)",
    "onboarding.consent": "consent names each thing kept (the age bracket)",
    "privacy.mydata": "the data shown is labelled (âge : 18-25 ans)",
}
# New keys other helpers added in this session that these checks flag: reported to their
# owners, left out here until they are fixed so the tree stays green. None left.
OTHERS_PENDING: dict[str, str] = {}
# Upper-case words in messages that are not keywords: names, codes, units.
NOT_KEYWORDS = {"SMS", "CP", "OK", "URL", "ID"}


def catalog(locale: str) -> Any:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def key(message: Any) -> str:
    return message.id[0] if isinstance(message.id, tuple | list) else message.id


def strings(message: Any) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string]


def messages(locale: str) -> dict[str, Any]:
    return {key(m): m for m in catalog(locale) if m.id}


def keywords() -> dict[str, list[str]]:
    data = yaml.safe_load((ROOT / "flows" / "keywords.yaml").read_text(encoding="utf-8"))
    return {name: [str(w) for w in words] for name, words in data["keywords"].items()}


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n()


@pytest.mark.parametrize("locale", LOCALES)
def test_a_count_before_a_noun_has_plural_forms(locale: str) -> None:
    missing = []
    for name, message in messages(locale).items():
        if message.pluralizable or name in ALWAYS_MANY or name in OTHERS_PENDING:
            continue
        for text in strings(message):
            counted = {ph for ph, _word in re.findall(r"\{(\w+)\}[ \u00a0]+([^\W\d_]+)", text)}
            if counted & COUNTS:
                missing.append(name)
    assert missing == []


@pytest.mark.parametrize("locale", LOCALES)
def test_one_thing_is_singular_in_every_plural_message(locale: str, i18n: I18n) -> None:
    t = i18n[locale]
    for name, message in messages(locale).items():
        if not message.pluralizable:
            continue
        names = {p for text in strings(message) for p in placeholders(text)}
        params = {p: 1 if p in COUNTS else "X" for p in names | {"n"}}
        one = t.render(Msg(name, params, plural=message.id[1], n=1))
        # "1 projets", "1 jours", "1 idées", "1 projects": a plural noun after the number 1.
        assert not re.search(r"(?<![\d ])1 [^\W\d_]+[sx]\b", one), (locale, name, one)


def test_the_plurals_people_saw(i18n: I18n) -> None:
    fr, en, oc = i18n["fr"], i18n["en"], i18n["oc"]

    def too_many(t: Any, n: int) -> str:
        return str(t.render(PluralMsg("ballot.too_many", "ballot.too_many_plural", n, max=n)))

    assert too_many(fr, 1) == "C'est trop : 1 projet au maximum."
    assert too_many(fr, 3) == "C'est trop : 3 projets au maximum."
    assert too_many(en, 1) == "Too many: 1 project at most."
    assert too_many(oc, 1) == "Es tròp : 1 projècte al maximum."
    more = fr.render(PluralMsg("event.results_more", "event.results_more_plural", 1, count=1))
    assert more == "Et 1 autre : voir CAMPAGNES."


def test_french_uses_vous_only() -> None:
    tu = re.compile(r"(?i)(?<![\w-])(tu|te|toi|ton|ta|tes|tien|tienne|t')(?![\w-])|-(toi|tu)\b")
    found = {name: text for name, message in messages("fr").items()
             for text in strings(message) if tu.search(text.replace("’", "'"))}
    assert found == {}
    # ... and addresses people: every French message that asks them to act does so as vous.
    imperative_tu = re.compile(r"\b(Envoie|Choisis|Tape|Touche|Réponds|Écris|Propose|Reviens)\b")
    assert [n for n, m in messages("fr").items()
            if any(imperative_tu.search(s) for s in strings(m))] == []


def test_french_sms_copy_keeps_to_gsm7_letters() -> None:
    """Letters outside GSM-7 are folded on the way out ("reçue" becomes "recue"): French SMS
    copy avoids them where a natural wording exists. Typography (« », —, ’) is folded as a
    careful writer would and is not counted."""
    folded = {}
    for name, message in messages("fr").items():
        if name in TELEGRAM_ONLY or name in GSM7_EXCEPTIONS or name in OTHERS_PENDING:
            continue
        letters = {c for text in strings(message) for c in text if c.isalpha() and not is_gsm7(c)}
        if letters:
            folded[name] = "".join(sorted(letters))
    assert folded == {}


def test_every_keyword_named_in_a_message_works() -> None:
    """"Envoyez VOTER", "Mandatz PREPAUSAR", "RAPPELS NON": each must be a keyword (any case,
    any accent), or the person types it and is not understood."""
    words = {w.upper() for group in keywords().values() for w in group}
    known = words | {part for w in words for part in w.split()}
    unknown = set()
    for locale in LOCALES:
        for name, message in messages(locale).items():
            if name.startswith("telegram.cmd."):
                continue
            for text in strings(message):
                for word in re.findall(r"(?<![\w{])[A-ZÀ-Ý]{2,}(?:\s[A-ZÀ-Ý]{2,})*(?![\w}])", text):
                    if word not in known and word not in NOT_KEYWORDS:
                        unknown.add((locale, name, word))
    assert unknown == set()


@pytest.mark.parametrize(("locale", "wanted"), [
    ("fr", ["START", "REPRENDRE"]), ("en", ["START"]), ("oc", ["START", "RECOMENÇAR"])])
def test_stop_names_the_words_that_bring_people_back(locale: str, wanted: list[str],
                                                     i18n: I18n) -> None:
    text = i18n[locale]("stop.confirm")
    named = re.findall(r"\b[A-ZÇÈÒ]{4,}\b", text)
    assert named == wanted
    assert set(named) <= set(keywords()["start"])


@pytest.mark.parametrize(("locale", "cancel"), [
    ("fr", "ANNULER"), ("en", "CANCEL"), ("oc", "ANULLAR")])
def test_the_idea_prompt_says_how_to_leave(locale: str, cancel: str, i18n: I18n) -> None:
    title = "Ta Région demain : mobilité et loisirs des jeunes"  # a title with a colon
    text = i18n[locale]("propose.text", campaign=title, max=280)
    assert cancel in text and cancel in keywords()["cancel"]
    # The title's own colon is the only one: no "Title : sub : décrivez …".
    assert text.count(":") == 1, text


@pytest.mark.parametrize("locale", LOCALES)
def test_an_idea_receipt_and_the_menu_after_it_are_one_sms(locale: str, i18n: I18n) -> None:
    """The receipt is followed by the menu in the same reply: together, one segment."""
    t = i18n[locale]
    menu = [t(f"menu.{item}") for item in
            ("campaigns", "propose", "vote", "mydata", "settings", "help")]
    reply = "\n".join([t("propose.receipt", code="P1234"), "", t("menu.prompt"),
                       *(f"{n} {label}" for n, label in enumerate(menu, 1))])
    assert cost(sms_safe(reply)).segments == 1, reply


@pytest.mark.parametrize(("days", "fr", "en"), [
    (1, "Sondage : plus qu'un jour pour voter, jusqu'au 19 mars. Envoyez VOTER.",
     "Poll: one day left to vote, until 19 March. Send VOTE."),
    (3, "Sondage : plus que 3 jours pour voter, jusqu'au 19 mars. Envoyez VOTER.",
     "Poll: 3 days left to vote, until 19 March. Send VOTE."),
])
def test_a_closing_reminder_counts_its_days(days: int, fr: str, en: str, i18n: I18n) -> None:
    from datetime import date, timedelta

    from bot.domain.campaigns import Phase, parse_campaign
    from bot.domain.events import Event, Target
    from bot.scheduling.events import event_text

    campaign = parse_campaign({
        "slug": "poll", "kind": "poll", "title": {"fr": "Sondage", "en": "Poll"},
        "summary": {"fr": "Oui ou non"}, "ballot": {"method": "single"},
        "phases": {"vote": {"start": "2026-03-01", "end": "2026-03-19"}},
    }, file="poll.yaml", today=date(2026, 3, 10))
    event = Event("vote-closing", Phase.VOTE, "end", -timedelta(days=days), Target.NOT_VOTED)
    assert event_text(event, campaign, i18n, "fr") == fr
    assert event_text(event, campaign, i18n, "en") == en


def test_results_name_one_more_winner_in_the_singular(i18n: I18n) -> None:
    from datetime import date

    from bot.domain.campaigns import parse_campaign
    from bot.scheduling.events import ResultsText

    campaign = parse_campaign({
        "slug": "poll", "kind": "poll", "title": {"fr": "Sondage"}, "summary": {"fr": "Oui"},
        "ballot": {"method": "up_to", "max_choices": 4},
        "phases": {"vote": {"start": "2026-03-01", "end": "2026-03-19"}},
    }, file="poll.yaml", today=date(2026, 3, 10))
    codes = ("P1", "P2", "P3", "P4")
    results = ResultsText(campaign, codes, {c: {"fr": f"Projet {c}"} for c in codes}, {})
    assert results.winners(i18n, "fr").endswith(" Et 1 autre : voir CAMPAGNES.")
