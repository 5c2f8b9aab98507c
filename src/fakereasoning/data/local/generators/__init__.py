"""The registry of generator families (one module per family). `FAMILIES` maps a name to its class."""

from __future__ import annotations

from fakereasoning.data.local.generators.autoencoders import (
    BilinearAE,
    NearestVAE,
    PixelShuffleAE,
    TransposedConvAE,
)
from fakereasoning.data.local.generators.base import (
    CACHE_ENV,
    GeneratorFamily,
    cache_dir,
    config_hash,
)
from fakereasoning.data.local.generators.ddpm import DDPMSDEditFamily
from fakereasoning.data.local.generators.vqvae import VQVAEFamily

FAMILIES: dict[str, type[GeneratorFamily]] = {
    cls.name: cls
    for cls in (NearestVAE, TransposedConvAE, VQVAEFamily, BilinearAE, PixelShuffleAE, DDPMSDEditFamily)
}
# Train-one-test-many: fakes of these families go into the training set; every family gets an evaluation set.
TRAINING_FAMILIES: tuple[str, ...] = ("vae_nearest", "ae_transposed", "vqvae")


def get_family(name: str) -> GeneratorFamily:
    try:
        return FAMILIES[name]()
    except KeyError:
        raise KeyError(f"unknown generator family {name!r}; known: {', '.join(FAMILIES)}") from None


__all__ = ["CACHE_ENV", "FAMILIES", "TRAINING_FAMILIES", "GeneratorFamily", "cache_dir", "config_hash", "get_family"]
