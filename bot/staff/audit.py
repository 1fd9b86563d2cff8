"""`votz CHANNEL audit`: what every text costs, in every language, where sending costs per unit.

Each flow step is measured as the person receives it (prompt and options, with sample values
for campaign titles, dates and codes); every other message is measured alone. The channel's
registry entry measures (for SMS: rendered as sent, GSM-7 or UCS-2, segments). A text over
two segments fails the audit; French prompts should average at most 1.2 segments.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from bot.channels.base import Reply, ReplyChoice
from bot.conversation.actions import LANGUAGE_NAMES
from bot.conversation.flows import FlowSet
from bot.errors import ConfigError
from bot.i18n import LOCALES, I18n, Msg, PluralMsg, Translator
from bot.staff import Measure, measured

MAX_SEGMENTS = 2
TARGET_MEAN = 1.2

SAMPLES: dict[str, object] = {
    "campaign": "Budget participatif des lycées",
    "title": "Budget participatif des lycées",
    "details": "Proposez et votez pour les projets de votre lycée.",
    "summary": "Proposez et votez pour les projets de votre lycée.",
    "phase": "vote",
    "when": " (jusqu'au 16 octobre 2026)",
    "date": "16 octobre 2026",
    "until": "16 octobre 2026",
    "codes": "P3, P7, P12",
    "code": "P12",
    "max": 3,
    "n": 3,
    "length": 312,
    "rules": "Choisissez jusqu'à 3 projets : envoyez leurs numéros (ex. 3 7 12).",
    "current": "",
    "choices": "P3 Jardin partagé\nP7 Vélos en prêt\nP12 Fresque",
    "total": "",
    "envelope": "500 000 €",
    "minimum": "250 000 €",
    "text": "Un bus le samedi soir entre les villages et la gare",
    "url": "https://www.laregioncitoyenne.fr/votz/confidentialite",
    "contact": "participation@laregion.fr",
    "language": "Français",
    "consent": "25 nov. 2026 20:11",
    "age": "18-25 ans",
    "postcode": "48000",
    "address": "+33612345678",
    "proposals": 1,
    "ballots": "P3, P7",
    "page": 1,
    "pages": 3,
    "winners": "P3 Jardin partagé\nP7 Vélos en prêt",
}
SAMPLE_OPTIONS = ("Budget participatif des lycées", "Ta Région demain", "Budget des villages")


@dataclass(frozen=True, slots=True)
class AuditLine:
    locale: str
    what: str  # a step reference or a message key
    prompt: bool
    encoding: str
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2): what segments are cut from
    segments: int


def _sample(template: str, t: Translator) -> dict[str, object]:
    """Plausible values, in the language of the text, for the placeholders of `template`."""
    localised: dict[str, object] = {
        "rules": t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", 3)),
        "phase": t("phase.vote"),
        "when": t("browse.until", date=SAMPLES["date"]),
        "language": t(LANGUAGE_NAMES[t.locale]),
        "age": t("age.18_25"),
    }
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return {name: localised.get(name, SAMPLES.get(name, "x" * 10)) for name in names}


def audit(i18n: I18n, flows: FlowSet, measure: Measure | None = None) -> list[AuditLine]:
    """Every text measured by `measure` (default: the first channel that charges per unit)."""
    if measure is None:
        channels = measured()
        if not channels:
            raise ConfigError("no channel charges per message: nothing to audit")
        measure = next(iter(channels.values()))
    lines: list[AuditLine] = []
    seen_in_steps: set[str] = set()
    for locale in LOCALES:
        t = i18n[locale]
        for ref, step in flows.steps.items():
            if step.say is None:
                continue
            seen_in_steps.add(step.say)
            template = t(step.say) if "{" not in t(step.say) else t.render(Msg(step.say))
            text = t.render(Msg(step.say, _sample(template, t)))
            if step.choices:
                choices = [ReplyChoice(c.id, str(i), t(c.label))
                           for i, c in enumerate(step.choices, 1)]
            else:
                choices = [ReplyChoice(str(i), str(i), label)
                           for i, label in enumerate(SAMPLE_OPTIONS, 1)] if step.source else []
            lines.append(_line(measure, locale, ref, True, Reply(text, choices)))
    catalog_keys = _catalog_keys(i18n)
    for locale in LOCALES:
        t = i18n[locale]
        for key in sorted(catalog_keys - seen_in_steps):
            template = t(key) if "{" not in t(key) else t.render(Msg(key))
            lines.append(_line(measure, locale, key, False,
                               Reply(t.render(Msg(key, _sample(template, t))))))
    return lines


def _catalog_keys(i18n: I18n) -> set[str]:
    catalog = i18n["fr"]._catalog
    keys: set[str] = set()
    for key in getattr(catalog, "_catalog", {}):
        if isinstance(key, tuple):
            keys.add(key[0])
        elif key:
            keys.add(key)
    return keys


def _line(measure: Measure, locale: str, what: str, prompt: bool, reply: Reply) -> AuditLine:
    cost = measure(reply)
    return AuditLine(locale, what, prompt, cost.encoding, cost.units, cost.segments)


def report(lines: list[AuditLine]) -> tuple[str, bool]:
    """A printable table and whether the audit passes."""
    out = [f"{'lang':4} {'text':28} {'encoding':8} {'units':>5} {'segments':>8}"]
    ok = True
    for line in lines:
        flag = ""
        if line.segments > MAX_SEGMENTS:
            flag, ok = "  <- over 2 segments", False
        out.append(f"{line.locale:4} {line.what:28} {line.encoding:8} {line.units:>5} "
                   f"{line.segments:>8}{flag}")
    for locale in LOCALES:
        prompts = [x.segments for x in lines if x.locale == locale and x.prompt]
        mean = sum(prompts) / len(prompts)
        mark = "" if mean <= TARGET_MEAN or locale != "fr" else f"  <- above {TARGET_MEAN}"
        ok = ok and (mean <= TARGET_MEAN or locale != "fr")
        out.append(f"{locale}: {len(prompts)} prompts, mean {mean:.2f} segments per prompt{mark}")
    return "\n".join(out) + "\n", ok


__all__ = ["AuditLine", "audit", "report"]
