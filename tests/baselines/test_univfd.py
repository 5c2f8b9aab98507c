"""UnivFD-style probe: only the probe is saved; a local CLIP checkpoint can replace EfficientNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from fakereasoning.baselines import TrainOptions, build, load, train_baseline
from fakereasoning.baselines.common import WEIGHTS_FILE
from fakereasoning.imageio import load_image


def test_only_the_probe_is_saved(trained: dict) -> None:
    _, folder = trained["univfd"]
    state = load_file(str(folder / "model" / WEIGHTS_FILE))
    assert set(state) == {"probe.weight", "probe.bias"} and state["probe.weight"].shape == (1, 1280)


def test_backbone_stays_frozen(trained: dict) -> None:
    detector, _ = trained["univfd"]
    fresh = build("univfd")
    for (name, a), (_, b) in zip(detector.backbone.state_dict().items(), fresh.backbone.state_dict().items(),
                                 strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name
    detector.train()
    assert not detector.backbone.training


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=37, projection_dim=16, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8)
    path = tmp_path_factory.mktemp("clip")
    CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    return path


def test_clip_features(tiny_clip: Path, toy_root: Path, tmp_path: Path) -> None:
    detector = build("univfd", {"clip_path": str(tiny_clip)})
    assert detector.options["image_size"] == 32 and detector.probe.in_features == 16
    train_baseline(detector, toy_root, tmp_path, TrainOptions(max_steps=3, batch_size=8), progress=False)
    again = load(tmp_path)
    assert again.options["clip_path"] == str(tiny_clip.resolve())
    images = [load_image(p) for p in sorted((toy_root / "evaluation_sets/b").rglob("*.png"))]
    assert np.array_equal(detector.probabilities(images), again.probabilities(images))
    assert set(load_file(str(tmp_path / "model" / WEIGHTS_FILE))) == {"probe.weight", "probe.bias"}


def test_missing_clip_folder_is_one_clear_error(tmp_path: Path) -> None:
    from fakereasoning.baselines import BaselineError

    with pytest.raises(BaselineError, match="CLIP checkpoint folder not found"):
        build("univfd", {"clip_path": str(tmp_path / "nope")})
