"""Grounded full mode: every stated number is the image's own measurement, every finding agrees with it,
the text does not depend on the batch, the evidence reaches the prompt, and captions are true or absent."""

from __future__ import annotations

import pytest
import torch

from fakereasoning import schema
from fakereasoning.evidence import findings
from fakereasoning.models import FakeReasoning
from fakereasoning.models.tiny import classifier_caption, imagenet_classes

from .conftest import TINY_KW, make_images, make_samples

GROUNDED = dict(TINY_KW, use_stats=True, stats_crop=32, stats_crops=2, evidence_prompt=True, imagenet_caption=True)


@pytest.fixture(scope="module")
def grounded(tiny_tokenizer) -> FakeReasoning:
    torch.manual_seed(0)
    model = FakeReasoning.build("tiny", tokenizer=tiny_tokenizer, **GROUNDED)
    # a few steps so that the LM prefers some wordings over others (an untrained one is uniform-ish)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    samples = make_samples(make_images(8, seed=3))
    for step in range(3):
        out = model(model.collate(samples, train=True, seed=step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return model.eval()


def test_every_number_is_measured_and_every_finding_consistent(grounded: FakeReasoning) -> None:
    images = make_images(8, seed=11)
    verdicts = grounded.detect_many(images, mode="full", batch_size=4)
    stated = 0
    for image, v in zip(images, verdicts, strict=True):
        assert v is not None and v.attributes, v.raw_text
        parsed = schema.parse_cot(v.raw_text)
        assert parsed.ok and parsed.consistent and parsed.label == v.label
        m = findings.measure_view(image)
        for check in findings.check_reasoning(v.attributes, m):
            assert check.finding is not None, v.attributes  # nothing garbled
            assert check.numbers_matching == check.numbers
            assert check.consistent
            stated += check.numbers
        kind = schema.ATTRIBUTES_OF_LABEL[v.label]
        assert set(v.attributes) <= set(kind)
        assert v.measurements == findings.measured_values(m)
    assert stated >= len(images)


def test_same_text_at_any_batch_size(grounded: FakeReasoning) -> None:
    images = make_images(6, seed=5)
    one = [grounded.detect_many([im], mode="full", batch_size=1)[0].raw_text for im in images]
    batched = [v.raw_text for v in grounded.detect_many(images, mode="full", batch_size=16)]
    assert one == batched
    again = [v.raw_text for v in grounded.detect_many(images, mode="full", batch_size=3)]
    assert again == batched


def test_evidence_block_enters_the_full_prompt(grounded: FakeReasoning) -> None:
    image = make_images(1, seed=2)[0]
    batch = grounded.collate([(image, "real", schema.format_cot("real", {}, "x"), "full")])
    text = grounded.tokenizer.decode(batch["input_ids"][0])
    assert schema.EVIDENCE_OPEN in text and "Laplacian variance" in text
    expected = f"{findings.measure_view(image).sharpness:.0f}"
    assert f"Laplacian variance {expected}" in text.replace(" ", " ")


def test_temperature_samples_only_supported_findings(grounded: FakeReasoning) -> None:
    images = make_images(4, seed=8)
    for v, image in zip(grounded.detect_many(images, mode="full", temperature=1.0, seed=3), images, strict=True):
        for check in findings.check_reasoning(v.attributes, findings.measure_view(image)):
            assert check.consistent and check.numbers_matching == check.numbers


def test_classifier_caption_is_absent_when_unsure() -> None:
    probs = torch.full((1000,), 1e-4)
    probs[1] = 0.62
    probs[309] = 0.12
    text = classifier_caption(probs)
    assert text == f"An ImageNet classifier sees {imagenet_classes()[1]} (0.62) or {imagenet_classes()[309]} (0.12)."
    assert classifier_caption(torch.full((1000,), 1e-3)) is None
    assert len(imagenet_classes()) == 1000 and imagenet_classes()[0] == "tench"


def test_verdict_v1_records_still_read() -> None:
    v1 = {"schema": "fakereasoning.verdict/v1", "image": "a.png", "label": "fake", "prob_fake": 0.9}
    v = schema.Verdict.from_dict(v1)
    assert v.measurements is None and v.label == "fake"
    assert schema.Verdict.from_dict(v.to_dict()).to_dict()["schema"] == schema.VERDICT_SCHEMA
