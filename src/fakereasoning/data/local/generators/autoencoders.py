"""Autoencoder families that differ by the decoder's upsampler (the trace real decoders leave).

- `ae_transposed`: transposed-convolution decoder (GAN generators, early VAEs): checkerboard traces.
- `vae_nearest`: a VAE whose decoder upsamples by nearest neighbour + conv (the Stable Diffusion VAE choice).
- `ae_bilinear`: bilinear interpolation + conv decoder.
- `ae_pixelshuffle`: sub-pixel convolution (pixel shuffle) decoder, as in learned super-resolution.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from fakereasoning.data.local.generators.base import GeneratorFamily

PRESET_STEPS = {"tiny": (150, 200), "standard": (1300, 1800)}


class AutoencoderFamily(GeneratorFamily):
    upsampler = "nearest"
    variational = False

    def sample_config(self, rng: random.Random, preset: str) -> dict[str, Any]:
        lo, hi = PRESET_STEPS.get(preset, PRESET_STEPS["standard"])
        down = 1  # x2 latents: x4 ones do not reach 30 dB PSNR within a CPU minute
        width = rng.choice([16, 24]) if preset == "tiny" else rng.choice([28, 32, 36])
        # keep >= 3 latent values per pixel (4x more channels per extra down stage) so detail survives
        latent = rng.choice([12, 16]) * (4 ** (down - 1))
        return {
            "upsampler": self.upsampler,
            "variational": self.variational,
            "width": width,
            "latent": latent,
            "down": down,
            "act": rng.choice(["relu", "silu", "lrelu"]),
            "steps": rng.randint(lo, hi),
            "batch": 8 if preset == "tiny" else rng.choice([16, 24, 32]),
            "patch": 16 if preset == "tiny" else rng.choice([16, 20, 24]),
            "lr": rng.choice([2.5e-3, 3e-3]),
            "freq_weight": rng.choice([0.0, 0.02, 0.05]),
            "texture_weight": rng.choice([2.0, 3.0, 4.0]),
            "kl_weight": 1e-6 if self.variational else 0.0,
        }

    def build(self, config: Mapping[str, Any]) -> Any:
        from fakereasoning.data.local.generators._nets import AutoEncoder

        return AutoEncoder(config)

    def loss(self, model: Any, batch: Any, step: int, config: Mapping[str, Any]) -> Any:
        import torch

        from fakereasoning.data.local.generators._nets import fidelity_loss, texture_loss

        mean, logvar = model.encode(batch)
        z = mean
        kl = mean.new_zeros(())
        if logvar is not None:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        pred = model.decoder(z)
        loss = fidelity_loss(pred, batch, float(config["freq_weight"])) + float(config["kl_weight"]) * kl
        return loss + float(config.get("texture_weight", 0.0)) * texture_loss(pred, batch)

    def generate(self, model: Any, images: Any, config: Mapping[str, Any], seed: int) -> Any:
        return model(images)


class TransposedConvAE(AutoencoderFamily):
    name = "ae_transposed"
    description = "autoencoder with a transposed-convolution decoder (GAN-style upsampling)"
    upsampler = "transposed"


class NearestVAE(AutoencoderFamily):
    name = "vae_nearest"
    description = "VAE whose decoder upsamples by nearest neighbour + convolution (Stable Diffusion VAE style)"
    upsampler = "nearest"
    variational = True


class BilinearAE(AutoencoderFamily):
    name = "ae_bilinear"
    description = "autoencoder with a bilinear-interpolation + convolution decoder"
    upsampler = "bilinear"


class PixelShuffleAE(AutoencoderFamily):
    name = "ae_pixelshuffle"
    description = "autoencoder with a sub-pixel convolution (pixel shuffle) decoder"
    upsampler = "pixelshuffle"
