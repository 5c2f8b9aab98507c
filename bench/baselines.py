"""Train and evaluate the baseline detectors under one fixed budget and write their numbers as JSON.

Each kind runs in its own child process (so `peak_rss_mb` is that model's own), trains `--max-steps`
optimizer steps of `--batch-size` images (the same budget for every kind), is evaluated on the evaluation
sets, then again under each `--perturb`. The per-model entry has the keys `bench/run.py` reports:
`seen_mean_acc`, `unseen_mean_acc` (sets named by `--seen` are seen, the rest unseen), `per_set` {acc, ap},
`images_per_s` (`detect_many` on in-memory evaluation images after a warm-up batch) and `peak_rss_mb`, plus the budget,
training time, held-out accuracy and robustness. On a shared machine the timings are contended: the JSON
records the load average so readers can judge.

    .venv/bin/python bench/baselines.py --data ROOT --max-steps 300 --batch-size 16 --seen sd,ddpm \\
        --perturb jpeg:75 --perturb resize:0.5 --perturb blur:1 --out bench/results/baselines.json
    .venv/bin/python bench/baselines.py --toy /tmp/toy --quick     # a few minutes, on a generated toy set

Importable: `bench_kind(kind, data, work, ...)` returns one model entry (in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

KINDS = ("univfd", "npr", "cnnspot")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarise(metrics: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    sets = metrics["sets"]
    return {
        "mean_acc": metrics["mean"]["acc"],
        "seen_mean_acc": _mean([m["acc"] for s, m in sets.items() if s in seen]),
        "unseen_mean_acc": _mean([m["acc"] for s, m in sets.items() if s not in seen]),
    }


def bench_kind(kind: str, data: str | Path, work: str | Path, max_steps: int, batch_size: int,
               seen: set[str] | None = None, perturbations: list[str] | None = None,
               max_per_class: int | None = None, lr: float | None = None, seed: int = 0,
               options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train KIND for the budget, evaluate clean and perturbed; one `models` entry."""
    from fakereasoning.baselines import TrainOptions, build, train_baseline
    from fakereasoning.evaluate.perturb import parse_perturbation
    from fakereasoning.evaluate.runner import EvalOptions, evaluate

    seen = seen or set()
    work = Path(work) / kind
    detector = build(kind, options or {}, seed=seed)
    t0 = time.perf_counter()
    summary = train_baseline(detector, data, work / "train",
                             TrainOptions(max_steps=max_steps, batch_size=batch_size, lr=lr, seed=seed),
                             progress=sys.stderr.isatty())
    train_s = time.perf_counter() - t0
    metrics = evaluate(detector, data, work / "eval", EvalOptions(max_per_class=max_per_class),
                       progress=sys.stderr.isatty())
    entry: dict[str, Any] = {
        **summarise(metrics, seen),
        "per_set": {s: {k: m[k] for k in ("acc", "ap", "real_acc", "fake_acc", "auc", "ece")}
                    for s, m in metrics["sets"].items()},
        "images_per_s": throughput(detector, data, batch_size=16),
        "train_seconds": round(train_s, 1),
        "budget": {"steps": max_steps, "batch_size": batch_size, "images": max_steps * batch_size,
                   "images_seen": summary.images_seen},
        "lr": detector.info.get("lr"),
        "options": detector.options,
        "heldout": summary.heldout,
        "robustness": {},
    }
    for spec in perturbations or []:
        p = parse_perturbation(spec)
        m = evaluate(detector, data, work / f"eval-{p.kind}-{p.value:g}",
                     EvalOptions(max_per_class=max_per_class, perturbations=[p]))
        entry["robustness"][p.name] = summarise(m, seen)
    entry["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return entry


def throughput(detector: Any, data: str | Path, batch_size: int = 16, n: int = 64) -> float:
    """Images per second of `detect_many` (preprocessing included, file decoding not) on up to N evaluation
    images held in memory, after one warm-up batch: the model's speed, not the disk's or the report's."""
    from fakereasoning.evaluate.runner import select_records
    from fakereasoning.imageio import load_image

    records = select_records(data, None, None)
    step = max(1, len(records) // n)
    images = [load_image(r.path, name=r.key) for r in records[::step][:n]]
    detector.detect_many(images[:batch_size], batch_size=batch_size)
    t0 = time.perf_counter()
    detector.detect_many(images, batch_size=batch_size)
    return len(images) / (time.perf_counter() - t0)


def make_toy(root: Path, n_train: int = 64, n_eval: int = 16, size: int = 256) -> Path:
    """A learnable MMFR-layout toy set at a realistic size, for timing without a real build: reals are
    smooth random fields with sensor-like noise, fakes the same upsampled 2x from half size (one seen set
    `near`, one unseen set `far` whose fakes are upsampled 4x instead)."""
    import numpy as np
    from PIL import Image

    from fakereasoning.data.cot import write_cot
    from fakereasoning.data.mmfr import write_reasoning_json

    rng = np.random.default_rng(0)

    def field(side: int) -> np.ndarray:
        base = rng.normal(128, 50, (side // 16, side // 16, 3))
        img = np.asarray(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((side, side),
                         Image.Resampling.BICUBIC), dtype=np.float64)
        return img + rng.normal(0, 6, img.shape)

    def fake(factor: int) -> np.ndarray:
        small = field(size // factor)
        return np.repeat(np.repeat(small, factor, 0), factor, 1)

    def put(rel: str, arr: np.ndarray) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(root / rel)

    train: dict[str, dict[str, str | None]] = {}
    for i in range(n_train):
        put(f"toy/0_real/r{i}.png", field(size))
        train[f"toy/0_real/r{i}.png"] = {"High Image Quality": "sensor noise, no periodic structure"}
        put(f"toy/1_fake/f{i}.png", fake(2))
        train[f"toy/1_fake/f{i}.png"] = {"Anomalous Image Texture": "pixels repeat in 2x2 blocks"}
    write_reasoning_json(root / "toy/toy_reasoning.json", train)
    for name, factor in (("near", 2), ("far", 4)):
        mapping: dict[str, dict[str, str | None]] = {}
        for i in range(n_eval):
            put(f"evaluation_sets/{name}/0_real/r{i}.png", field(size))
            mapping[f"{name}/0_real/r{i}.png"] = {"High Image Quality": "sensor noise"}
            put(f"evaluation_sets/{name}/1_fake/f{i}.png", fake(factor))
            mapping[f"{name}/1_fake/f{i}.png"] = {"Anomalous Image Texture": "blocks"}
        write_reasoning_json(root / f"evaluation_sets/{name}/{name}_reasoning.json", mapping)
    write_cot(root, root / "forgery_reasoning_cot.json")
    return root


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="MMFR-layout dataset root")
    ap.add_argument("--toy", type=Path, help="generate a toy dataset here (if absent) and use it as --data")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seen", default="", help="comma-separated seen evaluation sets (the rest are unseen)")
    ap.add_argument("--perturb", action="append", default=[], metavar="KIND:VALUE")
    ap.add_argument("--max-per-class", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="20 steps of 8 images, 8 images per class and set")
    ap.add_argument("--work", type=Path, default=Path("runs/bench/baselines"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/baselines.json"))
    ap.add_argument("--option", action="append", default=[], metavar="KIND:KEY=VALUE",
                    help="a detector option, e.g. cnnspot:crop=128 (JSON value)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one kind, JSON entry on stdout
    args = ap.parse_args(argv)
    if args.quick:
        args.max_steps, args.batch_size = 20, 8
        args.max_per_class = args.max_per_class or 8
    if args.toy is not None:
        if not (args.toy / "forgery_reasoning_cot.json").is_file():
            make_toy(args.toy)
        args.data = args.toy
    if args.data is None:
        ap.error("give --data ROOT or --toy DIR")
    seen = {s for s in args.seen.split(",") if s} or ({"near"} if args.toy is not None else set())

    import torch

    torch.set_num_threads(args.threads)
    options: dict[str, dict[str, Any]] = {}
    for spec in args.option:
        kind, _, kv = spec.partition(":")
        key, _, value = kv.partition("=")
        if kind not in KINDS or not key or not value:
            ap.error(f"--option {spec!r}: use KIND:KEY=VALUE with KIND in {KINDS}")
        options.setdefault(kind, {})[key] = json.loads(value)
    if args.one:
        entry = bench_kind(args.one, args.data, args.work, args.max_steps, args.batch_size, seen, args.perturb,
                           args.max_per_class, seed=args.seed, options=options.get(args.one))
        print(json.dumps(entry))
        return 0

    kinds = [k for k in args.kinds.split(",") if k]
    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "load_avg_start": os.getloadavg(), "torch": torch.__version__},
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([sys.executable, *sys.argv]),
        "data": {"root": str(args.data), "seen_sets": sorted(seen), "max_per_class": args.max_per_class},
        "budget": {"steps": args.max_steps, "batch_size": args.batch_size},
        "options": options,
        "models": {},
    }
    base = [sys.executable, __file__, "--data", str(args.data), "--max-steps", str(args.max_steps),
            "--batch-size", str(args.batch_size), "--seen", ",".join(sorted(seen)), "--threads", str(args.threads),
            "--seed", str(args.seed), "--work", str(args.work)]
    base += [f"--perturb={p}" for p in args.perturb] + [f"--option={o}" for o in args.option]
    if args.max_per_class:
        base += ["--max-per-class", str(args.max_per_class)]
    for kind in kinds:
        print(f"bench: {kind} ...", file=sys.stderr)
        proc = subprocess.run([*base, "--one", kind], stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            result["models"][kind] = {"error": f"exit code {proc.returncode}"}
            continue
        result["models"][kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["machine"]["load_avg_end"] = os.getloadavg()
    from fakereasoning.fsio import atomic_write_json

    atomic_write_json(args.out, result)
    for kind, e in result["models"].items():
        if "error" in e:
            print(f"{kind}: {e['error']}")
        else:
            print(f"{kind}: unseen {e['unseen_mean_acc']}, seen {e['seen_mean_acc']}, train {e['train_seconds']} s, "
                  f"{e['images_per_s']:.1f} img/s, {e['peak_rss_mb']:.0f} MB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
