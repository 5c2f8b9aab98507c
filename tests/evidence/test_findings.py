"""Findings: templates agree with their thresholds, read back exactly, and the faithfulness check can fail."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from fakereasoning.evidence import findings
from fakereasoning.evidence.annotator import EvidenceAnnotator
from fakereasoning.evidence.measure import Measurements
from fakereasoning.schema import ATTRIBUTES_OF_LABEL

# Which measured value, per slot, the thresholds call evidence of forgery (None: no forgery reading).
FORGERY_READING = {
    "peak": lambda m: m.strongest_period()[1] >= findings.PEAK_WEAK,
    "npr_pct": lambda m: abs(m.npr_ratio - 1) >= findings.NPR_OFF,
    "npr_ratio": lambda m: abs(m.npr_ratio - 1) >= findings.NPR_OFF,
    "sharpness": lambda m: m.sharpness < findings.SHARP_LOW,
    "noise_cv": lambda m: m.noise_cv < findings.NOISE_CV_UNIFORM,
    "peak8": lambda m: m.peak_ratio.get(8, 1.0) >= findings.PEAK_STRONG,
    "cast_value": lambda m: max(abs(m.cast[0]), abs(m.cast[1])) >= findings.CAST_EXTREME,
}
AUTHENTIC_READING = {
    "peak": lambda m: m.strongest_period()[1] < findings.PEAK_WEAK,
    "sharpness": lambda m: m.sharpness >= findings.SHARP_HIGH,
    "noise_cv": lambda m: m.noise_cv >= findings.NOISE_CV_UNIFORM,
    "coherence": lambda m: m.edge_coherence >= findings.COHERENCE_HIGH,
}


def random_measurements(rng: random.Random) -> Measurements:
    return Measurements(
        width=256, height=256,
        peak_ratio={2: rng.uniform(0.9, 4.0), 4: rng.uniform(0.9, 3.0), 8: rng.uniform(0.9, 3.0)},
        npr_ratio=rng.uniform(0.85, 1.15), sharpness=rng.uniform(5, 2000), noise_level=rng.uniform(0.3, 12),
        noise_cv=rng.uniform(0.05, 1.2), noise_tiles=(rng.uniform(0.2, 3), rng.uniform(3, 12)),
        edge_density=rng.uniform(0, 0.3), edge_coherence=rng.uniform(0.2, 0.95), brightness=rng.uniform(20, 230),
        contrast=rng.uniform(10, 80), light_dx=rng.uniform(-60, 60), light_dy=rng.uniform(-60, 60),
        clipped_high=rng.choice([0.0, 0.001, 0.05]), clipped_low=0.0, saturation=rng.uniform(0, 80),
        cast=(rng.uniform(-100, 100), rng.uniform(-100, 100)),
    )


@pytest.mark.parametrize("seed", range(300))
def test_no_template_contradicts_its_threshold(seed: int) -> None:
    """An authentic finding never states a value the thresholds call forgery evidence, and the reverse;
    hedges say that nothing is decisive and are only written when no finding of their kind holds."""
    m = random_measurements(random.Random(seed))
    for label in ("real", "fake"):
        for attribute, cands in findings.candidates(m, label, all_wordings=True).items():
            assert attribute in ATTRIBUTES_OF_LABEL[label]
            for c in cands:
                stated = {name for name in findings._fields(c.finding.phrasings[c.phrasing])}
                contrary = FORGERY_READING if label == "real" else AUTHENTIC_READING
                if c.finding.hedge:
                    assert "no single measurement is decisive" in c.text
                    continue
                assert c.finding.holds(m)
                for name in stated & set(contrary):
                    assert not contrary[name](m), (c.finding.id, name, c.text)


@pytest.mark.parametrize("seed", range(100))
def test_every_candidate_reads_back_exactly(seed: int) -> None:
    m = random_measurements(random.Random(1000 + seed))
    for label in ("real", "fake"):
        for attribute, cands in findings.candidates(m, label, all_wordings=True).items():
            for c in cands:
                check = findings.check_finding(attribute, c.text, m)
                assert check.finding == c.finding.id
                assert check.numbers >= 1 and check.numbers_matching == check.numbers
                assert check.consistent


def test_a_changed_number_or_word_is_caught() -> None:
    m = random_measurements(random.Random(7))
    m.sharpness = 30.0
    text = "fine detail is smoothed away (Laplacian variance 30)"
    assert findings.check_finding("Low Image Quality", text, m).numbers_matching == 1
    wrong = findings.check_finding("Low Image Quality", "fine detail is smoothed away (Laplacian variance 593)", m)
    assert wrong.numbers == 1 and wrong.numbers_matching == 0
    # a true template on an image it does not fit: the number matches, the finding is inconsistent
    m.sharpness = 593.0
    check = findings.check_finding("Low Image Quality", "fine detail is smoothed away (Laplacian variance 593)", m)
    assert check.numbers_matching == 1 and not check.consistent
    garbled = findings.check_finding("Anomalous Image Texture", "repeats every 2 pixels (1.1.4x", m)
    assert garbled.finding is None and not garbled.consistent


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(base).resize((96, 96), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(img + rng.normal(0, 2 + 3 * (seed % 4), img.shape), 0, 255).astype(np.uint8)


def test_faithfulness_is_one_on_references_and_low_on_a_shuffled_pairing() -> None:
    images = [_photo(s) for s in range(12)]
    annotator = EvidenceAnnotator(0)
    refs = [{k: v for k, v in annotator.annotate(im, "real", f"k{i}").items() if v} for i, im in enumerate(images)]

    def score(pairs: list[tuple[dict[str, str], np.ndarray]]) -> float:
        checks = [c for attrs, im in pairs for c in findings.check_reasoning(attrs, findings.measure_view(im))]
        return sum(c.numbers_matching for c in checks) / sum(c.numbers for c in checks)

    assert score(list(zip(refs, images, strict=True))) == 1.0
    shuffled = refs[1:] + refs[:1]
    assert score(list(zip(shuffled, images, strict=True))) < 0.5


def test_measure_view_crops_large_images_without_resampling() -> None:
    big = np.zeros((1500, 1300, 3), dtype=np.uint8)
    big[:] = 255
    big[238:1262, 138:1162] = _photo(3)[0, 0]  # the central 1024 square is flat colour, the rest white
    m = findings.measure_view(big)
    assert (m.width, m.height) == (findings.MEASURE_SIDE, findings.MEASURE_SIDE)
    assert m.sharpness == 0.0
