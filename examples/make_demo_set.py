"""Cut the small demo set that `make demo` runs on out of an MMFR-Local build's EVALUATION split.

    .venv/bin/python examples/make_demo_set.py --src MMFR_LOCAL_STANDARD --out examples/mmfr-local-demo --per-class 2

The evaluation split is separated from the training split by source photo, so none of these images, nor the
photos they were made from, were seen by a model trained on that build's training split (the shipped model).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from fakereasoning.data.mmfr import (
    CAPTIONS_FILE,
    annotation_key,
    reasoning_json_path,
    scan,
    write_reasoning_json,
)
from fakereasoning.fsio import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    index = scan(args.src)
    captions: dict[str, str] = {}
    rng = random.Random(args.seed)
    if args.out.exists():
        shutil.rmtree(args.out)
    for name, records in sorted(index.evaluation_sets.items()):
        mapping = {}
        for label in ("real", "fake"):
            pool = [r for r in records if r.label == label]
            for r in rng.sample(pool, min(args.per_class, len(pool))):
                dest = args.out / r.key
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(r.path, dest)
                mapping[annotation_key(r)] = r.attributes or {}
                if r.caption:
                    captions[r.key] = r.caption
        write_reasoning_json(reasoning_json_path(args.out, name, "eval"), mapping)
    atomic_write_json(args.out / CAPTIONS_FILE, captions)
    manifest = json.loads((args.src / "manifest.json").read_text()) if (args.src / "manifest.json").is_file() else {}
    atomic_write_json(args.out / "README.json", {
        "what": "demo subset of an MMFR-Local evaluation split (images unseen by the shipped model)",
        "source_preset": manifest.get("preset"), "source_seed": manifest.get("seed"),
        "generators": [{k: g.get(k) for k in ("name", "description", "in_training", "psnr_mean")}
                       for g in manifest.get("generators", [])],
    })


if __name__ == "__main__":
    main()
