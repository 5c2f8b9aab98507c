"""Helpers shared by command modules: argument types (argparse turns their errors into exit code 2) and
common printing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fakereasoning.wording import count


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_crops_option(p: argparse.ArgumentParser) -> None:
    """--crops: native crops the detector reads per image (multi-crop inference)."""
    p.add_argument("--crops", type=positive_int, default=None, metavar="N",
                   help="native 224 px grid crops read per image, their logits averaged (default: the model's "
                        "infer_crops; small images are read as one crop whatever N is)")


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def add_allow_skipped(p: argparse.ArgumentParser, verb: str, from_config: bool = False) -> None:
    """--allow-skipped: the share of the dataset's images a command may skip (unreadable, unlabelled...).
    FROM_CONFIG: the default is the config's (`data.allow_skipped`), so the flag's default is None."""
    from fakereasoning.data.account import DEFAULT_ALLOWED_SKIPPED

    where = "data.allow_skipped of the config, else " if from_config else ""
    p.add_argument("--allow-skipped", type=fraction, default=None if from_config else DEFAULT_ALLOWED_SKIPPED,
                   metavar="FRACTION",
                   help=f"{verb} only when at most this share of the dataset would be skipped (default: {where}"
                        f"{DEFAULT_ALLOWED_SKIPPED:g}); every skip is named with its file and reason")


def add_layout_options(p: argparse.ArgumentParser) -> None:
    """--layout and --allow-absolute-paths: how a dataset root (or list file) is read."""
    from fakereasoning.data.layouts import LAYOUTS

    p.add_argument("--layout", choices=tuple(LAYOUTS), default=None,
                   help="dataset layout (default: detected and named on stderr): " + ", ".join(LAYOUTS))
    p.add_argument("--allow-absolute-paths", action="store_true",
                   help="list layout: accept absolute image paths (default: paths relative to the list file only)")


def add_statistics_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibrate", default=None, metavar="SET|split:train|split:eval",
                   help="also report accuracy at a threshold chosen (max balanced accuracy) on this set or split")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the 95%% intervals (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of --max-per-class sampling and of the bootstrap")


def cli_options(args: argparse.Namespace) -> dict[str, Any]:
    """Every option of a parsed command line, for the run block of metrics.json."""
    return {k: v for k, v in vars(args).items() if k not in ("handler", "takes_overrides")}


def _ci(interval: list[float] | None) -> str:
    return f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""


def print_evaluation_summary(metrics: dict[str, Any] | None, out: Path) -> None:
    """The lines `evaluate` commands end with (nothing on non-main processes, which get None)."""
    if metrics is None:
        return
    mean = metrics["mean"]
    iv = (metrics.get("intervals") or {}).get("mean", {})
    acc = "n/a" if mean["acc"] is None else f"{mean['acc']:.4f}{_ci(iv.get('acc'))}"
    bal = "n/a" if mean.get("bal_acc") is None else f"{mean['bal_acc']:.4f}{_ci(iv.get('bal_acc'))}"
    print(f"mean accuracy over {count(len(metrics['sets']), 'set')}: {acc}; balanced accuracy {bal}")
    for g, m in (metrics.get("groups") or {}).items():
        if m.get("bal_acc") is not None:
            g_iv = (metrics.get("intervals") or {}).get(g, {})
            print(f"{g} sets ({len(m['sets'])}): balanced accuracy {m['bal_acc']:.4f}{_ci(g_iv.get('bal_acc'))}")
    threshold = metrics.get("threshold")
    if threshold:
        cal = mean.get("bal_acc_cal")
        at = "n/a" if cal is None else f"{cal:.4f}"
        print(f"threshold {threshold['value']:.4f} chosen on {threshold['source']}: mean balanced accuracy {at}")
    for w in metrics.get("warnings") or []:
        print(f"warning: {w}")
    print(f"report: {out / 'report.md'}")
