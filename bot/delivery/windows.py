"""Sending windows: when a bulk message (announcement, reminder, broadcast, outcome) may leave.

A window is written `mon-sat 09:00-20:00` (days optional: every day; hours optional: all
day; empty or `always`: no window). Public holidays of `holidays_country` (default France,
from the `holidays` library) are closed days. Times are Europe/Paris. A reply to what a
person wrote is never held: only rows marked `bulk` wait for a window.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.config import Settings
from bot.domain.region import PARIS
from bot.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@functools.cache
def _holidays(country: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int] = frozenset(range(7))  # Monday = 0
    start: time = time(0)
    end: time | None = None  # exclusive; None: until midnight
    holidays_country: str = ""  # "FR": public holidays are closed days
    text: str = ""

    def _open_day(self, day: date) -> bool:
        if day.weekday() not in self.days:
            return False
        return not (self.holidays_country and day in _holidays(self.holidays_country, day.year))

    def allows(self, at: datetime) -> bool:
        local = at.astimezone(PARIS)
        if not self._open_day(local.date()):
            return False
        clock = local.time()
        return self.start <= clock and (self.end is None or clock < self.end)

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when the window is open then, else when it next opens (aware UTC)."""
        if self.allows(at):
            return at
        local = at.astimezone(PARIS)
        day = local.date()
        for _ in range(400):
            opening = datetime.combine(day, self.start, tzinfo=PARIS)
            if self._open_day(day) and opening >= local:
                return opening.astimezone(at.tzinfo)
            day += timedelta(days=1)
        raise ConfigError(f"sending window {self.text!r} never opens")


ALWAYS = Window(text="always")


def parse_window(text: str, *, holidays_country: str = "FR", where: str = "window") -> Window:
    """`mon-sat 09:00-20:00`, `09:00-20:00`, `mon-fri`, `always` (or empty)."""
    words = text.strip().lower().split()
    if not words or words == ["always"]:
        return ALWAYS
    days = frozenset(range(7))
    start, end = time(0), None
    for word in words:
        hours = _HOURS.match(word)
        if hours:
            h1, m1, h2, m2 = map(int, hours.groups())
            try:
                start = time(h1, m1)
                end = None if (h2, m2) in ((24, 0), (0, 0)) else time(h2, m2)
            except ValueError:
                raise ConfigError(f"{where}: {word!r} is not a time span such as "
                                  "09:00-20:00") from None
            if end is not None and end <= start:
                raise ConfigError(f"{where}: {word!r} ends before it starts")
        else:
            days = _days(word, where)
    return Window(days, start, end, holidays_country.upper(), text.strip())


def _days(word: str, where: str) -> frozenset[int]:
    found: set[int] = set()
    for part in word.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ConfigError(f"{where}: {word!r}: days are written mon-sat or mon,wed,fri")
        a, b = DAYS.index(first), DAYS.index(last or first)
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class Windows:
    """Each channel's window (a channel not named has none)."""

    by_channel: Mapping[str, Window]

    def of(self, channel: str) -> Window:
        return self.by_channel.get(channel, ALWAYS)

    def warm(self, now: datetime) -> None:
        """Load the holiday calendars now (0.3 s, 19 MB the first time), not inside a
        transaction that holds the database."""
        for window in self.by_channel.values():
            window.allows(now)

    def next_open(self, channel: str, at: datetime, narrower: Window | None = None
                  ) -> datetime:
        """When a bulk message queued `at` may leave on `channel`; a campaign's own window
        (`narrower`) can only delay it further."""
        window = self.of(channel)
        moment = window.next_open(at)
        if narrower is None:
            return moment
        for _ in range(50):  # both open at once
            later = narrower.next_open(moment)
            moment = window.next_open(later)
            if moment == later:
                return moment
        return moment


def windows_from_settings(settings: Settings) -> Windows:
    """`VOTZ_<CHANNEL>_SENDING_WINDOW` for every channel that has one."""
    found = {}
    for name in settings.sending_window_names():
        text = getattr(settings, f"{name}_sending_window")
        found[name] = parse_window(text, holidays_country=settings.sending_holidays,
                                   where=f"VOTZ_{name.upper()}_SENDING_WINDOW")
    return Windows(found)
