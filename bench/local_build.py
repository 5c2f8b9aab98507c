"""Time an MMFR-Local build and record counts, per-family PSNR and sharpness as JSON.

    .venv/bin/python bench/local_build.py OUT --preset standard --out bench/results/local_build.json

Run it on a fresh OUT and a fresh --cache to include generator training (a cached rerun only generates).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fakereasoning.data.local import build_local  # noqa: E402
from fakereasoning.fsio import atomic_write_json  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path, help="where to build")
    ap.add_argument("--preset", default="standard", choices=("tiny", "standard"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/local_build.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = build_local(args.dataset, args.preset, args.seed, cache=args.cache, threads=args.threads)
    manifest = result.manifest
    report = {
        "preset": args.preset,
        "seed": args.seed,
        "threads": args.threads,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "counts": result.counts,
        "generators": [
            {k: g[k] for k in ("name", "in_training", "reconstruction", "psnr_mean", "sharpness_fake_mean", "sharpness_real_mean")}
            for g in manifest["generators"]
        ],
        "sharpness": manifest["sharpness"],
        "note": "shared 2-core machine: timings are contended",
    }
    atomic_write_json(args.out, report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
