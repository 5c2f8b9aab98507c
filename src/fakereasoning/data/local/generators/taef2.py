"""TAEF2: the tiny autoencoder of the FLUX.2 latent space (published by madebyollin/taesd, MIT licence),
reimplemented here from its published architecture; only the weights are read, from a local path.

Why: a real photo passed through a real-world generator's decoder carries that decoder's traces on exactly
the photo's content (aligned fakes: Rajan et al., ICLR 2025; DRCT, ICML 2024), so a detector trained on
such pairs cannot lean on content. The weight files are `taef2_encoder.pth` / `taef2_decoder.pth` (torch
state dicts of tensors only), checked by sha256 and loaded with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from fakereasoning.errors import FakeReasoningError

LATENT_CHANNELS = 32
WIDTH = 64
WEIGHTS_SHA256 = {
    "taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
}
SOURCE = "madebyollin/taesd@5cccb12 (MIT)"


def _conv(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class _Residual(nn.Module):
    """Three 3x3 convolutions with a skip; the FLUX.2 variant adds a grouped-norm 1x1 bottleneck that mixes
    global statistics in first (`pool`)."""

    def __init__(self, channels: int, global_mixing: bool) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = (
            nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c), nn.ReLU(),
                          nn.Conv2d(4 * c, c, 1, bias=False))
            if global_mixing else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


class _SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3.0) * 3.0


def encoder() -> nn.Sequential:
    """8x down-sampling: three stride-2 stages of three residual blocks; the deepest stage mixes globally."""
    layers: list[nn.Module] = [_conv(3, WIDTH), _Residual(WIDTH, False)]
    for stage in range(3):
        layers.append(_conv(WIDTH, WIDTH, stride=2, bias=False))
        layers += [_Residual(WIDTH, stage == 2) for _ in range(3)]
    layers.append(_conv(WIDTH, LATENT_CHANNELS))
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """Mirror of the encoder with nearest-neighbour x2 up-sampling after each stage."""
    layers: list[nn.Module] = [_SoftClamp(), _conv(LATENT_CHANNELS, WIDTH), nn.ReLU()]
    for stage in range(3):
        layers += [_Residual(WIDTH, stage == 0) for _ in range(3)]
        layers += [nn.Upsample(scale_factor=2), _conv(WIDTH, WIDTH, bias=False)]
    layers += [_Residual(WIDTH, False), _conv(WIDTH, 3)]
    return nn.Sequential(*layers)


class TAEF2(nn.Module):
    """Encoder + decoder; `reconstruct` maps images in [0, 1] to their FLUX.2-latent round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = encoder()
        self.decoder = decoder()

    @classmethod
    def from_dir(cls, directory: str | Path) -> TAEF2:
        model = cls()
        for name, part in (("taef2_encoder.pth", model.encoder), ("taef2_decoder.pth", model.decoder)):
            path = Path(directory) / name
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise FakeReasoningError(f"{path}: cannot read the TAEF2 weights ({exc.strerror or exc})") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != WEIGHTS_SHA256[name]:
                raise FakeReasoningError(f"{path}: sha256 {digest} is not that of {SOURCE}'s {name}")
            import io

            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # tensors only
            try:
                part.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise FakeReasoningError(f"{path}: weights do not fit the TAEF2 architecture ({exc})") from None
        return model.eval().requires_grad_(False)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1], H and W multiples of 8 -> same shape in [0, 1]."""
        return self.decoder(self.encoder(images)).clamp(0, 1)


class TAEF2Family:
    """MMFR-Local family "taef2": photos through the real FLUX.2 latent space's tiny autoencoder (aligned
    fakes). Nothing is trained; the weights come from the folder the user gives (`build-local --taef2 DIR`),
    so the family exists only when they do. Evaluation-only: unseen by models trained on MMFR-Local."""

    name = "taef2"
    description = "TAEF2 (tiny FLUX.2 autoencoder, madebyollin/taesd) reconstructions: aligned fakes"
    reconstruction = True

    def __init__(self, weights_dir: str | Path) -> None:
        self.weights_dir = Path(weights_dir)

    def sample_config(self, rng: object, preset: str) -> dict[str, object]:
        return {"steps": 0, "weights_sha256": dict(WEIGHTS_SHA256)}

    def load_or_train(self, config: object, sampler: object, seed: int, cache: object = None,
                      progress: object = None) -> tuple[TAEF2, bool]:
        return TAEF2.from_dir(self.weights_dir), True

    def run(self, model: TAEF2, images, config: object, seed: int):  # noqa: ANN001, ANN201 (uint8 arrays)
        import numpy as np

        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
        y = (model.reconstruct(x) * 255.0).round().to(torch.uint8)
        return y.permute(0, 2, 3, 1).contiguous().numpy()
