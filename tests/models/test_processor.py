from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from fakereasoning import schema
from fakereasoning.models.processor import IGNORE_INDEX, forensic_crops, semantic_tensor

from .conftest import make_samples


def test_forensic_crops_are_native_pixels():
    arr = np.random.default_rng(0).integers(0, 256, (100, 140, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    crops = forensic_crops(img, 32, 4)
    assert crops.shape == (4, 3, 32, 32)
    pixels = (crops.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for crop in pixels:  # every crop is an exact, 8-aligned slice of the original: nothing resampled
        hits = [
            (y, x)
            for y in range(0, 100 - 31, 8)
            for x in range(0, 140 - 31, 8)
            if np.array_equal(arr[y : y + 32, x : x + 32], crop)
        ]
        assert hits
    rnd = forensic_crops(img, 32, 3, random.Random(1))
    assert rnd.shape == (3, 3, 32, 32)


def test_small_image_is_padded_not_resized():
    arr = np.full((10, 20, 3), 200, dtype=np.uint8)
    crops = forensic_crops(Image.fromarray(arr), 32, 2)
    assert crops.shape == (2, 3, 32, 32)
    assert (crops[0, :, :10, :20] * 255).round().eq(200).all() and crops[0, :, 10:, :].eq(0).all()


def test_semantic_tensor_shape_and_square_padding():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    t = semantic_tensor(img, 16, mean=(0.5,) * 3, std=(0.5,) * 3, pad_square=True)
    assert t.shape == (3, 16, 16)
    assert t[0, 8, 8] == pytest.approx(1.0) and t[0, 0, 8] == pytest.approx(
        0.0, abs=0.02
    )  # padded band = mean


def test_batch_fields(tiny_model, images):
    samples = make_samples(images[:4])
    batch = tiny_model.collate(samples)
    text = tiny_model.text
    n_img = tiny_model.backbone.n_visual_tokens
    for i, (_, label, answer, kind) in enumerate(samples):
        ids = batch["input_ids"][i]
        assert int((ids == text.image_token_id).sum()) == n_img
        labels = batch["labels"][i]
        supervised = labels[labels != IGNORE_INDEX].tolist()
        decoded = tiny_model.tokenizer.decode(supervised[:-1]).strip()
        expected = answer if kind == "full" else schema.fast_answer(label)
        assert decoded == expected
        slot = int(batch["slots"][i])
        before = tiny_model.tokenizer.decode(ids[: slot + 1].tolist())
        assert before.rstrip().endswith("<CONCLUSION> This image is")
        assert batch["cpm_labels"][i].item() == (1 if label == "fake" else 0)
        mask = batch["reasoning_mask"][i]
        if kind == "full":
            reasoning = tiny_model.tokenizer.decode(ids[mask].tolist()).strip()
            assert reasoning == schema.parse_cot(answer).reasoning
        else:
            assert not mask.any()


def test_label_from_answer_and_mix_ratio(tiny_model, images):
    answer = schema.format_cot("fake", {}, "x")
    batch = tiny_model.collate([(images[0], None, answer, "full"), (images[1], None, None, "full")])
    assert batch["cpm_labels"].tolist() == [1, -1] and batch["slots"][1].item() == -1
    mix = [(images[i % 6], "real", schema.format_cot("real", {}, "x"), "mix") for i in range(200)]
    tiny_model.processor.fast_prompt_ratio = 0.25
    kinds = tiny_model.processor(mix[:200], train=True, seed=3)["prompt_kinds"]
    assert 0.12 < kinds.count("fast") / 200 < 0.4
    with pytest.raises(ValueError):
        tiny_model.collate([(images[0], "real", None, "quick")])


def test_truncation_drops_slot(tiny_tokenizer, images):
    from fakereasoning.models import FakeReasoning

    from .conftest import TINY_KW

    model = FakeReasoning.build("tiny", tokenizer=tiny_tokenizer, **{**TINY_KW, "max_length": 60})
    batch = model.collate(make_samples(images[:2])[1:2])
    assert batch["input_ids"].shape[1] == 60 and batch["slots"].item() == -1


def test_facl_attributes_come_from_release_format_answers(tiny_model, images):
    # the release format names no attribute: FACL's weighting reads findings of known forms back
    edges = "edges follow a 2-pixel grid: pixel differences inside 2x2 cells are 7% stronger"
    known = schema.format_cot("fake", {"Irregular Image Edges": edges}, "a portrait")
    free = schema.format_cot("fake", {"Irregular Image Edges": "the hair dissolves into the background"}, "")
    assert "Irregular Image Edges" not in known
    batch = tiny_model.collate([(images[1], "fake", known, "full"), (images[1], "fake", free, "full"),
                                (images[1], "fake", known, "fast")])
    assert batch["attributes"] == [frozenset({"Irregular Image Edges"}), frozenset(), frozenset()]
