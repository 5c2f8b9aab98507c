"""End to end through a real (tiny, randomly initialised) FakeReasoning model saved to disk and served.

The test double covers the server's mechanics; this covers the real path: `load_detector(dir)` ->
`FakeReasoning.from_pretrained` -> micro-batched `detect_many` -> Verdict JSON / chat answer, and the
`fakereasoning serve` command as a user runs it.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fakereasoning.schema import PROMPT_FULL, VERDICT_SCHEMA, Verdict, parse_cot
from fakereasoning.serve import ServeLimits, create_app, load_detector

# Small enough that a forward pass takes milliseconds; the same code paths as the shipped sizes.
TINY = dict(semantic_size=64, semantic_grid=2, forensic_crop=32, forensic_crops=2, forensic_channels=16,
            d_model=64, n_layers=2, n_heads=2, ffn_dim=128, facl_dim=32, fusion_heads=2, max_length=400)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    import torch

    from fakereasoning.models import FakeReasoning
    from fakereasoning.models.tokenizer import train_tokenizer

    torch.manual_seed(0)
    model = FakeReasoning.build("tiny", tokenizer=train_tokenizer(["finding caption image"], vocab_size=500), **TINY)
    directory = tmp_path_factory.mktemp("served-model") / "tiny"
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_client(tiny_model_dir):
    detector = load_detector(tiny_model_dir)
    with TestClient(create_app(detector, ServeLimits(batch_wait_ms=20))) as client:
        yield client, detector


def test_fast_and_full_detection_through_the_real_model(model_client, png) -> None:
    client, detector = model_client
    assert client.get("/healthz").json()["model_id"] == detector.model_id == detector.model.model_id
    raw = png((120, 90, 60), size=(80, 56))
    fast = client.post("/v1/detect", files={"file": ("x.png", raw, "image/png")}, data={"mode": "fast"})
    assert fast.status_code == 200, fast.text
    v = Verdict.from_dict(fast.json())
    assert v.image == "x.png" and v.model_id == detector.model_id
    assert v.label == ("fake" if v.prob_fake >= 0.5 else "real")
    # The server answers what the model itself says for this image.
    direct = detector.model.detect(load_image_bytes(raw), mode="fast")
    assert v.prob_fake == pytest.approx(direct.prob_fake, abs=1e-5)

    full = client.post("/v1/detect", json={"image": base64.b64encode(raw).decode(), "mode": "full"}).json()
    assert full["schema"] == VERDICT_SCHEMA and full["raw_text"].startswith("<SUMMARY>")


def test_concurrent_fast_requests_batch_through_the_real_model(model_client, png) -> None:
    import asyncio

    client, detector = model_client
    before = client.get("/healthz").json()["stats"]

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
            bodies = [{"image": base64.b64encode(png((i * 20, 100, 100))).decode(), "mode": "fast"} for i in range(8)]
            return await asyncio.gather(*(c.post("/v1/detect", json=b) for b in bodies))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 8
    after = client.get("/healthz").json()["stats"]
    assert after["completed"] - before["completed"] == 8
    assert after["batches"] - before["batches"] < 8  # some requests shared a forward pass


def test_chat_completion_carries_the_models_own_answer(model_client, png) -> None:
    client, detector = model_client
    url = "data:image/png;base64," + base64.b64encode(png((30, 200, 30))).decode()
    body = {"model": detector.model_id, "messages": [{"role": "user", "content": [
        {"type": "text", "text": PROMPT_FULL}, {"type": "image_url", "image_url": {"url": url}}]}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    content = answer["choices"][0]["message"]["content"]
    assert content == answer["fakereasoning"]["raw_text"]  # the tagged answer, as the model generated it
    assert parse_cot(content).summary is not None
    # usage counts come from the model's own tokenizer
    assert answer["usage"]["completion_tokens"] == len(detector.model.tokenizer.encode(content))


def load_image_bytes(raw: bytes):
    from fakereasoning.imageio import load_image

    return load_image(raw)


def test_serve_command_starts_answers_and_stops(tiny_model_dir, png) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakereasoning", "serve", "--model", str(tiny_model_dir), "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stderr.readline()  # "fakereasoning: serving MODEL at http://127.0.0.1:PORT/"
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        base = match.group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert health.json()["model_id"] == "fakereasoning-tiny"
        r = httpx.post(base + "/v1/detect", files={"file": ("a.png", png(), "image/png")}, data={"mode": "fast"},
                       timeout=30)
        assert r.status_code == 200 and r.json()["image"] == "a.png"
        assert httpx.get(base + "/", timeout=5).text.startswith("<!doctype html>")
    finally:
        proc.send_signal(signal.SIGTERM)  # how a service manager stops it: a graceful stop, status 0
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
