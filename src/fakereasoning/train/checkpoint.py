"""Checkpoints that a kill cannot corrupt and that load without unpickling anything.

A checkpoint is a folder `step-NNNNNNN/` holding the model (its own `save_pretrained` layout), the
optimizer tensors (`optimizer.safetensors`), and everything else as JSON (`trainer_state.json`: step,
optimizer hyper-parameters, scheduler state, RNG seeds). It is written into a temp folder and renamed
into place, so a folder named `step-*` with a `trainer_state.json` is always complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from fakereasoning.errors import FakeReasoningError
from fakereasoning.fsio import atomic_write_json, share_files, staging_dir

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
MODEL_SUBDIR = "model"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def optimizer_to_flat(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON-able metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    per: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, _, name = key.partition(".")
        per.setdefault(int(idx), {})[name] = value
    for idx, values in meta.get("scalars", {}).items():
        per.setdefault(int(idx), {}).update(values)
    return {"state": per, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: Path, step: int, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
    extra: dict[str, Any],
) -> Path:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step-{step:07d}"
    tmp = staging_dir(target)
    try:
        model.save_pretrained(tmp / MODEL_SUBDIR)
        tensors, meta = optimizer_to_flat(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = {"step": step, "optimizer": meta, "scheduler": scheduler.state_dict(), **extra}
        atomic_write_json(tmp / STATE_FILE, json.loads(json.dumps(state, default=_jsonable)))
        share_files(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / STATE_FILE).is_file():
            found.append((int(m.group(1)), child))
    return [p for _, p in sorted(found)]


def prune_checkpoints(directory: Path, keep_last: int) -> None:
    for old in list_checkpoints(directory)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in directory.glob(".step-*.tmp"):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)


def load_trainer_state(checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(checkpoint / OPTIMIZER_FILE))
    except (OSError, ValueError) as exc:
        raise FakeReasoningError(f"{checkpoint}: unreadable checkpoint ({exc})") from None
    opt_state = optimizer_from_flat(tensors, state["optimizer"])
    for group in opt_state["param_groups"]:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict(opt_state)
    scheduler.load_state_dict(state["scheduler"])
    return state
