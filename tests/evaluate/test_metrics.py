"""Evaluation metrics: values checked against hand computations and the reference libraries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakereasoning.errors import FakeReasoningError
from fakereasoning.evaluate.metrics import (
    METRIC_KEYS,
    ReasoningScorer,
    attribute_f1,
    compute_metrics,
    detection_metrics,
    expected_calibration_error,
)
from fakereasoning.evaluate.perturb import compose, parse_perturbation
from fakereasoning.evaluate.report import write_report


def row(set_: str, truth: str, p: float, failed: bool = False, **kw: object) -> dict[str, object]:
    return {"set": set_, "truth": truth, "prob_fake": p, "failed": failed, **kw}


def test_detection_metrics_by_hand() -> None:
    rows = [row("a", "fake", 0.9), row("a", "fake", 0.4), row("a", "real", 0.1), row("a", "real", 0.6),
            row("a", "real", 0.2, failed=True)]
    m = detection_metrics(rows)
    assert m["n"] == 5 and m["failure_rate"] == pytest.approx(0.2)
    assert m["fake_acc"] == 0.5 and m["real_acc"] == 0.5 and m["acc"] == 0.5
    assert m["auc"] == pytest.approx(0.75)  # pairs (fake>real): 0.9>0.1, 0.9>0.6, 0.4>0.1; 0.4<0.6
    assert 0 < m["ap"] <= 1


def test_threshold_is_inclusive_and_single_class_has_no_auc() -> None:
    m = detection_metrics([row("a", "fake", 0.5), row("a", "fake", 0.7)])
    assert m["fake_acc"] == 1.0 and m["real_acc"] is None and m["auc"] is None and m["ap"] is None


def test_ece_perfect_and_overconfident() -> None:
    assert expected_calibration_error([1.0, 0.0], [1, 0]) == pytest.approx(0.0)
    # always 0.95 confident, right half the time: ECE = 0.45
    assert expected_calibration_error([0.95, 0.95, 0.05, 0.05], [1, 0, 0, 1]) == pytest.approx(0.45)


def test_attribute_f1() -> None:
    assert attribute_f1([], []) == 1.0
    assert attribute_f1(["a"], []) == 0.0
    assert attribute_f1(["a", "b"], ["b", "c"]) == pytest.approx(0.5)


def test_reasoning_scores_match_libraries() -> None:
    scorer = ReasoningScorer()
    assert scorer.bleu1("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert scorer.bleu1("", "x") == 0.0
    assert scorer.rouge_l("the cats sitting", "the cat sits") == pytest.approx(1.0)  # stemming
    rows = [row("a", "fake", 0.9, reasoning="grid pattern. Therefore, this image is fake.",
                reference="grid pattern", consistent=True, attributes=["Anomalous Image Texture"],
                reference_attributes=["Anomalous Image Texture"]),
            row("a", "real", 0.1, reasoning="x", reference="sharp", consistent=False, attributes=[],
                reference_attributes=["High Image Quality"])]
    m = compute_metrics(rows, "full", scorer)
    s = m["sets"]["a"]
    assert s["consistency"] == 0.5 and s["attr_f1"] == 0.5 and s["css"] is None
    assert set(m["mean"]) == set(METRIC_KEYS)
    fast = compute_metrics(rows, "fast", scorer)
    assert all(fast["sets"]["a"][k] is None for k in ("bleu1", "rouge_l", "css", "consistency", "attr_f1"))


def test_findings_view_and_correct_only_scores() -> None:
    """findings_*: the answer's attribute texts joined as the reference is (the frame costs nothing);
    *_correct: only images whose verdict is right (a wrong verdict states the other kind's attributes)."""
    scorer = ReasoningScorer()
    ref = {"Low Image Quality": "soft detail", "Anomalous Image Texture": "grid pattern"}
    joined = "grid pattern soft detail"  # sorted attribute names: Anomalous..., Low...
    right = row("a", "fake", 0.9, label="fake", reference=joined, consistent=True, attributes=dict(ref),
                reasoning="From low-level perspective: Anomalous Image Texture: grid pattern. Low Image Quality: "
                          "soft detail. Therefore, this image is fake.")
    wrong = row("a", "fake", 0.2, label="real", reference=joined, consistent=True,
                attributes={"High Image Quality": "crisp edges"},
                reasoning="From low-level perspective: High Image Quality: crisp edges. Therefore, this image is real.")
    s = compute_metrics([right, wrong], "full", scorer)["sets"]["a"]
    assert s["findings_rouge_l"] == pytest.approx(0.5)  # 1.0 for the right one, 0.0 for the wrong one
    assert s["rouge_l_correct"] == pytest.approx(scorer.rouge_l(right["reasoning"], joined))
    assert s["rouge_l_correct"] < 1.0 and s["rouge_l"] < s["rouge_l_correct"]
    reordered = dict(right, attributes={"Low Image Quality": "soft detail", "Anomalous Image Texture": "grid pattern"})
    assert compute_metrics([reordered], "full", scorer)["sets"]["a"]["findings_rouge_l"] == pytest.approx(1.0)


def test_css_with_minilm_orders_similarity() -> None:
    from fakereasoning.evaluate.encoders import load_encoder

    scorer = ReasoningScorer(load_encoder("minilm"))
    same, other = scorer.css(
        ["the image shows blocky compression artifacts", "a dog runs on the beach"],
        ["blocky compression artifacts are visible", "the noise residual repeats every two pixels"],
    )
    assert same > other and -1.0 <= other <= same <= 1.0 + 1e-6


def test_mean_is_unweighted_over_sets(tmp_path: Path) -> None:
    rows = [row("a", "fake", 0.9), row("a", "real", 0.1), row("b", "fake", 0.2), row("b", "real", 0.1),
            row("b", "real", 0.3), row("b", "real", 0.4)]
    m = compute_metrics(rows, "fast")
    assert m["sets"]["a"]["acc"] == 1.0 and m["sets"]["b"]["acc"] == 0.75
    assert m["mean"]["acc"] == pytest.approx(0.875)
    report = write_report(tmp_path, rows, m)
    assert "| **mean** |" in report.read_text()
    for name in ("predictions.jsonl", "metrics.json", "metrics.csv", "roc.png", "reliability.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["mean"]["acc"] == pytest.approx(0.875)
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 6


def test_perturbations() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    assert parse_perturbation("resize:0.5")(img).size == (24, 16)
    jpeg = np.asarray(parse_perturbation("jpeg:75")(img), dtype=int)
    assert jpeg.shape == (32, 48, 3) and np.abs(jpeg - np.asarray(img)).mean() > 1
    blur = np.asarray(parse_perturbation("blur:1.0")(img), dtype=float)
    assert blur.std() < np.asarray(img, dtype=float).std()
    n1 = np.asarray(parse_perturbation("noise:0.02")(img, "k"))
    assert np.array_equal(n1, np.asarray(parse_perturbation("noise:0.02")(img, "k")))
    assert compose([parse_perturbation("jpeg:90"), parse_perturbation("resize:0.5")])(img, "k").size == (24, 16)
    for bad in ("jpeg", "jpeg:abc", "jpeg:0", "sharpen:1", "resize:-1"):
        with pytest.raises(FakeReasoningError):
            parse_perturbation(bad)


def test_faithfulness_metrics_are_shares_over_findings() -> None:
    from fakereasoning.evaluate.metrics import faithfulness_metrics

    checks = [{"findings": 2, "numbers": 3, "numbers_matching": 3, "consistent": 2, "garbled": 0, "caption": 1},
              {"findings": 2, "numbers": 1, "numbers_matching": 0, "consistent": 0, "garbled": 1, "caption": 0}]
    m = faithfulness_metrics(checks)
    assert m == {"numbers_matching": 0.75, "findings_consistent": 0.5, "findings_garbled": 0.25, "caption_rate": 0.5}
    assert faithfulness_metrics([])["numbers_matching"] is None
