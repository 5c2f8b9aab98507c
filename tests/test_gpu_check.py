"""bench/gpu_check.py: its CPU fallback runs every step (build, train, evaluate, serve, peak memory) on tiny
dimensions; without CUDA the real check says so and exits 1."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
def test_cpu_fallback_runs_to_completion(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    assert _gpu_check().main(["--cpu-tiny", "--steps", "2", "--out", str(out), "--work", str(tmp_path / "w")]) == 0
    result = json.loads(out.read_text())
    assert result["mode"] == "cpu-tiny" and result["train"]["steps"] == 2 and result["train"]["steps_per_s"] > 0
    assert result["evaluate_fast"]["exit"] == result["evaluate_full"]["exit"] == 0
    assert result["serve"]["status"] == 200
    peak = result["inference_peak"]
    assert 0.9 <= peak["ratio"] <= 1.1  # the `model info` estimate against the measured peak


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_without_cuda_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _gpu_check().main(["--out", str(tmp_path / "x.json")]) == 1
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
