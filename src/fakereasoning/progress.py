"""Progress of long jobs (train, evaluate, detect, validate), on a terminal or in a log.

Why: a tqdm bar is right on a terminal, but piped to a file or a CI log it is either absent or one
carriage-return line; `train` printed nothing for 194 s. Off a terminal, a plain line goes to stderr
every `every_s` seconds with the rate and an ETA, and a last line when a job that printed any ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

DEFAULT_EVERY_S = 30.0


def _clock_text(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """`update(n)`, `set_postfix(...)`, `close()`, like tqdm; a bar on a terminal, log lines elsewhere."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        initial: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        every_s: float = DEFAULT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = self.start = initial
        self.stream = stream if stream is not None else sys.stderr
        self.every_s, self.clock = every_s, clock
        self.t0 = self.last = clock()
        self.postfix: dict[str, Any] = {}
        self.printed = False
        self.bar: Any = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and self.clock() - self.last >= self.every_s:
            self._line()

    def line(self) -> str:
        """What a log line says: count, percent, rate, elapsed, ETA, and the postfix values."""
        elapsed = self.clock() - self.t0
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = f", ETA {_clock_text(left)}" if left is not None and self.done < self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}{pct}, {rate:.3g} {self.unit}/s, "
                f"elapsed {_clock_text(elapsed)}{eta}{extra}")

    def _line(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.last = self.clock()
        self.printed = True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.printed:  # a job that said it was running also says it ended
            self._line()
