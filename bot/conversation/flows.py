"""Load dialogue flows from YAML and validate them before anything runs.

A flow file names its steps; a step may say something (`say`, a catalog key), offer choices
(a static list or a `source`), read input (`one` choice, `many` choices, free `text`), run an
`action`, and go `next` — to one step, or per outcome. A step without `say` is automatic: its
action runs as soon as the conversation reaches it. Step references are `step` (same flow) or
`flow.step`. A choice may say it `means: yes` or `means: no`: then the yes/no words of
`keywords.yaml` (`answers:` OUI, OK, d'accord, NON…) choose it too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.conversation.matching import fold, squeeze
from bot.errors import FlowError
from bot.resources import resource_dir

INPUTS = ("one", "many", "text", "contact")
MEANINGS = ("yes", "no")
ROOTS = ("onboarding.language", "main.menu")
KEYWORDS = ("menu", "help", "info", "stop", "start", "language", "cancel", "vote", "more",
            "campaigns", "propose", "mydata", "reminders_off", "reminders_on", "report")
KEYWORD_TARGETS = {"menu": "main.menu", "language": "settings.language", "vote": "vote.start",
                   "campaigns": "browse.list", "propose": "propose.start",
                   "mydata": "privacy.mydata"}


@dataclass(frozen=True, slots=True)
class ChoiceDef:
    id: str
    label: str
    means: str = ""  # "yes" / "no": the yes/no words choose it


@dataclass(frozen=True, slots=True)
class Step:
    ref: str
    file: str
    say: str | None = None
    view: str | None = None
    choices: tuple[ChoiceDef, ...] = ()
    source: str | None = None
    input: str | None = None
    action: str | None = None
    next: str | Mapping[str, str] = ""
    empty: str | None = None

    @property
    def automatic(self) -> bool:
        return self.say is None

    def target(self, outcome: str) -> str | None:
        if isinstance(self.next, str):
            return self.next
        return self.next.get(outcome)


@dataclass(frozen=True, slots=True)
class Registry:
    """What flows may name: actions (with their outcomes), views and choice sources."""

    actions: Mapping[str, frozenset[str]]
    views: frozenset[str]
    sources: Mapping[str, frozenset[str] | None]  # fixed choice ids, or None when dynamic


@dataclass(frozen=True, slots=True)
class FlowSet:
    steps: Mapping[str, Step]
    keywords: Mapping[str, str]  # folded word or phrase (`rappels non`) → keyword name
    answers: Mapping[str, str] = field(default_factory=dict)  # squeezed word → yes / no

    def __getitem__(self, ref: str) -> Step:
        return self.steps[ref]


def _resolve(ref: str, flow: str) -> str:
    return ref if "." in ref else f"{flow}.{ref}"


def _parse_step(flow: str, name: str, raw: Any, file: str) -> Step:
    ref = f"{flow}.{name}"
    if not isinstance(raw, dict):
        raise FlowError(file, ref, "a step is a mapping (say, choices, input, action, next)")
    unknown = set(raw) - {"say", "view", "choices", "input", "action", "next", "empty"}
    if unknown:
        raise FlowError(file, ref, f"unknown field {sorted(unknown)[0]!r}")
    choices: tuple[ChoiceDef, ...] = ()
    source = None
    raw_choices = raw.get("choices")
    if isinstance(raw_choices, dict):
        source = raw_choices.get("source")
        if not isinstance(source, str):
            raise FlowError(file, ref, "choices: {source: NAME} or a list of {id, label}")
    elif isinstance(raw_choices, list):
        items = []
        for item in raw_choices:
            if not isinstance(item, dict) or not item.get("id") or not item.get("label"):
                raise FlowError(file, ref, "each choice needs an id and a label")
            if not isinstance(item["id"], str):
                raise FlowError(file, ref, f"choice id {item['id']!r} must be text "
                                "(quote yes/no/on/off and numbers)")
            unknown_fields = set(item) - {"id", "label", "means"}
            if unknown_fields:
                raise FlowError(file, ref, f"unknown choice field {sorted(unknown_fields)[0]!r}")
            means = item.get("means", "")
            if means is True or means is False:  # YAML reads a bare yes / no as a boolean
                means = "yes" if means else "no"
            if means and means not in MEANINGS:
                raise FlowError(file, ref, f"means must be yes or no, not {means!r}")
            items.append(ChoiceDef(str(item["id"]), str(item["label"]), str(means)))
        ids = [c.id for c in items]
        if len(set(ids)) != len(ids):
            raise FlowError(file, ref, "two choices share an id")
        meanings = [c.means for c in items if c.means]
        if len(set(meanings)) != len(meanings):
            raise FlowError(file, ref, "two choices mean the same (means: yes / no)")
        choices = tuple(items)
    elif raw_choices is not None:
        raise FlowError(file, ref, "choices: {source: NAME} or a list of {id, label}")
    nxt = raw.get("next")
    if isinstance(nxt, str):
        next_: str | Mapping[str, str] = _resolve(nxt, flow)
    elif isinstance(nxt, dict) and nxt:
        next_ = {str(k): _resolve(str(v), flow) for k, v in nxt.items()}
    else:
        raise FlowError(file, ref, "next: a step, or a mapping of outcome → step")
    has_choices = bool(choices) or source is not None
    input_ = raw.get("input") or ("one" if has_choices else None)
    if input_ is not None and input_ not in INPUTS:
        raise FlowError(file, ref, f"input must be one of {', '.join(INPUTS)}")
    step = Step(
        ref=ref, file=file, say=raw.get("say"), view=raw.get("view"), choices=choices,
        source=source, input=input_, action=raw.get("action"), next=next_,
        empty=raw.get("empty"),
    )
    if step.automatic and (has_choices or raw.get("input") or step.view):
        raise FlowError(file, ref, "a step without `say` is automatic: no choices, input or view")
    if step.automatic and not step.action:
        raise FlowError(file, ref, "an automatic step (no `say`) needs an action")
    if not step.automatic and step.input is None:
        raise FlowError(file, ref, "a step that says something needs choices or an input")
    return step


def _outcomes(step: Step, registry: Registry) -> frozenset[str] | None:
    if step.action is not None:
        return registry.actions[step.action] - {"retry"}
    if step.source is not None:
        return registry.sources[step.source]
    return frozenset(c.id for c in step.choices)


def load_flows(
    folder: Path | None = None,
    *,
    registry: Registry,
    has_translation: Callable[[str], bool] | None = None,
) -> FlowSet:
    """Read every `*.yaml` flow and `keywords.yaml`; raise FlowError naming file and step."""
    folder = folder or resource_dir("flows")
    steps: dict[str, Step] = {}
    keywords: dict[str, str] = {}
    answers: dict[str, str] = {}
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FlowError(str(folder), "(folder)", "no flow files")
    for path in files:
        file = str(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FlowError(file, "(yaml)", str(exc).replace("\n", " ")) from None
        if path.name == "keywords.yaml":
            for name, words in (raw or {}).get("keywords", {}).items():
                if name not in KEYWORDS:
                    raise FlowError(file, f"keywords.{name}", "unknown keyword")
                for word in words:
                    folded = fold(str(word))
                    if folded in keywords and keywords[folded] != name:
                        raise FlowError(file, f"keywords.{name}", f"{word!r} is used twice")
                    keywords[folded] = name
            answers = _parse_answers(file, (raw or {}).get("answers"))
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("flow"), str):
            raise FlowError(file, "(top)", "a flow file starts with `flow: NAME`")
        flow = raw["flow"]
        if not isinstance(raw.get("steps"), dict) or not raw["steps"]:
            raise FlowError(file, flow, "no steps")
        for name, body in raw["steps"].items():
            step = _parse_step(flow, str(name), body, file)
            if step.ref in steps:
                raise FlowError(file, step.ref, "defined twice")
            steps[step.ref] = step
        start = raw.get("start")
        if f"{flow}.{start}" not in steps:
            raise FlowError(file, f"{flow}.start", f"unknown start step {start!r}")
    missing_keywords = set(KEYWORDS) - set(keywords.values())
    if missing_keywords:
        raise FlowError(str(folder / "keywords.yaml"), "keywords",
                        f"missing {', '.join(sorted(missing_keywords))}")
    clash = next((w for w in answers if w in {squeeze(k) for k in keywords}), None)
    if clash is not None:
        raise FlowError(str(folder / "keywords.yaml"), "answers",
                        f"{clash!r} is a keyword, it cannot be an answer too")

    for step in steps.values():
        _check_step(step, steps, registry, has_translation)
    _check_reachable(steps)
    return FlowSet(steps=steps, keywords=keywords, answers=answers)


def _parse_answers(file: str, raw: Any) -> dict[str, str]:
    """`answers: {yes: {fr: [OUI, OK]}, no: {fr: [NON]}}` → squeezed word → yes / no. Every
    language's words are accepted in every language: none means yes in one and no in another."""
    answers: dict[str, str] = {}
    if raw is None:
        return answers
    if not isinstance(raw, dict):
        raise FlowError(file, "answers", "answers: {yes: {LANG: [WORD…]}, no: {…}}")
    for meaning, by_language in raw.items():
        meaning = {True: "yes", False: "no"}.get(meaning, meaning)
        if meaning not in MEANINGS or not isinstance(by_language, dict):
            raise FlowError(file, f"answers.{meaning}", "answers: {yes: {LANG: [WORD…]}, no: …}")
        for words in by_language.values():
            for word in words:
                key = squeeze(fold(str(word)))
                if answers.get(key, meaning) != meaning:
                    raise FlowError(file, f"answers.{meaning}", f"{word!r} means yes and no")
                answers[key] = meaning
    return answers


def _check_step(
    step: Step,
    steps: Mapping[str, Step],
    registry: Registry,
    has_translation: Callable[[str], bool] | None,
) -> None:
    def fail(problem: str) -> FlowError:
        return FlowError(step.file, step.ref, problem)

    if step.action is not None and step.action not in registry.actions:
        raise fail(f"unknown action {step.action!r}")
    if step.view is not None and step.view not in registry.views:
        raise fail(f"unknown view {step.view!r}")
    if step.source is not None and step.source not in registry.sources:
        raise fail(f"unknown choice source {step.source!r}")
    targets = [step.next] if isinstance(step.next, str) else list(step.next.values())
    for target in targets:
        if target not in steps:
            raise fail(f"unknown step {target!r} in next")
    outcomes = _outcomes(step, registry)
    if isinstance(step.next, Mapping):
        if outcomes is None:
            raise fail("choices from a dynamic source need an action or a single next step")
        missing = outcomes - set(step.next)
        if missing:
            raise fail(f"next does not say where {', '.join(sorted(missing))} goes")
        extra = set(step.next) - outcomes
        if extra:
            raise fail(f"next names outcome(s) that cannot happen: {', '.join(sorted(extra))}")
    if has_translation is not None:
        keys = [k for k in (step.say, step.empty) if k] + [c.label for c in step.choices]
        for key in keys:
            if not has_translation(key):
                raise fail(f"message {key!r} is not translated in every language")


def _check_reachable(steps: Mapping[str, Step]) -> None:
    seen: set[str] = set()
    queue = deque([*ROOTS, *KEYWORD_TARGETS.values()])
    while queue:
        ref = queue.popleft()
        if ref in seen or ref not in steps:
            continue
        seen.add(ref)
        step = steps[ref]
        queue.extend([step.next] if isinstance(step.next, str) else step.next.values())
    for ref, step in steps.items():
        if ref not in seen:
            raise FlowError(step.file, ref, "unreachable: no step leads here")


def mermaid(flows: FlowSet) -> str:
    """The flows as one Mermaid diagram, for staff and reviewers."""
    lines = ["flowchart TD"]

    def node(ref: str) -> str:
        return ref.replace(".", "_")

    for ref, step in flows.steps.items():
        shape = f"{node(ref)}{{{{{ref}}}}}" if step.automatic else f'{node(ref)}["{ref}"]'
        lines.append(f"  {shape}")
        if isinstance(step.next, str):
            lines.append(f"  {node(ref)} --> {node(step.next)}")
        else:
            for outcome, target in step.next.items():
                lines.append(f"  {node(ref)} -- {outcome} --> {node(target)}")
    return "\n".join(lines) + "\n"
