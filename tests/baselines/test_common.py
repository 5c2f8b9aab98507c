"""The shared detector machinery, exercised through every kind: save/load, evaluation, bad input, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fakereasoning.baselines import BaselineError, TrainOptions, build, load, train_baseline
from fakereasoning.baselines.common import CONFIG_FILE, WEIGHTS_FILE
from fakereasoning.data.account import DataRefused
from fakereasoning.evaluate.metrics import METRIC_KEYS
from fakereasoning.evaluate.runner import EvalOptions, evaluate
from fakereasoning.imageio import load_image
from fakereasoning.schema import VERDICT_SCHEMA, fast_answer

KINDS = ("univfd", "npr", "cnnspot")


def _eval_images(root: Path) -> list:
    return [load_image(p) for p in sorted((root / "evaluation_sets").rglob("*.png"))]


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_gives_identical_probabilities(kind: str, trained: dict, toy_root: Path) -> None:
    detector, folder = trained[kind]
    images = _eval_images(toy_root)
    before = detector.probabilities(images, batch_size=5)
    again = load(folder, kind=kind)  # the train output folder resolves to its model/
    assert np.array_equal(before, again.probabilities(images, batch_size=5))
    assert np.allclose(before, again.probabilities(images, batch_size=7), atol=1e-6)  # batching: rounding only
    assert 0.0 < before.min() and before.max() < 1.0
    cfg = json.loads((folder / "model" / CONFIG_FILE).read_text())
    assert cfg["kind"] == kind and cfg["info"]["steps"] > 0
    log = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == cfg["info"]["steps"] and all(np.isfinite(r["loss"]) for r in log)


@pytest.mark.parametrize("kind", ["univfd", "npr"])
def test_learns_the_toy_task(kind: str, trained: dict, toy_root: Path, tmp_path: Path) -> None:
    detector, _ = trained[kind]
    metrics = evaluate(detector, toy_root, tmp_path, EvalOptions())
    assert metrics["mean"]["acc"] >= 0.9, metrics["mean"]


def test_evaluate_writes_fast_mode_outputs(trained: dict, toy_root: Path, tmp_path: Path) -> None:
    detector, _ = trained["cnnspot"]
    metrics = evaluate(detector, toy_root, tmp_path, EvalOptions(max_per_class=2))
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["mode"] == "fast"
    assert set(on_disk) == {"mode", "run", "threshold", "sets", "mean", "intervals", "warnings", "data"}
    assert on_disk["data"]["found"] == on_disk["data"]["usable"] == 8
    assert on_disk["run"]["model_id"] == "baseline-cnnspot" and on_disk["run"]["layout"] == "mmfr"
    assert on_disk["threshold"] is None and set(on_disk["intervals"]["sets"]) == {"a", "b"}
    assert set(on_disk["sets"]) == {"a", "b"}
    for per_set in on_disk["sets"].values():
        assert set(per_set) == set(METRIC_KEYS) and per_set["n"] == 4
        assert per_set["bleu1"] is None  # no reasoning from a baseline
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    for r in rows:
        assert r["schema"] == VERDICT_SCHEMA and r["model_id"] == "baseline-cnnspot"
        assert r["raw_text"] == fast_answer(r["label"]) and r["attributes"] == {}
        assert (r["prob_fake"] >= 0.5) == (r["label"] == "fake")
    for name in ("report.md", "metrics.csv", "roc.png"):
        assert (tmp_path / name).is_file()


def test_unreadable_eval_image_is_named_and_refused_beyond_the_allowed_share(
        trained: dict, toy_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    shutil.copytree(toy_root / "evaluation_sets", root / "evaluation_sets")
    (root / "evaluation_sets/a/1_fake/broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataRefused, match=r"1 of 17 items .*evaluation_sets/a/1_fake/broken.png: does not decode"):
        evaluate(trained["npr"][0], root, tmp_path / "out", EvalOptions())
    metrics = evaluate(trained["npr"][0], root, tmp_path / "out", EvalOptions(allow_skipped=0.1))
    assert metrics["sets"]["a"]["n"] == 8 and metrics["sets"]["b"]["n"] == 8
    assert "skipped: evaluation_sets/a/1_fake/broken.png: does not decode" in capsys.readouterr().err
    assert "Skipped 1 of 17 images" in (tmp_path / "out/report.md").read_text()


def test_unreadable_training_image_is_skipped_by_name(toy_root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    shutil.copytree(toy_root, root)
    (root / "part/1_fake/f0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    detector = build("npr", {"crop": 32, "channels": 16})
    opts = TrainOptions(max_steps=8, batch_size=16, val_fraction=0.0)
    with pytest.raises(DataRefused, match=r"1 of 48 items .*part/1_fake/f0.png: does not decode"):
        train_baseline(detector, root, tmp_path / "out", opts, progress=False)
    opts.allow_skipped = 0.05
    summary = train_baseline(detector, root, tmp_path / "out", opts, progress=False)
    assert summary.steps == 8 and (summary.model_dir / WEIGHTS_FILE).is_file()
    assert "f0.png" in capsys.readouterr().err


def test_resume_replays_exactly(toy_root: Path, tmp_path: Path) -> None:
    """Stop after 3 of 6 steps (keep the step-3 checkpoint), resume: the same weights as one 6-step run."""
    opts = TrainOptions(max_steps=6, batch_size=8, save_every=3, keep_last=2, val_fraction=0.0)
    full = build("npr", {"crop": 32, "channels": 16}, seed=1)
    train_baseline(full, toy_root, tmp_path / "a", opts, progress=False)
    shutil.rmtree(tmp_path / "a/checkpoints/step-0000006")
    shutil.rmtree(tmp_path / "a/model")
    resumed = build("npr", {"crop": 32, "channels": 16}, seed=99)  # different init: the checkpoint must win
    summary = train_baseline(resumed, toy_root, tmp_path / "a", opts, resume=True, progress=False)
    assert json.loads((tmp_path / "a/train_summary.json").read_text())["resumed_from"] == 3
    assert summary.images_seen == 3 * 8
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    steps = [json.loads(x)["step"] for x in (tmp_path / "a/metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6


def test_same_seed_same_model(toy_root: Path, tmp_path: Path) -> None:
    runs = []
    for i in range(2):
        d = build("npr", {"crop": 32, "channels": 16}, seed=3)
        train_baseline(d, toy_root, tmp_path / str(i), TrainOptions(max_steps=3, batch_size=4, seed=3), progress=False)
        runs.append(d.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_full_mode_is_refused(trained: dict, toy_root: Path) -> None:
    with pytest.raises(BaselineError, match="fast mode only"):
        trained["npr"][0].detect_many(_eval_images(toy_root)[:1], mode="full")


def test_detect_many_reads_paths_in_order(trained: dict, toy_root: Path) -> None:
    detector = trained["npr"][0]
    paths = sorted((toy_root / "evaluation_sets/a").rglob("*.png"))
    verdicts = detector.detect_many([str(p) for p in paths], batch_size=3)
    assert [v.image for v in verdicts] == [str(p) for p in paths]
    probs = detector.probabilities([load_image(p) for p in paths])
    assert np.allclose([v.prob_fake for v in verdicts], probs)


def test_bad_options_and_mismatched_weights(trained: dict, tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="unknown option"):
        build("npr", {"crops": 3})
    with pytest.raises(BaselineError, match="multiple of 8"):
        build("npr", {"crop": 30})
    with pytest.raises(BaselineError, match="unknown baseline kind"):
        build("resnet")
    folder = trained["npr"][1] / "model"
    other = tmp_path / "m"
    shutil.copytree(folder, other)
    cfg = json.loads((other / CONFIG_FILE).read_text())
    cfg["options"]["channels"] = 48
    (other / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(BaselineError, match="do not match"):
        load(other)
    (other / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(BaselineError, match="unreadable weights"):
        load(other)
    with pytest.raises(BaselineError, match="not univfd"):
        load(folder, kind="univfd")


def test_temperature_is_fitted_on_heldout_and_saved(toy_root: Path, tmp_path: Path) -> None:
    detector = build("npr", {"crop": 32, "channels": 16})
    summary = train_baseline(detector, toy_root, tmp_path, TrainOptions(max_steps=4, batch_size=8, val_fraction=0.5),
                             progress=False)
    t = summary.heldout["temperature"]
    assert summary.heldout["n"] >= 16 and t != 1.0 and detector.temperature == t
    assert json.loads((tmp_path / "model" / CONFIG_FILE).read_text())["temperature"] == t
    images = _eval_images(toy_root)[:4]
    assert np.allclose(detector.probabilities(images), 1 / (1 + np.exp(-detector.logits(images) / t)))
    assert load(tmp_path).temperature == t
