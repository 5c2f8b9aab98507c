"""The trainer: configs, checkpoints that resume exactly, and the train -> evaluate -> detect path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mmfr_factory import separable_dataset
from safetensors.torch import load_file

from fakereasoning.cli import main
from fakereasoning.train.checkpoint import list_checkpoints
from fakereasoning.train.config import TrainConfigError, load_config

# A very small model: the point here is the machinery, not accuracy.
SMALL = ["model.d_model=64", "model.n_layers=1", "model.n_heads=2", "model.ffn_dim=128", "model.facl_dim=32",
         "optim.batch_size=4", "run.log_every=1", "data.val_fraction=0.25", "model.forensic_crops=2"]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return separable_dataset(tmp_path_factory.mktemp("toy") / "data")


def test_config_file_overrides_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[optim]\nlr = 0.001\nbatch_size = 2\n[model]\nuse_facl = false\n')
    cfg = load_config(path, ["optim.lr=5e-4", "model.cpm_weight=2", 'run.output="x y"'])
    assert cfg.optim.lr == 5e-4 and cfg.optim.batch_size == 2 and cfg.run.output == "x y"
    assert cfg.model == {"backbone": "tiny", "use_facl": False, "cpm_weight": 2}
    for bad in (["optim.nope=1"], ["optim.lr=-1"], ["lr=1"], ["bogus.x=1"]):
        with pytest.raises(TrainConfigError):
            load_config(path, bad)
    path.write_text("[optim\n")
    with pytest.raises(TrainConfigError, match="malformed TOML"):
        load_config(path)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_resume_continues_exactly(toy_data: Path, tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    common = ["train", "--data", str(toy_data), *SMALL, "run.save_every=2"]
    assert main([*common, "--output", str(full), "--max-steps", "4"]) == 0
    assert [p.name for p in list_checkpoints(full / "checkpoints")] == ["step-0000002", "step-0000004"]
    # the same run "killed" after step 2: only the step-2 checkpoint survives
    assert main([*common, "--output", str(cut), "--max-steps", "4", "run.keep_last=1"]) == 0
    import shutil

    shutil.rmtree(cut / "checkpoints/step-0000004")
    shutil.rmtree(cut / "model")
    (cut / "checkpoints/.step-0000004.123.tmp").mkdir()  # debris of a killed save is ignored
    assert main([*common, "--output", str(cut), "--max-steps", "4", "--resume"]) == 0
    a, b = _weights(full / "model"), _weights(cut / "model")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"loss", "lm_loss", "cpm_loss", "facl_loss", "lr"} <= set(log[-1])


def test_train_evaluate_detect_end_to_end(toy_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(toy_data), "--output", str(out), "--max-steps", "3", *SMALL]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["heldout_images"] > 0
    usage = (Path(__file__).resolve().parents[2] / "docs/usage.md").read_text()
    undocumented = [p.name for p in out.iterdir() if f"`OUT/{p.name}" not in usage]
    assert undocumented == [], f"docs/usage.md does not list what train wrote: {undocumented}"
    model_dir = out / "model"
    ev = tmp_path / "eval"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(toy_data), "--out", str(ev),
                 "--mode", "full", "--max-per-class", "2", "--sets", "a", "--max-new-tokens", "48"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["mode"] == "full" and list(metrics["sets"]) == ["a"]
    m = metrics["sets"]["a"]
    assert m["n"] == 4 and m["failure_rate"] is not None
    for key in ("bleu1", "rouge_l", "css", "consistency", "attr_f1", "auc", "ece"):
        assert key in m
    # grounded reasoning, checked against the images by the evaluator: every stated number is measured
    assert m["numbers_matching"] == 1.0 and m["findings_consistent"] == 1.0 and m["findings_garbled"] == 0.0
    rows = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert {"schema", "set", "image", "truth", "reference", "failed", "prob_fake", "label"} <= set(rows[0])
    assert all(r["image"].startswith("evaluation_sets/a/") for r in rows)
    for r in rows:  # the conclusion agrees with the probability
        if not r["failed"]:
            assert ("This image is fake." in r["raw_text"]) == (r["prob_fake"] >= 0.5)
    ev2 = tmp_path / "eval-jpeg"  # --model also takes the checkpoint folder
    assert main(["evaluate", "--model", str(out / "checkpoints/step-0000003"), "--data", str(toy_data), "--out", str(ev2),
                 "--perturb", "jpeg:75", "--max-per-class", "2"]) == 0
    assert "jpeg:75" in (ev2 / "report.md").read_text()
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = toy_data / "evaluation_sets/b/1_fake/f0.png"
    code = main(["detect", str(good), str(bad), str(tmp_path / "nope*.png"), "--model", str(out), "--json",
                 "--mode", "fast"])
    assert code == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["image"] for x in lines] == [str(good), str(bad), str(tmp_path / "nope*.png")]
    assert lines[0]["schema"] == "fakereasoning.verdict/v2" and 0 <= lines[0]["prob_fake"] <= 1
    assert "error" in lines[1] and "error" in lines[2]


def _launch(args: list[str], env: dict[str, str]) -> None:
    """Run a 2-process job; on failure the assertion shows the job's stderr (the ranks' tracebacks)."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "fakereasoning"]
    proc = subprocess.run([*launch, *args], env=env, timeout=600, capture_output=True, text=True)
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stderr ---\n{proc.stderr[-8000:]}"


def test_two_processes_train_and_evaluate_like_one(toy_data: Path, tmp_path: Path) -> None:
    """gloo on CPU: 2 ranks train a few steps; their sharded evaluation equals a 1-process evaluation."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    _launch(["train", "--data", str(toy_data), "--output", str(out), "--max-steps", "2", *SMALL], env)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["processes"] == 2
    model = out / "model"
    two, one = tmp_path / "e2", tmp_path / "e1"
    _launch(["evaluate", "--model", str(model), "--data", str(toy_data), "--out", str(two), "--batch-size", "3"],
            env)
    assert main(["evaluate", "--model", str(model), "--data", str(toy_data), "--out", str(one)]) == 0
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    assert m1["sets"].keys() == m2["sets"].keys()
    for name in m1["sets"]:
        for key, value in m1["sets"][name].items():
            assert m2["sets"][name][key] == (pytest.approx(value, abs=1e-6) if value is not None else None), key
    rows1 = (one / "predictions.jsonl").read_text().splitlines()
    rows2 = (two / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(r)["image"] for r in rows1] == [json.loads(r)["image"] for r in rows2]


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    """A 1-rank gloo group in this process, as `torchrun` would leave one; destroyed afterwards if left."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg-store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_train_and_evaluate_end_the_process_group(toy_data: Path, tmp_path: Path, process_group: None) -> None:
    """Every rank must end the group when a job ends (a live gloo group at exit aborts now and then)."""
    import torch.distributed as dist

    out = tmp_path / "run"
    assert main(["train", "--data", str(toy_data), "--output", str(out), "--max-steps", "1", *SMALL]) == 0
    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg-store-2'}", rank=0, world_size=1)
    assert main(["evaluate", "--model", str(out / "model"), "--data", str(toy_data), "--out", str(tmp_path / "e"),
                 "--max-per-class", "1"]) == 0
    assert not dist.is_initialized()


def test_end_to_end_on_mmfr_local_tiny(local_tiny_dataset: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """train -> evaluate -> detect on the MMFR-Local `tiny` preset, through the CLI."""
    out = tmp_path / "run"
    small = [s for s in SMALL if not s.startswith("model.forensic_crops")] + ["model.forensic_crop=64",
                                                                                "model.forensic_crops=1"]
    assert main(["train", "--data", str(local_tiny_dataset), "--output", str(out), "--max-steps", "3", *small]) == 0
    ev = tmp_path / "eval"
    assert main(["evaluate", "--model", str(out / "model"), "--data", str(local_tiny_dataset), "--out", str(ev),
                 "--max-per-class", "3"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    manifest = json.loads((local_tiny_dataset / "manifest.json").read_text())
    assert set(metrics["sets"]) == {g["name"] for g in manifest["generators"]}
    assert all(m["n"] == 6 for m in metrics["sets"].values())
    capsys.readouterr()
    folder = local_tiny_dataset / "evaluation_sets" / sorted(metrics["sets"])[0]
    assert main(["detect", str(folder), "--model", str(out / "model"), "--json", "--mode", "fast"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(list(folder.rglob("*.png"))) and all(0 <= x["prob_fake"] <= 1 for x in lines)


def _strict_json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a JSONL file as strict JSON: NaN or Infinity literals fail."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{path}: non-JSON literal {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def _all_finite(model_dir: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in _weights(model_dir).values() if t.is_floating_point())


def test_a_diverging_run_stops_at_the_first_non_finite_loss(toy_data: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """optim.lr=1e30 is finite (the config takes it) and blows the weights up after one step."""
    out = tmp_path / "run"
    code = main(["train", "--data", str(toy_data), "--output", str(out), "--max-steps", "4", *SMALL,
                 "optim.lr=1e30", "optim.warmup_ratio=0", "run.save_every=1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("fakereasoning: error: step 2: non-finite loss") and "training stopped" in line, line
    assert str(out / "checkpoints/step-0000001") in line  # the last good checkpoint, named
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step-0000001"]
    assert _all_finite(out / "checkpoints/step-0000001/model")
    assert not (out / "model").exists() and not (out / "train_summary.json").exists()
    assert [r["step"] for r in _strict_json_lines(out / "metrics.jsonl")] == [1]


def test_a_non_finite_gradient_norm_stops_training_too(toy_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from accelerate import Accelerator

    clip = Accelerator.clip_grad_norm_
    calls = []

    def nan_on_third_step(self: Accelerator, *args: object, **kwargs: object) -> torch.Tensor:
        norm = clip(self, *args, **kwargs)
        calls.append(norm)
        return torch.tensor(float("inf")) if len(calls) == 3 else norm

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", nan_on_third_step)
    out = tmp_path / "run"
    assert main(["train", "--data", str(toy_data), "--output", str(out), "--max-steps", "4", *SMALL,
                 "run.save_every=2", "optim.max_grad_norm=0"]) == 1  # the norm is checked without clipping too
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("fakereasoning: error: step 3: non-finite gradient norm (inf)"), line
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step-0000002"]
    assert [r["step"] for r in _strict_json_lines(out / "metrics.jsonl")] == [1, 2]
