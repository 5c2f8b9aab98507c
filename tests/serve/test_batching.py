"""Server mechanics under concurrency: micro-batching, the bounded queue (503), timeouts, a responsive loop."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from fakereasoning.serve import MicroBatcher, ServeLimits, create_app
from fakereasoning.serve.batching import ShuttingDown

RED = (200, 40, 40)


async def _post_many(app, bodies: list[dict]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        return await asyncio.gather(*(client.post("/v1/detect", json=b) for b in bodies))


def _bodies(png, n: int, mode: str) -> list[dict]:
    return [{"image": base64.b64encode(png((200 - i, 40, 40))).decode(), "mode": mode} for i in range(n)]


def test_concurrent_fast_requests_are_micro_batched(stub_detector, png) -> None:
    detector = stub_detector(delay=0.15)
    app = create_app(detector, ServeLimits(max_batch_fast=8, batch_wait_ms=30))
    try:
        responses = asyncio.run(_post_many(app, _bodies(png, 12, "fast")))
    finally:
        app.state.batcher.close()
    assert [r.status_code for r in responses] == [200] * 12
    sizes = [n for mode, n in detector.calls]
    assert sum(sizes) == 12 and max(sizes) > 1 and max(sizes) <= 8  # batched, never over the cap
    assert all(mode == "fast" for mode, _ in detector.calls)
    assert detector.max_active == 1  # the model is never called concurrently
    # Every answer went to its own request: p(fake) follows each image's red level.
    probs = [r.json()["prob_fake"] for r in responses]
    assert probs == sorted(probs, reverse=True)
    stats = app.state.batcher.stats.to_dict()
    assert stats["completed"] == 12 and stats["mean_batch_size"] > 1


def test_full_mode_runs_one_at_a_time_by_default(stub_detector, png) -> None:
    detector = stub_detector(delay=0.05)
    app = create_app(detector)
    try:
        responses = asyncio.run(_post_many(app, _bodies(png, 4, "full")))
    finally:
        app.state.batcher.close()
    assert all(r.status_code == 200 for r in responses)
    assert detector.calls == [("full", 1)] * 4


def test_a_full_queue_answers_503_with_retry_after(stub_detector, png) -> None:
    detector = stub_detector(delay=0.8)  # long enough that all 8 requests arrive while the first runs
    app = create_app(detector, ServeLimits(max_queue=2, max_batch_fast=1, batch_wait_ms=0))
    try:
        responses = asyncio.run(_post_many(app, _bodies(png, 8, "fast")))
    finally:
        app.state.batcher.close()
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503}
    # While the first request runs, only the two queue places admit more: 2 (all arrived before the worker
    # took the first one) or 3 (it took the first one before the third arrived) are admitted; the rest wait
    # for nothing and get 503 at once.
    assert 2 <= statuses.count(200) <= 3
    for r in responses:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "queue_full" and r.headers["retry-after"] == "1"
    assert app.state.batcher.stats.rejected == statuses.count(503)


def test_one_failing_image_does_not_fail_its_batch(stub_detector, png, fail_pixel) -> None:
    detector = stub_detector(delay=0.1)
    app = create_app(detector, ServeLimits(max_batch_fast=8, batch_wait_ms=50))
    bodies = _bodies(png, 3, "fast") + [{"image": base64.b64encode(png(fail_pixel)).decode(), "mode": "fast"}]
    try:
        responses = asyncio.run(_post_many(app, bodies))
    finally:
        app.state.batcher.close()
    assert [r.status_code for r in responses] == [200, 200, 200, 500]
    assert responses[3].json()["error"]["code"] == "model_error"
    assert any(n > 1 for _, n in detector.calls)  # it was batched, then retried one by one


def test_slow_model_times_out_with_504(stub_detector, png) -> None:
    app = create_app(stub_detector(delay=0.5), ServeLimits(request_timeout_s=0.1))
    try:
        (response,) = asyncio.run(_post_many(app, _bodies(png, 1, "full")))
    finally:
        app.state.batcher.close()
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"


def test_event_loop_stays_responsive_while_the_model_runs(stub_detector, png) -> None:
    app = create_app(stub_detector(delay=0.8))

    async def scenario() -> tuple[bool, dict, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            slow = asyncio.create_task(client.post("/v1/detect", json=_bodies(png, 1, "full")[0]))
            for _ in range(1000):  # wait (at most ~10 s) until the model is running
                if app.state.batcher.busy or slow.done():
                    break
                await asyncio.sleep(0.01)
            health = (await client.get("/healthz")).json()
            answered_first = not slow.done()
            return answered_first, health, (await slow).status_code

    try:
        answered_first, health, status = asyncio.run(scenario())
    finally:
        app.state.batcher.close()
    assert answered_first and health["queue"]["busy"] is True and status == 200


def test_closing_the_batcher_refuses_new_work(stub_detector) -> None:
    from PIL import Image

    batcher = MicroBatcher(stub_detector())
    batcher.close()
    with pytest.raises(ShuttingDown):
        asyncio.run(batcher.submit(Image.new("RGB", (4, 4)), "fast"))
    with pytest.raises(ValueError, match="mode"):
        asyncio.run(MicroBatcher(stub_detector()).submit(Image.new("RGB", (4, 4)), "slow"))


def test_elapsed_ms_is_the_requests_own_time_not_the_models_share(stub_detector, png) -> None:
    class SharingDetector(stub_detector):  # type: ignore[misc, valid-type]
        def detect_many(self, images, mode):  # type: ignore[no-untyped-def]
            verdicts = super().detect_many(images, mode)
            for v in verdicts:
                v.elapsed_ms = 1.0  # what a model reports: its batch time divided by the batch size
            return verdicts

    app = create_app(SharingDetector(delay=0.1), ServeLimits(max_batch_fast=4, batch_wait_ms=20))
    try:
        responses = asyncio.run(_post_many(app, _bodies(png, 3, "fast")))
    finally:
        app.state.batcher.close()
    assert all(r.json()["elapsed_ms"] >= 100.0 for r in responses)
