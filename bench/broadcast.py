"""One broadcast to a large audience: the time to queue it, then the pace it leaves at.

    python bench/broadcast.py [--people 500000] [--db sqlite|postgres|both]
                              [--mode free|paid|both] [--sample 30] [--processes 1]
                              [--join-after S]

A fresh database gets `--people` Telegram participants (consenting, active, announcements
on; mostly French, some English and Occitan), written by one INSERT … SELECT from a generated
series. Then, timed: `bot.staff.broadcasts.create`, which queues one bulk message per person
in one INSERT … SELECT (the target on SQLite: 5 s).

Then the queue drains through a fake Bot API (`bot.testing.fake_telegram`, its own process)
that enforces Telegram's flood limits on a sliding one-second window and answers 429 with
retry_after beyond them, to `--processes` `votz run` (its own processes, seen from outside;
with `--join-after S`, all but the first start S seconds into the drain), in each mode in
turn on the same queue:
- free: `VOTZ_TELEGRAM_MESSAGES_PER_SECOND` at its default (30), the fake's limit 30/s;
- paid: `VOTZ_TELEGRAM_PAID_BROADCAST=1` (1,000/s unless set), the fake's paid limit 1,000/s.
Draining 500,000 messages at 30/s takes more than four hours: each mode drains a sample
window (`--warmup` seconds after the first message, then `--sample` seconds) and says so.

Printed per mode: the achieved pace over the sample window against the limit (target: at
least 99 % of it), the most messages the fake saw in any one second of the run (it must
never pass the limit), the 429s the fake answered (target 0), and the peak RSS of each
`votz run` (VmHWM; target 150 MB). With `--profile`, the first `votz run` of each mode runs
under cProfile and the functions that took the most time are printed. Figures are printed,
never asserted; exit status 0 whatever they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

# The project, not this folder, first: bench/telegram.py would shadow the `telegram` package.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from sqlalchemy import bindparam, text  # noqa: E402

from bench.faults import fresh_database, wait_until  # noqa: E402
from bench.reminders import _case  # noqa: E402
from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.delivery.ratelimit import GUARD, PACE, shared_cost  # noqa: E402
from bot.staff import broadcasts  # noqa: E402
from bot.store.tables import UTCDateTime  # noqa: E402
from bot.testing.fake_telegram import TOKEN  # noqa: E402
from bot.testing.server import free_port  # noqa: E402

POSTGRES_URL = os.environ.get("VOTZ_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
DEPARTEMENTS = ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82")
AGES = ("15-17", "18-25", "26-34", "35-49", "50-64", "65+")
ENQUEUE_TARGET_S, SHARE_TARGET, RSS_TARGET_MB = 5.0, 0.99, 150
FREE, PAID = 30, 1000  # Telegram's limits, messages a second: free, and paid broadcasts
TEXTS = {"fr": "Le vote du budget participatif est ouvert jusqu'au 19 mars : /voter",
         "en": "The participatory budget vote is open until 19 March: /voter",
         "oc": "Lo vòte del budget participatiu es dobèrt fins al 19 de març : /voter"}


def population_sql(dialect: str) -> str:
    """One INSERT … SELECT of `:count` Telegram participants from a generated series `i`."""
    if dialect == "sqlite":
        series = ("(WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                  "WHERE i + 1 < :count) SELECT i FROM n) AS g")
    else:
        series = "generate_series(0, :count - 1) AS g(i)"
    # 16 in 19 French, 2 English, 1 Occitan.
    locale = "CASE WHEN i % 19 < 16 THEN 'fr' WHEN i % 19 < 18 THEN 'en' ELSE 'oc' END"
    dep = _case("i / 3", DEPARTEMENTS)
    return f"""
        INSERT INTO participants (channel, address, locale, status, consent_at, privacy_url,
                                  age_bracket, postal_code, departement, created_at, reminders)
        SELECT 'telegram', CAST(100000000 + i AS TEXT), {locale}, 'active', :consent_at,
               'https://example.org/privacy', {_case("i / 7", AGES)}, {dep} || '000', {dep},
               :consent_at, TRUE
        FROM {series}
    """


def settings_for(url: str) -> Settings:
    return replace(Settings.from_env({}, dotenv=None), database_url=url,
                   instance="bench-broadcast")


async def prepare(url: str, people: int) -> dict[str, float]:
    """The participants (not timed as a target), then the broadcast created, timed."""
    async with App.open(settings_for(url)) as app:
        consent = datetime.now(UTC) - timedelta(days=40)
        started = time.perf_counter()
        await app.db.run(lambda conn: conn.execute(text(population_sql(app.db.dialect))
                                                   .bindparams(bindparam("consent_at",
                                                                         type_=UTCDateTime())),
                                                   {"count": people, "consent_at": consent}))
        if app.db.dialect == "postgresql":
            await app.db.run(lambda conn: conn.execute(text("ANALYZE participants")))
        populated = time.perf_counter() - started
        now = datetime.now(UTC)
        started = time.perf_counter()
        broadcast = await broadcasts.compose(app.db, TEXTS,
                                             broadcasts.Audience(channel="telegram"), now=now)
        made = await broadcasts.create(app.db, broadcast, by="bench", now=now, i18n=app.i18n,
                                       windows=app.dispatcher.windows)
        enqueue = time.perf_counter() - started
        started = time.perf_counter()  # what reading its progress costs (staff follow it)
        await broadcasts.progress(app.db, made.id, now=now)
        counted = time.perf_counter() - started
        if app.db.dialect == "postgresql":  # as autovacuum would, before the first claims
            await app.db.run(lambda conn: conn.execute(text("ANALYZE outbox")))
    return {"populate_s": populated, "enqueue_s": enqueue, "queued": made.queued,
            "total": made.total, "progress_s": counted}


# --- the drain: a fake Bot API and `votz run`, each its own process ---------------------------


@dataclass
class Mode:
    name: str
    limit: int  # what the fake enforces on these messages, a second
    env: dict[str, str]
    fake_args: list[str]


MODES = {
    "free": Mode("free", FREE, {}, ["--limit", str(FREE)]),
    "paid": Mode("paid", PAID, {"VOTZ_TELEGRAM_PAID_BROADCAST": "1"},
                 ["--limit", str(FREE), "--paid-limit", str(PAID)]),
}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process (its peak resident set), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def running(command: list[str], *, env: dict[str, str], cwd: Path, log: Path
            ) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=out)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def drain(url: str, mode: Mode, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    fake_url = f"http://127.0.0.1:{free_port()}"
    nice = ["nice", "-n", str(args.nice)] if args.nice else []
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
    base["PYTHONPATH"] = str(ROOT)
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(running(
            [*nice, sys.executable, "-m", "bot.testing.fake_telegram",
             "--port", fake_url.rsplit(":", 1)[1], *mode.fake_args],
            env=base, cwd=folder, log=folder / f"fake-{mode.name}.log"))
        wait_until(lambda: _answers(fake_url + "/fake/summary"), "the fake Bot API")
        before = httpx.get(fake_url + "/fake/summary", timeout=10).json()
        votz: list[subprocess.Popen[bytes]] = []
        profiles = []

        def start(n: int) -> None:
            port = free_port()
            env = {**base, "VOTZ_DATABASE_URL": url, "VOTZ_HTTP_PORT": str(port),
                   "VOTZ_INSTANCE": f"bench-{mode.name}-{n}", "VOTZ_TELEGRAM_TOKEN": TOKEN,
                   "VOTZ_TELEGRAM_API_URL": fake_url, **mode.env}
            command = [*nice, sys.executable, "-m", "bot", "run"]
            if args.profile and n == 0:
                profiles.append(folder / f"votz-{mode.name}.prof")
                command = [sys.executable, "-m", "cProfile", "-o", str(profiles[-1]),
                           "-m", "bot", "run"]
            process = stack.enter_context(running(
                command, env=env, cwd=folder, log=folder / f"votz-{mode.name}-{n}.log"))
            votz.append(process)
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"),
                       "votz run to answer /healthz", timeout=60)

        joining = range(1, args.processes) if args.join_after is not None else range(0)
        for n in range(args.processes):
            if n not in joining:
                start(n)
        started = time.time()
        wait_until(lambda: _summary(fake_url)["sent"] > before["sent"],
                   "the first message at the fake", timeout=60)
        first = time.time()
        sample_from = first + args.warmup
        if joining:  # the others join a drain under way; the sample starts after them
            time.sleep(args.join_after or 0.0)
            for n in joining:
                start(n)
            sample_from = time.time() + args.warmup
        sample_to = sample_from + args.sample
        time.sleep(max(0.0, sample_from - time.time()))
        cpu = [cpu_seconds(p.pid) for p in (*votz, fake)]
        time.sleep(max(0.0, sample_to - time.time()))
        cpu = [cpu_seconds(p.pid) - before for p, before in zip((*votz, fake), cpu,
                                                                strict=True)]
        load = load_average()
        time.sleep(0.5)  # the last ones arrive
        rss = [peak_rss_mb(p.pid) for p in votz]
        report = httpx.get(fake_url + "/fake/arrivals", params={"since": started},
                           timeout=60).json()
    arrivals = sorted(t for t, _ in report["arrivals"])
    tried = sorted([*arrivals, *report["refused"]])  # the 429s too: where it was tight
    sampled = [t for t in arrivals if sample_from <= t < sample_to]
    return {"mode": mode, "sent": len(arrivals), "sampled": len(sampled),
            "rate": len(sampled) / args.sample, "busiest": busiest_second(arrivals),
            "flooded": report["flooded"], "rss": rss, "warmup": sample_from - first,
            "tightest": tightest(tried, mode.limit),
            "first_after": first - started, "profiles": profiles, "load": load,
            "cpu": [seconds / args.sample for seconds in cpu],
            "paid": sum(1 for _, paid in report["arrivals"] if paid)}


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals within any one second (a sliding window, as the fake counts)."""
    most, start = 0, 0
    for end, at in enumerate(arrivals):
        while arrivals[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def tightest(arrivals: list[float], limit: int) -> float | None:
    """The shortest time `limit + 1` consecutive requests arrived in (under 1 s: a 429)."""
    spans = [arrivals[n + limit] - arrivals[n] for n in range(len(arrivals) - limit)]
    return min(spans, default=None)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _summary(url: str) -> dict[str, Any]:
    summary: dict[str, Any] = httpx.get(url + "/fake/summary", timeout=10).json()
    return summary


# --- output -----------------------------------------------------------------------------------


def report(name: str, where: str, prepared: dict[str, Any], drains: list[dict[str, Any]],
           args: argparse.Namespace) -> None:
    print(f"\n{name} ({where})")
    enqueue = prepared["enqueue_s"]
    print(f"  {args.people:,} participants written in {prepared['populate_s']:.1f} s "
          f"(set-based, not a target)")
    verdict = "within" if enqueue <= ENQUEUE_TARGET_S or name != "sqlite" else "OVER"
    print(f"  broadcast created: {prepared['queued']:,} messages queued in {enqueue:.2f} s "
          f"(target on SQLite {ENQUEUE_TARGET_S:g} s: {verdict}); reading its progress "
          f"once takes {prepared['progress_s']:.2f} s")
    for d in drains:
        mode: Mode = d["mode"]
        share = d["rate"] / mode.limit
        niced = f" (it and the fake at nice {args.nice})" if args.nice else ""
        if args.join_after is not None and args.processes > 1:
            niced += f", all but one joining {args.join_after:g} s into the drain"
        print(f"  {mode.name} ({mode.limit:,}/s at the fake), {args.processes} votz run{niced}: "
              f"sample {d['warmup']:.0f}–{d['warmup'] + args.sample:.0f} s after the first "
              f"message ({args.sample:g} s of a queue that would take "
              f"{prepared['queued'] / mode.limit / 3600:.1f} h to drain)")
        # Several processes space their slots wider (ratelimit.shared_cost): the 99 % target
        # is one process's; theirs is to stay under the limit together.
        cost = shared_cost(PACE, GUARD) if args.processes > 1 else 1.0  # the least it can be
        if args.processes > 1:
            print(f"    achieved {d['rate']:,.1f}/s = {share:.1%} of the limit (several "
                  f"processes: about {PACE / cost:.1%} at most, slots leaving room for their "
                  "jitter; the target is never above the limit, no 429)")
        else:
            print(f"    achieved {d['rate']:,.1f}/s = {share:.1%} of the limit (target ≥ "
                  f"{SHARE_TARGET:.0%}: {'met' if share >= SHARE_TARGET else 'NOT met'})")
        print(f"    busiest second of the run: {d['busiest']:,} messages "
              f"({'never above' if d['busiest'] <= mode.limit else 'ABOVE'} the limit); "
              f"429s: {d['flooded']} (target 0)")
        if d["tightest"] is not None:
            print(f"    tightest {mode.limit + 1:,} consecutive requests at the fake: "
                  f"{d['tightest'] * 1000:,.0f} ms (1,000 ms or less is a 429; "
                  f"the pace leaves {1000 * cost / PACE - 1000:.0f} ms"
                  f"{' or more' if cost > 1 else ''})")
        shares = ", ".join(f"{share:.0%}" for share in d["cpu"][:-1])
        print(f"    CPU during the sample: votz run {shares} of a core, the fake Bot API "
              f"{d['cpu'][-1]:.0%}; load average {d['load']:.1f} on {os.cpu_count()} cores")
        rss = ", ".join(f"{mb:.0f} MB" for mb in d["rss"])
        print(f"    peak RSS of votz run: {rss} (target {RSS_TARGET_MB} MB: "
              f"{'within' if max(d['rss']) <= RSS_TARGET_MB else 'OVER'}); "
              f"{d['sent']:,} sent in all ({d['paid']:,} as paid broadcasts)")
        for profile in d["profiles"]:
            if profile.exists():
                print(f"    profile of the first votz run ({profile}), by own time:")
                stats: Any = pstats.Stats(str(profile))
                width = 100
                rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:args.profile]
                total = sum(v[2] for v in stats.stats.values())
                for (file, line, func), (_, calls, own, cumulative, _) in rows:
                    where_ = f"{Path(file).name}:{line} {func}"[:width]
                    print(f"      {own:7.2f} s own {cumulative:7.2f} s cum {calls:>9,} "
                          f"calls  {where_}")
                print(f"      ({total:.1f} s of CPU in Python functions in all)")


def bench(name: str, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="votz-bench-broadcast-"))
    try:
        with fresh_database(None if name == "sqlite" else args.postgres_url, folder,
                            prefix="votz_broadcast_") as url:
            where = url.rsplit("@", 1)[-1] if name != "sqlite" else url.split("///")[1]
            prepared = asyncio.run(prepare(url, args.people))
            modes = ["free", "paid"] if args.mode == "both" else [args.mode]
            drains = [drain(url, MODES[m], folder, args) for m in modes]
            report(name, where, prepared, drains, args)
    finally:
        if args.keep:
            print(f"  files and logs: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=500_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--mode", choices=("free", "paid", "both"), default="both")
    parser.add_argument("--sample", type=float, default=30.0,
                        help="seconds of the drain measured (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after the first message before the sample starts")
    parser.add_argument("--processes", type=int, default=1,
                        help="`votz run` processes draining together (PostgreSQL for more "
                             "than one machine; on SQLite they share the file)")
    parser.add_argument("--join-after", type=float, default=None, metavar="S",
                        help="start the processes after the first S seconds into the "
                             "drain, not with it (the moment a second one joins; the "
                             "sample starts --warmup seconds after they joined)")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="run the fake Bot API and votz run at this niceness (-10: on a "
                             "shared machine, other work's CPU no longer adds to the jitter "
                             "between a send and its arrival, as on a server of their own; "
                             "below 0 needs root)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile the first votz run; print its N costliest functions")
    parser.add_argument("--keep", action="store_true", help="keep the logs and database")
    parser.add_argument("--postgres-url", default=POSTGRES_URL,
                        help="a server where a fresh database is created, then dropped "
                             "(default: $VOTZ_TEST_POSTGRES_URL or %(default)s)")
    args = parser.parse_args()
    print(f"one broadcast to {args.people:,} Telegram participants; then the queue drains "
          f"through a fake Bot API enforcing Telegram's limits ({FREE}/s, {PAID:,}/s paid) "
          f"on a sliding one-second window")
    for name in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        bench(name, args)


if __name__ == "__main__":
    main()
