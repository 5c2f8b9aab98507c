"""The evidence annotator: schema-complete, grounded in measurements, canonical (or varied) and deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fakereasoning.evidence import EvidenceAnnotator, findings
from fakereasoning.schema import ATTRIBUTES_OF_LABEL


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(128, 70, (96, 96, 3)), (2, 2, 0))
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _upsampled(seed: int) -> np.ndarray:
    img = _photo(seed).astype(np.float32)
    img[::2, ::2] += 15  # checkerboard of a transposed convolution
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("label", ["real", "fake"])
def test_all_five_names_of_the_label_and_at_least_one_text(label: str) -> None:
    ann = EvidenceAnnotator(seed=0)
    for seed in range(4):
        for img in (_photo(seed), _upsampled(seed), np.full((64, 64, 3), 90, np.uint8)):
            out = ann.annotate(img, label, key=f"k{seed}")
            assert tuple(out) == ATTRIBUTES_OF_LABEL[label]
            assert any(out.values())
            assert all(v is None or (isinstance(v, str) and v) for v in out.values())


def test_texts_state_the_measured_trace() -> None:
    out = EvidenceAnnotator().annotate(_upsampled(0), "fake", key="x")
    texture = out["Anomalous Image Texture"]
    assert texture is not None and "2" in texture and ("period" in texture or "pixels" in texture)
    real = EvidenceAnnotator().annotate(_upsampled(0), "real", key="x")
    assert real["Natural and Consistent Image Texture"] is None  # no claim the evidence contradicts
    assert out["Semantic Irrationality"] is None and real["Semantic Rationality"] is None


def test_canonical_wording_by_default_the_same_for_every_key() -> None:
    img = _upsampled(1)
    texts = {EvidenceAnnotator(seed=s).annotate(img, "fake", key=f"{i}.png")["Anomalous Image Texture"]
             for s in (0, 7) for i in range(12)}
    assert len(texts) == 1
    finding = next(f for f in findings.FINDINGS if f.id == "texture.periodic")
    assert texts == {findings.render(finding.phrasings[0], findings.measure_view(img))}


def test_varied_wording_deterministic_for_seed_and_key_and_varied_across_keys() -> None:
    img = _upsampled(1)
    a = EvidenceAnnotator(seed=7, vary_wording=True).annotate(img, "fake", key="a.png")
    assert a == EvidenceAnnotator(seed=7, vary_wording=True).annotate(img, "fake", key="a.png")
    phrasings = {EvidenceAnnotator(seed=7, vary_wording=True).annotate(img, "fake", key=f"{i}.png")["Anomalous Image Texture"]
                 for i in range(12)}
    assert len(phrasings) >= 2


def test_rejects_unknown_label() -> None:
    with pytest.raises(ValueError, match="real' or 'fake"):
        EvidenceAnnotator().annotate(_photo(0), "maybe")  # type: ignore[arg-type]
