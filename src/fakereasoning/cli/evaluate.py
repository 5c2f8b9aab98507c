"""`fakereasoning evaluate`: per-generator detection and reasoning metrics, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from fakereasoning.cli._args import (
    add_allow_skipped,
    add_crops_option,
    add_layout_options,
    add_statistics_options,
    cli_options,
    positive_int,
    print_evaluation_summary,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model on the evaluation sets of a dataset (MMFR, GenImage, ForenSynths, Synthbuster, "
        "folders, CSV/JSONL list)",
        description=(
            "Writes OUT/predictions.jsonl, metrics.json (with the run block and 95%% bootstrap intervals), "
            "metrics.csv, report.md, roc.png and reliability.png. Runs data-parallel under `accelerate launch`."
        ),
    )
    p.add_argument("--model", type=Path, default=None,
                   help="model folder, or a `train --output` / checkpoint folder (default: the shipped model)")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset root in any layout (see --layout), or a .csv/.jsonl list of path,label[,set]")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sets", default=None, help="comma-separated evaluation sets (default: all)")
    p.add_argument("--mode", choices=("full", "fast"), default="fast",
                   help="fast: one forward pass per image; full: generate and score the reasoning too")
    p.add_argument("--max-per-class", type=positive_int, default=None, help="at most N real and N fake per set")
    p.add_argument("--perturb", action="append", default=[], metavar="KIND:VALUE",
                   help="jpeg:75 | resize:0.5 | blur:1.0 | noise:0.02 (repeat to compose)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--max-new-tokens", type=positive_int, default=512, help="full mode: generation budget")
    p.add_argument("--css-encoder", default="minilm", metavar="DIR|minilm",
                   help="a local CLIP checkpoint folder (the paper's CSS: CLIP ViT-L/14 text features; also clip:PATH), "
                        "or minilm (offline default, labelled as such in the report)")
    p.add_argument("--device", default=None)
    add_crops_option(p)
    add_layout_options(p)
    add_statistics_options(p)
    add_allow_skipped(p, "evaluate")
    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fakereasoning.evaluate.perturb import parse_perturbation
    from fakereasoning.evaluate.runner import EvalOptions, check_output_dir, evaluate
    from fakereasoning.infer import LazyModel

    check_output_dir(args.out)  # before the model loads

    perturbations = [parse_perturbation(s) for s in args.perturb]
    options = EvalOptions(
        sets=[s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else None,
        mode=args.mode,
        max_per_class=args.max_per_class,
        perturbations=perturbations,
        batch_size=args.batch_size,
        css_encoder=args.css_encoder,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        layout=args.layout,
        allow_absolute_paths=args.allow_absolute_paths,
        calibrate=args.calibrate,
        bootstrap=args.bootstrap,
        allow_skipped=args.allow_skipped,
        model_dir=None,  # filled from the resolved model folder below
        command="evaluate",
        cli_options=cli_options(args),
    )
    device = args.device
    if device is None:
        from fakereasoning.runtime import distributed_state

        device = str(distributed_state().device)
    model = LazyModel(args.model, device=device, crops=args.crops)  # loads once the dataset has given images to score
    options.model_dir = str(model.path)
    metrics = evaluate(model, args.data, args.out, options, progress=True)
    print_evaluation_summary(metrics, args.out)
    return 0
