"""`fakereasoning train`: train a FakeReasoning model from a TOML config (CPU, GPU, `accelerate launch`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fakereasoning.cli._args import add_allow_skipped, add_layout_options, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (LM + CPM + FACL) on a dataset's training split (MMFR, GenImage train/, lists)",
        description=(
            "Train from a TOML config; key=value arguments override it (e.g. optim.lr=1e-4 model.use_facl=false). "
            "Checkpoints go to OUTPUT/checkpoints/, the final model (with a fitted CPM temperature) to "
            "OUTPUT/model/, the metrics log to OUTPUT/metrics.jsonl. Several GPUs: `accelerate launch -m "
            "fakereasoning train ...`."
        ),
    )
    p.add_argument("--config", type=Path, default=None, help="TOML config (see configs/)")
    p.add_argument("--data", type=Path, default=None, help="dataset root (overrides data.root)")
    p.add_argument("--output", type=Path, default=None, help="output folder (overrides run.output)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (overrides optim.max_steps)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUTPUT")
    add_layout_options(p)
    add_allow_skipped(p, "train", from_config=True)
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.set_defaults(handler=cmd_train, takes_overrides=True)


def cmd_train(args: argparse.Namespace) -> int:
    from fakereasoning.train.config import load_config
    from fakereasoning.train.trainer import train

    cfg = load_config(args.config, list(args.overrides))
    if args.data is not None:
        cfg.data.root = str(args.data)
    if args.output is not None:
        cfg.run.output = str(args.output)
    if args.max_steps is not None:
        cfg.optim.max_steps = args.max_steps
    if args.layout is not None:
        cfg.data.layout = args.layout
    if args.allow_absolute_paths:
        cfg.data.allow_absolute_paths = True
    if args.allow_skipped is not None:
        cfg.data.allow_skipped = args.allow_skipped
    result = train(cfg, resume=args.resume, progress=True)
    if result is not None:
        t = "not fitted" if result.temperature is None else f"{result.temperature:.3f}"
        print(f"trained {result.steps} steps in {result.seconds:.0f} s; CPM temperature {t}")
        print(f"model: {result.model_dir}")
    return 0
