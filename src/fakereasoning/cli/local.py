"""`fakereasoning data build-local OUT`: build the offline MMFR-Local benchmark (see data/local/build.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_build_local(data_sub: argparse._SubParsersAction) -> None:
    """Add `build-local` to the `data` group (called by cli/data.py)."""
    p = data_sub.add_parser(
        "build-local",
        help="build MMFR-Local: real photos + fakes from locally trained generators, with reasoning",
        description=(
            "Write a dataset in the MMFR layout from photos shipped by Python wheels and Debian packages "
            "(plus --photos folders) and fakes of 6 locally trained generator families. Resumable: rerun "
            "the same command to finish an interrupted build."
        ),
    )
    p.add_argument("out", type=Path, help="output folder (created; an interrupted build there is resumed)")
    p.add_argument("--preset", choices=("tiny", "standard"), default="tiny",
                   help="tiny: 64px, wheel photos only, seconds (tests); standard: 256px, >= 3000 training images")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, crops and generator configs (default 0)")
    p.add_argument("--photos", action="append", default=[], metavar="DIR",
                   help="add your own photographs from DIR (repeatable)")
    p.add_argument("--cache", type=Path, default=None,
                   help="cache folder for Debian packages and generator weights "
                        "(default $FAKEREASONING_CACHE or ~/.cache/fakereasoning)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1, best on a shared machine; use the core count on an idle one)")
    p.add_argument("--taef2", type=Path, default=None, metavar="DIR",
                   help="folder with taef2_encoder.pth / taef2_decoder.pth (madebyollin/taesd, checked by sha256): "
                        "adds the evaluation-only family 'taef2', photos through FLUX.2's tiny autoencoder")
    p.add_argument("--json", action="store_true", help="print a JSON summary (counts, seconds, per-family PSNR)")
    p.set_defaults(handler=cmd_build_local)


def cmd_build_local(args: argparse.Namespace) -> int:
    from fakereasoning.data.local import build_local

    result = build_local(args.out, preset=args.preset, seed=args.seed, photo_dirs=args.photos, cache=args.cache,
                          threads=args.threads, taef2=args.taef2)
    summary = {
        "out": str(result.out),
        "seconds": round(result.seconds, 1),
        "counts": result.counts,
        "psnr": {g["name"]: g["psnr_mean"] for g in result.manifest.get("generators", [])},
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"built {result.out}: {result.counts['train']} training, {result.counts['eval']} evaluation images "
              f"in {result.seconds:.1f}s")
    return 0
