"""Fixtures for the annotation pipeline: tiny labelled images and a fake OpenAI-compatible VLM server.

The server is a minimal FastAPI app on 127.0.0.1 that checks each request's shape (model, max_tokens,
the exact prompt of one label, a JPEG data URL) and answers from the label the prompt states, the way the
annotating VLM is told the true label. Tests can script failures (429 / 500 / ...) for the next requests.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request  # module level: FastAPI resolves the string annotations here
from fastapi.responses import JSONResponse
from PIL import Image

from fakereasoning.annotate.prompts import MAX_TOKENS, build_prompt
from fakereasoning.imageio import encode_png

USAGE = {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}
BLUE = (20, 40, 230)  # images of this colour get "Can not determine"


def make_png(path: Path, color: tuple[int, int, int], size: int = 48, seed: int = 0) -> Path:
    """A small noisy image of a dominant colour (noise keeps JPEG sizes realistic)."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(color, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3)), 0, 255).astype(
        np.uint8
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(Image.fromarray(arr, "RGB")))
    return path


def make_set(base: Path, n_real: int = 2, n_fake: int = 2, undetermined: int = 0) -> list[Path]:
    """`base/0_real/*.png` (reddish) and `base/1_fake/*.png` (greenish; the last `undetermined` blue)."""
    files = [make_png(base / "0_real" / f"r{i}.png", (200, 60, 50), seed=i) for i in range(n_real)]
    for i in range(n_fake):
        color = BLUE if i >= n_fake - undetermined else (50, 190, 60)
        files.append(make_png(base / "1_fake" / f"f{i}.png", color, seed=100 + i))
    return files


@dataclass
class FakeVLM:
    """State of the fake server: scripted statuses for the next requests, and what it saw."""

    script: list[int] = field(default_factory=list)
    requests: int = 0
    answered: list[str] = field(default_factory=list)  # labels answered with 200
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, script: list[int] | None = None) -> None:
        with self.lock:
            self.script = list(script or [])
            self.requests = 0
            self.answered = []
            self.problems = []


def _check_request(body: Any) -> tuple[str | None, str | None, list[str]]:
    """(label, data_url, problems) of a chat-completions request body."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return None, None, ["body is not an object"]
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("no model")
    if body.get("max_tokens") != MAX_TOKENS:
        problems.append(f"max_tokens {body.get('max_tokens')!r} != {MAX_TOKENS}")
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 1 or messages[0].get("role") != "user":
        return None, None, [*problems, "expected one user message"]
    parts = messages[0].get("content")
    texts = [p.get("text") for p in parts if p.get("type") == "text"]
    urls = [p.get("image_url", {}).get("url") for p in parts if p.get("type") == "image_url"]
    if len(texts) != 1 or len(urls) != 1:
        return None, None, [*problems, "expected one text part and one image_url part"]
    label = next((lab for lab in ("real", "fake") if texts[0] == build_prompt(lab)), None)  # type: ignore[arg-type]
    if label is None:
        problems.append("prompt is not the real or fake annotation prompt")
    if not isinstance(urls[0], str) or not urls[0].startswith("data:image/jpeg;base64,"):
        problems.append("image is not a JPEG data URL")
    return label, urls[0], problems


def _answer(label: str, url: str) -> str:
    raw = base64.b64decode(url.split(",", 1)[1], validate=True)
    img = Image.open(io.BytesIO(raw))
    assert img.format == "JPEG"
    mean = np.asarray(img.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    if mean[2] > mean[0] + 80 and mean[2] > mean[1] + 80:
        return '{"Answer": "Can not determine if the image is real or fake."}'
    if label == "fake":
        answer = {
            "Answer": "The image is fake.",
            "Forgery Attributes": {
                "Anomalous Image Texture": f"The surface is uniformly smooth (mean green {mean[1]:.0f}).",
                "semantic  irrationality": "The object floats without support.",
                "Colour Bleeding": "not one of the attribute names",
            },
        }
        return "Sure, here is my analysis:\n```json\n" + json.dumps(answer) + "\n```"
    # real answers in Python-literal style (single quotes, None): the collector's literal fallback
    return (
        "{'Answer': 'The image is real.', 'Attributes': {'High Image Quality': "
        f"'Fine sensor noise throughout (mean red {mean[0]:.0f}).', 'Semantic Rationality': None,}}}}"
    )


def make_app(state: FakeVLM) -> Any:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        with state.lock:
            state.requests += 1
            status = state.script.pop(0) if state.script else 200
        if status != 200:
            headers = {"retry-after": "0"} if status == 429 else {}
            return JSONResponse(
                {"error": {"message": f"scripted {status}"}}, status_code=status, headers=headers
            )
        label, url, problems = _check_request(body)
        if problems or label is None or url is None:
            with state.lock:
                state.problems.extend(problems)
            return JSONResponse({"error": {"message": "; ".join(problems)}}, status_code=400)
        content = _answer(label, url)
        with state.lock:
            state.answered.append(label)
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": USAGE,
        }

    return app


@pytest.fixture(scope="session")
def vlm_server() -> Iterator[tuple[str, FakeVLM]]:
    """(base_url including /v1, state) of a fake VLM server running for the whole session."""
    import uvicorn

    state = FakeVLM()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake VLM server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture()
def vlm(vlm_server: tuple[str, FakeVLM]) -> tuple[str, FakeVLM]:
    base_url, state = vlm_server
    state.reset()
    return base_url, state
