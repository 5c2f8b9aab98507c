"""What every generator family shares: config hashing, the safetensors weight cache, training and batching.

A family is a small, real generative model trained here on the training crops. Its trained weights are
cached under `cache_dir()/<family>/<hash of config>.safetensors`, so a second build with the same config
(and the same training data fingerprint, which is part of the config) skips training.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fakereasoning.fsio import atomic_write_bytes

CACHE_ENV = "FAKEREASONING_CACHE"


def cache_dir() -> Path:
    """Where trained generator weights live: `$FAKEREASONING_CACHE/generators` or ~/.cache/fakereasoning."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "fakereasoning"
    return base / "generators"


def config_hash(name: str, config: Mapping[str, Any]) -> str:
    """A stable short hash of a family's full config (canonical JSON), the key of its cached weights."""
    blob = json.dumps({"family": name, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


PatchSampler = Callable[[int, int, np.random.Generator], np.ndarray]
"""(batch, size, rng) -> float32 array (batch, 3, size, size) in [0, 1] of training crops."""


class GeneratorFamily(ABC):
    """One generator family. Subclasses define the model, its loss and how it turns an image into a fake."""

    name: str = ""
    description: str = ""
    reconstruction: bool = True  # reconstruction families must be faithful (PSNR target 30 dB)

    @abstractmethod
    def sample_config(self, rng: random.Random, preset: str) -> dict[str, Any]:
        """Draw this family's architecture and training length (randomised so no one fingerprint dominates)."""

    @abstractmethod
    def build(self, config: Mapping[str, Any]) -> Any:
        """The torch module for a config (untrained)."""

    @abstractmethod
    def loss(self, model: Any, batch: Any, step: int, config: Mapping[str, Any]) -> Any:
        """Training loss on a batch of crops (torch tensor, N x 3 x H x W in [0, 1])."""

    @abstractmethod
    def generate(self, model: Any, images: Any, config: Mapping[str, Any], seed: int) -> Any:
        """Fakes for a batch of inputs (N x 3 x H x W in [0, 1]); every output pixel comes from the model."""

    # --- shared machinery ------------------------------------------------------------------------
    def train(
        self,
        config: Mapping[str, Any],
        sampler: PatchSampler,
        seed: int,
        progress: Callable[[int], None] | None = None,
    ) -> Any:
        import torch

        torch.manual_seed(seed)
        model = self.build(config)
        opt = torch.optim.Adam(model.parameters(), lr=float(config.get("lr", 2e-3)))
        steps = int(config["steps"])
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=float(config.get("lr", 2e-3)), total_steps=max(steps, 2), pct_start=0.15
        )
        rng = np.random.default_rng(seed)
        model.train()
        for step in range(steps):
            batch = torch.from_numpy(sampler(int(config["batch"]), int(config["patch"]), rng))
            loss = self.loss(model, batch, step, config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if progress is not None:
                progress(1)
        model.eval()
        return model

    def load_or_train(
        self,
        config: Mapping[str, Any],
        sampler: PatchSampler,
        seed: int,
        cache: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[Any, bool]:
        """The trained model for `config`, from the safetensors cache when present. Returns (model, cached)."""
        from safetensors.torch import load_file, save

        path = (cache or cache_dir()) / self.name / f"{config_hash(self.name, {**config, 'seed': seed})}.safetensors"
        if path.is_file():
            try:
                model = self.build(config)
                model.load_state_dict(load_file(str(path)))
                model.eval()
                return model, True
            except Exception:  # noqa: BLE001 - any unreadable or mismatched cache entry is retrained
                path.unlink(missing_ok=True)
        model = self.train(config, sampler, seed, progress)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(path, save(state, metadata={"family": self.name, "config": json.dumps(dict(config))}))
        return model, False

    def run(self, model: Any, images: np.ndarray, config: Mapping[str, Any], seed: int) -> np.ndarray:
        """uint8 HxWx3 images (a batch, same size) -> uint8 fakes of the same size."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
        with torch.inference_mode():
            y = self.generate(model, x, config, seed)
        y = (y.clamp(0, 1) * 255.0).round().to(torch.uint8)
        return y.permute(0, 2, 3, 1).contiguous().numpy()
