"""`fakereasoning data build-public OUT`: build MMFR-Public from the packaged manifest (see data/public/)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_build_public(data_sub: argparse._SubParsersAction) -> None:
    """Add `build-public` to the `data` group (called by cli/data.py)."""
    from fakereasoning.data.public.build import DEFAULT_SPLITS
    from fakereasoning.data.public.manifest import DEFAULT_MANIFEST, DEFAULT_RESERVED, DEFAULT_SOURCES

    p = data_sub.add_parser(
        "build-public",
        help="build MMFR-Public: genuine generator outputs and real photos from public repositories",
        description=(
            "Fetch every image of the packaged manifest (from local git snapshots with --mirror, else from "
            "raw.githubusercontent.com at the pinned commits), verify its sha256, drop reserved images and "
            "near-duplicates, split by generator family, cut native-resolution crops with one compression "
            "history for both classes, annotate them, and write the MMFR layout with manifest.json and "
            "summary.json (counts, drops, licenses, shortcut audit). Resumable: rerun to finish."
        ),
    )
    p.add_argument("out", type=Path, help="output folder (created; an interrupted build there is resumed)")
    p.add_argument("--mirror", type=Path, default=None, metavar="DIR",
                   help="read DIR/<owner>+<name>/repo bare git snapshots instead of the network")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest TSV (default: the packaged one)")
    p.add_argument("--sources", type=Path, default=DEFAULT_SOURCES, help="source list with licenses (JSON)")
    p.add_argument("--splits", default=str(DEFAULT_SPLITS), metavar="all|heldout|FILE",
                   help="which families are held out / calibrate, which real sources evaluate: 'heldout' (the "
                        "default: gemini, midjourney and FLUX-class DiTs held out as evaluation sets), 'all' "
                        "(every family trains, as the shipped model; measure transfer with bench/lofo.py) or a JSON file")
    p.add_argument("--reserved", type=Path, default=DEFAULT_RESERVED,
                   help="images reserved for independent evaluation, always dropped (TSV: sha256, phash, dhash)")
    p.add_argument("--aligned-weights", type=Path, default=None, metavar="DIR",
                   help="folder with taef2_encoder.pth / taef2_decoder.pth (madebyollin/taesd, checked by sha256): "
                        "add aligned fakes, TAEF2 reconstructions of training real crops, to the training part")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops, JPEG qualities and balance (default 0)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.set_defaults(handler=cmd_build_public)


def cmd_build_public(args: argparse.Namespace) -> int:
    from fakereasoning.data.public import build_public

    summary = build_public(args.out, mirror=args.mirror, manifest=args.manifest, sources=args.sources,
                           splits=args.splits, reserved=args.reserved, seed=args.seed, aligned_weights=args.aligned_weights)
    if args.json:
        brief = {k: v for k, v in summary.items() if k != "dropped_detail"}
        print(json.dumps(brief))
        return 0
    c = summary["counts"]
    print(f"built {args.out}: {c['train']} training ({c['train_real']} real, {c['train_fake']} fake), "
          f"{c['eval']} evaluation images in {summary['seconds']}s")
    for s in summary["evaluation_sets"]:
        print(f"  {s['name']:<20} {s['role']:<12} {s['real']:>4} real {s['fake']:>4} fake  {s['families']}")
    print(f"dropped: {summary['dropped'] or 'nothing'}")
    a = summary["audit"]["all"]
    print(f"shortcut audit (logistic regression on {', '.join(a['features'])}): AUC {a['auc']}")
    print(f"details: {args.out / 'summary.json'}")
    return 0
