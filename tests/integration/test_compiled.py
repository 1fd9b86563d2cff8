"""The hot path's Runner agrees with SQLAlchemy's own execution (types in, types out).

`bot/store/compiled.py` compiles statements once and runs them on the SQLite driver; it asks
SQLAlchemy (public API) for each parameter's and column's converters. If a new SQLAlchemy
changes what those converters do, these comparisons fail rather than the data drifting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, insert, select, update

from bot.store.compiled import Runner
from bot.store.tables import metadata, outbox

WHEN = datetime(2026, 3, 10, 10, 0, 0, 123456, tzinfo=UTC)


def test_runner_reads_and_writes_as_sqlalchemy_does(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    metadata.create_all(engine)
    row = {"participant_id": None, "channel": "console", "address": "a", "text": "t",
           "choices": "[]", "status": "queued", "attempts": 0, "next_attempt_at": WHEN,
           "idempotency_key": None, "created_at": WHEN, "updated_at": WHEN}
    queue = insert(outbox).values({k: bindparam(k) for k in row})
    touch = (update(outbox).where(outbox.c.id == bindparam("item_id"))
             .values(updated_at=bindparam("now"))
             .returning(outbox.c.id, outbox.c.updated_at, outbox.c.created_at))
    read = select(outbox.c.id, outbox.c.next_attempt_at, outbox.c.text).where(
        outbox.c.next_attempt_at <= bindparam("now"))
    with engine.begin() as conn:
        runner = Runner(conn, {"queue": queue, "touch": touch, "read": read})
        assert runner.direct
        assert runner.execute(conn, "queue", row) == 1
        conn.execute(queue, row)  # the same row through SQLAlchemy
        ours = runner.all(conn, "read", {"now": WHEN})
        theirs = conn.execute(read, {"now": WHEN}).all()
        assert [tuple(r) for r in ours] == [tuple(r) for r in theirs]
        assert ours[0].next_attempt_at == WHEN  # an aware UTC datetime, microseconds kept
        later = WHEN.replace(hour=12)
        returned = runner.first(conn, "touch", {"item_id": 1, "now": later})
        assert tuple(returned) == (1, later, WHEN)
        assert conn.execute(select(outbox.c.updated_at).where(outbox.c.id == 1)).scalar() == later
    engine.dispose()
