"""CNNSpot-style detector: the whole pretrained network is fine-tuned, with Blur+JPEG(0.5) augmentation."""

from __future__ import annotations

import json

import torch

from fakereasoning.baselines import build
from fakereasoning.models.tiny import efficientnet_lite0


def test_backbone_is_finetuned_and_saved(trained: dict) -> None:
    detector, folder = trained["cnnspot"]
    pretrained = efficientnet_lite0(pretrained=True).state_dict()
    changed = [k for k, v in detector.net.state_dict().items() if not torch.equal(v, pretrained[k])]
    assert changed, "fine-tuning left the backbone untouched"
    assert all(p.requires_grad for p in detector.parameters())
    augment = json.loads((folder / "train_config.json").read_text())["augment"]
    assert augment["blur_prob"] == 0.5 and augment["jpeg_prob"] == 0.5
    assert augment["jpeg_quality"] == [30, 100] and augment["blur_sigma"] == [0.0, 3.0]


def test_build_without_pretrained_weights_differs() -> None:
    torch.manual_seed(0)
    bare = build("cnnspot").__class__.build({}, pretrained=False)
    ref = efficientnet_lite0(pretrained=True).state_dict()
    assert not torch.equal(bare.net.state_dict()["_conv_stem.weight"], ref["_conv_stem.weight"])
