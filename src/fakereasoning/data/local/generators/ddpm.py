"""`ddpm_sdedit`: a small pixel-space diffusion model (DDPM, epsilon prediction) used SDEdit-style.

The input is noised to step t0 of a linear-beta schedule, then denoised by deterministic DDIM steps; the
output is the model's sample, not a blend with the input. The denoiser is a tiny U-Net (one down level,
nearest + conv up, skip connection) with a sinusoidal timestep embedding. It is trained only on the noise
levels SDEdit uses here (t <= t_max), which is what makes a CPU-sized model sharp enough.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from fakereasoning.data.local.generators.base import GeneratorFamily

T_TOTAL = 1000


def _alpha_bar() -> Any:
    import torch

    betas = torch.linspace(1e-4, 0.02, T_TOTAL, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0).float()


def _build(config: Mapping[str, Any]) -> Any:
    import torch
    from torch import nn

    from fakereasoning.data.local.generators._nets import _act

    w, act = int(config["width"]), str(config["act"])

    class Denoiser(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Conv2d(3, w, 3, padding=1)
            self.temb = nn.Sequential(nn.Linear(32, w * 2), _act(act), nn.Linear(w * 2, w * 2))
            self.down = nn.Sequential(nn.Conv2d(w, w * 2, 4, stride=2, padding=1), _act(act))
            self.mid = nn.Sequential(
                nn.Conv2d(w * 2, w * 2, 3, padding=1), _act(act), nn.Conv2d(w * 2, w * 2, 3, padding=1), _act(act)
            )
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w * 2, w, 3, padding=1))
            self.out = nn.Sequential(_act(act), nn.Conv2d(w * 2, w, 3, padding=1), _act(act), nn.Conv2d(w, 3, 3, padding=1))
            self.act = _act(act)

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            half = 16
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
            ang = t.float()[:, None] * freqs[None]
            scale, shift = self.temb(torch.cat([ang.sin(), ang.cos()], 1)).chunk(2, 1)
            h0 = self.act(self.inp(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
            h = self.mid(self.down(h0))
            return self.out(torch.cat([self.up(h), h0], 1))

    return Denoiser()


class DDPMSDEditFamily(GeneratorFamily):
    name = "ddpm_sdedit"
    description = "small pixel-space DDPM, SDEdit-style: partial noising, then DDIM denoising"
    reconstruction = False

    def sample_config(self, rng: random.Random, preset: str) -> dict[str, Any]:
        tiny = preset == "tiny"
        t0 = rng.choice([20, 30, 40])
        return {
            "width": rng.choice([16, 24]) if tiny else rng.choice([28, 32]),
            "act": rng.choice(["silu", "relu"]),
            "t0": t0,
            "t_max": t0 + 10,
            "ddim_steps": rng.choice([3, 4]),
            "steps": rng.randint(150, 200) if tiny else rng.randint(450, 650),
            "batch": 8 if tiny else 16,
            "patch": 16 if tiny else 20,
            "lr": 2e-3,
        }

    def build(self, config: Mapping[str, Any]) -> Any:
        return _build(config)

    def loss(self, model: Any, batch: Any, step: int, config: Mapping[str, Any]) -> Any:
        import torch
        from torch.nn import functional as F

        ab = _alpha_bar()
        x0 = batch * 2.0 - 1.0
        t = torch.randint(1, int(config["t_max"]) + 1, (x0.shape[0],))
        a = ab[t - 1][:, None, None, None]
        eps = torch.randn_like(x0)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return F.mse_loss(model(xt, t), eps)

    def generate(self, model: Any, images: Any, config: Mapping[str, Any], seed: int) -> Any:
        import torch

        ab = _alpha_bar()
        gen = torch.Generator().manual_seed(seed)
        x0 = images * 2.0 - 1.0
        t0 = int(config["t0"])
        a0 = ab[t0 - 1]
        x = a0.sqrt() * x0 + (1 - a0).sqrt() * torch.randn(x0.shape, generator=gen)
        ts = torch.linspace(t0, 0, int(config["ddim_steps"]) + 1).round().long().tolist()
        pred_x0 = x
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            a_t = ab[t - 1]
            eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
            pred_x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
            if t_next == 0:
                x = pred_x0
            else:
                a_n = ab[t_next - 1]
                x = a_n.sqrt() * pred_x0 + (1 - a_n).sqrt() * eps
        return (x + 1.0) * 0.5
