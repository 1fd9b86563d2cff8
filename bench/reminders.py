"""One reminder tick for a large audience: the time to write it into the outbox, and memory.

    python bench/reminders.py [--people 200000] [--db sqlite|postgres|both]

A campaign whose "vote-closing" reminder (audience: eligible people who have not voted) is
due at the benchmark's fixed clock, Tuesday 17 March 2026 11:00 in Paris (inside the default
SMS sending window, mon-sat 09:00-20:00; the other events are past or later). The database
gets `--people` eligible participants (consenting, active, reminders on; 70 % SMS, 30 %
Telegram; mostly French, some English and Occitan; every département and age bracket of the
campaign), one in 33 of them with a ballot, written by one INSERT … SELECT from a generated
series (SQLite: a recursive CTE, PostgreSQL: generate_series; on PostgreSQL an ANALYZE of
these tables follows, as autovacuum would).

Then a separate process (so populating costs no memory there) opens the app on that
database and times, with the app's own code:
- one `Scheduler(app).tick()`: the audience queued into the outbox by one INSERT … SELECT;
- a second tick right after (a replay: nothing is due any more, it must queue nothing);
- the dispatcher's first claim of 20 SMS rows with the whole audience queued, and a second
  (on PostgreSQL two more after `ANALYZE outbox`: the first ones plan with the statistics
  of the outbox from before the tick, as happens until autovacuum analyzes it);
and prints its peak RSS before and after the tick, and the slowest statements of the tick.
SQLite: a fresh file; PostgreSQL: a fresh schema on `--postgres-url`, dropped at the end.
Figures are printed, never asserted; the target on SQLite is 5 s and 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The project, not this folder, first: bench/telegram.py would shadow the `telegram` package.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from sqlalchemy import bindparam, event, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.engine.default import DefaultDialect  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.store.tables import UTCDateTime  # noqa: E402

# Tuesday 17 March 2026, 11:00 in Paris: the vote ends Thursday 19 March 11:00, so the
# default "vote-closing" reminder (vote.end - 2d) is due exactly now.
NOW = datetime(2026, 3, 17, 10, 0, tzinfo=UTC)
SLUG = "bench-reminders"
DEPARTEMENTS = ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82")
AGES = ("15-17", "18-25", "26-34", "35-49", "50-64", "65+")
BALLOT_EVERY = 33  # one participant in 33 voted: the reminder is not for them
TARGET_SECONDS, TARGET_MB = 5.0, 200
POSTGRES_URL = os.environ.get("VOTZ_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")

CAMPAIGN = f"""
slug: {SLUG}
kind: participatory_budget
title: {{fr: Budget de la région, en: Regional budget}}
summary: {{fr: Des projets pour la région.}}
audience: {{departements: {json.dumps(list(DEPARTEMENTS))}, age_brackets: {json.dumps(list(AGES))}}}
phases:
  submission: {{start: "2026-02-01T00:00", end: "2026-03-01T00:00"}}
  vote: {{start: "2026-03-05T08:00", end: "2026-03-19T11:00"}}
  results: {{start: "2026-03-21T09:00"}}
ballot: {{method: up_to, max_choices: 2}}
seed_proposals:
  - {{ref: bancs, title: {{fr: Bancs publics, en: Public benches}}}}
  - {{ref: jeux, title: {{fr: Aire de jeux, en: Playground}}}}
  - {{ref: lampes, title: {{fr: Éclairage solaire, en: Solar lights}}}}
"""


class FixedClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings_for(url: str) -> Settings:
    return replace(Settings.from_env({}, dotenv=None), database_url=url,
                   instance="bench-reminders")


def mb(kib: float) -> float:
    return kib / 1024


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def current_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- the parent: a database with the campaign and its audience -------------------------------


def _case(expression: str, values: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {n} THEN '{v}'" for n, v in enumerate(values))
    return f"CASE ({expression}) % {len(values)} {whens} END"


def population_sql(dialect: str) -> str:
    """One INSERT … SELECT of `:count` participants from a generated series `i`."""
    if dialect == "sqlite":
        series = ("(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                  "WHERE i + 1 < :count) SELECT i FROM n) AS g")
        number = "printf('%08d', i)"
    else:
        series = "generate_series(0, :count - 1) AS g(i)"
        number = "lpad(i::text, 8, '0')"
    sms = "i % 10 < 7"  # 70 % SMS, 30 % Telegram
    # 16 in 19 French, 2 English, 1 Occitan (19 is prime to the other moduli).
    locale = "CASE WHEN i % 19 < 16 THEN 'fr' WHEN i % 19 < 18 THEN 'en' ELSE 'oc' END"
    dep = _case("i / 3", DEPARTEMENTS)
    return f"""
        INSERT INTO participants (channel, address, locale, status, consent_at, privacy_url,
                                  age_bracket, postal_code, departement, created_at, phone,
                                  reminders)
        SELECT CASE WHEN {sms} THEN 'sms' ELSE 'telegram' END,
               CASE WHEN {sms} THEN '+336' || {number}
                    ELSE CAST(100000000 + i AS TEXT) END,
               {locale}, 'active', :consent_at, 'https://example.org/privacy',
               {_case("i / 7", AGES)}, {dep} || '000', {dep}, :consent_at,
               CASE WHEN {sms} THEN '+336' || {number} END,
               TRUE
        FROM {series}
    """


async def prepare(url: str, schema: str | None, people: int, folder: Path) -> dict[str, Any]:
    """The campaign loaded (its events planned) and `people` participants; returns what
    the tick should queue."""
    (folder / "campaigns").mkdir(parents=True, exist_ok=True)
    (folder / "campaigns" / f"{SLUG}.yaml").write_text(CAMPAIGN, encoding="utf-8")
    async with App.open(settings_for(url), clock=FixedClock(), schema=schema) as app:
        await app.load_campaigns(folder / "campaigns")
        dialect = app.db.dialect
        consent = NOW - timedelta(days=40)

        def populate(conn: Any) -> dict[str, Any]:
            conn.execute(text(population_sql(dialect)).bindparams(
                bindparam("consent_at", type_=UTCDateTime())),
                {"count": people, "consent_at": consent})
            campaign_id, proposal_id = conn.execute(text(
                "SELECT c.id, min(p.id) FROM campaigns c JOIN proposals p "
                "ON p.campaign_id = c.id WHERE c.slug = :slug GROUP BY c.id"),
                {"slug": SLUG}).one()
            conn.execute(text(
                "INSERT INTO ballots (campaign_id, participant_id, choices, age_bracket, "
                "departement, created_at, updated_at, voter) "
                "SELECT :campaign, id, :choice, age_bracket, departement, :at, :at, "
                "'participant:' || CAST(id AS TEXT) FROM participants "
                f"WHERE id % {BALLOT_EVERY} = 0").bindparams(
                    bindparam("at", type_=UTCDateTime())),
                {"campaign": campaign_id, "choice": str(proposal_id),
                 "at": NOW - timedelta(days=3)})
            def count(sql: str) -> int:
                return int(conn.execute(text(sql)).scalar_one())

            return {
                "people": count("SELECT count(*) FROM participants"),
                "sms": count("SELECT count(*) FROM participants WHERE channel = 'sms'"),
                "ballots": count("SELECT count(*) FROM ballots"),
                "expected": count("SELECT count(*) FROM participants p WHERE NOT EXISTS "
                                  "(SELECT 1 FROM ballots b WHERE b.participant_id = p.id)"),
                "due": [r[0] for r in conn.execute(text(
                    "SELECT event FROM campaign_events WHERE status = 'pending' "
                    "AND due_at <= :now").bindparams(bindparam("now", type_=UTCDateTime())),
                    {"now": NOW})],
            }

        started = time.perf_counter()
        found: dict[str, Any] = await app.db.run(populate)
        found["populate_s"] = time.perf_counter() - started
        if dialect == "postgresql":
            await app.db.run(lambda conn: conn.execute(text(
                "ANALYZE participants, ballots, follows, ballot_drafts, campaign_events, outbox")))
    return found


async def postgres_ddl(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_child(url: str, schema: str | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--url", url]
    if schema:
        command += ["--schema", schema]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the measuring process failed (exit {done.returncode})")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    return result


def report(name: str, where: str, found: dict[str, Any], m: dict[str, Any]) -> None:
    people, expected = found["people"], found["expected"]
    tick_s, queued = m["tick_s"], m["queued"]
    ok = "as expected" if queued == expected == m["outbox_rows"] else "NOT AS EXPECTED"
    print(f"\n{name} ({where})")
    print(f"  {people:,} eligible participants ({found['sms']:,} on SMS, the rest on "
          f"Telegram), {found['ballots']:,} with a ballot; due now: "
          f"{', '.join(found['due']) or 'nothing'}")
    rows = [
        ("populate (parent process, not measured)", f"{found['populate_s']:.1f} s", ""),
        ("child: imports and App.open", f"{m['open_s']:.2f} s",
         f"peak RSS {mb(m['rss_open_kib']):.0f} MB"),
        ("channel modules and holiday calendar loaded", f"{m['channels_s']:.2f} s",
         f"peak RSS {mb(m['rss_before_kib']):.0f} MB"),
        (f"tick: {', '.join(m['fired']) or 'nothing fired'}", f"{tick_s:.2f} s",
         f"{queued:,} queued (expected {expected:,}, outbox holds {m['outbox_rows']:,}): {ok}"),
        ("  of which SQL statements and commits (slowest below)", f"{m['statements_s']:.2f} s",
         f"{m['statement_count']} statements and commits"),
        *[(f"    {s['sql']}", f"{s['seconds']:.2f} s", f"x{s['count']}")
          for s in m["slowest"]],
        ("  the rest (Python: texts, catalog refresh, thread hops)",
         f"{tick_s - m['statements_s']:.2f} s", ""),
        ("replay tick (nothing due)", f"{m['replay_s'] * 1000:.1f} ms",
         f"{m['replay_queued']:,} queued"),
        ("first claim on sms, limit 20", f"{m['claim_s'] * 1000:.1f} ms",
         f"{m['claimed']} claimed"),
        ("second claim on sms, limit 20", f"{m['claim2_s'] * 1000:.1f} ms",
         f"{m['claimed2']} claimed"),
        *[(f"{which} claim on sms after ANALYZE outbox", f"{m[f'claim{n}_s'] * 1000:.1f} ms",
           f"{m[f'claimed{n}']} claimed")
          for n, which in (("3", "first"), ("4", "second")) if f"claim{n}_s" in m],
        ("peak RSS before the tick / after it", f"{mb(m['rss_before_kib']):.0f} MB",
         f"{mb(m['rss_after_kib']):.0f} MB (the tick's share "
         f"+{mb(m['rss_after_kib'] - m['rss_before_kib']):.0f} MB; current RSS after "
         f"{mb(m['rss_current_kib']):.0f} MB)"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, figure, note in rows:
        print(f"  {label:<{width}}  {figure:>9}  {note}")
    line = (f"{name}: {queued:,} queued in {tick_s:.1f} s, peak RSS "
            f"{mb(m['rss_after_kib']):.0f} MB (before the tick {mb(m['rss_before_kib']):.0f} MB)")
    if name == "sqlite":
        line += (f"; target at most {TARGET_SECONDS:g} s and {TARGET_MB} MB: time "
                 f"{'within' if tick_s <= TARGET_SECONDS else 'OVER'}, memory "
                 f"{'within' if mb(m['rss_after_kib']) <= TARGET_MB else 'OVER'}")
    print(line)


def bench(name: str, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="votz-bench-reminders-"))
    schema: str | None = None
    try:
        if name == "sqlite":
            url = f"sqlite:///{folder / 'bench.db'}"
            where = f"file {folder / 'bench.db'}"
        else:
            url = args.postgres_url
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            asyncio.run(postgres_ddl(url, f"CREATE SCHEMA {schema}"))
            where = f"schema {schema} on {url.rsplit('@', 1)[-1]}"
        found = asyncio.run(prepare(url, schema, args.people, folder))
        measured = run_child(url, schema)
        report(name, where, found, measured)
    finally:
        if schema is not None:
            asyncio.run(postgres_ddl(args.postgres_url, f"DROP SCHEMA {schema} CASCADE"))
        shutil.rmtree(folder, ignore_errors=True)


# --- the child: one tick, measured -----------------------------------------------------------


def _caller() -> str:
    """The innermost function of bot/ running this statement, and the one that called it."""
    names: list[str] = []
    frame = sys._getframe(2)
    bot = str(ROOT / "bot")
    while frame is not None and len(names) < 2:
        file = frame.f_code.co_filename
        if file.startswith(bot) and not file.endswith(("store/db.py", "store/compiled.py")):
            names.append(frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    return " < ".join(names) or "transaction"


class StatementTimer:
    """Time of every SQL statement while `on`, by its first words."""

    def __init__(self) -> None:
        self.on = False
        self.seconds: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        # Commits too (no event follows one): SQLAlchemy's own commit, timed around.
        commit: Any = DefaultDialect.do_commit

        def timed_commit(dialect: Any, dbapi_connection: Any) -> None:
            started = time.perf_counter()
            try:
                commit(dialect, dbapi_connection)
            finally:
                if self.on:
                    key = f"{_caller()}: COMMIT"
                    self.seconds[key] += time.perf_counter() - started
                    self.count[key] += 1

        DefaultDialect.do_commit = timed_commit  # type: ignore[method-assign]

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info.pop("bench_started", None)
        if self.on and started is not None:
            key = f"{_caller()}: {' '.join(statement.split())[:48]}"
            self.seconds[key] += time.perf_counter() - started
            self.count[key] += 1


async def child(args: argparse.Namespace) -> None:
    from bot.delivery.outbox import claim
    from bot.scheduling.events import sendable_channels
    from bot.scheduling.scheduler import Scheduler

    timer = StatementTimer()
    started = time.perf_counter()
    async with App.open(settings_for(args.url), clock=FixedClock(),
                        schema=args.schema) as app:
        result: dict[str, Any] = {"open_s": time.perf_counter() - started,
                                  "rss_open_kib": peak_kib()}
        # What `votz run` has loaded before its first tick, which would load it otherwise:
        # every sendable channel's module (twilio, python-telegram-bot), and the holiday
        # calendar (the `holidays` package, read by the dispatcher's sending-window check).
        started = time.perf_counter()
        sendable_channels()
        scheduler = Scheduler(app)
        scheduler.windows.of("sms").allows(NOW)
        result["channels_s"] = time.perf_counter() - started
        result["rss_before_kib"] = peak_kib()

        timer.on = True
        started = time.perf_counter()
        tick = await scheduler.tick()
        result["tick_s"] = time.perf_counter() - started
        timer.on = False
        result["rss_after_kib"] = peak_kib()
        result["rss_current_kib"] = current_kib()
        result["fired"] = [f"{f.event} ({f.status})" for f in tick.fired]
        result["queued"] = sum(f.queued for f in tick.fired) + tick.nudged
        result["statements_s"] = sum(timer.seconds.values())
        result["statement_count"] = sum(timer.count.values())
        result["slowest"] = [
            {"sql": sql, "seconds": s, "count": timer.count[sql]}
            for sql, s in sorted(timer.seconds.items(), key=lambda kv: -kv[1])[:5]]

        started = time.perf_counter()
        replay = await scheduler.tick()
        result["replay_s"] = time.perf_counter() - started
        result["replay_queued"] = sum(f.queued for f in replay.fired) + replay.nudged

        for n in ("", "2"):
            started = time.perf_counter()
            items = await app.db.run(lambda conn: claim(conn, "sms", "bench", NOW, limit=20))
            result[f"claim{n}_s"] = time.perf_counter() - started
            result[f"claimed{n}"] = len(items)
        if app.db.dialect == "postgresql":
            # The claims above planned with the outbox's statistics from before the tick;
            # autovacuum would analyze it within a minute or so (if it is on).
            await app.db.run(lambda conn: conn.execute(text("ANALYZE outbox")))
            for n in ("3", "4"):
                started = time.perf_counter()
                items = await app.db.run(
                    lambda conn: claim(conn, "sms", "bench", NOW, limit=20))
                result[f"claim{n}_s"] = time.perf_counter() - started
                result[f"claimed{n}"] = len(items)
        result["outbox_rows"] = await app.db.run(
            lambda conn: int(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help="a server where a fresh schema is created, then dropped "
                             "(default: $VOTZ_TEST_POSTGRES_URL or %(default)s)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args))
        return
    print(f"one reminder tick, {args.people:,} eligible participants; clock "
          f"{NOW.isoformat()} (11:00 in Paris, a Tuesday: inside the default SMS sending "
          f"window mon-sat 09:00-20:00)")
    for name in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        bench(name, args)


if __name__ == "__main__":
    main()
