"""Frozen statistics: where the crops of an image are (multi-crop inference), and the feature function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fakereasoning.models.statistics import (
    StatisticsError,
    StatisticsExtractor,
    efficientnet,
    grid_crops,
    grid_positions,
    level_widths,
)


@pytest.mark.parametrize("count", [1, 2, 4, 9, 16])
def test_small_images_give_one_centred_crop(count: int) -> None:
    for h, w in ((224, 224), (100, 80), (256, 256), (240, 300)):
        assert len(grid_positions(h, w, 224, count)) == 1


@pytest.mark.parametrize(("count", "expected"), [(1, 1), (2, 2), (4, 4), (5, 5), (9, 9), (16, 16)])
def test_large_images_give_distinct_aligned_crops_inside(count: int, expected: int) -> None:
    h, w = 3000, 4000
    pos = grid_positions(h, w, 224, count)
    assert len(pos) == expected == len(set(pos))
    assert all(y % 8 == 0 and x % 8 == 0 and 0 <= y <= h - 224 and 0 <= x <= w - 224 for y, x in pos)


def test_grid_thins_where_the_image_is_narrow() -> None:
    pos = grid_positions(256, 1024, 224, 9)  # no room for a second row, three columns fit
    assert {y for y, _ in pos} == {16} and len(pos) == 3


def test_grid_crops_pad_small_images_and_read_native_pixels() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    crops = grid_crops(Image.fromarray(arr), 224, 4)
    assert crops.shape == (2, 3, 224, 224)  # 2 columns fit, 1 row
    (y, x) = grid_positions(300, 500, 224, 4)[0]
    assert torch.equal(crops[0], torch.from_numpy(arr[y:y + 224, x:x + 224]).permute(2, 0, 1).float() / 255)
    small = grid_crops(Image.fromarray(arr[:100, :120]), 224, 4)
    assert small.shape == (1, 3, 224, 224)


def test_extractor_dimension_and_unknown_net() -> None:
    net = efficientnet("lite0", pretrained=False)
    ex = StatisticsExtractor("lite0", net=net)
    assert ex.dim == 2 * sum(level_widths(net))
    out = ex(torch.rand(3, 3, 64, 64))
    assert out.shape == (3, ex.dim) and out.dtype == np.float32
    with pytest.raises(StatisticsError, match="unknown"):
        efficientnet("lite9")
