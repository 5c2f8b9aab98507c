"""Abandoned requests on a real uvicorn server: N clients send an upload and hang up; how long does one live
request then wait, and how many dead ones did the model compute? -> JSON.

A detector that takes --model-ms per image stands in for the model (it is the queue that is measured).

    .venv/bin/python bench/serve_abandon.py [--dead 46] [--model-ms 140] [--out bench/results/serve_abandon.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from PIL import Image

from fakereasoning.schema import Verdict, fast_answer
from fakereasoning.serve import ServeLimits, create_app

ROOT = Path(__file__).resolve().parents[1]


class SlowDetector:
    model_id = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.images = 0

    def detect_many(self, images: list[Image.Image], mode: str) -> list[Verdict]:
        time.sleep(self.seconds * len(images))
        self.images += len(images)
        return [Verdict.from_answer("x", 0.2, fast_answer("real"), model_id=self.model_id) for _ in images]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dead", type=int, default=46)
    ap.add_argument("--model-ms", type=float, default=140.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_abandon.json")
    args = ap.parse_args(argv)

    detector = SlowDetector(args.model_ms / 1000)
    app = create_app(detector, ServeLimits(max_batch_fast=1, batch_wait_ms=0))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, format="PNG")
    body = json.dumps({"image": base64.b64encode(buf.getvalue()).decode(), "mode": "fast"}).encode()
    request = (f"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    for _ in range(args.dead):  # each client sends its whole request, then hangs up
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(request)
    time.sleep(0.3)  # let the server read them all
    t0 = time.perf_counter()
    live = httpx.post(f"http://127.0.0.1:{port}/v1/detect", content=body,
                      headers={"content-type": "application/json"}, timeout=120)
    waited = time.perf_counter() - t0
    time.sleep(args.model_ms / 1000 * 2)
    stats = app.state.batcher.stats.to_dict()
    server.should_exit = True
    thread.join(10)
    result = {
        "dead_clients": args.dead, "model_ms_per_image": args.model_ms, "live_status": live.status_code,
        "live_request_s": round(waited, 3), "images_computed": detector.images,
        "abandoned": stats.get("abandoned"),
    }
    print(json.dumps(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
