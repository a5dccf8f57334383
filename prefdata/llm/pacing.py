"""Requests- and tokens-per-minute pacing of the engine's attempts (`--rpm`, `--tpm`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """Where the pacers read the time and wait: tests pass a manual clock to check the schedule exactly."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


# Hand-written rather than `aiolimiter` (bench/llm_throughput.py --pacing, bench/RESULTS.md): its bucket lets a full
# bucket through at once (120 % of the --rpm limit over the run) and cannot settle a reservation after the reply.
class Pacer:
    """Smooth rate limiting (GCRA): each unit of weight occupies ``60 / per_minute`` seconds of the schedule.

    Requests are spaced evenly rather than bursting at the start of each minute, which keeps providers that enforce
    their limits on short windows happy. The schedule is shared by all tasks of one event loop. A request reserves
    its expected weight; `settle` corrects the schedule by what it really used.
    """

    def __init__(self, per_minute: float, clock: Clock | None = None) -> None:
        self.interval = 60.0 / per_minute
        self.clock = clock or Clock()
        self._next = 0.0

    async def acquire(self, weight: float = 1.0) -> None:
        now = self.clock.now()
        slot = max(now, self._next)
        self._next = slot + weight * self.interval
        if slot > now:
            await self.clock.sleep(slot - now)

    def settle(self, reserved: float, used: float) -> None:
        """Give back schedule time reserved and not used, or charge what was used beyond the reservation."""
        if used < reserved:
            self._next = max(self.clock.now(), self._next - (reserved - used) * self.interval)
        else:
            self._next += (used - reserved) * self.interval
