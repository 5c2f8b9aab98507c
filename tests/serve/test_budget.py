"""The decoded-pixel budget: requests beyond it wait their turn, and memory is handed back when idle."""

from __future__ import annotations

import asyncio

import pytest

from fakereasoning.serve import ServeLimits, create_app
from fakereasoning.serve.budget import PixelBudget, trim_memory

from .test_batching import _post_many


def test_budget_is_fifo_never_exceeded_and_reports_idle() -> None:
    idle: list[int] = []
    order: list[str] = []

    async def scenario() -> None:
        budget = PixelBudget(100, on_idle=lambda: idle.append(budget.used))
        peak = 0

        async def job(name: str, pixels: int, hold_s: float) -> None:
            nonlocal peak
            async with budget.hold(pixels):
                order.append(name)
                peak = max(peak, budget.used)
                await asyncio.sleep(hold_s)

        first = asyncio.create_task(job("big-1", 80, 0.05))
        await asyncio.sleep(0)
        big = asyncio.create_task(job("big-2", 90, 0.01))  # waits for big-1
        await asyncio.sleep(0)
        small = asyncio.create_task(job("small", 10, 0.01))  # fits now, but must not overtake big-2
        huge = asyncio.create_task(job("huge", 10_000, 0.01))  # more than the budget: held as the budget
        await asyncio.gather(first, big, small, huge)
        assert peak <= 100 and budget.used == 0

    asyncio.run(scenario())
    assert order == ["big-1", "big-2", "small", "huge"]
    assert idle and idle[-1] == 0


def test_a_cancelled_waiter_lets_the_next_one_in() -> None:
    async def scenario() -> None:
        budget = PixelBudget(10)
        async with budget.hold(10):
            blocked = asyncio.create_task(budget.hold(10).__aenter__())
            await asyncio.sleep(0)
            assert budget.waiting == 1
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            assert budget.waiting == 0
        assert budget.used == 0

    asyncio.run(scenario())


def test_server_holds_at_most_the_pixel_budget(stub_detector, png) -> None:
    """Four 64x64 uploads with room for one decoded image at a time: the model never sees two together,
    although fast mode would batch them otherwise."""
    import base64

    detector = stub_detector(delay=0.05)
    limits = ServeLimits(max_pixels=64 * 64, max_pixels_in_flight=64 * 64, max_batch_fast=8, batch_wait_ms=20)
    app = create_app(detector, limits)
    bodies = [{"image": base64.b64encode(png((200 - i, 40, 40), size=(64, 64))).decode(), "mode": "fast"}
              for i in range(4)]
    try:
        responses = asyncio.run(_post_many(app, bodies))
    finally:
        app.state.batcher.close()
    assert [r.status_code for r in responses] == [200] * 4
    assert [n for _, n in detector.calls] == [1, 1, 1, 1]


def test_trim_memory_is_safe_to_call() -> None:
    assert trim_memory() in (True, False)
