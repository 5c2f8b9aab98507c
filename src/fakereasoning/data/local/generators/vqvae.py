"""`vqvae`: a VQ-VAE with residual vector quantisation (as in VQGAN-style tokenisers, made high-capacity).

Latents (x2 downsampled) are split into groups of `dim` channels; each group vector is quantised by
`stages` residual codebooks of `codes` entries (straight-through gradients, commitment loss, codebook
initialised from data). The decoder (nearest + conv or transposed conv, drawn per seed) sees only codes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from fakereasoning.data.local.generators.base import GeneratorFamily


def _build(config: Mapping[str, Any]) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from fakereasoning.data.local.generators._nets import Decoder, Encoder

    class ResidualVQ(nn.Module):
        def __init__(self, dim: int, codes: int, stages: int) -> None:
            super().__init__()
            self.dim = dim
            self.codebooks = nn.Parameter(torch.randn(stages, codes, dim) * 0.1)
            self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

        def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n, c, h, w = z.shape
            flat = z.permute(0, 2, 3, 1).reshape(-1, self.dim)
            if self.training and not bool(self.initialised):
                with torch.no_grad():  # codebook init from data avoids dead codes
                    residual = flat
                    for s in range(self.codebooks.shape[0]):
                        idx = torch.randint(0, residual.shape[0], (self.codebooks.shape[1],))
                        self.codebooks[s].copy_(residual[idx])
                        residual = residual - self._nearest(residual, s)
                    self.initialised.fill_(True)
            quant = torch.zeros_like(flat)
            residual = flat
            commit = flat.new_zeros(())
            for s in range(self.codebooks.shape[0]):
                q = self._nearest(residual.detach(), s, grad=True)
                commit = commit + F.mse_loss(q, residual.detach()) + 0.25 * F.mse_loss(residual, q.detach())
                quant = quant + q
                residual = residual - q.detach()
            out = flat + (quant - flat).detach()  # straight-through estimator
            return out.reshape(n, h, w, c).permute(0, 3, 1, 2), commit

        def _nearest(self, x: torch.Tensor, stage: int, grad: bool = False) -> torch.Tensor:
            book = self.codebooks[stage]
            frozen = book.detach()
            norms = frozen.pow(2).sum(1)[None]
            # chunked: a 256 x 256 batch has ~10^6 vectors; one distance matrix would take gigabytes
            idx = torch.cat([
                (norms - 2 * chunk @ frozen.t()).argmin(dim=1) for chunk in x.split(32768)
            ])
            return book[idx] if grad else frozen[idx]

    class VQVAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w, lat, act = int(config["width"]), int(config["latent"]), str(config["act"])
            self.encoder = Encoder(w, lat, 1, act)
            self.quantizer = ResidualVQ(int(config["dim"]), int(config["codes"]), int(config["stages"]))
            self.decoder = Decoder(w, lat, 1, act, str(config["upsampler"]))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            q, commit = self.quantizer(self.encoder(x))
            return self.decoder(q), commit

    return VQVAE()


class VQVAEFamily(GeneratorFamily):
    name = "vqvae"
    description = "VQ-VAE with residual vector quantisation of x2-downsampled latents"

    def sample_config(self, rng: random.Random, preset: str) -> dict[str, Any]:
        tiny = preset == "tiny"
        return {
            "upsampler": rng.choice(["nearest", "transposed"]),
            "width": rng.choice([16, 24]) if tiny else rng.choice([28, 32]),
            "latent": 16,
            "dim": 4,
            "codes": 64 if tiny else 256,
            "stages": 3,
            "act": rng.choice(["relu", "silu", "lrelu"]),
            "steps": rng.randint(150, 200) if tiny else rng.randint(1200, 1500),
            "batch": 8 if tiny else 16,
            "patch": 16 if tiny else rng.choice([16, 20]),
            "lr": 2.5e-3,
            "commit_weight": 0.5,
            "texture_weight": rng.choice([2.0, 3.0, 4.0]),
        }

    def build(self, config: Mapping[str, Any]) -> Any:
        return _build(config)

    def loss(self, model: Any, batch: Any, step: int, config: Mapping[str, Any]) -> Any:
        from fakereasoning.data.local.generators._nets import fidelity_loss, texture_loss

        pred, commit = model(batch)
        loss = fidelity_loss(pred, batch, 0.0) + float(config["commit_weight"]) * commit
        return loss + float(config.get("texture_weight", 0.0)) * texture_loss(pred, batch)

    def generate(self, model: Any, images: Any, config: Mapping[str, Any], seed: int) -> Any:
        return model(images)[0]
