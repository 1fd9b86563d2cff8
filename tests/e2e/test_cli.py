"""The `votz` command as staff and a newcomer use it: real processes, piped stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def votz(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'votz.db'}"}
    env = {k: v for k, v in env.items() if not k.startswith("VOTZ_") or k == "VOTZ_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
        env=env, cwd=tmp_path, timeout=120, check=False,
    )


def transcript(output: str) -> list[tuple[str, str]]:
    """[(what the person typed, what Votz answered)] from a piped `votz chat`."""
    turns: list[tuple[str, str]] = []
    for block in output.split("\n> ")[1:] if not output.startswith("> ") else \
            ("\n" + output).split("\n> ")[1:]:
        said, _, answer = block.partition("\n")
        turns.append((said, answer.strip()))
    return turns


def test_demo_conversation_piped(tmp_path: Path) -> None:
    lines = [
        "Bonjour", "1", "1", "3", "31000",              # onboard in French
        "1", "Vos solutions pour la vie étudiante",    # read the 2024 campaign
        "MENU", "2", "Des navettes gratuites le vendredi soir vers les gares", "1",  # propose
        "3", "Démo – Vos solutions pour la vie étudiante",
    ]
    first = votz(tmp_path, "chat", stdin="\n".join(lines) + "\n")
    assert first.returncode == 0, first.stderr
    turns = dict(transcript(first.stdout))
    assert "Le vote est terminé" in turns["Vos solutions pour la vie étudiante"]
    assert turns["1"].startswith("Merci ! Idée bien arrivée, code P")  # the last "1" sent it
    choose = turns["Démo – Vos solutions pour la vie étudiante"]
    assert "Jusqu'à 3 projets" in choose
    numbers = [line.split()[0] for line in choose.splitlines()[2:] if line[0].isdigit()][:3]
    assert numbers == ["1", "2", "3"]  # numbered 1…N as shown, not by id
    # The codes (P12) of those three: the campaign's published proposals in order.
    listed = _codes(votz(tmp_path, "proposals", "list", "vie-etudiante-demo").stdout)
    codes = sorted((c for c, s in listed.items() if s == "published"), key=lambda c: int(c[1:]))
    codes = codes[:3]
    assert choose.splitlines()[-1].startswith("SUITE : voir la suite (1/")

    more = [
        " ".join(numbers), "1",                # vote for three, receipt
        f"VOTE {codes[0]}", "1",               # change the vote
        "LANGUE", "3", "LENGA", "2",           # Occitan, then English
        "STOP", "hello",
    ]
    second = votz(tmp_path, "chat", stdin="\n".join(more) + "\n")
    assert second.returncode == 0, second.stderr
    turns2 = transcript(second.stdout)
    answers = [answer for _, answer in turns2]
    assert answers[1].startswith(f"A voté : {codes[0]}, {codes[1]}, "
                                 f"{codes[2]}.")
    assert answers[3].startswith(f"Vote modifié : {codes[0]}.")
    assert answers[5].startswith("Lenga : Occitan.")
    assert answers[7].startswith("Language: English.")
    assert answers[8] == "OK, you won't get any more messages. Send START to come back."
    assert answers[9] == ""

    results = votz(tmp_path, "results", "vie-etudiante-demo", "--format", "json")
    assert results.returncode == 0, results.stderr
    data = json.loads(results.stdout)
    assert data["ballots"] == 1
    votes = {p["code"]: p["votes"] for p in data["proposals"]}
    assert votes[codes[0]] == 1 and sum(votes.values()) == 1
    assert data["by_age_bracket"] == {"18-25": None}  # fewer than 5: suppressed
    by_age = votz(tmp_path, "results", "vie-etudiante-demo", "--format", "csv", "--by", "age")
    assert by_age.stdout.splitlines() == ["age_bracket,ballots", "18-25,<5"]
    by_place = votz(tmp_path, "results", "vie-etudiante-demo", "--format", "csv",
                    "--by", "departement")
    assert by_place.stdout.splitlines() == ["departement,ballots", "31,<5"]

    exported = votz(tmp_path, "privacy", "export", "console", "console")
    assert exported.returncode == 0
    person = json.loads(exported.stdout)
    assert person["participant"]["postal_code"] == "31000"
    assert person["participant"]["status"] == "stopped"
    assert "birth" not in exported.stdout


def test_campaign_errors_name_file_field_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("slug: ok-slug\nkind: participatory_budget\ntitle: {fr: T}\nsummary: {fr: S}\n"
                   "phases:\n  vote: {start: 2026-02-30}\n")
    result = votz(tmp_path, "campaigns", "load", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {bad}: phases.vote.start: '2026-02-30' is not a "
                                     "date (YYYY-MM-DD)")
    assert votz(tmp_path, "campaigns", "list").stdout == ""


def test_load_moderate_and_results(tmp_path: Path) -> None:
    loaded = votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns"))
    assert loaded.returncode == 0, loaded.stderr
    assert "vie-etudiante-2024: created, 12 proposal(s) added" in loaded.stdout
    listing = votz(tmp_path, "campaigns", "list").stdout
    assert "vie-etudiante-2024" in listing and "results" in listing
    again = votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns"))
    assert "vie-etudiante-2024: updated, 0 proposal(s) added" in again.stdout
    table = votz(tmp_path, "results", "vie-etudiante-2024")
    assert table.returncode == 0
    assert "0 ballot(s)" in table.stdout and "envelope 500000 €" in table.stdout
    csv_out = votz(tmp_path, "results", "vie-etudiante-2024", "--format", "csv").stdout
    assert csv_out.splitlines()[0] == "code,title,cost,votes,winner,hidden"
    assert len(csv_out.splitlines()) == 13
    assert votz(tmp_path, "results", "nope").returncode == 2
    pending = votz(tmp_path, "proposals", "list", "vie-etudiante-2024", "--status",
                   "submitted").stdout
    assert pending == ""
    # One of the 2024 campaign: its vote is over, its ballot stays what voters saw.
    first = next(iter(_codes(votz(tmp_path, "proposals", "list", "vie-etudiante-2024").stdout)))
    rejected = votz(tmp_path, "proposals", "reject", first, "--reason", "duplicate")
    assert rejected.returncode == 1
    assert rejected.stderr.strip() == (f"error: {first}: its vote has opened: it can no longer "
                                       "be rejected, only hidden (with a reason)")
    wrong = votz(tmp_path, "proposals", "reject", "P2", "--reason", "boring")
    assert wrong.returncode == 2 and "invalid choice: 'boring'" in wrong.stderr


@pytest.mark.parametrize("command", [["flows", "check"], ["flows", "diagram"], ["db", "upgrade"]])
def test_other_commands(tmp_path: Path, command: list[str]) -> None:
    result = votz(tmp_path, *command)
    assert result.returncode == 0, result.stderr
    assert result.stdout


def test_privacy_erase_and_purge(tmp_path: Path) -> None:
    assert votz(tmp_path, "chat", "--as", "+33600000001", stdin="bonjour\n").returncode == 0
    onboard = "bonjour\n1\n1\n3\n31000\n"
    assert votz(tmp_path, "chat", "--as", "+33600000002", stdin=onboard).returncode == 0
    purged = votz(tmp_path, "privacy", "purge", "--days", "0")
    assert purged.stdout.splitlines()[0] == "1 participant(s) without consent forgotten"
    assert votz(tmp_path, "privacy", "export", "console", "+33600000001").returncode == 1
    assert votz(tmp_path, "privacy", "export", "console", "+33600000002").returncode == 0
    erased = votz(tmp_path, "privacy", "erase", "console", "+33600000002")
    assert erased.returncode == 0 and erased.stdout.startswith("erased")
    assert votz(tmp_path, "privacy", "export", "console", "+33600000002").returncode == 1
    assert votz(tmp_path, "privacy", "erase", "console", "+33600000002").returncode == 1


def test_broadcast_preview_confirm_follow_cancel(tmp_path: Path) -> None:
    """A staff member's broadcast from the CLI: targeted preview with cost, no queueing
    without a yes, queued once, listed, followed to the end, a second one cancelled, a
    third scheduled for later."""
    import sqlite3

    onboard = "bonjour\n1\n1\n{age}\n{postcode}\n"
    people = [("+33600000000", "3", "31000"), ("+33600000001", "3", "48000"),
              ("+33600000002", "4", "48000"), ("+33600000003", "3", "48000")]
    for address, age, postcode in people:
        assert votz(tmp_path, "chat", "--as", address,
                    stdin=onboard.format(age=age, postcode=postcode)).returncode == 0
    text = "Le vote du budget étudiant est ouvert : envoyez VOTER."
    nobody = votz(tmp_path, "broadcast", "--text", text)
    assert nobody.returncode == 1  # the console is never broadcast to
    assert "recipients: 0" in nobody.stdout and "nothing queued" in nobody.stdout
    # As if they had signed up by SMS; the last one on Telegram.
    with sqlite3.connect(tmp_path / "votz.db") as db:
        db.execute("UPDATE participants SET channel = 'sms'")
        db.execute("UPDATE participants SET channel = 'telegram', address = '42' "
                   "WHERE address = '+33600000003'")
    lozere = ("--departement", "48", "--age", "18-25")
    shown = votz(tmp_path, "broadcast", "--text", text, *lozere)
    assert shown.returncode == 0, shown.stderr
    assert "audience: dép. 48 · 18-25 ans" in shown.stdout
    assert "recipients: 2" in shown.stdout
    assert "sms       1 (fr 1)" in shown.stdout and "telegram  1 (fr 1)" in shown.stdout
    assert "sms fr: GSM-7, 1 segment(s) × 1 = 1" in shown.stdout
    assert "estimated cost: 0.08 €" in shown.stdout
    assert shown.stdout.rstrip().endswith("not sent: add --yes to queue it without being asked")
    with sqlite3.connect(tmp_path / "votz.db") as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE broadcast_id IS NOT NULL"
                          ).fetchone() == (0,)
    sent = votz(tmp_path, "broadcast", "--text", text, *lozere, "--yes", "--by", "claire")
    assert "broadcast #1: 2 message(s) queued" in sent.stdout, sent.stdout + sent.stderr
    again = votz(tmp_path, "broadcast", "--text", text, *lozere, "--yes")
    assert "broadcast #1 was created before" in again.stdout
    listed = votz(tmp_path, "broadcast", "list")
    assert listed.stdout.startswith("#1    sending") and "claire" in listed.stdout

    # Followed while it goes: the progress bar ends when the last message has left.
    follow = subprocess.Popen(
        [sys.executable, "-m", "bot", "broadcast", "status", "1", "--follow", "--every", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "COLUMNS": "100", "PYTHONUNBUFFERED": "1",
             "VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'votz.db'}"})
    try:
        assert follow.stdout is not None
        while not follow.stdout.readline().startswith("text:"):  # following it now
            assert follow.poll() is None
        with sqlite3.connect(tmp_path / "votz.db") as db:
            db.execute("UPDATE outbox SET status = 'delivered' WHERE broadcast_id = 1")
        out, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert "#1 done: 2 queued, 2 sent (2 delivered), 0 failed, 0 cancelled, 0 remaining" in out
    assert "2/2" in out  # the bar, complete

    second = votz(tmp_path, "broadcast", "--text", "Deuxième message", "--yes")
    assert "broadcast #2: 4 message(s) queued" in second.stdout
    with sqlite3.connect(tmp_path / "votz.db") as db:  # one left before the cancel
        db.execute("UPDATE outbox SET status = 'sent' WHERE id = (SELECT min(id) FROM "
                   "outbox WHERE broadcast_id = 2)")
    cancelled = votz(tmp_path, "broadcast", "cancel", "2")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "#2 cancelled: 4 queued, 1 sent (0 delivered), 0 failed, 3 cancelled, 0 remaining" \
        in cancelled.stdout
    later = votz(tmp_path, "broadcast", "--text", "Plus tard", "--at", "2099-12-12 18:30",
                 "--yes")
    assert "broadcast #3 scheduled for 2099-12-12 18:30" in later.stdout, later.stdout
    status = votz(tmp_path, "broadcast", "status", "3")
    assert "#3 scheduled: 0 queued" in status.stdout
    wrong = votz(tmp_path, "broadcast", "--text", "x", "--departement", "75", "--age", "12")
    assert wrong.returncode == 2
    assert "unknown département '75': one of 09, 11, 12" in wrong.stderr
    assert votz(tmp_path, "broadcast", "--text", "x", "--at", "demain").returncode == 2
    assert "no broadcast #9" in votz(tmp_path, "broadcast", "status", "9").stderr


def test_campaign_link_and_qr_code(tmp_path: Path) -> None:
    from bot.testing.fake_telegram import TOKEN, FakeTelegram
    from bot.testing.server import LocalServer

    assert votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns")).returncode == 0
    fake = FakeTelegram()
    with LocalServer(fake.asgi()) as server:
        env = {**os.environ, "VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'votz.db'}",
               "VOTZ_TELEGRAM_TOKEN": TOKEN, "VOTZ_TELEGRAM_API_URL": server.url}
        result = subprocess.run(
            [sys.executable, "-m", "bot", "campaigns", "link", "vie-etudiante-demo"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "https://t.me/votz_region_bot?start=vie-etudiante-demo",
        "QR code: vie-etudiante-demo-telegram.png"]
    png = (tmp_path / "vie-etudiante-demo-telegram.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 500
    named = votz(tmp_path, "campaigns", "link", "consultation-jeunes", "--bot", "@autre_bot",
                 "--output", "affiche.png")
    assert named.stdout.startswith("https://t.me/autre_bot?start=consultation-jeunes")
    assert (tmp_path / "affiche.png").exists()
    assert votz(tmp_path, "campaigns", "link", "nope", "--bot", "x").returncode == 2


def test_reminders_as_staff_see_them(tmp_path: Path) -> None:
    """campaigns check measures declared reminders; load plans them; reminders list, status
    and a forced phase show them, with the reason logged."""
    express = (ROOT / "examples" / "vote-express.yaml").read_text(encoding="utf-8")
    long = express.replace('ferme dans 3 minutes.', 'ferme dans 3 minutes. ' + 'Vite ! ' * 40)
    (tmp_path / "long.yaml").write_text(long, encoding="utf-8")
    checked = votz(tmp_path, "campaigns", "check", "long.yaml")
    assert checked.returncode == 1
    assert "reminders.closing-soon.text.fr: 3 SMS segments" in checked.stdout
    assert votz(tmp_path, "campaigns", "load", str(ROOT / "examples")).returncode == 0
    listed = votz(tmp_path, "reminders", "list", "vote-express")
    assert listed.returncode == 0, listed.stderr
    assert "closing-soon" in listed.stdout and "vote.end - 3m" in listed.stdout
    assert "SMS segments per message: fr 1 en 1 oc 1" in listed.stdout
    forced = votz(tmp_path, "campaigns", "phase", "vote-express", "results", "--by", "claire",
                  "--reason", "atelier choisi en réunion")
    assert forced.returncode == 0, forced.stderr
    assert "rescheduled results" in forced.stdout
    status = votz(tmp_path, "campaigns", "status", "vote-express")
    assert "vote-express: results" in status.stdout
    listed = votz(tmp_path, "reminders", "list", "vote-express")
    assert "claire phase: vote → results: atelier choisi en réunion" in listed.stdout
    again = votz(tmp_path, "campaigns", "phase", "vote-express", "results", "--reason", "x")
    assert again.returncode == 2 and "already in its results phase" in again.stderr
    unknown = votz(tmp_path, "reminders", "list", "nope")
    assert unknown.returncode == 2 and "no campaign 'nope'" in unknown.stderr


def test_broadcast_channel_must_be_one_votz_sends_on(tmp_path: Path) -> None:
    for wrong in ("smss", "console"):
        refused = votz(tmp_path, "broadcast", "--text", "x", "--channel", wrong)
        assert refused.returncode == 2
        assert (f"argument --channel: invalid choice: '{wrong}' (choose from 'sms', "
                "'telegram')") in refused.stderr
        assert refused.stdout == ""
    shown = votz(tmp_path, "broadcast", "--text", "x", "--channel", "sms")
    assert shown.returncode == 1, shown.stderr  # nobody yet
    assert "audience: SMS" in shown.stdout and "telegram" not in shown.stdout
    assert "--channel CHANNEL     only this channel: sms, telegram" in votz(
        tmp_path, "broadcast", "--help").stdout


def _codes(listing: str) -> dict[str, str]:
    """{code: status word} from `votz proposals list`."""
    return {line.split()[0]: line.split()[1] for line in listing.splitlines()}


def _to_consultation(tmp_path: Path, codes: list[str]) -> None:
    """Move proposals to the youth consultation, whose vote opens in 41 days, as if just
    sent in there (moderation decides freely until a vote opens)."""
    import sqlite3

    with sqlite3.connect(tmp_path / "votz.db") as db:
        for code in codes:
            db.execute("UPDATE proposals SET status = 'submitted', campaign_id = (SELECT id "
                       "FROM campaigns WHERE slug = 'consultation-jeunes') WHERE id = ?",
                       (int(code[1:]),))


def test_moderation_names_every_code_it_could_not_act_on(tmp_path: Path) -> None:
    assert votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns")).returncode == 0
    first = next(iter(_codes(votz(tmp_path, "proposals", "list", "vie-etudiante-2024").stdout)))
    _to_consultation(tmp_path, [first])
    done = votz(tmp_path, "proposals", "publish", first, "P999", "P998")
    assert done.returncode == 1
    assert done.stdout.strip() == "1 proposal(s) published (their authors will be told)"
    assert done.stderr.splitlines() == ["error: P999: no such proposal",
                                        "error: P998: no such proposal"]
    assert _codes(votz(tmp_path, "proposals", "list", "consultation-jeunes").stdout)[first] \
        == "published"
    not_codes = votz(tmp_path, "proposals", "reject", first, "abc")
    assert not_codes.returncode == 2
    assert not_codes.stderr.strip() == f"error: proposal codes look like P12: {first} abc"
    assert _codes(votz(tmp_path, "proposals", "list", "consultation-jeunes").stdout)[first] \
        == "published"


def test_proposals_list_shows_each_status(tmp_path: Path) -> None:
    assert votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns")).returncode == 0
    codes = list(_codes(votz(tmp_path, "proposals", "list", "vie-etudiante-2024").stdout))[:3]
    _to_consultation(tmp_path, codes)
    assert votz(tmp_path, "proposals", "reject", codes[1]).returncode == 0
    assert votz(tmp_path, "proposals", "publish", codes[2]).returncode == 0
    listed = _codes(votz(tmp_path, "proposals", "list", "consultation-jeunes").stdout)
    assert [listed[c] for c in codes] == ["submitted", "rejected", "published"]
    only = votz(tmp_path, "proposals", "list", "consultation-jeunes", "--status", "submitted")
    assert _codes(only.stdout) == {codes[0]: "submitted"}


def test_the_ballot_is_frozen_once_its_vote_has_opened(tmp_path: Path) -> None:
    """No rejecting what voters may have chosen (during the vote or after it), and no new
    proposal on a ballot some have already filled in; hiding stays possible."""
    assert votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns")).returncode == 0
    voting = list(_codes(votz(tmp_path, "proposals", "list", "vie-etudiante-demo").stdout))
    closed = next(iter(_codes(votz(tmp_path, "proposals", "list", "vie-etudiante-2024").stdout)))
    done = votz(tmp_path, "proposals", "reject", voting[0], closed, "P999", "--reason",
                "duplicate")
    assert done.returncode == 1
    assert done.stdout.strip() == "0 proposal(s) rejected (their authors will be told)"
    assert done.stderr.splitlines() == [
        f"error: {voting[0]}: its vote has opened: it can no longer be rejected, only hidden "
        "(with a reason)",
        f"error: {closed}: its vote has opened: it can no longer be rejected, only hidden "
        "(with a reason)",
        "error: P999: no such proposal"]
    assert _codes(votz(tmp_path, "proposals", "list", "vie-etudiante-demo").stdout)[voting[0]] \
        == "published"
    import sqlite3

    with sqlite3.connect(tmp_path / "votz.db") as db:  # sent in late, still waiting
        db.execute("UPDATE proposals SET status = 'submitted' WHERE id = ?",
                   (int(voting[1][1:]),))
    late = votz(tmp_path, "proposals", "publish", voting[1])
    assert late.returncode == 1
    assert late.stderr.strip() == (f"error: {voting[1]}: its vote has opened: the ballot can "
                                   "no longer get new proposals")
    hidden = votz(tmp_path, "proposals", "hide", voting[0], "--reason", "offensive")
    assert hidden.returncode == 0, hidden.stderr


def test_privacy_addresses_as_people_write_them(tmp_path: Path) -> None:
    onboard = "bonjour\n1\n1\n3\n31000\n"
    assert votz(tmp_path, "chat", "--as", "+33612345678", stdin=onboard).returncode == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "votz.db") as db:  # as if they had signed up by SMS
        db.execute("UPDATE participants SET channel = 'sms'")
    exported = votz(tmp_path, "privacy", "export", "sms", "06 12 34 56 78")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["participant"]["address"] == "+33612345678"
    for command in ("export", "erase"):
        wrong = votz(tmp_path, "privacy", command, "smss", "06 12 34 56 78")
        assert wrong.returncode == 2
        assert wrong.stderr.strip() == ("error: unknown channel 'smss': one of console, sms, "
                                        "telegram")
        bad = votz(tmp_path, "privacy", command, "sms", "abc")
        assert bad.returncode == 2
        assert bad.stderr.strip() == "error: 'abc' is not an address on sms"
    erased = votz(tmp_path, "privacy", "erase", "sms", "06.12.34.56.78")
    assert erased.returncode == 0, erased.stderr
    gone = votz(tmp_path, "privacy", "export", "sms", "0612345678")
    assert gone.returncode == 1
    assert gone.stderr.strip() == "error: nobody with the address +33612345678 on sms"


@pytest.mark.parametrize(("url", "shown", "reason"), [
    ("postgresql://nobody:s3cret@127.0.0.1:1/nope", "postgresql://nobody:***@127.0.0.1:1/nope",
     "Connect call failed"),
    ("sqlite:////nonexistent/dir/x.db", "sqlite:////nonexistent/dir/x.db",
     "unable to open database file"),
    ("mysql://x:s3cret@host/db", "mysql://x:***@host/db", "mysql is not supported"),
    ("nonsense", "nonsense", "not a database URL"),
])
def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path, url: str, shown: str,
                                                      reason: str) -> None:
    env = {**os.environ, "VOTZ_DATABASE_URL": url}
    for debug in ([], ["--debug"]):
        result = subprocess.run(
            [sys.executable, "-m", "bot", *debug, "campaigns", "list"], capture_output=True,
            text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert result.returncode == 2
        assert "s3cret" not in result.stderr
        if debug:
            assert "Traceback" in result.stderr
            continue
        line, = result.stderr.splitlines()
        assert line.startswith(f"error: cannot open the database {shown}: ")
        assert reason in line
    via_option = votz(tmp_path, "--database-url", url, "db", "upgrade")
    assert via_option.returncode == 2
    assert via_option.stderr.startswith(f"error: cannot open the database {shown}: ")


def test_results_by_needs_csv(tmp_path: Path) -> None:
    assert votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns")).returncode == 0
    for fmt in ([], ["--format", "table"], ["--format", "json"]):
        refused = votz(tmp_path, "results", "vie-etudiante-2024", *fmt, "--by", "age")
        assert refused.returncode == 2
        assert refused.stderr.strip() == ("error: --by works with --format csv (table and JSON "
                                          "include every breakdown)")
        assert refused.stdout == ""
    csv_out = votz(tmp_path, "results", "vie-etudiante-2024", "--format", "csv", "--by", "age")
    assert csv_out.returncode == 0 and csv_out.stdout.splitlines()[0] == "age_bracket,ballots"


CHECKED = {  # five broken campaign files and a good one
    "a-good.yaml": "slug: good\nkind: poll\ntitle: {fr: Sondage}\nsummary: {fr: Un sondage.}\n"
                   "phases:\n  vote: {start: 2026-03-01, end: 2026-03-31}\n"
                   "ballot: {method: single}\n",
    "b-fields.yaml": "slug: Mauvais Nom\nkind: referendum\ntitle: {fr: Sondage}\n"
                     "summary: {fr: Un sondage.}\ncolour: red\nphases:\n  vote:\n"
                     "    start: 2026-02-30\n    end: 2026-03-31\nballot:\n  method: up_to\n"
                     "  max_choices: 0\n",
    "c-syntax.yaml": "slug: syntax\nkind: poll\ntitle: {fr: Sondage\nsummary: {fr: Un sondage.}\n",
    "d-budget.yaml": "slug: budget\nkind: participatory_budget\ntitle: {fr: Budget}\n"
                     "summary: {fr: Un budget.}\nphases:\n"
                     "  vote: {start: 2026-03-01, end: 2026-03-31}\nballot: {method: budget}\n",
    "e-seeds.yaml": "slug: seeds\nkind: participatory_budget\ntitle: {fr: Budget}\n"
                    "summary: {fr: Un budget.}\nenvelope: 1000\nphases:\n"
                    "  vote: {start: 2026-03-01, end: 2026-03-31}\nseed_proposals:\n"
                    "  - {ref: a, title: {fr: Projet A}}\n"
                    "  - {ref: a, title: {en: Project B}, cost: 100}\n",
    "f-again.yaml": "slug: good\nkind: poll\ntitle: {fr: Sondage}\nsummary: {fr: Un sondage.}\n"
                    "phases:\n  vote: {start: 2026-03-01, end: 2026-03-31}\n",
}


def test_campaigns_check_reports_every_error_in_every_file(tmp_path: Path) -> None:
    folder = tmp_path / "camp"
    folder.mkdir()
    for name, text in CHECKED.items():
        (folder / name).write_text(text, encoding="utf-8")
    checked = votz(tmp_path, "campaigns", "check", "camp")
    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [
        "good: ok (0 proposals, 2 default reminders)",
        "camp/b-fields.yaml:1:1: slug: lowercase letters, digits and dashes (2-63)",
        "camp/b-fields.yaml:2:1: kind: one of participatory_budget, consultation, poll, "
        "got 'referendum'",
        "camp/b-fields.yaml:5:1: colour: unknown field",
        "camp/b-fields.yaml:8:5: phases.vote.start: '2026-02-30' is not a date (YYYY-MM-DD)",
        "camp/b-fields.yaml:12:3: ballot.max_choices: expected a whole number ≥ 1, got 0",
        "camp/c-syntax.yaml:4:8: (yaml): expected ',' or '}', but got ':' "
        "(while parsing a flow mapping at 3:8)",
        "camp/d-budget.yaml:1:1: envelope: a budget ballot needs an envelope (euros)",
        "camp/e-seeds.yaml:9:5: seed_proposals[0].cost: campaigns with an envelope need costs",
        "camp/e-seeds.yaml:10:6: seed_proposals[1].ref: a unique reference is required",
        "camp/e-seeds.yaml:10:14: seed_proposals[1].title: the French text (fr) is required",
        "camp/f-again.yaml:1:1: slug: 'good' is also in camp/a-good.yaml",
    ]
    assert checked.stderr.strip() == "11 problem(s) in 5 file(s)"
    # Loading refuses them all, good one included.
    loaded = votz(tmp_path, "campaigns", "load", "camp")
    assert loaded.returncode == 2
    assert loaded.stderr.strip() == (
        "error: camp/b-fields.yaml: slug: lowercase letters, digits and dashes (2-63) "
        "(and 10 more problem(s): `votz campaigns check camp` lists them)")
    assert votz(tmp_path, "campaigns", "list").stdout == ""
    syntax = votz(tmp_path, "campaigns", "load", "camp/c-syntax.yaml")
    assert syntax.stderr.strip() == (
        "error: camp/c-syntax.yaml: (yaml): line 4, column 8: expected ',' or '}', but got ':' "
        "(while parsing a flow mapping at 3:8)")
    assert votz(tmp_path, "campaigns", "check", "camp/a-good.yaml").returncode == 0


def test_campaigns_check_places_reminder_lengths_and_duplicate_keys(tmp_path: Path) -> None:
    express = (ROOT / "examples" / "vote-express.yaml").read_text(encoding="utf-8")
    long = express.replace('ferme dans 3 minutes.', 'ferme dans 3 minutes. ' + 'Vite ! ' * 40)
    (tmp_path / "long.yaml").write_text(long, encoding="utf-8")
    twice = express.replace("ballot: {method: single}", "ballot: {method: single}\nkind: poll")
    (tmp_path / "twice.yaml").write_text(twice.replace("vote-express", "twice"), encoding="utf-8")
    line = next(n for n, text in enumerate(long.splitlines(), 1) if "ferme dans 3" in text)
    kind = [n for n, text in enumerate(twice.splitlines(), 1) if text == "kind: poll"][-1]
    checked = votz(tmp_path, "campaigns", "check", ".")
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"long.yaml:{line}:7: reminders.closing-soon.text.fr: 3 SMS "
                               "segments")
    assert lines[1] == f"twice.yaml:{kind}:1: kind: duplicate key: only the last one counts"


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """`votz proposals list SLUG | head -1`: the pipe closes before Votz has written it all."""
    assert votz(tmp_path, "campaigns", "load", str(ROOT / "campaigns")).returncode == 0
    env = {**os.environ, "VOTZ_DATABASE_URL": f"sqlite:///{tmp_path / 'votz.db'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "proposals", "list", "vie-etudiante-2024"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `head` once it has its lines
    assert process.wait(timeout=120) == 0
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert "BrokenPipe" not in stderr and "Traceback" not in stderr, stderr
