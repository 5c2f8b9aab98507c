"""A bounded request queue in front of the model, with micro-batching of concurrent requests.

Why: the model is CPU/GPU bound and not made for concurrent calls, while the web server takes many
requests at once. All model work runs in ONE worker thread (the event loop never blocks on it); requests
that arrive while it is busy wait in a bounded queue (full -> `QueueFull`, a 503), and requests of the same
mode that are waiting together are run as one `detect_many` batch, which is much cheaper per image than
one call each for fast mode (a single forward pass).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fakereasoning.serve.detector import MODES, Detector

if TYPE_CHECKING:
    from PIL import Image

    from fakereasoning.schema import Verdict

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds `max_queue` waiting requests already: the caller should answer 503."""


class ShuttingDown(Exception):
    """The batcher was closed before the request ran."""


class DetectorFailed(Exception):
    """The detector raised on this image (the message says why); the other images of its batch still run."""


@dataclass
class BatcherStats:
    """Counters shown by /healthz and used by the load benchmark to see the batching at work."""

    submitted: int = 0
    rejected: int = 0
    completed: int = 0
    failed: int = 0
    abandoned: int = 0  # dropped from the queue because nobody waited for the answer any more
    batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        images = sum(size * count for size, count in self.batch_sizes.items())
        return {
            "submitted": self.submitted,
            "rejected": self.rejected,
            "completed": self.completed,
            "failed": self.failed,
            "abandoned": self.abandoned,
            "batches": self.batches,
            "mean_batch_size": round(images / self.batches, 3) if self.batches else 0.0,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
        }


@dataclass
class _Item:
    image: Image.Image
    mode: str
    future: asyncio.Future[Verdict]
    enqueued: float


def _resolve(item: _Item, result: Verdict | None, error: BaseException | None) -> None:
    """Hand a result to the item's event loop; a request already cancelled (timeout, disconnect) is skipped."""

    def _set() -> None:
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(result)  # type: ignore[arg-type]

    try:
        item.future.get_loop().call_soon_threadsafe(_set)
    except RuntimeError:  # the loop is closed: nobody waits for this answer any more
        pass


class MicroBatcher:
    """Runs `detector.detect_many` in one worker thread on batches formed from a bounded FIFO queue.

    `max_batch[mode]` caps a batch (1 disables batching for that mode); `batch_wait_s` is how long the
    worker waits for more requests to join a batch that is not full yet (0: take only what is waiting).
    """

    def __init__(
        self,
        detector: Detector,
        *,
        max_queue: int = 64,
        max_batch_fast: int = 8,
        max_batch_full: int = 1,
        batch_wait_s: float = 0.005,
    ) -> None:
        if max_queue < 1 or max_batch_fast < 1 or max_batch_full < 1:
            raise ValueError("max_queue and batch sizes must be at least 1")
        if batch_wait_s < 0:
            raise ValueError("batch_wait_s must not be negative")
        self.detector = detector
        self.max_queue = max_queue
        self.max_batch = {"fast": max_batch_fast, "full": max_batch_full}
        self.batch_wait_s = batch_wait_s
        self.stats = BatcherStats()
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread: threading.Thread | None = None

    # --- the event-loop side ------------------------------------------------------------------------
    async def submit(self, image: Image.Image, mode: str) -> Verdict:
        """Queue one image and wait for its verdict. Raises `QueueFull` at once when the queue is full."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                self.stats.rejected += 1
                raise QueueFull(f"the request queue is full ({self.max_queue} waiting); retry later")
            item = _Item(image, mode, future, time.monotonic())
            self._queue.append(item)
            self.stats.submitted += 1
            self._ensure_worker()
            self._cond.notify()
        future.add_done_callback(lambda f: self._forget(item) if f.cancelled() else None)
        return await future

    def _forget(self, item: _Item) -> None:
        """Drop a request whose caller gave up (timeout, client gone) while it waited: never computed."""
        with self._cond:
            try:
                self._queue.remove(item)
            except ValueError:  # already taken by the worker
                return
            self.stats.abandoned += 1

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._busy

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker; requests still waiting get `ShuttingDown`."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in pending:
            _resolve(item, None, ShuttingDown("the server is shutting down"))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- the worker side ----------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="fakereasoning-detector", daemon=True)
            self._thread.start()

    def _take_batch(self) -> list[_Item] | None:
        """Wait for work and take the head request plus waiting ones of the same mode (FIFO among them)."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            head = self._queue.popleft()
            batch = [head]
            limit = self.max_batch[head.mode]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < limit:
                same = [it for it in self._queue if it.mode == head.mode][: limit - len(batch)]
                for it in same:
                    self._queue.remove(it)
                batch.extend(same)
                remaining = deadline - time.monotonic()
                if len(batch) >= limit or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            self._busy = True
            return [it for it in batch if not it.future.cancelled()]

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                if batch:
                    self._run_batch(batch)
            finally:
                self._busy = False

    def _run_batch(self, batch: list[_Item]) -> None:
        try:
            verdicts = self.detector.detect_many([it.image for it in batch], batch[0].mode)
            if len(verdicts) != len(batch):
                raise RuntimeError(f"detector returned {len(verdicts)} verdicts for {len(batch)} images")
        except Exception:
            if len(batch) > 1:
                # One bad image must not fail its neighbours: run them one by one.
                log.warning("a batch of %d failed; retrying its images one by one", len(batch))
                for item in batch:
                    self._run_batch([item])
                return
            log.exception("the detector failed on one image")
            self.stats.failed += 1
            _resolve(batch[0], None, DetectorFailed("the detector failed on this image"))
            return
        self.stats.batches += 1
        self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
        for item, verdict in zip(batch, verdicts, strict=True):
            self.stats.completed += 1
            _resolve(item, verdict, None)
