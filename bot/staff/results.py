"""Results: a campaign's tally, and the table, CSV and JSON staff publish."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from sqlalchemy import Connection

from bot.domain.results import SUPPRESS_BELOW, Results, tally
from bot.store.db import Database
from bot.store.repo import campaign_proposals, counted_ballots, get_campaign

FORMATS = ("table", "csv", "json")
BREAKDOWNS = ("age", "departement")


async def campaign_results(db: Database, slug: str) -> Results:
    """The tally of every proposal of the campaign, winners and small-cell-suppressed
    breakdowns; hidden proposals keep their votes, marked hidden (and never win)."""

    def query(conn: Connection) -> Results:
        campaign = get_campaign(conn, slug)
        return tally(campaign, campaign_proposals(conn, campaign.id),
                     counted_ballots(conn, campaign.id))

    return await db.run(query)


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> object:
    """`value` as a CSV cell a spreadsheet shows as written: text starting like a formula
    (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`) gets a leading `'`, which the spreadsheet reads
    as "this is text". Numbers stay numbers (a negative count is not text from anyone)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """Rows as CSV, every cell through `spreadsheet_cell`: what every export writes with."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([spreadsheet_cell(cell) for cell in row])
    return out.getvalue()


def format_results(results: Results, fmt: str, by: str | None = None) -> str:
    """`fmt` is one of FORMATS; with "csv", `by` (one of BREAKDOWNS) gives that breakdown."""
    lines = results.lines
    if fmt == "json":
        return json.dumps({
            "campaign": results.campaign.slug,
            "ballots": results.ballots,
            "envelope": results.campaign.envelope,
            "envelope_used": results.envelope_used,
            "proposals": [{"code": line.proposal.code, "title": line.proposal.text("fr"),
                           "cost": line.proposal.cost, "votes": line.votes,
                           "winner": line.winner, "hidden": line.proposal.hidden}
                          for line in lines],
            "by_age_bracket": results.by_age,
            "by_departement": results.by_departement,
            "suppressed_below": SUPPRESS_BELOW,
        }, ensure_ascii=False, indent=2)
    if fmt == "csv" and by is not None:
        # One table per file, as open data wants it; "<5" where a cell is hidden.
        column, counts = (("age_bracket", results.by_age) if by == "age"
                          else ("departement", results.by_departement))
        return csv_text([[column, "ballots"], *(
            [key, f"<{SUPPRESS_BELOW}" if count is None else count]
            for key, count in counts.items())])
    if fmt == "csv":
        return csv_text([["code", "title", "cost", "votes", "winner", "hidden"], *(
            [line.proposal.code, line.proposal.text("fr"), line.proposal.cost or "",
             line.votes, int(line.winner), int(line.proposal.hidden)] for line in lines)])
    out_lines = [f"{results.campaign.text('title', 'fr')} — {results.ballots} ballot(s)"]
    if results.campaign.envelope is not None:
        out_lines.append(f"envelope {results.campaign.envelope} €, "
                         f"winners use {results.envelope_used} €")
    out_lines.append(f"{'code':6} {'votes':>6} {'cost':>9}  win  title")
    for line in lines:
        cost = str(line.proposal.cost or "")
        mark = " *  " if line.winner else "    "
        hidden = " [hidden]" if line.proposal.hidden else ""
        out_lines.append(f"{line.proposal.code:6} {line.votes:>6} {cost:>9} {mark} "
                         f"{line.proposal.text('fr')}{hidden}")

    def cells(name: str, data: dict[str, int | None]) -> str:
        shown = ", ".join(f"{k}: {f'<{SUPPRESS_BELOW}' if v is None else v}"
                          for k, v in data.items())
        return f"{name}: {shown or '-'}"

    out_lines.append(cells("by age bracket", dict(results.by_age)))
    out_lines.append(cells("by département", dict(results.by_departement)))
    return "\n".join(out_lines) + "\n"
