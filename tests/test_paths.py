"""Which model folder a user means: a model, a `train --output` or checkpoint folder, or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakereasoning.errors import FakeReasoningError
from fakereasoning.paths import DEFAULT_MODEL_DIR, resolve_model_dir


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_model_run_and_checkpoint_folders_resolve(tmp_path: Path) -> None:
    run = tmp_path / "run"
    final = _model(run / "model")
    step = _model(run / "checkpoints/step-0000004/model")
    assert resolve_model_dir(final) == final
    assert resolve_model_dir(run) == final  # what `train --output` wrote
    assert resolve_model_dir(run / "checkpoints/step-0000004") == step
    assert resolve_model_dir(None) == DEFAULT_MODEL_DIR


def test_a_wrong_folder_says_what_it_expected_and_lists_models_below(tmp_path: Path) -> None:
    _model(tmp_path / "run/model")
    _model(tmp_path / "run/checkpoints/step-0000004/model")
    with pytest.raises(FakeReasoningError) as err:
        resolve_model_dir(tmp_path / "run/checkpoints")
    message = str(err.value)
    assert "expected config.json" in message and "holding model/" in message
    assert "model folders below it: step-0000004/model" in message
    with pytest.raises(FakeReasoningError, match="model folders below it: run/checkpoints/step-0000004/model, run/model"):
        resolve_model_dir(tmp_path)
    with pytest.raises(FakeReasoningError, match="model folder not found"):
        resolve_model_dir(tmp_path / "missing")
