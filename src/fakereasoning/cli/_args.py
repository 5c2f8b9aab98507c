"""Helpers shared by command modules: argument types (argparse turns their errors into exit code 2) and
common printing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def print_evaluation_summary(metrics: dict[str, Any] | None, out: Path) -> None:
    """The two lines `evaluate` commands end with (nothing on non-main processes, which get None)."""
    if metrics is None:
        return
    mean = metrics["mean"]
    acc = "n/a" if mean["acc"] is None else f"{mean['acc']:.4f}"
    print(f"mean accuracy over {len(metrics['sets'])} sets: {acc}")
    print(f"report: {out / 'report.md'}")
