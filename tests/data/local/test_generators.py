"""Generator families: registry, config sampling, training, generation, and the safetensors cache."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from fakereasoning.data.local.generators import (
    FAMILIES,
    TRAINING_FAMILIES,
    cache_dir,
    config_hash,
    get_family,
)


def _sampler(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.random((batch, 3, size // 4, size // 4)).astype(np.float32)
    return np.repeat(np.repeat(base, 4, axis=2), 4, axis=3)


def test_registry_has_six_families_with_distinct_traces() -> None:
    assert len(FAMILIES) >= 6
    assert set(TRAINING_FAMILIES) <= set(FAMILIES)
    upsamplers = {get_family(n).sample_config(random.Random(0), "tiny").get("upsampler") for n in FAMILIES}
    assert {"transposed", "nearest", "bilinear", "pixelshuffle"} <= upsamplers
    with pytest.raises(KeyError, match="unknown generator family"):
        get_family("nope")


def test_config_sampling_is_seeded_and_varies() -> None:
    fam = get_family("ae_bilinear")
    a = fam.sample_config(random.Random(1), "standard")
    assert a == fam.sample_config(random.Random(1), "standard")
    configs = [fam.sample_config(random.Random(s), "standard") for s in range(8)]
    assert len({config_hash("ae_bilinear", c) for c in configs}) > 1
    assert config_hash("x", a) != config_hash("y", a)


def test_cache_dir_follows_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKEREASONING_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "generators"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_trains_generates_and_caches(name: str, tmp_path: Path) -> None:
    fam = get_family(name)
    config = {**fam.sample_config(random.Random(0), "tiny"), "steps": 3}
    model, cached = fam.load_or_train(config, _sampler, seed=0, cache=tmp_path)
    assert not cached
    files = list((tmp_path / name).glob("*.safetensors"))
    assert len(files) == 1
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out = fam.run(model, images, config, seed=5)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)  # generator output, not a copy of the input
    again, cached = fam.load_or_train(config, _sampler, seed=0, cache=tmp_path)
    assert cached
    assert np.array_equal(fam.run(again, images, config, seed=5), out)
    files[0].write_bytes(b"damaged")  # a broken cache entry is retrained, not fatal
    _, cached = fam.load_or_train(config, _sampler, seed=0, cache=tmp_path)
    assert not cached


def test_texture_loss_penalises_blur_not_grain_placement() -> None:
    import torch
    from torch.nn import functional as F

    from fakereasoning.data.local.generators._nets import texture_loss

    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=g)
    blurred = F.avg_pool2d(sharp, 3, stride=1, padding=1)
    other_grain = torch.rand(2, 3, 32, 32, generator=g)  # same statistics, different pixels
    assert texture_loss(sharp, sharp).item() == 0.0
    assert texture_loss(blurred, sharp).item() > 2 * texture_loss(other_grain, sharp).item()
