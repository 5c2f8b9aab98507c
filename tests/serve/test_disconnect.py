"""Clients that go away: their queued work is dropped unrun, and a mid-body disconnect is one log line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest

from fakereasoning.serve import ServeLimits, create_app

RED = (200, 40, 40)


def _scope(path: str = "/v1/detect") -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234), "server": ("test", 80),
    }


async def _call(app, body: bytes, gone: asyncio.Event, more_body: bool = False) -> list[dict]:
    """One request through the ASGI app. The client "disconnects" when `gone` is set (at once if set)."""
    sent: list[dict] = []
    first = True

    async def receive() -> dict:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": more_body}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(_scope(), receive, send)
    return sent


def test_queued_requests_of_gone_clients_are_never_computed(stub_detector, png) -> None:
    detector = stub_detector(delay=0.3)
    app = create_app(detector, ServeLimits(max_batch_fast=1, batch_wait_ms=0))

    def body(i: int) -> bytes:
        return json.dumps({"image": base64.b64encode(png((200 - i, 40, 40))).decode(), "mode": "fast"}).encode()

    async def scenario() -> list[dict]:
        never, dead = asyncio.Event(), asyncio.Event()
        live = asyncio.create_task(_call(app, body(0), never))  # occupies the model for 0.3 s
        await asyncio.sleep(0.05)
        gone = [asyncio.create_task(_call(app, body(i), dead)) for i in range(1, 7)]
        await asyncio.sleep(0.05)  # all six are queued behind the live one
        assert app.state.batcher.queued == 6
        dead.set()  # their clients go away
        await asyncio.gather(*gone)
        assert app.state.batcher.queued == 0  # dropped at once, not when the worker reaches them
        last = asyncio.create_task(_call(app, body(9), never))
        return [*(await live), *(await last)]

    try:
        sent = asyncio.run(scenario())
    finally:
        app.state.batcher.close()
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [200, 200]
    assert detector.calls == [("fast", 1), ("fast", 1)]  # the live request and the last one only
    assert app.state.batcher.stats.abandoned == 6


def test_a_mid_body_disconnect_is_one_line_not_an_unhandled_error(stub_detector, png,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(stub_detector())
    gone = asyncio.Event()
    gone.set()
    with caplog.at_level(logging.INFO):
        try:
            asyncio.run(_call(app, b'{"image": "aGVs', gone, more_body=True))
        finally:
            app.state.batcher.close()
    messages = [r.getMessage() for r in caplog.records]
    assert not any("unhandled" in m for m in messages)
    assert not any(r.exc_info for r in caplog.records)
    assert [m for m in messages if "disconnected" in m] == ["POST /v1/detect: client disconnected before the "
                                                            "request was answered"]
