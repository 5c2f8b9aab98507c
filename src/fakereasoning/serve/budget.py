"""How many decoded pixels the server holds at once, and handing memory back after a burst.

Why: the request queue bounds requests, not bytes. A 6000x6000 PNG is about 0.1 MB on the wire and
108 MB decoded, so 24 of them in flight took the server to 6 GB. Each request holds its image's pixel
count from before decoding until its verdict is out; requests beyond the budget wait their turn (first
come, first served, so a big image is not starved by small ones). When the last one is done, the freed
heap is returned to the system (glibc keeps it otherwise, and the server stayed at 5.2 GB).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(eq=False)
class _Waiter:
    pixels: int
    future: asyncio.Future[None]


class PixelBudget:
    """A FIFO counting budget of decoded pixels for one event loop (every method runs on that loop)."""

    def __init__(self, total: int, on_idle: Callable[[], None] | None = None) -> None:
        if total < 1:
            raise ValueError("the pixel budget must be at least 1")
        self.total = total
        self.used = 0
        self.on_idle = on_idle
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold `pixels` (at most the whole budget, so one image under the pixel cap always fits)."""
        need = max(1, min(pixels, self.total))
        if not self._waiters and self.used + need <= self.total:
            self.used += need
        else:
            waiter = _Waiter(need, asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                await waiter.future
            except asyncio.CancelledError:
                if waiter.future.done() and not waiter.future.cancelled():
                    self._release(need)  # granted just as the request was abandoned
                else:
                    self._waiters.remove(waiter)
                    self._grant()  # a smaller request behind it may fit now
                raise
        try:
            yield
        finally:
            self._release(need)

    def _release(self, pixels: int) -> None:
        self.used -= pixels
        self._grant()
        if self.used == 0 and not self._waiters and self.on_idle is not None:
            self.on_idle()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0].pixels <= self.total:
            waiter = self._waiters.popleft()
            if waiter.future.done():  # cancelled while queued
                continue
            self.used += waiter.pixels
            waiter.future.set_result(None)


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_MALLOC_TRIM = _load_malloc_trim()


def trim_memory() -> bool:
    """Return freed heap pages to the system (glibc `malloc_trim`); False where there is no such call."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
