"""Speed and memory of the FakeReasoning `tiny` backbone on CPU: fast mode, full reasoning, detect RSS.

Targets: fast mode >= 20 images/s at 256x256 at the default crop count (issue 20; also reported at 1024 px
and other crop counts with --sizes/--crops), full reasoning >= 3 images/s at 256x256 on 2 cores; detect
RSS < 1.5 GB. Writes JSON (never asserts: tests check behaviour, benchmarks measure). On a shared machine
the numbers are contended: the JSON records the load average so readers can judge.

    .venv/bin/python bench/model_speed.py --out bench/results/model_speed.json [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _images(n: int, size: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = np.linspace(0, 255, size)[None, :, None] * rng.random(3)[None, None, :]
        arr = base + rng.normal(0, 12, (size, size, 3))
        out.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a saved model directory (default: a fresh tiny model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--full-images", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--sizes", default="256,1024", help="image sides for the fast-mode table (square images)")
    ap.add_argument("--crops", default="1,4,9", help="crop counts (infer_crops) for the fast-mode table")
    ap.add_argument("--out", default="bench/results/model_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from fakereasoning.models import FakeReasoning
    from fakereasoning.models.model import describe

    t0 = time.perf_counter()
    model = FakeReasoning.from_pretrained(args.model) if args.model else FakeReasoning.build("tiny")
    model.eval()
    load_s = time.perf_counter() - t0
    imgs = _images(args.images, args.size)
    result: dict = {
        "device": "cpu",
        "threads": args.threads,
        "loadavg_start": os.getloadavg(),
        "image_size": args.size,
        "model": args.model or "fresh tiny (untrained)",
        "params": describe(model) | {"config": None},
        "load_s": round(load_s, 3),
    }
    with torch.inference_mode():
        model.fast_probabilities(imgs[:2])  # warm-up
        t = time.perf_counter()
        for s in range(0, len(imgs), args.batch_size):
            model.fast_probabilities(imgs[s : s + args.batch_size])
        fast_s = time.perf_counter() - t
        # parts of one fast batch
        batch = model.processor.images(imgs[: args.batch_size])
        t = time.perf_counter()
        feats = model.backbone._semantic_map(dict(batch))  # the frozen EfficientNet pass (resized or native)
        sem_s = time.perf_counter() - t
        parts = {"efficientnet_ms_per_image": 1000 * sem_s / args.batch_size}
        if "forensic_crops" in batch:
            crops = batch["forensic_crops"]
            t = time.perf_counter()
            model.backbone.forensic(crops.flatten(0, 1))
            parts["forensic_ms_per_image"] = 1000 * (time.perf_counter() - t) / args.batch_size
        del feats
        t = time.perf_counter()
        model.processor.images(imgs[: args.batch_size])
        parts["preprocess_ms_per_image"] = 1000 * (time.perf_counter() - t) / args.batch_size
        table: dict[str, dict[str, float]] = {}
        default_crops = model.config.infer_crops
        for size in (int(v) for v in args.sizes.split(",")):
            sized = _images(max(8, args.images // 2), size, seed=size)
            for crops in (int(v) for v in args.crops.split(",")):
                model.config = model.config.replace(infer_crops=crops)
                model.fast_probabilities(sized[:2])
                t = time.perf_counter()
                for s in range(0, len(sized), args.batch_size):
                    model.fast_probabilities(sized[s : s + args.batch_size])
                table.setdefault(str(size), {})[str(crops)] = round(len(sized) / (time.perf_counter() - t), 2)
        model.config = model.config.replace(infer_crops=default_crops)
        result["fast_images_per_s_by_size_and_crops"] = table
        result["default_crops"] = default_crops
        full_imgs = imgs[: args.full_images]
        t = time.perf_counter()
        out = model._generate_full(full_imgs, max_new_tokens=args.max_new_tokens, temperature=0.0)
        full_s = time.perf_counter() - t
        n_tokens = [len(model.tokenizer(x, add_special_tokens=False)["input_ids"]) for x in out.texts]
    result.update(
        {
            "fast_images_per_s": round(len(imgs) / fast_s, 2),
            "fast_ms_per_image": round(1000 * fast_s / len(imgs), 2),
            "fast_parts": {k: round(v, 2) for k, v in parts.items()},
            "full_images_per_s": round(len(full_imgs) / full_s, 3),
            "full_batch": len(full_imgs),
            "full_max_new_tokens": args.max_new_tokens,
            "full_mean_answer_tokens": float(np.mean(n_tokens)),
            "model_bytes": sum(f.stat().st_size for f in Path(args.model).iterdir()) if args.model else None,
            "peak_rss_mb": round(_rss_mb(), 1),
            "loadavg_end": os.getloadavg(),
            "contended_note": "2 shared CPU cores; other jobs were running"
            if os.getloadavg()[0] > args.threads
            else "",
        }
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from fakereasoning.fsio import atomic_write_json

    atomic_write_json(args.out, result)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
