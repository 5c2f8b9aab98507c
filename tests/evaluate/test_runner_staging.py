"""The evaluation runner's outputs: written as one set, so a kill never mixes two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import separable_dataset
from PIL import Image

from fakereasoning.errors import FakeReasoningError
from fakereasoning.evaluate import report
from fakereasoning.evaluate.runner import EvalOptions, evaluate
from fakereasoning.schema import Verdict, fast_answer


class ConstantModel:
    """Says p(fake) = `prob` for every image."""

    def __init__(self, prob: float) -> None:
        self.prob = prob

    def detect_many(self, images: list[Image.Image], mode: str, batch_size: int, **_: object) -> list[Verdict]:
        label = "fake" if self.prob >= 0.5 else "real"
        return [Verdict.from_answer("x", self.prob, fast_answer(label), model_id="const") for _ in images]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return separable_dataset(tmp_path_factory.mktemp("runner") / "data", n_train=2, n_eval=2, sets=("a",))


def test_a_run_killed_while_writing_leaves_the_previous_set_whole(data: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "eval"
    first = evaluate(ConstantModel(0.9), data, out, EvalOptions())
    assert first is not None
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(*_: object, **__: object) -> bytes:
        raise KeyboardInterrupt  # as a kill in the middle of writing the outputs

    monkeypatch.setattr(report, "plot_reliability", killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate(ConstantModel(0.1), data, out, EvalOptions())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["eval"]  # no staging debris either
    monkeypatch.undo()
    second = evaluate(ConstantModel(0.1), data, out, EvalOptions())
    assert second is not None and second != first
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(second))


def test_a_folder_holding_other_files_is_refused_before_scoring(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FakeReasoningError, match="holds no earlier evaluation"):
        evaluate(ConstantModel(0.9), data, out, EvalOptions())
    assert (out / "notes.txt").read_text() == "keep me"
