"""CSV exports staff open in a spreadsheet: what people wrote never becomes a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bot.staff.results import csv_text
from tests.e2e.test_cli import votz

FORMULA = '=HYPERLINK("http://x","y")'


def test_a_proposal_written_as_a_formula_stays_text_in_the_results_csv(tmp_path: Path) -> None:
    # A young person proposes an "idea" on the console (the demo loads the campaigns) ...
    said = "\n".join(["Bonjour", "1", "1", "3", "31000", "MENU", "2", FORMULA, "1"]) + "\n"
    chat = votz(tmp_path, "chat", stdin=said)
    assert chat.returncode == 0, chat.stderr
    assert "Idée bien arrivée, code P" in chat.stdout
    # ... staff publish it without looking twice, then export the results.
    pending = votz(tmp_path, "proposals", "list", "consultation-jeunes", "--status",
                   "submitted").stdout
    assert pending.split()[2:] == [FORMULA]
    code = pending.split()[0]
    assert votz(tmp_path, "proposals", "publish", code).returncode == 0

    exported = votz(tmp_path, "results", "consultation-jeunes", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0] == ["code", "title", "cost", "votes", "winner", "hidden"]
    titles = {row[0]: row[1] for row in rows[1:]}
    assert titles[code] == "'" + FORMULA
    # Nothing else starts like a formula; counts stay numbers.
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
               for row in rows for cell in row)
    assert [row[3] for row in rows[1:]] == ["0"] * (len(rows) - 1)
    # JSON is not opened by a spreadsheet: the title stays as written there.
    as_json = votz(tmp_path, "results", "consultation-jeunes", "--format", "json").stdout
    assert f'"title": "{FORMULA.replace(chr(34), chr(92) + chr(34))}"' in as_json


@pytest.mark.parametrize("text", ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
                                  "\tTAB", "\rCR"])
def test_every_formula_start_is_neutralised(text: str) -> None:
    assert next(csv.reader(io.StringIO(csv_text([[text]])))) == ["'" + text]


def test_numbers_and_plain_text_are_unchanged() -> None:
    assert csv_text([[-3, 0, 2.5, "", "Un bus le soir", "<5", "P12"]]) == \
        "-3,0,2.5,,Un bus le soir,<5,P12\r\n"
