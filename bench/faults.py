"""Fault experiments on the SMS delivery path, with `votz run` as a black box.

    python bench/faults.py [--messages 500] [--database-url URL] [--experiment kill|lock|all]

Each experiment starts a fake Twilio API (its own process, `bot.testing.fake_twilio`, which
records every send with wall-clock arrival and answer times), loads the example campaigns
into a fresh database and starts `python -m bot run` pointed at it. Votz is only ever seen
from outside: signed webhooks in over HTTP, SMS out to the fake, signals to its process.
Only loopback is used; every wait is bounded; every process started is killed on the way out.

kill — "never loses an acknowledged message, never re-sends after a restart".
    N people each text `Bonjour` (a signed webhook each, its own MessageSid). While the
    replies are going out (each send takes `--latency` at the fake, so some are in flight),
    the `votz run` process gets SIGKILL once about a third of the replies reached the fake.
    Votz is restarted on the same database, every webhook that got no 200 is posted again
    (Twilio retries), and the bench waits until the fake has been quiet for a while. A 200
    is Votz's promise: every number whose webhook got one must get its reply (else *lost*),
    and only a send the kill interrupted may be repeated: *duplicated* (numbers with the
    same reply twice or more) must not exceed *in flight* (sends that had reached the fake
    before the kill and were answered after it, or never). It also times the restart: how
    long until every acknowledged number had its reply, and until the last reply.

lock — "delivery never stops silently" when the database goes away for a while.
    SQLite: the bench holds `BEGIN EXCLUSIVE` on Votz's database file for `--lock-seconds`
    while N webhooks arrive at once (client timeout 15 s, Twilio's; `--lock-idle` holds it
    before they arrive instead, while Votz is idle); then releases it, posts again those
    that got no 200 (as Twilio would, with retries) and waits for the replies.
    PostgreSQL: instead of a lock, every connection Votz holds is terminated
    (`pg_terminate_backend`) while it is idle; `--pause` seconds later (so that Votz's own
    periodic work may be the first to meet a dead connection) the webhooks arrive, and
    `/healthz` is asked 3 s after them. Either way the acknowledged numbers must all get
    exactly one reply: an outage may refuse or delay webhooks, never lose or repeat what it
    acknowledged, and a process that answers /healthz must still be delivering.

The bench exits 1 when a run lost an acknowledged message or duplicated more replies than
were in flight at the kill (none may be duplicated in the lock experiment).
`--database-url postgresql://…` runs on a fresh database created on that server
(`votz_faults_<hex>`) and dropped at the end; the default is a SQLite file in a temporary
folder, which is kept (with Votz's log) and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.testing.fake_twilio import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402
from bot.testing.server import free_port  # noqa: E402
from bot.testing.sms_webhook import signed_form  # noqa: E402

TWILIO_TIMEOUT = 15.0  # seconds Twilio waits for a webhook's answer
SENDER = "+33756000000"


# --- the rig: a fake Twilio and `votz run`, both subprocesses ---------------------------------

@contextlib.contextmanager
def fresh_database(url: str | None, folder: Path, *, prefix: str = "votz_faults_"
                   ) -> Iterator[str]:
    """A database nobody used: a new SQLite file in `folder` (url None or sqlite), or a new
    PostgreSQL database `<prefix><hex>` on the server of `url`, dropped on the way out.
    """
    if url is None or url.startswith("sqlite"):
        yield f"sqlite:///{folder / f'{prefix}{uuid.uuid4().hex[:8]}.db'}"
        return
    import asyncpg

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))

    async def ddl(sql: str) -> None:
        conn = await asyncpg.connect(urlunsplit(parts))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(ddl(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        asyncio.run(ddl(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass(frozen=True)
class Sent:
    """One SMS the fake Twilio accepted (times are time.time(), the fake's wall clock)."""

    to: str
    body: str
    arrived_at: float
    answered_at: float | None


class Rig:
    """A fake Twilio process and `votz run` on `database_url`, logging to `folder`.

    Use as a context manager: leaving it kills every process it started.
    """

    def __init__(self, folder: Path, database_url: str, *, latency: float = 0.0,
                 limit: float | None = None, run: bool = True) -> None:
        """`limit`: the fake Twilio refuses (429, error 20429) a message that would make more
        than that many segments arrive within one second, as a provider enforcing its limit.
        `run=False`: `votz run` is not started on entering (`start_votz()` when wanted)."""
        self.folder = folder
        self.database_url = database_url
        self.latency = latency
        self.limit = limit
        self.run = run
        twilio_port = free_port()
        self.port = free_port()
        while self.port == twilio_port:
            self.port = free_port()
        self.twilio_url = f"http://127.0.0.1:{twilio_port}"
        self.public = f"http://127.0.0.1:{self.port}"
        self.log = folder / "votz.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOTZ_")}
        env.update({
            "VOTZ_DATABASE_URL": database_url,
            "VOTZ_HTTP_PORT": str(self.port), "VOTZ_PUBLIC_URL": self.public,
            "VOTZ_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOTZ_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "VOTZ_TWILIO_FROM": SENDER, "VOTZ_TWILIO_API_URL": self.twilio_url,
            "VOTZ_TWILIO_SEGMENTS_PER_SECOND": "100000",
        })
        self.env = env
        self.fake: subprocess.Popen[bytes] | None = None
        self.votz: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Rig:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the fake Twilio, load the example campaigns, start `votz run` (if `run`)."""
        limit = ["--limit", str(self.limit)] if self.limit is not None else []
        self.fake = subprocess.Popen(
            [sys.executable, "-m", "bot.testing.fake_twilio", "--quiet",
             "--port", self.twilio_url.rsplit(":", 1)[1], "--latency", str(self.latency),
             *limit],
            env=self.env, cwd=self.folder, stdout=subprocess.DEVNULL)
        load = subprocess.run([sys.executable, "-m", "bot", "campaigns", "load",
                               str(ROOT / "campaigns")], env=self.env, cwd=self.folder,
                              capture_output=True, text=True, timeout=120, check=False)
        if load.returncode != 0:
            raise RuntimeError(f"votz campaigns load failed: {load.stderr[-2000:]}")
        wait_until(lambda: _answers(self.twilio_url + "/fake/summary"), "the fake Twilio API")
        if self.run:
            self.start_votz()

    def start_votz(self) -> float:
        """Start `votz run` (again); wait until /healthz answers; return when it started."""
        started = time.time()
        with self.log.open("ab") as log:
            log.write(f"\n=== votz run started at {started:.3f}\n".encode())
            log.flush()
            self.votz = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=self.env,
                                         cwd=self.folder, stdout=log, stderr=log)
        votz = self.votz

        def healthy() -> bool:
            if votz.poll() is not None:
                raise RuntimeError(f"votz run exited with {votz.returncode}; see {self.log}")
            return _answers(self.public + "/healthz", ok_only=True)

        wait_until(healthy, "votz run to answer /healthz", timeout=60)
        return started

    def kill_votz(self) -> float:
        """SIGKILL `votz run`; return the time of the kill."""
        assert self.votz is not None
        self.votz.send_signal(signal.SIGKILL)
        killed = time.time()
        self.votz.wait(timeout=20)
        return killed

    def messages(self) -> list[Sent]:
        raw = httpx.get(self.twilio_url + "/fake/messages", timeout=10).json()
        return [Sent(m["to"], m["body"], m["arrived_at"], m["answered_at"]) for m in raw]

    def healthz(self) -> str:
        """What GET /healthz answers right now ("200", "HTTP 500", "timeout", …)."""
        try:
            return _status(httpx.get(self.public + "/healthz", timeout=5).status_code)
        except httpx.TimeoutException:
            return "timeout"
        except httpx.TransportError as exc:
            return type(exc).__name__

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        for process in (self.votz, self.fake):
            if process is not None and process.poll() is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=20)


def _answers(url: str, *, ok_only: bool = False) -> bool:
    try:
        status = httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return False
    return status == 200 if ok_only else status < 500


def _status(code: int) -> str:
    return "200" if code == 200 else f"HTTP {code}"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll `condition()` every 50 ms until it is true; bounded."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --- webhooks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hook:
    """One signed inbound-SMS webhook, ready to post (again, with the same MessageSid)."""

    number: str
    sid: str
    body: bytes
    signature: str


def hooks(public: str, count: int, *, text: str = "Bonjour") -> list[Hook]:
    """`text` from `count` different mobile numbers, each with its own MessageSid."""
    run = uuid.uuid4().hex[:8]
    result = []
    for n in range(count):
        number = f"+3361{n:07d}"
        form, headers = signed_form(text, number, public_url=public, auth_token=AUTH_TOKEN,
                                    sid=f"SM{run}{n:024d}", to=SENDER)
        result.append(Hook(number, form["MessageSid"], urlencode(form).encode(),
                           headers["X-Twilio-Signature"]))
    return result


async def post(session: aiohttp.ClientSession, public: str, hook: Hook,
               timeout: float = TWILIO_TIMEOUT) -> str:
    """Post one webhook; "200", "HTTP 503", "timeout" or the client error's name."""
    headers = {"X-Twilio-Signature": hook.signature,
               "Content-Type": "application/x-www-form-urlencoded"}
    try:
        async with session.post(public + "/sms/inbound", data=hook.body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            await response.read()
            return _status(response.status)
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return type(exc).__name__


async def post_all(public: str, batch: list[Hook], *, concurrency: int,
                   timeout: float = TWILIO_TIMEOUT) -> dict[str, str]:
    """Post every hook, `concurrency` at a time; the outcome of each, by MessageSid."""
    outcomes: dict[str, str] = {}
    queue = list(reversed(batch))
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1))
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            while queue:
                hook = queue.pop()
                outcomes[hook.sid] = await post(session, public, hook, timeout)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(batch)))))
    return outcomes


def repost(public: str, batch: list[Hook], outcomes: dict[str, str], *, rounds: int = 3,
           concurrency: int = 16) -> tuple[int, Counter[str]]:
    """Post again each hook whose outcome is not 200, as Twilio retries, up to `rounds`
    times; update `outcomes`; return (how many were re-posted, the last outcomes of those).
    """
    again = [h for h in batch if outcomes[h.sid] != "200"]
    pending = again
    for attempt in range(rounds):
        if not pending:
            break
        if attempt:
            time.sleep(1.0)
        outcomes.update(asyncio.run(post_all(public, pending, concurrency=concurrency)))
        pending = [h for h in pending if outcomes[h.sid] != "200"]
    return len(again), Counter(outcomes[h.sid] for h in again)


def settle(rig: Rig, acknowledged: set[str], *, deadline: float, quiet: float) -> list[Sent]:
    """Wait until every acknowledged number has a reply and nothing new reached the fake
    for `quiet` seconds, or until `deadline` (time.monotonic()); return every message.
    """
    seen, changed = -1, time.monotonic()
    while True:
        messages = rig.messages()
        now = time.monotonic()
        if len(messages) != seen:
            seen, changed = len(messages), now
        answered = {m.to for m in messages}
        if (acknowledged <= answered and now - changed >= quiet) or now >= deadline:
            return messages
        time.sleep(0.2)


# --- what a run shows -------------------------------------------------------------------------

@dataclass
class Outcome:
    """The figures of one experiment run (times in seconds)."""

    experiment: str
    database: str
    webhooks: int
    first_round: Counter[str]  # outcome of the first post of each webhook
    reposted: int
    repost_outcomes: Counter[str]
    acknowledged: int
    lost: int  # acknowledged numbers without any reply
    duplicated: int  # numbers with the same reply more than once
    extra_copies: int  # replies beyond the first of each such number
    in_flight: int  # sends that reached the fake before the kill and were not answered then
    # Votz's own view at the kill: rows claimed (status sending) whose outcome it had not
    # recorded yet — the sends under way (including those answered a moment before the kill)
    # and the rows claimed to be sent next, which a restart gives back and sends once.
    unrecorded: int
    # Duplicated numbers that were not among those claims: re-sends a restart should not make.
    unexplained: int
    replies: int
    unacknowledged_answered: int  # numbers never acknowledged that got a reply anyway
    all_answered_after: float | None  # restart (or release) → every acknowledged number answered
    last_reply_after: float | None  # restart (or release) → the last reply
    waited: float  # restart (or release) → end of the observation
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.lost > 0 or self.unexplained > 0


def measure(experiment: str, database: str, batch: list[Hook], outcomes: dict[str, str],
            first_round: Counter[str], reposted: int, repost_outcomes: Counter[str],
            messages: list[Sent], *, since: float, waited: float,
            killed_at: float | None = None, claimed: set[str] | None = None) -> Outcome:
    """Count lost, duplicated and in-flight sends; `since` is the restart (or release)."""
    acknowledged = {h.number for h in batch if outcomes[h.sid] == "200"}
    everyone = {h.number for h in batch}
    by_number: dict[str, list[Sent]] = {}
    for message in messages:
        by_number.setdefault(message.to, []).append(message)
    lost = len(acknowledged - by_number.keys())
    copies = {n: max(Counter(m.body for m in sent).values()) for n, sent in by_number.items()}
    duplicated = sum(1 for n in copies.values() if n > 1)
    unexplained = sum(1 for number, n in copies.items()
                      if n > 1 and number not in (claimed or set()))
    extra = sum(n - 1 for n in copies.values() if n > 1)
    in_flight = 0
    if killed_at is not None:
        in_flight = sum(1 for m in messages if m.arrived_at < killed_at
                        and (m.answered_at is None or m.answered_at > killed_at))
    firsts = [min(m.arrived_at for m in by_number[n]) for n in acknowledged if n in by_number]
    all_answered: float | None = None
    if not lost:
        all_answered = max(0.0, max(firsts, default=since) - since)
    later = [m.arrived_at for m in messages if m.arrived_at >= since]
    return Outcome(
        experiment=experiment, database=database, webhooks=len(batch),
        first_round=first_round, reposted=reposted, repost_outcomes=repost_outcomes,
        acknowledged=len(acknowledged), lost=lost, duplicated=duplicated, extra_copies=extra,
        in_flight=in_flight, unrecorded=len(claimed or ()), unexplained=unexplained,
        replies=len(messages),
        unacknowledged_answered=len((everyone - acknowledged) & by_number.keys()),
        all_answered_after=all_answered,
        last_reply_after=max(later) - since if later else None, waited=waited)


# --- the experiments --------------------------------------------------------------------------

async def _fire_and_kill(rig: Rig, batch: list[Hook], *, kill_after: int,
                         concurrency: int, kill_timeout: float) -> tuple[dict[str, str], float,
                                                                         str]:
    """Post the webhooks; SIGKILL votz once `kill_after` replies reached the fake."""
    killed: list[float] = []
    why: list[str] = []

    async def killer() -> None:
        deadline = time.monotonic() + kill_timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                async with session.get(rig.twilio_url + "/fake/summary") as response:
                    if (await response.json())["messages"] >= kill_after:
                        why.append(f"after {kill_after} replies")
                        break
                await asyncio.sleep(0.01)
            else:
                why.append(f"{kill_timeout:.0f} s without {kill_after} replies")
        killed.append(await asyncio.to_thread(rig.kill_votz))

    outcomes, _ = await asyncio.gather(post_all(rig.public, batch, concurrency=concurrency),
                                       killer())
    return outcomes, killed[0], why[0]


def kill_experiment(database_url: str, folder: Path, *, messages: int, latency: float = 0.05,
                    kill_after: int | None = None, concurrency: int = 16,
                    max_wait: float = 120.0, quiet: float = 5.0, label: str = "") -> Outcome:
    """SIGKILL `votz run` while replies are in flight (once `kill_after` replies reached the
    fake, by default a third of them), restart it, and count (see above).
    """
    with Rig(folder, database_url, latency=latency) as rig:
        batch = hooks(rig.public, messages)
        outcomes, killed_at, why = asyncio.run(_fire_and_kill(
            rig, batch, kill_after=kill_after or max(1, messages // 3),
            concurrency=concurrency, kill_timeout=max_wait))
        first_round = Counter(outcomes.values())
        at_kill = len(rig.messages())
        claimed = claimed_at_kill(rig.database_url)
        restarted = rig.start_votz()
        reposted, repost_outcomes = repost(rig.public, batch, outcomes)
        acknowledged = {h.number for h in batch if outcomes[h.sid] == "200"}
        sent = settle(rig, acknowledged, deadline=time.monotonic() + max_wait
                      - (time.time() - restarted), quiet=quiet)
        result = measure("kill", label or _kind(database_url), batch, outcomes, first_round,
                         reposted, repost_outcomes, sent, since=restarted,
                         waited=time.time() - restarted, killed_at=killed_at,
                         claimed=claimed)
        result.notes.append(f"SIGKILL {why}: {at_kill} replies had reached the fake; "
                            f"restart {restarted - killed_at:.1f} s after the kill")
        if result.lost:
            result.notes.append(f"votz log: {rig.log}")
        return result


def lock_experiment(database_url: str, folder: Path, *, messages: int,
                    lock_seconds: float = 15.0, during: bool = True, pause: float = 3.0,
                    concurrency: int | None = None, max_wait: float = 120.0,
                    quiet: float = 5.0, label: str = "") -> Outcome:
    """The database goes away for a while, then re-post what got no 200 and count.

    SQLite: hold BEGIN EXCLUSIVE for `lock_seconds` while the webhooks arrive (`during`),
    or before they arrive (not `during`: Votz is idle while locked out).
    PostgreSQL: terminate Votz's connections while idle, wait `pause` seconds (Votz's own
    periodic work may meet a dead connection first), then the webhooks arrive.
    """
    with Rig(folder, database_url) as rig:
        batch = hooks(rig.public, messages)
        notes: list[str] = []
        at_once = concurrency or messages
        if _kind(database_url) == "sqlite":
            if during:
                outcomes, since = _under_sqlite_lock(rig, batch, lock_seconds, at_once)
            else:
                _, since = _under_sqlite_lock(rig, [], lock_seconds, at_once)
                outcomes = asyncio.run(post_all(rig.public, batch, concurrency=at_once))
            notes.append(f"BEGIN EXCLUSIVE held {lock_seconds:.0f} s "
                         f"{'while' if during else 'before'} the webhooks arrived; "
                         f"/healthz after the release: {rig.healthz()}")
        else:
            terminated = _terminate_connections(database_url)
            time.sleep(pause)
            since = time.time()
            outcomes = asyncio.run(post_all(rig.public, batch, concurrency=at_once))
            time.sleep(3)
            notes.append(f"{terminated} idle connection(s) terminated {pause:.1f} s before "
                         f"the webhooks; /healthz 3 s after them: {rig.healthz()}")
        first_round = Counter(outcomes.values())
        reposted, repost_outcomes = repost(rig.public, batch, outcomes)
        acknowledged = {h.number for h in batch if outcomes[h.sid] == "200"}
        sent = settle(rig, acknowledged, deadline=time.monotonic() + max_wait
                      - (time.time() - since), quiet=quiet)
        result = measure("lock", label or _kind(database_url), batch, outcomes, first_round,
                         reposted, repost_outcomes, sent, since=since,
                         waited=time.time() - since)
        result.notes.extend(notes)
        if rig.votz is not None and rig.votz.poll() is not None:
            result.notes.append(f"votz run exited with {rig.votz.returncode}")
        if result.lost:
            result.notes.append(f"votz log: {rig.log}")
        return result


def _under_sqlite_lock(rig: Rig, batch: list[Hook], seconds: float, concurrency: int
                       ) -> tuple[dict[str, str], float]:
    """Post the webhooks while this process holds BEGIN EXCLUSIVE on Votz's SQLite file for
    `seconds`; return the outcomes and when the lock was released (time.time()).
    """
    path = rig.database_url.split("///", 1)[1]
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    released: list[float] = []
    try:
        holder.execute("BEGIN EXCLUSIVE")

        async def hold() -> None:
            await asyncio.sleep(seconds)
            holder.execute("ROLLBACK")
            released.append(time.time())

        async def both() -> dict[str, str]:
            outcomes, _ = await asyncio.gather(
                post_all(rig.public, batch, concurrency=concurrency), hold())
            return outcomes

        outcomes = asyncio.run(both())
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    return outcomes, released[0]


def _terminate_connections(database_url: str) -> int:
    """Wait until Votz's connections are idle, then terminate them all; return how many."""
    import asyncpg

    name = urlsplit(database_url).path.lstrip("/")

    async def terminate() -> int:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://",
                                                          "postgresql://"))
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                busy = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                    "AND pid <> pg_backend_pid() AND state <> 'idle'", name)
                if not busy:
                    break
                await asyncio.sleep(0.02)
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
                "AND pid <> pg_backend_pid()", name)
            return len(rows)
        finally:
            await conn.close()

    return asyncio.run(terminate())


def claimed_at_kill(database_url: str) -> set[str]:
    """The addresses of the rows Votz had claimed and not yet recorded (status sending)."""
    query = "SELECT address FROM outbox WHERE status = 'sending'"
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(path, timeout=30) as conn:
            return {row[0] for row in conn.execute(query)}
    import asyncpg

    async def read() -> set[str]:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://",
                                                          "postgresql://"))
        try:
            return {row[0] for row in await conn.fetch(query)}
        finally:
            await conn.close()

    return asyncio.run(read())


def _kind(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


# --- output -----------------------------------------------------------------------------------

def _seconds(value: float | None, waited: float) -> str:
    return f"{value:.1f} s" if value is not None else f"never (watched {waited:.0f} s)"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counter.most_common()) or "—"


def report(results: list[Outcome]) -> str:
    """A table of the runs, then each run's details."""
    head = ("experiment", "database", "webhooks", "acked", "re-posted", "replies", "lost",
            "duplicated", "in flight", "unrecorded", "all answered", "last reply", "verdict")
    rows = [head]
    for r in results:
        rows.append((r.experiment, r.database, str(r.webhooks), str(r.acknowledged),
                     str(r.reposted), str(r.replies), str(r.lost),
                     f"{r.duplicated} (+{r.extra_copies})" if r.duplicated else "0",
                     str(r.in_flight), str(r.unrecorded),
                     _seconds(r.all_answered_after, r.waited),
                     _seconds(r.last_reply_after, r.waited),
                     "FAIL" if r.failed else "ok"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append("(all answered / last reply: seconds after the restart (kill) or the release "
                 "(lock); duplicated: numbers, (+extra copies); in flight: at the fake when "
                 "the kill came; unrecorded: claimed by Votz and not yet recorded then)")
    for r in results:
        lines.append(f"{r.experiment} on {r.database}: first post {_counts(r.first_round)}; "
                     f"re-posted {r.reposted}: {_counts(r.repost_outcomes)}; "
                     f"answered though never acknowledged: {r.unacknowledged_answered}")
        lines.extend(f"  {note}" for note in r.notes)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--database-url", help="postgresql://… to run on a fresh database "
                        "created on that server (default: a SQLite file)")
    parser.add_argument("--experiment", choices=["kill", "lock", "all"], default="all")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the fake Twilio takes per send (kill)")
    parser.add_argument("--kill-after", type=int, metavar="REPLIES",
                        help="SIGKILL once this many replies reached the fake (kill; "
                        "default a third of --messages)")
    parser.add_argument("--lock-seconds", type=float, default=15.0,
                        help="how long the SQLite lock is held (lock)")
    parser.add_argument("--lock-idle", action="store_true",
                        help="hold the SQLite lock before the webhooks, not while they arrive")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds between terminating PostgreSQL connections and the "
                        "webhooks (lock on PostgreSQL)")
    parser.add_argument("--max-wait", type=float, default=120.0,
                        help="longest wait for replies after the restart or release")
    parser.add_argument("--quiet", type=float, default=5.0,
                        help="seconds without a new reply that end the wait")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="votz-faults-"))
    results = []
    for experiment in (["kill", "lock"] if args.experiment == "all" else [args.experiment]):
        where = folder / experiment
        where.mkdir()
        with fresh_database(args.database_url, where) as url:
            print(f"running {experiment} on {_kind(url)} ({args.messages} messages)…",
                  flush=True)
            if experiment == "kill":
                results.append(kill_experiment(url, where, messages=args.messages,
                                               latency=args.latency, kill_after=args.kill_after,
                                               max_wait=args.max_wait, quiet=args.quiet))
            else:
                results.append(lock_experiment(url, where, messages=args.messages,
                                               lock_seconds=args.lock_seconds,
                                               during=not args.lock_idle, pause=args.pause,
                                               max_wait=args.max_wait, quiet=args.quiet))
    print()
    print(report(results))
    print(f"\nfiles and logs: {folder}")
    sys.exit(1 if any(r.failed for r in results) else 0)


if __name__ == "__main__":
    main()
