"""Campaign files on disk: read with the position of every field, and checked all at once.

`check_campaigns` reports every problem of every file as `file:line:column: field: message`
(a YAML syntax error at its real position, fields that do not depend on one another each
checked); `read_campaigns` is what `votz campaigns load` uses: any problem in any file, and
nothing is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.domain.campaigns import Campaign, check_campaign
from bot.errors import CampaignError


class _TextDates(yaml.SafeLoader):
    """YAML without implicit timestamps: dates stay text, so errors can name their field."""


_TextDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_PART = re.compile(r"[^.\[\]]+")  # phases.vote.start, seed_proposals[2].cost → the parts


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a campaign file, where an editor can jump to it (line and column
    count from 1)."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.field}: {self.message}"


class Marks:
    """Where each field of a YAML document is: `phases.vote.start`, `seed_proposals[2].cost`,
    and list items by their id too (`reminders.closing-soon.text.fr`). A field that is not
    in the file (a missing one) is placed at its closest parent that is."""

    def __init__(self, root: Node | None = None) -> None:
        self._at: dict[tuple[str, ...], tuple[int, int]] = {}
        self.duplicates: list[tuple[str, int, int]] = []  # (field, line, column)
        if root is not None:
            self._walk(root, (), first=True)

    def _walk(self, node: Node, path: tuple[str, ...], *, first: bool) -> None:
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if not isinstance(key, ScalarNode) or key.value == "<<":
                    continue
                here = (*path, str(key.value))
                position = (key.start_mark.line + 1, key.start_mark.column + 1)
                if key.value in seen and first:
                    self.duplicates.append((".".join(here), *position))
                seen.add(key.value)
                self._at[here] = position
                self._walk(value, here, first=first)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                position = (item.start_mark.line + 1, item.start_mark.column + 1)
                self._at[(*path, str(i))] = position
                self._walk(item, (*path, str(i)), first=first)
                named = _item_id(item)
                if named is not None and (*path, named) not in self._at:
                    self._at[(*path, named)] = position
                    self._walk(item, (*path, named), first=False)

    def locate(self, field: str) -> tuple[int, int]:
        """(line, column) of `field`, or of its closest parent in the file (1, 1: none)."""
        found = (1, 1)
        parts = tuple(_PART.findall(field))
        for end in range(1, len(parts) + 1):
            position = self._at.get(parts[:end])
            if position is None:
                break
            found = position
        return found

    def problem(self, file: str, field: str, message: str) -> Problem:
        line, column = self.locate(field)
        return Problem(file, line, column, field, message)


def _item_id(node: Node) -> str | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == "id" \
                    and isinstance(value, ScalarNode):
                return str(value.value)
    return None


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """One campaign file: its campaign when it has no problem, else its problems (in the
    order of the file); `marks` place further problems found later (reminder lengths)."""

    file: str
    campaign: Campaign | None
    problems: tuple[Problem, ...]
    marks: Marks

    def problem(self, field: str, message: str) -> Problem:
        return self.marks.problem(self.file, field, message)


def check_campaigns(path: Path, *, today: date, now: datetime | None = None
                    ) -> list[CheckedFile]:
    """Every campaign file below `path` (`*.yaml`, or that one file), each with its
    campaign or all its problems; a slug used twice is a problem of the later file."""
    files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    if not files:
        return [CheckedFile(str(path), None, (
            Problem(str(path), 1, 1, "(folder)", "no campaign files (*.yaml)"),), Marks())]
    slugs: dict[str, str] = {}
    checked = []
    for file in files:
        name = str(file)
        try:
            raw, marks = _read(file)
        except _Unreadable as exc:
            checked.append(CheckedFile(name, None, (exc.problem,), Marks()))
            continue
        campaign, errors = check_campaign(raw, file=name, today=today, now=now)
        problems = [Problem(name, line, column, field, "duplicate key: only the last one counts")
                    for field, line, column in marks.duplicates]
        problems += [marks.problem(name, e.where, e.problem) for e in errors]
        if campaign is not None and campaign.slug in slugs:
            problems.append(marks.problem(name, "slug",
                                          f"{campaign.slug!r} is also in {slugs[campaign.slug]}"))
        elif campaign is not None:
            slugs[campaign.slug] = name
        problems.sort(key=lambda p: (p.line, p.column))  # stable: checks' order on a line
        checked.append(CheckedFile(name, None if problems else campaign, tuple(problems),
                                   marks))
    return checked


def read_campaigns(path: Path, *, today: date, now: datetime | None = None) -> list[Campaign]:
    """Parse one campaign file, or every `*.yaml` below a folder; slugs must be unique. Any
    problem in any file refuses them all: CampaignError names the first one (and how many
    more `votz campaigns check` would list)."""
    checked = check_campaigns(path, today=today, now=now)
    problems = [p for c in checked for p in c.problems]
    if problems:
        first = problems[0]
        at = f"line {first.line}, column {first.column}: " if first.field == "(yaml)" else ""
        more = (f" (and {len(problems) - 1} more problem(s): `votz campaigns check {path}` "
                "lists them)" if len(problems) > 1 else "")
        raise CampaignError(first.file, first.field, at + first.message + more)
    return [c.campaign for c in checked if c.campaign is not None]


class _Unreadable(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _read(file: Path) -> tuple[Any, Marks]:
    """The file's data and where each field is; _Unreadable when it cannot be read or is
    not YAML (at the error's real position)."""
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _Unreadable(Problem(name, 1, 1, "(file)", reason)) from None
    loader = _TextDates(text)
    try:
        node = loader.get_single_node()
        raw = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = exc.problem or exc.context or "not valid YAML"
        if exc.problem and exc.context:
            where = exc.context_mark
            message += f" ({exc.context}" + (
                f" at {where.line + 1}:{where.column + 1})" if where is not None else ")")
        raise _Unreadable(Problem(name, line, column, "(yaml)", message)) from None
    except yaml.YAMLError as exc:  # not marked: a reader error (a control character)
        raise _Unreadable(Problem(name, 1, 1, "(yaml)", str(exc).replace("\n", " "))) from None
    finally:
        loader.dispose()
    return raw, Marks(node)
