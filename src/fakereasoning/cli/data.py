"""`fakereasoning data ...`: validate, summarise and convert datasets (MMFR and the other layouts)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fakereasoning.cli._args import add_layout_options
from fakereasoning.schema import ATTRIBUTES
from fakereasoning.wording import count


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="validate, summarise, convert and build MMFR-layout datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_sub.required = True

    p = data_sub.add_parser(
        "validate",
        help="check a dataset (any layout) and report every problem",
        description="Check every image, JSON key, attribute and conversation (MMFR), or every image and list row "
        "(other layouts); exit 0 when valid, 1 when not.",
    )
    p.add_argument("root", type=Path, help="dataset root (any layout), or a .csv/.jsonl list")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object (counts + problems)")
    p.add_argument("--no-decode", action="store_true", help="skip decoding images (faster, finds less)")
    p.add_argument("--jobs", type=int, default=None, help="decoding threads (default: 2 per core, max 8)")
    p.add_argument("--max-problems", type=int, default=200, help="problems to print in text mode (default 200)")
    add_layout_options(p)
    p.set_defaults(handler=cmd_validate)

    p = data_sub.add_parser(
        "to-cot",
        help="write training conversations (the released CoT format) from the reasoning JSON",
        description="Turn every annotated training image into a LLaVA-format conversation with a tagged answer.",
    )
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output JSON file (e.g. ROOT/forgery_reasoning_cot.json)")
    p.add_argument("--allow-errors", action="store_true",
                   help="write the conversations of the readable annotations even when others have errors "
                        "(a file holding conversations is still never replaced with an empty list)")
    p.set_defaults(handler=cmd_to_cot)

    p = data_sub.add_parser("stats", help="a table per set: images, real/fake, attribute frequency")
    p.add_argument("root", type=Path)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    add_layout_options(p)
    p.set_defaults(handler=cmd_stats)

    p = data_sub.add_parser(
        "reannotate",
        help="rewrite a dataset's references with the evidence annotator, from its own images",
        description="Measure every image of an MMFR-layout dataset again and rewrite each reasoning JSON (and "
        "the training conversations, when present) with the evidence annotator: after the annotator's findings "
        "or thresholds change, references and training text then state what it would state now. Unreadable "
        "images keep their old annotation and are listed.",
    )
    p.add_argument("root", type=Path, help="dataset root (MMFR layout)")
    p.add_argument("--seed", type=int, default=0, help="seed of drawn wordings (only with --vary-wording)")
    p.add_argument("--vary-wording", action="store_true",
                   help="draw each finding's wording among its phrasings (default: its canonical wording)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(handler=cmd_reannotate)

    p = data_sub.add_parser(
        "merge",
        help="merge MMFR-layout datasets into one root (training parts and evaluation sets side by side)",
        description="Write one MMFR root holding every training part and evaluation set of ROOTs (images "
        "hard-linked where the file system allows, else copied), with captions merged, training "
        "conversations rebuilt and each source's in_training marks kept. Clashing names are refused.",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("roots", type=Path, nargs="+", metavar="ROOT", help="datasets to merge (two or more)")
    p.add_argument("--json", action="store_true", help="print the merged manifest as JSON")
    p.set_defaults(handler=cmd_merge)

    from fakereasoning.cli.local import add_build_local

    add_build_local(data_sub)

    from fakereasoning.cli.public import add_build_public

    add_build_public(data_sub)


def cmd_validate(args: argparse.Namespace) -> int:
    from fakereasoning.data.layouts import validate_dataset

    layout, report = validate_dataset(args.root, args.layout, args.allow_absolute_paths, decode=not args.no_decode,
                                      jobs=args.jobs, progress=not args.json)
    if args.json:
        print(json.dumps({"layout": layout.layout, **report.to_dict()}, ensure_ascii=False))
        return 0 if report.ok else 1
    d = report.to_dict()
    t = d["train"]
    print(f"dataset: {layout.describe()}")
    print(f"train: {t['real']} real, {t['fake']} fake, {t['annotations']} annotations, {t['conversations']} conversations")
    for name, c in d["evaluation_sets"].items():
        print(f"evaluation set {name}: {c['real']} real, {c['fake']} fake, {c['annotations']} annotations")
    errors = [p for p in report.problems if p.severity == "error"]
    warnings = len(report.problems) - len(errors)
    for p in report.problems[: args.max_problems]:
        print(str(p))
    if len(report.problems) > args.max_problems:
        print(f"... and {len(report.problems) - args.max_problems} more (use --json to see all)")
    print(f"{'VALID' if report.ok else 'INVALID'}: {count(len(errors), 'error')}, {count(warnings, 'warning')}")
    return 0 if report.ok else 1


def cmd_to_cot(args: argparse.Namespace) -> int:
    from fakereasoning.data.cot import ConversionRefused, write_cot

    try:
        n = write_cot(args.root, args.out, allow_errors=args.allow_errors)
    except ConversionRefused as exc:
        for problem in exc.problems[:MAX_LISTED]:
            print(str(problem), file=sys.stderr)
        if len(exc.problems) > MAX_LISTED:
            print(f"... and {len(exc.problems) - MAX_LISTED} more (`data validate --json` lists all)", file=sys.stderr)
        raise
    print(f"wrote {n} conversations to {args.out}")
    return 0


MAX_LISTED = 50


def cmd_merge(args: argparse.Namespace) -> int:
    from fakereasoning.data.merge import merge

    manifest = merge(args.out, args.roots, progress=not args.json)
    if args.json:
        print(json.dumps(manifest, ensure_ascii=False))
    else:
        parts = sum(len(m["training_parts"]) for m in manifest["merged_from"])
        sets = sum(len(m["evaluation_sets"]) for m in manifest["merged_from"])
        print(f"merged {len(manifest['merged_from'])} datasets into {args.out}: {parts} training parts, "
              f"{sets} evaluation sets, {manifest.get('conversations', 0)} training conversations")
    return 0


def cmd_reannotate(args: argparse.Namespace) -> int:
    from fakereasoning.data.reannotate import reannotate

    summary = reannotate(args.root, args.seed, args.vary_wording, progress=not args.json)
    for error in summary.errors[:MAX_LISTED]:
        print(f"fakereasoning: warning: kept the old annotation of {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        cot = "" if summary.conversations is None else f"; {summary.conversations} training conversations written"
        print(f"reannotated {summary.rewritten} of {summary.images} images in {len(summary.files)} files "
              f"({summary.changed} changed, {len(summary.errors)} unreadable){cot}")
    return 0 if not summary.errors else 1


_SHORT = {name: "".join(w[0] for w in name.split() if w[0].isupper()) for name in ATTRIBUTES}


def cmd_stats(args: argparse.Namespace) -> int:
    from fakereasoning.data.layouts import load_dataset
    from fakereasoning.data.mmfr import summarize

    dataset = load_dataset(args.root, args.layout, args.allow_absolute_paths)
    rows = summarize(dataset.index)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"dataset: {dataset.describe()}")
    header = (f"{'split':<6} {'set':<24} {'images':>7} {'real':>6} {'fake':>6} {'annotated':>9} {'annotations':>11}"
              "  attribute frequency")
    print(header)
    print("-" * len(header))
    for r in rows:
        freq = ", ".join(f"{_SHORT[a]}={n}" for a, n in r["attributes"].items()) or "-"
        print(f"{r['split']:<6} {r['set']:<24} {r['images']:>7} {r['real']:>6} {r['fake']:>6} {r['annotated']:>9} "
              f"{r['annotations']:>11}  {freq}")
    legend = "; ".join(f"{v}={k}" for k, v in _SHORT.items())
    print(f"\nattributes: {legend}")
    return 0
