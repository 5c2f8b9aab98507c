"""Bounded loopback load test of `fakereasoning serve`: requests/s, latency percentiles, errors -> JSON.

The server runs in its own process (so client and server do not share a GIL), bound to 127.0.0.1 only;
the client sends a fixed number of requests (default 500, 16 at a time) and stops by itself, also after
--max-seconds. Backends:
  tiny   a freshly built tiny random FakeReasoning model, saved to a temp dir and served by the real CLI
  model  --model DIR, served by the real CLI
  echo   a detector that answers at once: the server's own overhead (HTTP, decoding, queue, batching)

    .venv/bin/python bench/serve_load.py --backend tiny --requests 500 --concurrency 16 --mode fast
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "runs" / "bench" / "serve_load.json"


def make_images(n: int, size: int) -> list[bytes]:
    """Distinct PNGs with texture (so decoding costs what a photo-sized upload costs)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))
        noise = rng.normal(0, 12, (size, size, 3))
        arr = np.clip(base * (0.5 + 0.5 * (i % 2)) + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def build_tiny_model(directory: Path) -> None:
    import torch

    from fakereasoning.models import FakeReasoning
    from fakereasoning.models.tokenizer import train_tokenizer

    torch.manual_seed(0)
    model = FakeReasoning.build("tiny", tokenizer=train_tokenizer(["finding caption image"], vocab_size=500))
    model.save_pretrained(directory)


ECHO_SERVER = r"""
import sys, uvicorn
from fakereasoning.schema import Verdict, fast_answer
from fakereasoning.serve import create_app, ServeLimits

class Echo:
    model_id = "echo"
    def detect_many(self, images, mode):
        return [Verdict.from_answer("x", 0.25, fast_answer("real"), model_id="echo") for _ in images]

limits = ServeLimits(max_queue=int(sys.argv[2]), max_batch_fast=int(sys.argv[3]), batch_wait_ms=float(sys.argv[4]))
print(f"fakereasoning: serving echo at http://127.0.0.1:{sys.argv[1]}/", file=sys.stderr, flush=True)
uvicorn.run(create_app(Echo(), limits), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, model_dir: Path | None) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONUNBUFFERED": "1"}
    if args.backend == "echo":
        port = free_port()
        cmd = [sys.executable, "-c", ECHO_SERVER, str(port), str(args.max_queue), str(args.max_batch),
               str(args.batch_wait_ms)]
    else:
        cmd = [sys.executable, "-m", "fakereasoning", "serve", "--model", str(model_dir), "--port", "0",
               "--host", "127.0.0.1", "--max-queue", str(args.max_queue), "--max-batch", str(args.max_batch),
               "--max-batch-full", str(args.max_batch_full),
               "--batch-wait-ms", str(args.batch_wait_ms), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    base = match.group(1)
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(base + "/healthz", timeout=2).raise_for_status()
            return proc, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("server did not answer /healthz") from None
            time.sleep(0.1)


async def run_load(base: str, images: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    failures: list[str] = []
    issued = 0
    deadline = time.monotonic() + args.max_seconds

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def one(i: int) -> tuple[int | None, float, str | None]:
            files = {"file": (f"img{i % len(images)}.png", images[i % len(images)], "image/png")}
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/detect", files=files, data={"mode": args.mode})
                return r.status_code, time.perf_counter() - t0, None if r.status_code == 200 else r.text[:200]
            except httpx.HTTPError as exc:
                return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"

        for i in range(args.warmup):  # not counted: first-call costs (allocations, caches)
            await one(i)

        async def worker() -> None:
            nonlocal issued
            while issued < args.requests and time.monotonic() < deadline:
                i = issued
                issued += 1
                status, seconds, error = await one(i)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    latencies.append(seconds * 1000.0)
                elif error and len(failures) < 5:
                    failures.append(error)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - t0
        health = (await client.get("/healthz")).json()

    ok = statuses.get("200", 0)
    done = sum(statuses.values())

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return round(float(np.percentile(latencies, q)), 2)

    return {
        "requests_sent": done,
        "ok": ok,
        "errors": done - ok,
        "status_counts": statuses,
        "error_samples": failures,
        "wall_s": round(wall, 3),
        "requests_per_s": round(ok / wall, 2) if wall > 0 else None,
        "latency_ms": {
            "p50": pct(50), "p95": pct(95), "p99": pct(99),
            "mean": round(statistics.fmean(latencies), 2) if latencies else None,
            "max": round(max(latencies), 2) if latencies else None,
        },
        "server": {"model_id": health["model_id"], "stats": health["stats"], "limits": health["limits"]},
        "stopped_by_deadline": done < args.requests,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("tiny", "model", "echo"), default="tiny")
    p.add_argument("--model", type=Path, help="model directory (backend 'model')")
    p.add_argument("--mode", choices=("fast", "full"), default="fast")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop issuing requests after this")
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-batch-full", type=int, default=1)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1, help="OMP/torch threads of the server process")
    p.add_argument("--contended", action="store_true", help="mark the numbers as taken on a shared machine")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be at least 1")
    if args.backend == "model" and args.model is None:
        p.error("--backend model needs --model DIR")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if args.backend == "tiny":
            model_dir = Path(tmp) / "tiny"
            build_tiny_model(model_dir)
        proc, base = start_server(args, model_dir)
        try:
            images = make_images(8, args.image_size)
            result = asyncio.run(run_load(base, images, args))
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    report = {
        "bench": "serve_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "mode": args.mode,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "image": f"{args.image_size}x{args.image_size} PNG",
        "server_threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "contended": args.contended,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    lat = report["latency_ms"]
    print(f"{report['ok']}/{report['requests_sent']} ok, {report['errors']} errors, "
          f"{report['requests_per_s']} req/s, p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
          f"mean batch {report['server']['stats']['mean_batch_size']} -> {args.out}")
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
