"""Building blocks shared by the autoencoder families: encoders, decoders with a chosen upsampler, losses.

The upsampler is the architectural choice whose trace real generators leave (checkerboard of transposed
convolutions, nearest-neighbour blockiness smoothed by a conv as in the Stable Diffusion VAE decoder,
bilinear interpolation, sub-pixel convolution). The latent keeps the full information budget of the image
(channels x (1/down)^2 >= 3 values per pixel) and `texture_loss` makes the decoder reproduce the local
high-frequency energy of photos (a cheap stand-in for the adversarial loss of real VAE decoders), so fakes
are faithful (PSNR > 30 dB) and about as sharp as photos: the only signal left is the generator's trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

UPSAMPLERS = ("transposed", "nearest", "bilinear", "pixelshuffle")


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "silu": nn.SiLU(), "lrelu": nn.LeakyReLU(0.2), "gelu": nn.GELU()}[name]


def upsample_block(kind: str, width: int) -> nn.Module:
    """A x2 upsampling layer of the given kind (all learned except the interpolation itself)."""
    if kind == "transposed":
        return nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
    if kind == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1))
    if kind == "bilinear":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(width, width, 3, padding=1)
        )
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampler {kind!r}; choose one of {UPSAMPLERS}")


class Encoder(nn.Module):
    """Space-to-depth (lossless) then convolutions at the latent resolution: cheap, and quick to train.

    The trace under study is the decoder's; the encoder only has to keep the information.
    """

    def __init__(self, width: int, latent: int, down: int, act: str) -> None:
        super().__init__()
        factor = 2**down
        layers: list[nn.Module] = [nn.PixelUnshuffle(factor), nn.Conv2d(3 * factor * factor, width, 3, padding=1)]
        layers += [_act(act), nn.Conv2d(width, width, 3, padding=1), _act(act)]
        layers.append(nn.Conv2d(width, latent, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)


class Decoder(nn.Module):
    def __init__(self, width: int, latent: int, down: int, act: str, upsampler: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(latent, width, 3, padding=1), _act(act)]
        for _ in range(down):
            layers += [upsample_block(upsampler, width), _act(act)]
            layers += [nn.Conv2d(width, width, 3, padding=1), _act(act)]
        layers.append(nn.Conv2d(width, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.net(z) + 1.0) * 0.5


class AutoEncoder(nn.Module):
    """Deterministic autoencoder, or a VAE (`variational=True`: Gaussian latent, mean used at inference)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        w, lat, down, act = int(config["width"]), int(config["latent"]), int(config["down"]), str(config["act"])
        self.variational = bool(config.get("variational", False))
        self.encoder = Encoder(w, lat * (2 if self.variational else 1), down, act)
        self.decoder = Decoder(w, lat, down, act, str(config["upsampler"]))
        if self.variational:  # start with a tiny posterior variance: sampling noise would swamp early training
            last = self.encoder.net[-1]
            assert isinstance(last, nn.Conv2d) and last.bias is not None
            with torch.no_grad():
                last.bias[lat:] = -10.0

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-12.0, 6.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self.encode(x)
        return self.decoder(mean)


def _highpass_energy(x: torch.Tensor) -> torch.Tensor:
    """Local RMS (4x4 cells) of the Laplacian: how much fine grain and texture a region carries."""
    lap = x[:, :, 1:-1, 1:-1] * 4 - x[:, :, :-2, 1:-1] - x[:, :, 2:, 1:-1] - x[:, :, 1:-1, :-2] - x[:, :, 1:-1, 2:]
    return F.avg_pool2d(lap.pow(2), 4, ceil_mode=True).add(1e-8).sqrt()


def texture_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Match the local high-frequency energy (not the exact grain): decoders trained on pixel losses alone
    average texture away, which makes fakes blurrier than photos; GAN-trained decoders do not."""
    return F.l1_loss(_highpass_energy(pred), _highpass_energy(target))


def fidelity_loss(pred: torch.Tensor, target: torch.Tensor, freq_weight: float) -> torch.Tensor:
    """MSE (PSNR) + L1, plus an optional L1 on FFT magnitudes (a randomised variation between models;
    measured here it does little for sharpness: `texture_loss` is what keeps the grain)."""
    loss = 10.0 * F.mse_loss(pred, target) + F.l1_loss(pred, target)
    if freq_weight > 0:
        fp = torch.fft.rfft2(pred, norm="ortho").abs()
        ft = torch.fft.rfft2(target, norm="ortho").abs()
        loss = loss + freq_weight * F.l1_loss(fp, ft)
    return loss
