"""Fixtures for the server tests: a deterministic test-double detector, images, a client, a live server."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from fakereasoning.schema import ATTRIBUTES_OF_LABEL, Verdict, fast_answer, format_cot

FAIL_PIXEL = (255, 0, 255)  # an image whose top-left pixel is this makes the stub detector raise


class StubDetector:
    """Verdicts from pixel statistics: p(fake) = mean red / 255. Records every batch it is given.

    Deterministic and instant (unless `delay` is set), so the tests check the server, not a model.
    """

    def __init__(self, delay: float = 0.0, model_id: str = "stub-detector") -> None:
        self.model_id = model_id
        self.delay = delay
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def detect_many(self, images: list[Image.Image], mode: str) -> list[Verdict]:
        with self.lock:
            self.calls.append((mode, len(images)))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                time.sleep(self.delay)
            out = []
            for image in images:
                if image.getpixel((0, 0)) == FAIL_PIXEL:
                    raise RuntimeError("stub detector refuses this image")
                prob = float(np.asarray(image)[..., 0].mean() / 255.0)
                label = "fake" if prob >= 0.5 else "real"
                attrs = {name: f"finding {i} on a {image.width}x{image.height} image"
                         for i, name in enumerate(ATTRIBUTES_OF_LABEL[label][:3])}
                text = (fast_answer(label) if mode == "fast"
                        else format_cot(label, attrs, f"a flat test image of {image.width}x{image.height}"))
                out.append(Verdict.from_answer("stub", prob, text, model_id=self.model_id,
                                                  attributes=None if mode == "fast" else attrs))
            return out
        finally:
            with self.lock:
                self.active -= 1


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def make_png(color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (32, 24)) -> bytes:
    """A small PNG with a little noise so each one is a real, distinct image."""
    rng = np.random.default_rng(sum(color) + size[0])
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[...] = color
    noise = rng.integers(-3, 4, size=arr.shape)
    arr = np.clip(arr.astype(int) + noise, 0, 255).astype(np.uint8)
    arr[0, 0] = color  # keep the top-left pixel exact (FAIL_PIXEL relies on it)
    return encode(Image.fromarray(arr, "RGB"))


@pytest.fixture
def png() -> Callable[..., bytes]:
    return make_png


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A uvicorn server on 127.0.0.1 at a free port, in a thread; `stop()` shuts it down cleanly."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """One live server (stub detector, default limits) shared by the openai-client and browser tests."""
    from fakereasoning.serve import create_app
    from fakereasoning.serve.app import LOOPBACK_HOSTS

    server = LiveServer(create_app(StubDetector(), allowed_hosts=LOOPBACK_HOSTS)).start()  # as the CLI does
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stub_detector() -> type[StubDetector]:
    """The test-double detector class (tests build it with their own delay)."""
    return StubDetector


@pytest.fixture
def fail_pixel() -> tuple[int, int, int]:
    return FAIL_PIXEL
