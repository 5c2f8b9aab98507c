"""Memory under large images: `serve` during and after a burst of big uploads, and `detect` on big files.

The issue-13 cases, measured as resident memory (RSS) of the process doing the work, sampled every 20 ms:
  serve   N concurrent uploads (default 24) of one 6000x6000 PNG (about 0.1 MB encoded, 36 Mpx decoded,
          under the default pixel cap) in fast mode; peak RSS, and RSS 5 s after the burst
  detect  `fakereasoning detect --mode fast --json` on K (default 8) 8000x8000 JPEGs; peak RSS

Both run the shipped default model through the real CLI, so they measure what a user gets.

    .venv/bin/python bench/memory.py [--out bench/results/memory.json] [--src PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "memory.json"
MiB = 1024 * 1024


def big_image(side: int, fmt: str, seed: int = 0) -> bytes:
    """A smooth gradient with a little structure: tiny when encoded, `side` x `side` when decoded."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    arr = np.stack([x * 255, y * 255, (x + y + seed % 3) * 85 % 255], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


class RssSampler:
    """Peak and last RSS of a process (and its children), sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return self.last

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last = self.rss()
            self.peak = max(self.peak, self.last)
            time.sleep(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _env(src: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if src:
        env["PYTHONPATH"] = src
    return env


def bench_serve(args: argparse.Namespace) -> dict[str, Any]:
    png = big_image(args.serve_side, "PNG")
    cmd = [sys.executable, "-m", "fakereasoning", "serve", "--port", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=_env(args.src))
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if not match:
            raise SystemExit(f"server did not start: {line}")
        base = match.group(1)
        for _ in range(600):
            try:
                httpx.get(base + "/healthz", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        sampler = RssSampler(proc.pid)
        idle = sampler.rss()

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=600) as client:
                async def one(i: int) -> int:
                    files = {"file": (f"big{i}.png", png, "image/png")}
                    r = await client.post(base + "/v1/detect", files=files, data={"mode": "fast"})
                    return r.status_code

                return await asyncio.gather(*(one(i) for i in range(args.requests)))

        t0 = time.perf_counter()
        with sampler:
            statuses = asyncio.run(burst())
            seconds = time.perf_counter() - t0
            time.sleep(5)
        after = sampler.rss()
        return {
            "requests": args.requests, "image": f"{args.serve_side}x{args.serve_side} PNG",
            "encoded_kib": round(len(png) / 1024, 1), "statuses": {str(s): statuses.count(s) for s in set(statuses)},
            "seconds": round(seconds, 2), "rss_idle_mib": round(idle / MiB), "rss_peak_mib": round(sampler.peak / MiB),
            "rss_5s_after_mib": round(after / MiB),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def bench_detect(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.detect_images):
            p = Path(tmp) / f"big{i}.jpg"
            p.write_bytes(big_image(args.detect_side, "JPEG", seed=i))
            paths.append(str(p))
        cmd = [sys.executable, "-m", "fakereasoning", "detect", "--mode", "fast", "--json", *paths]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(args.src))
        with RssSampler(proc.pid) as sampler:
            out, err = proc.communicate(timeout=1200)
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        return {
            "images": args.detect_images, "image": f"{args.detect_side}x{args.detect_side} JPEG",
            "exit": proc.returncode, "verdicts": sum("prob_fake" in x for x in lines),
            "seconds": round(time.perf_counter() - t0, 2), "rss_peak_mib": round(sampler.peak / MiB),
            "stderr_tail": err[-300:] if proc.returncode else "",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--src", default=None, help="PYTHONPATH for the measured processes (e.g. another checkout's src)")
    parser.add_argument("--label", default="", help="stored with the result (e.g. 'before', 'after')")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--serve-side", type=int, default=6000)
    parser.add_argument("--detect-images", type=int, default=8)
    parser.add_argument("--detect-side", type=int, default=8000)
    parser.add_argument("--only", choices=("serve", "detect"), default=None)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "label": args.label, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if args.only in (None, "serve"):
        result["serve"] = bench_serve(args)
        print(json.dumps(result["serve"]), flush=True)
    if args.only in (None, "detect"):
        result["detect"] = bench_detect(args)
        print(json.dumps(result["detect"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
