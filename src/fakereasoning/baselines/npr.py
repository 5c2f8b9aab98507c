"""NPR-style baseline (Tan et al., CVPR 2024): neighbouring-pixel relations, x - nearest-upsample(
nearest-downsample(x)), expose the local correlations that generators' upsampling layers leave; a small
CNN trained from scratch classifies them.

Differences from the original: the CNN is the project's `models.tiny.ForensicCNN` (three residual stages,
GroupNorm, mean+std pooling) instead of a truncated ResNet-50, and it also sees a Laplacian high-pass of
the crop next to the NPR residual; it reads native-pixel crops (never resampled) and averages the logits
of a grid of crops at test time instead of reading the whole image at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from fakereasoning.baselines.common import BaselineError, CropDetector


class NPR(CropDetector):
    kind: ClassVar[str] = "npr"
    DEFAULTS: ClassVar[dict[str, Any]] = {**CropDetector.DEFAULTS, "channels": 48}
    DEFAULT_LR: ClassVar[float] = 1e-3

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        from fakereasoning.models.tiny import ForensicCNN

        channels = self.options["channels"]
        if not isinstance(channels, int) or channels < 16 or channels % 16:
            raise BaselineError(f"npr: channels must be a positive multiple of 16 (GroupNorm of 8), got {channels!r}")

        self.cnn = ForensicCNN(int(self.options["channels"]), grid=1)
        self.fc = nn.Linear(self.cnn.out_dim, 1)

    def crop_logits(self, crops: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cnn(crops)[:, 0]).squeeze(-1)
