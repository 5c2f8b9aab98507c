"""`fakereasoning baseline train|evaluate`: the detectors users would pick instead (UnivFD-, NPR- and
CNNSpot-style), trained and scored by the same loaders and evaluator as FakeReasoning's fast mode."""

from __future__ import annotations

import argparse
from pathlib import Path

from fakereasoning.cli._args import (
    add_allow_skipped,
    add_layout_options,
    add_statistics_options,
    cli_options,
    positive_int,
    print_evaluation_summary,
)

KIND_CHOICES = ("univfd", "npr", "cnnspot")  # kept in step with baselines.registry.KINDS (tested)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="train / evaluate a baseline detector (univfd, npr, cnnspot) side by side with FakeReasoning",
        description="Reimplemented baselines (docs/baselines.md), with the same data loaders and evaluator.",
    )
    bsub = p.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=type(p))
    bsub.required = True

    t = bsub.add_parser(
        "train",
        help="train a baseline on an MMFR-layout dataset's training parts",
        description=(
            "Writes OUTPUT/model/ (config.json + model.safetensors), OUTPUT/metrics.jsonl, train_summary.json "
            "and checkpoints/. --max-steps fixes the budget (optimizer steps of --batch-size images)."
        ),
    )
    t.add_argument("--kind", choices=KIND_CHOICES, required=True)
    t.add_argument("--data", type=Path, required=True, help="dataset root (any layout with a training split)")
    t.add_argument("--output", type=Path, required=True, help="output folder")
    t.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (overrides --epochs)")
    t.add_argument("--epochs", type=_positive_float, default=1.0)
    t.add_argument("--batch-size", type=positive_int, default=16)
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default per kind: univfd 1e-3, npr 1e-3, cnnspot 1e-4)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--clip", type=Path, default=None,
                   help="univfd: probe the image features of this local Hugging Face CLIP checkpoint")
    t.add_argument("--crop", type=positive_int, default=None,
                   help="npr/cnnspot: native-pixel crop side, a multiple of 8 (default 128 / 224)")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUTPUT")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    add_layout_options(t)
    add_allow_skipped(t, "train")
    t.set_defaults(handler=cmd_train)

    e = bsub.add_parser(
        "evaluate",
        help="score a trained baseline on the evaluation sets",
        description="Writes OUT/predictions.jsonl, metrics.json, metrics.csv, report.md and plots, as `evaluate` "
        "in fast mode does.",
    )
    e.add_argument("--kind", choices=KIND_CHOICES, required=True)
    e.add_argument("--model", type=Path, required=True, help="a `baseline train` output folder (or its model/)")
    e.add_argument("--data", type=Path, required=True, help="dataset root in any layout, or a .csv/.jsonl list")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--sets", default=None, help="comma-separated evaluation sets (default: all)")
    e.add_argument("--max-per-class", type=positive_int, default=None, help="at most N real and N fake per set")
    e.add_argument("--perturb", action="append", default=[], metavar="KIND:VALUE",
                   help="jpeg:75 | resize:0.5 | blur:1.0 | noise:0.02 (repeat to compose)")
    e.add_argument("--batch-size", type=positive_int, default=16)
    e.add_argument("--device", default=None)
    add_layout_options(e)
    add_statistics_options(e)
    add_allow_skipped(e, "evaluate")
    e.set_defaults(handler=cmd_evaluate)


def cmd_train(args: argparse.Namespace) -> int:
    from fakereasoning.baselines import TrainOptions, build, train_baseline
    from fakereasoning.errors import FakeReasoningError

    options: dict[str, object] = {}
    if args.clip is not None:
        if args.kind != "univfd":
            raise FakeReasoningError("--clip applies to --kind univfd only")
        options["clip_path"] = str(args.clip)
    if args.crop is not None:
        if args.kind == "univfd":
            raise FakeReasoningError("--crop applies to --kind npr and cnnspot (univfd resizes to its backbone)")
        options["crop"] = args.crop
    detector = build(args.kind, options, seed=args.seed)
    opts = TrainOptions(max_steps=args.max_steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, device=args.device, layout=args.layout,
                        allow_absolute_paths=args.allow_absolute_paths, allow_skipped=args.allow_skipped)
    summary = train_baseline(detector, args.data, args.output, opts, resume=args.resume,
                             progress=True)
    acc = summary.heldout.get("acc")
    held = "n/a" if acc is None else f"{acc:.4f} on {summary.heldout['n']} images"
    print(f"trained {args.kind} for {summary.steps} steps in {summary.seconds:.0f} s; held-out accuracy {held}")
    print(f"model: {summary.model_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fakereasoning.baselines import load
    from fakereasoning.evaluate.perturb import parse_perturbation
    from fakereasoning.evaluate.runner import EvalOptions, evaluate

    perturbations = [parse_perturbation(s) for s in args.perturb]
    device = args.device
    if device is None:
        from fakereasoning.runtime import distributed_state

        device = str(distributed_state().device)
    detector = load(args.model, kind=args.kind, device=device)
    options = EvalOptions(
        sets=[s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else None,
        mode="fast",
        max_per_class=args.max_per_class,
        perturbations=perturbations,
        batch_size=args.batch_size,
        title=f"Evaluation report: baseline {args.kind}",
        notes=[f"Baseline {args.kind} from {args.model} (no reasoning: fast-mode verdicts only)."],
        seed=args.seed,
        layout=args.layout,
        allow_absolute_paths=args.allow_absolute_paths,
        calibrate=args.calibrate,
        bootstrap=args.bootstrap,
        allow_skipped=args.allow_skipped,
        model_dir=str(args.model),
        command="baseline evaluate",
        cli_options=cli_options(args),
    )
    metrics = evaluate(detector, args.data, args.out, options, progress=True)
    print_evaluation_summary(metrics, args.out)
    return 0
