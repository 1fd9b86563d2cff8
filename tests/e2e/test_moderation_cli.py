"""`votz proposals review`, `hide` and `--by`, as staff use them: real processes, piped stdin."""

from __future__ import annotations

import getpass
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_cli import _codes, votz

CAMPAIGNS = Path(__file__).resolve().parents[1] / "campaigns"  # "pick" votes, "ideas" collects


def _load(tmp_path: Path) -> None:
    loaded = votz(tmp_path, "campaigns", "load", str(CAMPAIGNS))
    assert loaded.returncode == 0, loaded.stderr


def _submit(tmp_path: Path, slug: str, title: str, *, hours_ago: int) -> str:
    """A proposal as if just sent in by someone: its code."""
    at = (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(tzinfo=None)
    with sqlite3.connect(tmp_path / "votz.db") as db:
        (campaign_id,) = db.execute("SELECT id FROM campaigns WHERE slug = ?", (slug,)).fetchone()
        cursor = db.execute(
            "INSERT INTO proposals (campaign_id, title, status, created_at) "
            "VALUES (?, ?, 'submitted', ?)",
            (campaign_id, json.dumps({"fr": title}), at.isoformat(sep=" ")))
        return f"P{cursor.lastrowid}"


def _log(tmp_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp_path / "votz.db") as db:
        return db.execute("SELECT actor, action, detail FROM campaign_log "
                          "WHERE action LIKE 'proposal.%' ORDER BY id").fetchall()


def _status(tmp_path: Path, code: str) -> str:
    with sqlite3.connect(tmp_path / "votz.db") as db:
        return str(db.execute("SELECT status FROM proposals WHERE id = ?",
                              (int(code[1:]),)).fetchone()[0])


def test_review_piped_rejects_with_a_numbered_reason_and_publishes(tmp_path: Path) -> None:
    _load(tmp_path)
    bikes = _submit(tmp_path, "pick", "Des vélos en prêt, appelez le 06 12 34 56 78",
                    hours_ago=5)
    sunday = _submit(tmp_path, "ideas", "Un foyer ouvert le dimanche", hours_ago=1)
    answers = ["x", "r", "9", "4",  # an unknown answer; reject: a wrong number, then 4
               "publier"]           # the whole word works too
    run = votz(tmp_path, "proposals", "review", "--by", "alice",
               stdin="\n".join(answers) + "\n")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "2 proposition(s) en attente, de la plus ancienne à la plus récente." in out
    first, second = out.index(f"[1/2] {bikes} · Budget des lycées (pick) · soumise le "), \
        out.index(f"[2/2] {sunday} · Tes idées pour la Région (ideas) · soumise le ")
    assert first < second
    assert "« Des vélos en prêt, appelez le 06 12 34 56 78 »" in out
    assert "  attention, contient un numéro de téléphone\n" in out
    assert "Vélos en prêt (publiée)" in out.split("\n  semblables : ")[1].split("\n")[0]
    assert "[p]ublier / [r]ejeter / [m]asquer / [s]uivant / [q]uitter ? x\n" \
           "« x » : répondez p (publier), r (rejeter), m (masquer), s (suivant), " \
           "q (quitter).\n" in out
    assert "  4 données personnelles\n" in out
    assert "Numéro du motif (1 à 6) ? 9\n« 9 » n'est pas un motif : un numéro de 1 à 6.\n" in out
    assert f"{bikes} rejetée (données personnelles) ; son auteur sera prévenu.\n" in out
    assert f"{sunday} publiée ; son auteur sera prévenu.\n" in out
    assert out.endswith("Fin de la liste : 2 décision(s) prise(s).\n")
    assert (_status(tmp_path, bikes), _status(tmp_path, sunday)) == ("rejected", "published")
    assert _log(tmp_path) == [("alice", "proposal.reject", f"{bikes} reason=personal_data"),
                              ("alice", "proposal.publish", sunday)]


def test_review_skips_refuses_hiding_a_submitted_idea_and_quits(tmp_path: Path) -> None:
    _load(tmp_path)
    bikes = _submit(tmp_path, "pick", "Des vélos en prêt", hours_ago=5)
    sunday = _submit(tmp_path, "ideas", "Un foyer ouvert le dimanche", hours_ago=1)
    later = _submit(tmp_path, "ideas", "Des casiers au lycée", hours_ago=0)
    run = votz(tmp_path, "proposals", "review", stdin="m\n1\ns\np\nq\n")
    assert run.returncode == 0, run.stderr
    assert f"{bikes} : seule une proposition publiée peut être masquée.\n" in run.stdout
    assert run.stdout.endswith("1 décision(s) prise(s).\n")
    assert [_status(tmp_path, c) for c in (bikes, sunday, later)] == \
        ["submitted", "published", "submitted"]
    assert _log(tmp_path) == [(getpass.getuser(), "proposal.publish", sunday)]  # --by: you

    only = votz(tmp_path, "proposals", "review", "ideas", stdin="")  # stdin ends: it stops
    assert only.returncode == 0, only.stderr
    assert f"[1/1] {later} " in only.stdout and bikes not in only.stdout
    wrong = votz(tmp_path, "proposals", "review", "idea")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == ("error: no campaign 'idea': one of archived, budget, "
                                    "closed, ideas, pick")


def test_hide_during_an_open_vote_and_by_on_every_decision(tmp_path: Path) -> None:
    _load(tmp_path)
    listing = votz(tmp_path, "proposals", "list", "pick").stdout
    mural = next(line.split()[0] for line in listing.splitlines() if "Fresque" in line)
    waiting = _submit(tmp_path, "ideas", "Un foyer ouvert le dimanche", hours_ago=1)

    rejected = votz(tmp_path, "proposals", "reject", mural, "--reason", "offensive")
    assert rejected.returncode == 1
    assert "only hidden" in rejected.stderr
    hidden = votz(tmp_path, "proposals", "hide", mural, waiting, "--reason", "offensive",
                  "--by", "carole")
    assert hidden.returncode == 1
    assert hidden.stdout.startswith("1 proposal(s) hidden")
    assert hidden.stderr.strip() == \
        f"error: {waiting}: not published: only a published proposal can be hidden"
    assert _codes(votz(tmp_path, "proposals", "list", "pick", "--status", "hidden").stdout) \
        == {mural: "hidden"}
    assert "Fresque murale [hidden]" in votz(tmp_path, "results", "pick").stdout

    rude = votz(tmp_path, "proposals", "hide", mural, "--reason", "rude")
    assert rude.returncode == 2
    assert ("invalid choice: 'rude' (choose from 'spam', 'offensive', 'off_topic', "
            "'personal_data', 'duplicate', 'not_eligible')") in rude.stderr
    assert votz(tmp_path, "proposals", "publish", waiting, "--by", "bob").returncode == 0
    assert _log(tmp_path) == [("carole", "proposal.hide", f"{mural} reason=offensive"),
                              ("bob", "proposal.publish", waiting)]
