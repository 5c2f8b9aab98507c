"""Baseline kinds by name: `fakereasoning baseline --kind K` and saved configs name their class here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fakereasoning.baselines.cnnspot import CNNSpot
from fakereasoning.baselines.common import BaselineDetector, BaselineError
from fakereasoning.baselines.npr import NPR
from fakereasoning.baselines.univfd import UnivFD

BASELINES: dict[str, type[BaselineDetector]] = {"univfd": UnivFD, "npr": NPR, "cnnspot": CNNSpot}
KINDS: tuple[str, ...] = tuple(BASELINES)


def detector_class(kind: str) -> type[BaselineDetector]:
    try:
        return BASELINES[kind]
    except KeyError:
        raise BaselineError(f"unknown baseline kind {kind!r}; choose one of {', '.join(KINDS)}") from None


def build(kind: str, options: dict[str, Any] | None = None, seed: int = 0) -> BaselineDetector:
    """A fresh detector of KIND, its trained parts initialised from SEED."""
    torch.manual_seed(seed)
    return detector_class(kind).build(options)


def load(directory: str | Path, kind: str | None = None, device: str | None = None) -> BaselineDetector:
    """A saved baseline; with KIND, refuse a folder that holds another kind."""
    return (detector_class(kind) if kind else BaselineDetector).from_pretrained(directory, device=device)
