"""Session fixtures for the baseline tests: one learnable toy dataset, and each kind trained once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from mmfr_factory import separable_dataset

# Budgets that stay small on 2 cores but let the detectors that should learn the toy task learn it.
BUDGETS: dict[str, dict[str, Any]] = {
    "univfd": {"options": {}, "steps": 12, "lr": 1e-2},
    "npr": {"options": {"crop": 64, "channels": 32}, "steps": 60, "lr": 1e-3},
    "cnnspot": {"options": {"crop": 64}, "steps": 3, "lr": 1e-4},
}


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return separable_dataset(tmp_path_factory.mktemp("toy"), n_train=24, n_eval=4)


@pytest.fixture(scope="session")
def trained(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    """kind -> (the trained detector, its `train_baseline` output folder)."""
    from fakereasoning.baselines import TrainOptions, build, train_baseline

    torch.set_num_threads(min(2, torch.get_num_threads()))
    out: dict[str, tuple[Any, Path]] = {}
    for kind, b in BUDGETS.items():
        folder = tmp_path_factory.mktemp(f"train-{kind}")
        detector = build(kind, b["options"], seed=0)
        opts = TrainOptions(max_steps=b["steps"], batch_size=8, lr=b["lr"], val_fraction=0.2, log_every=5)
        train_baseline(detector, toy_root, folder, opts, progress=False)
        out[kind] = (detector, folder)
    return out
