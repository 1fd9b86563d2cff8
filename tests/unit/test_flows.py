"""Flow files are validated at load: errors name the file and the step."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.conversation.actions import REGISTRY
from bot.conversation.flows import load_flows, mermaid
from bot.errors import FlowError
from bot.i18n import I18n
from bot.resources import resource_dir


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(resource_dir("flows"), target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def load(folder: Path):  # type: ignore[no-untyped-def]
    return load_flows(folder, registry=REGISTRY, has_translation=I18n().has)


def test_shipped_flows_are_valid() -> None:
    flows = load(resource_dir("flows"))
    assert "vote.confirm" in flows.steps
    assert flows.keywords["arret"] == "stop"
    # Phrases are folded like single words: RAPÈLS ÒC is matched as "rapels oc".
    assert flows.keywords["rappels non"] == "reminders_off"
    assert flows.keywords["rapels oc"] == "reminders_on"
    assert "vote_confirm -- cast --> main_menu" in mermaid(flows)


@pytest.mark.parametrize(
    ("file", "old", "new", "step", "problem"),
    [
        ("vote.yaml", "next: {ok: confirm}", "next: {ok: confirmation}", "vote.choose",
         "unknown step 'vote.confirmation'"),
        ("vote.yaml", "say: vote.confirm", "say: vote.confirm_typo", "vote.confirm",
         "'vote.confirm_typo' is not translated"),
        ("vote.yaml", "action: cast_ballot", "action: cast_ballots", "vote.confirm",
         "unknown action 'cast_ballots'"),
        ("vote.yaml", "cast: main.menu, ", "", "vote.confirm", "does not say where cast goes"),
        ("main.yaml", "      help: help\n", "      help: menu\n", "main.help", "unreachable"),
        ("privacy.yaml", "{id: erase, label: privacy.delete_yes,",
         "{id: yes, label: privacy.delete_yes,", "privacy.confirm_delete", "must be text"),
        ("browse.yaml", "view: campaign_detail", "view: nothing", "browse.detail",
         "unknown view"),
        ("propose.yaml", "input: text", "input: voice", "propose.text", "input must be one of"),
        ("browse.yaml", "follow: follow, ", "", "browse.detail", "does not say where follow goes"),
        ("settings.yaml", "reminders: menu, ", "", "settings.menu",
         "does not say where reminders goes"),
    ],
)
def test_broken_flows_are_refused_naming_file_and_step(
    flows_dir: Path, file: str, old: str, new: str, step: str, problem: str
) -> None:
    edit(flows_dir / file, old, new)
    with pytest.raises(FlowError) as caught:
        load(flows_dir)
    assert caught.value.where == step
    assert caught.value.file.endswith(file) or step == "main.help"
    assert problem in caught.value.problem


def test_every_keyword_is_needed(flows_dir: Path) -> None:
    edit(flows_dir / "keywords.yaml", "  cancel: [ANNULER, CANCEL, ANULLAR]\n", "")
    with pytest.raises(FlowError, match="missing cancel"):
        load(flows_dir)


def test_cli_flows_check(capsys: pytest.CaptureFixture[str], flows_dir: Path) -> None:
    from bot.cli import main

    assert main(["flows", "check", str(flows_dir)]) == 0
    edit(flows_dir / "vote.yaml", "next: {ok: confirm}", "next: {ok: nowhere}")
    assert main(["flows", "check", str(flows_dir)]) == 2
    assert "vote.yaml: vote.choose: unknown step 'vote.nowhere'" in capsys.readouterr().err
