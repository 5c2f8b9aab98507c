"""`make demo`: the main job on the shipped default model, end to end, in a few minutes.

1. validates a small MMFR-layout demo set (real photos and fakes from six locally trained generator
   families; no image of it is in the shipped model's training data: they come from the evaluation split of
   MMFR-Local, split by source photo; three of the six families trained the model, three did not);
2. runs `detect` in full mode on a few of its images and prints the verdicts with their reasoning;
3. evaluates the shipped model on the whole demo set (fast mode, plus full mode on a few images per class)
   and names the report it wrote;
4. when an MMFR-Public build is at hand (`--public DIR` or $FAKEREASONING_PUBLIC; `fakereasoning data
   build-public`), detects a few of its held-out real-world generator images and real photos too. Those
   images stay in their public repositories (their licences vary and the project ships none of them), so
   this step needs the build.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from fakereasoning.cli import main as cli_main


def _pick(data: Path, per_set: int) -> list[str]:
    """A few images per evaluation set, real and fake alternating, for the printed detections."""
    from fakereasoning.data.mmfr import scan

    picked: list[str] = []
    for _name, records in sorted(scan(data).evaluation_sets.items()):
        reals = [r for r in records if r.label == "real"][:per_set]
        fakes = [r for r in records if r.label == "fake"][:per_set]
        for pair in zip(reals, fakes, strict=False):
            picked.extend(str(r.path) for r in pair)
    return picked


def _step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("examples/mmfr-local-demo"))
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--per-set", type=int, default=1, help="images per class per set to print (default 1)")
    ap.add_argument("--public", type=Path, default=os.environ.get("FAKEREASONING_PUBLIC"),
                    help="an MMFR-Public build: also detect a few of its held-out images (default $FAKEREASONING_PUBLIC)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    model = ["--model", str(args.model)] if args.model else []

    _step(f"1/4 the demo set: {args.data}")
    if cli_main(["data", "validate", str(args.data)]) != 0:
        return 1
    cli_main(["data", "stats", str(args.data)])

    images = _pick(args.data, args.per_set)
    _step(f"2/4 fakereasoning detect --mode full ({len(images)} images)")
    code = cli_main(["detect", *images, *model, "--mode", "full", "--batch-size", "8"])
    if code != 0:
        return code

    _step("3/4 fakereasoning evaluate (fast mode on every image, full mode on 2 per class per set)")
    fast_dir, full_dir = args.out / "eval-fast", args.out / "eval-full"
    if cli_main(["evaluate", *model, "--data", str(args.data), "--out", str(fast_dir), "--mode", "fast"]) != 0:
        return 1
    if cli_main(["evaluate", *model, "--data", str(args.data), "--out", str(full_dir), "--mode", "full",
                 "--max-per-class", "2"]) != 0:
        return 1
    if args.public is not None and (Path(args.public) / "evaluation_sets").is_dir():
        public = _pick(Path(args.public), args.per_set)
        _step(f"4/4 real-world generators: fakereasoning detect --mode full on {len(public)} MMFR-Public held-out images")
        cli_main(["detect", *public, *model, "--mode", "full", "--batch-size", "8"])
    elif args.public is not None:
        print(f"\n(4/4 skipped: {args.public} has no evaluation sets; an MMFR-Public build made with --splits all "
              "trained the shipped model on every family, so none of its images is held out; build with "
              "--splits heldout to see held-out generator images)")
    else:
        print("\n(4/4 skipped: pass --public DIR or set FAKEREASONING_PUBLIC to an MMFR-Public build to see "
              "real-world generator images; the project ships none of those third-party images)")
    print(f"\nDemo finished in {time.perf_counter() - t0:.0f} s.")
    print(f"Evaluation report (fast mode, every image): {fast_dir / 'report.md'}")
    print(f"Evaluation report (full mode, with reasoning metrics): {full_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
