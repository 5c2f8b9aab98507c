"""NPR-style detector: reads native crops, never resampled pixels."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from fakereasoning.baselines import build


def test_crops_are_native_pixels_and_flips_only_in_training() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    detector = build("npr", {"crop": 32, "eval_crops": 4, "train_crops": 3})
    x = detector.prepare([Image.fromarray(arr)], None)
    assert x.shape == (1, 4, 3, 32, 32)
    top_left = torch.from_numpy(arr[:32, :32]).permute(2, 0, 1).float() / 255
    assert torch.equal(x[0, 0], top_left)
    t = detector.prepare([Image.fromarray(arr)], random.Random(0))
    assert t.shape == (1, 3, 3, 32, 32)
    # every training crop is an 8-aligned window of the image, possibly mirrored
    windows = {arr[y : y + 32, x_ : x_ + 32].tobytes() for y in range(0, 49, 8) for x_ in range(0, 65, 8)}
    for c in t[0]:
        img = (c.permute(1, 2, 0) * 255).round().byte().numpy()
        assert img.tobytes() in windows or img[:, ::-1].tobytes() in windows


def test_image_logit_is_the_mean_of_its_crops() -> None:
    torch.manual_seed(0)
    detector = build("npr", {"crop": 32, "channels": 16}).eval()
    x = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        per_crop = detector.crop_logits(x.flatten(0, 1)).reshape(2, 4)
        assert torch.allclose(detector(x), per_crop.mean(1))
