"""A token bucket per channel: providers bill and throttle per message segment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate` units per second on average, bursts up to `burst` units."""

    def __init__(self, rate: float, *, burst: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(rate, 1.0)
        self.tokens = self.capacity
        self.monotonic = monotonic
        self.updated = monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self, units: float) -> float:
        """Seconds to wait before `units` may go (0 when they may go now)."""
        self._refill()
        needed = min(units, self.capacity) - self.tokens
        return 0.0 if needed <= 0 else needed / self.rate

    async def take(self, units: float) -> None:
        async with self._lock:
            delay = self.wait_time(units)
            if delay > 0:
                await asyncio.sleep(delay)
                self._refill()
            self.tokens -= min(units, self.capacity)
