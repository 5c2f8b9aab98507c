"""`fakereasoning evaluate` on the public layouts through the CLI, with a tiny model trained on a GenImage tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layout_factory import forensynths, genimage, image_list

from fakereasoning.cli import main

SMALL = ["model.d_model=64", "model.n_layers=1", "model.n_heads=2", "model.ffn_dim=128", "model.facl_dim=32",
         "optim.batch_size=4", "run.log_every=1", "data.val_fraction=0.25", "model.forensic_crops=1",
         "model.forensic_crop=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a GenImage tree with an evaluation-only generator, a tiny model trained on its train/ split)."""
    base = tmp_path_factory.mktemp("genimage")
    root = genimage(base / "data", n_train=4, eval_only=("glide",))
    out = base / "run"
    assert main(["train", "--data", str(root), "--output", str(out), "--max-steps", "2", *SMALL]) == 0
    return root, out


def test_train_on_genimage_is_fast_mode_and_records_its_sets(trained: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, out = trained
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["seen_sets"] == ["midjourney", "sdv14"]
    assert summary["fast_only_images"] == summary["train_images"] > 0


def test_evaluate_genimage_with_no_extra_flags(trained: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root, out = trained
    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", str(out / "model"), "--data", str(root), "--out", str(ev)]) == 0
    captured = capsys.readouterr()
    assert "genimage layout (detected" in captured.err
    assert "mean accuracy over 3 sets" in captured.out and "balanced accuracy" in captured.out
    assert "unseen sets (1): balanced accuracy" in captured.out
    metrics = json.loads((ev / "metrics.json").read_text())
    assert {k: m["n"] for k, m in metrics["sets"].items()} == {"glide": 4, "midjourney": 4, "sdv14": 4}
    run = metrics["run"]
    assert run["layout"] == "genimage" and run["data_root"] == str(root.resolve())
    assert run["in_training"]["seen"] == ["midjourney", "sdv14"] and run["in_training"]["unseen"] == ["glide"]
    assert run["in_training"]["source"].startswith("model training summary")
    assert set(run["weights_sha256"]) == {"model.safetensors"}
    assert run["options"]["max_per_class"] is None and run["options"]["data"] == str(root)
    report = (ev / "report.md").read_text()
    assert "| **unseen mean** (1 set) |" in report and "model training summary" in report


def test_evaluate_other_layouts_and_forcing(trained: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, out = trained
    model = ["--model", str(out / "model")]
    f = forensynths(tmp_path / "f")
    assert main(["evaluate", *model, "--data", str(f), "--out", str(tmp_path / "e1"), "--calibrate", "progan",
                 "--bootstrap", "100", "--seed", "2"]) == 0
    metrics = json.loads((tmp_path / "e1/metrics.json").read_text())
    assert {k: m["n"] for k, m in metrics["sets"].items()} == {"progan": 8, "deepfake": 4}
    assert metrics["threshold"]["spec"] == "progan" and metrics["intervals"]["resamples"] == 100
    assert "threshold" in capsys.readouterr().out
    lst = image_list(tmp_path / "l", "jsonl")
    assert main(["evaluate", *model, "--data", str(lst), "--out", str(tmp_path / "e2"), "--layout", "list"]) == 0
    assert json.loads((tmp_path / "e2/metrics.json").read_text())["run"]["layout_detected"] is False
    capsys.readouterr()
    assert main(["evaluate", *model, "--data", str(f), "--out", str(tmp_path / "e3"), "--layout", "genimage"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "genimage layout (forced with --layout" in err[0] and "Traceback" not in "".join(err)
    assert err[-1].startswith("fakereasoning: error: ") and "no evaluation images in this genimage layout" in err[-1]
