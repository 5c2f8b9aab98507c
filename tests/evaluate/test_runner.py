"""The evaluation runner on every layout: shared images scored once, the calibrated threshold, seen / unseen
means, the run block, the report's interval table and plots; bench/ still reads metrics.json."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from layout_factory import forensynths, genimage, synthbuster

from fakereasoning.errors import FakeReasoningError
from fakereasoning.evaluate.report import reliability_figure, roc_figure
from fakereasoning.evaluate.runner import EvalOptions, evaluate
from fakereasoning.schema import Verdict, fast_answer


class Stub:
    """A detector that sees the factory's trace: fakes repeat every pixel twice along rows."""

    model_id = "stub-detector"

    def __init__(self) -> None:
        self.scored = 0

    def detect_many(self, images: list[Any], mode: str = "fast", batch_size: int = 16, **_: Any) -> list[Verdict]:
        self.scored += len(images)
        out = []
        for im in images:
            a = np.asarray(im, dtype=np.int64)
            p = float(np.clip(0.1 + 0.8 * (a[:, ::2] == a[:, 1::2]).mean() + 0.05 * (a.mean() / 255 - 0.5), 0, 1))
            label = "fake" if p >= 0.5 else "real"
            out.append(Verdict(image="x", label=label, prob_fake=p, raw_text=fast_answer(label), model_id=self.model_id))
        return out


def run(tmp_path: Path, root: Path, **kw: Any) -> tuple[dict[str, Any], Stub]:
    stub = Stub()
    metrics = evaluate(stub, root, tmp_path / "out", EvalOptions(**kw))
    assert metrics is not None
    return metrics, stub


def test_synthbuster_shares_reals_and_scores_them_once(tmp_path: Path) -> None:
    metrics, stub = run(tmp_path, synthbuster(tmp_path / "s"))
    assert stub.scored == 6  # 3 RAISE photos + 3 fakes, although the sets hold 5 + 4 images
    assert {k: (m["n"], m["n_real"], m["n_fake"]) for k, m in metrics["sets"].items()} == {
        "dalle3": (5, 3, 2), "glide": (4, 3, 1)}
    assert metrics["mean"]["n"] == 9 and isinstance(metrics["mean"]["n"], int)
    rows = [json.loads(x) for x in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and [r["set"] for r in rows].count("glide") == 4
    assert metrics["run"]["layout"] == "synthbuster" and metrics["run"]["images"] == 9
    assert any("fewer than 30 per class" in w for w in metrics["warnings"])


def test_calibrated_threshold_on_a_set_and_on_the_training_split(tmp_path: Path) -> None:
    root = genimage(tmp_path / "g", eval_only=("glide",))
    metrics, _ = run(tmp_path, root, calibrate="sdv14")
    t = metrics["threshold"]
    assert t["source"].startswith("set sdv14 (also evaluated") and (t["n_real"], t["n_fake"]) == (2, 2)
    assert 0 < t["value"] < 1 and metrics["sets"]["glide"]["acc_cal"] is not None
    assert "acc_cal" in metrics["intervals"]["sets"]["glide"]
    report = (tmp_path / "out/report.md").read_text()
    assert f"**{t['value']:.4f}** chosen on set sdv14" in report and f"acc @ {t['value']:.3f}" in report
    stub = Stub()
    m2 = evaluate(stub, root, tmp_path / "o2", EvalOptions(calibrate="split:train", sets=["glide"]))
    assert stub.scored == 4 + 12  # glide's val images, plus the 2 x 6 training images for the threshold
    assert m2["threshold"]["source"].startswith("split train") and (m2["threshold"]["n_real"], m2["threshold"]["n_fake"]) == (6, 6)
    assert len((tmp_path / "o2/predictions.jsonl").read_text().splitlines()) == 4  # calibration rows not reported
    with pytest.raises(FakeReasoningError, match="no evaluation set 'nope'"):
        run(tmp_path, root, calibrate="nope")
    with pytest.raises(FakeReasoningError, match="has no training split"):
        run(tmp_path, forensynths(tmp_path / "f"), calibrate="split:train")
    with pytest.raises(FakeReasoningError, match="use SET, set:SET"):
        run(tmp_path, root, calibrate="fold:1")


def test_seen_and_unseen_from_the_manifest_and_the_run_block(tmp_path: Path) -> None:
    root = genimage(tmp_path / "g", eval_only=("glide",))
    (root / "manifest.json").write_text(json.dumps({"generators": [
        {"name": "sdv14", "in_training": True}, {"name": "midjourney", "in_training": True},
        {"name": "glide", "in_training": False}]}))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights")
    metrics, _ = run(tmp_path, root, model_dir=str(model_dir), seed=3, bootstrap=200)
    run_block = metrics["run"]
    assert run_block["in_training"] == {"seen": ["midjourney", "sdv14"], "unseen": ["glide"],
                                        "source": "dataset manifest.json"}
    assert metrics["groups"]["seen"]["sets"] == ["midjourney", "sdv14"] and metrics["groups"]["unseen"]["n"] == 4
    assert set(metrics["intervals"]) >= {"mean", "seen", "unseen", "sets"} and metrics["intervals"]["resamples"] == 200
    assert run_block["weights_sha256"] == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}
    assert run_block["model_id"] == "stub-detector" and run_block["seed"] == 3
    assert run_block["layout"] == "genimage" and run_block["layout_detected"] is True
    assert re.fullmatch(r"[0-9a-f]{40}", run_block["git_commit"] or "")  # the tests run from a checkout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run_block["date_utc"])
    assert run_block["options"]["seed"] == 3 and run_block["options"]["bootstrap"] == 200
    report = (tmp_path / "out/report.md").read_text()
    for text in ("## Run", "weights sha256", "genimage layout, detected", "seen: midjourney, sdv14; unseen: glide",
                 "| **seen mean** (2 sets) | | 4 | 4 |", "| **unseen mean** (1 set) | | 2 | 2 |",
                 "| **mean** | 12 |", "## Warnings"):
        assert text in report, text
    assert re.search(r"\| glide \| no \| 2 \| 2 \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", report)
    csv = (tmp_path / "out/metrics.csv").read_text().splitlines()
    assert csv[0].startswith("set,in_training,n,") and csv[0].endswith("bal_acc_cal_hi")
    assert [line.split(",")[0] for line in csv[1:]] == ["glide", "midjourney", "sdv14", "mean", "seen_mean", "unseen_mean"]


def test_roc_curves_are_all_visible_and_reliability_has_counts(tmp_path: Path) -> None:
    rows = []
    rng = np.random.default_rng(0)
    for name, sep in (("a", 3.0), ("b", 3.0), ("c", 0.5)):  # a and b both perfect: they would overlap
        for i in range(20):
            truth = "fake" if i % 2 else "real"
            z = rng.normal() + (sep if truth == "fake" else -sep)
            rows.append({"set": name, "truth": truth, "prob_fake": float(1 / (1 + np.exp(-z))), "failed": False})
    fig = roc_figure(rows)
    ax = fig.axes[0]
    curves = [ln for ln in ax.get_lines() if ln.get_label() != "chance"]
    assert len(curves) == 3
    assert len({(ln.get_color(), ln.get_linestyle()) for ln in curves}) == 3
    assert len({ln.get_linestyle() for ln in curves}) == 3
    widths = [ln.get_linewidth() for ln in curves]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]  # thick first, thin on top
    assert ax.get_xlim()[0] < 0 and ax.get_ylim()[1] > 1  # curves on the frame stay visible
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(re.search(r"AUC \d\.\d{3}", lab) for lab in labels if lab != "chance")
    rel = reliability_figure(rows)
    texts = [t.get_text() for t in rel.axes[0].texts]
    assert texts and all(t.startswith("n=") for t in texts)
    assert sum(int(t[2:]) for t in texts) == 60 and "ECE" in rel.axes[0].get_title()


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_bench_scripts_still_read_metrics_json(tmp_path: Path) -> None:
    root = genimage(tmp_path / "g", eval_only=("glide",))
    metrics, _ = run(tmp_path, root)
    bench = Path(__file__).resolve().parents[2] / "bench"
    summary = _load(bench / "run.py", "bench_run").summarise(tmp_path / "out/metrics.json", ["sdv14"], ["glide"])
    assert summary["seen_mean_acc"] == round(metrics["sets"]["sdv14"]["acc"], 4)
    assert set(summary["per_set"]) == {"glide", "midjourney", "sdv14"}
    b = _load(bench / "baselines.py", "bench_baselines").summarise(metrics, {"sdv14"})
    assert b["mean_acc"] == metrics["mean"]["acc"]


# --- the account of what is scored (issue 22) -------------------------------------------------------------
@pytest.fixture()
def mmfr(tmp_path: Path) -> Path:
    from mmfr_factory import separable_dataset

    return separable_dataset(tmp_path / "d", n_train=2, n_eval=6, sets=("a", "b"))


def test_a_symlinked_evaluation_sets_folder_is_explained_as_validate_does(mmfr: Path, tmp_path: Path) -> None:
    import shutil

    shutil.move(mmfr / "evaluation_sets", tmp_path / "elsewhere")
    (mmfr / "evaluation_sets").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FakeReasoningError) as excinfo:
        run(tmp_path, mmfr)
    assert str(excinfo.value) == (f"{mmfr}: no evaluation sets: {mmfr / 'evaluation_sets'}: symbolic link leads "
                                  f"outside the dataset root (to {tmp_path / 'elsewhere'})")


def test_an_unreadable_image_is_skipped_by_name_within_the_allowed_share(mmfr: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from fakereasoning.data.account import DataRefused

    (mmfr / "evaluation_sets/a/1_fake/f2.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataRefused, match=r"1 of 24 .*evaluation_sets/a/1_fake/f2.png: does not decode"):
        run(tmp_path, mmfr)
    assert not (tmp_path / "out").exists()
    metrics, stub = run(tmp_path, mmfr, allow_skipped=0.05)
    assert stub.scored == 23 and metrics["sets"]["a"]["n_fake"] == 5
    data = metrics["data"]
    assert data["found"] == 24 and data["usable"] == 23 and data["sets"]["a"]["fake"]["skipped"] == 1
    assert data["skips"][0]["item"] == "evaluation_sets/a/1_fake/f2.png"
    err = capsys.readouterr().err
    assert "evaluation data: 24 images found, 23 usable, 1 skipped" in err
    assert "skipped: evaluation_sets/a/1_fake/f2.png: does not decode" in err


def test_images_in_a_bad_label_folder_refuse_the_sets_they_are_in(mmfr: Path, tmp_path: Path) -> None:
    from mmfr_factory import write_image

    from fakereasoning.data.account import DataRefused

    write_image(mmfr / "evaluation_sets/b/fake/x.png")
    with pytest.raises(DataRefused, match=r"evaluation_sets/b/fake/x.png: label folder 'fake' is not 0_real"):
        run(tmp_path, mmfr)
    metrics, _ = run(tmp_path, mmfr, sets=["a"])  # set a is whole
    assert metrics["data"]["skipped"] == 0 and list(metrics["sets"]) == ["a"]


def test_a_broken_reasoning_json_is_named_and_refused_in_full_mode_only(mmfr: Path, tmp_path: Path) -> None:
    from fakereasoning.data.account import DataRefused

    (mmfr / "evaluation_sets/a/a_reasoning.json").write_text("{oops")
    metrics, _ = run(tmp_path, mmfr)  # fast mode reads no reference
    assert any("evaluation_sets/a/a_reasoning.json: malformed JSON" in n for n in metrics["data"]["notes"])
    with pytest.raises(DataRefused, match=r"12 of 24 .*evaluation_sets/a/a_reasoning.json: malformed JSON"):
        evaluate(Stub(), mmfr, tmp_path / "full", EvalOptions(mode="full"))
