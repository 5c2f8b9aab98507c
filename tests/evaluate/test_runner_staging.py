"""The evaluation runner's outputs: written as one set, so a kill never mixes two runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mmfr_factory import separable_dataset
from PIL import Image
from staging_kill import KILL_POINTS, killed_at

from fakereasoning.errors import FakeReasoningError
from fakereasoning.evaluate import report
from fakereasoning.evaluate.runner import EvalOptions, check_output_dir, evaluate
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


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_at_any_rename_leaves_a_whole_result_after_the_next_start(
        data: Path, tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    old = evaluate(ConstantModel(0.9), data, out, EvalOptions())

    def second_run() -> None:
        if point == "writing":
            monkeypatch.setattr(report, "plot_reliability", lambda *_, **__: os._exit(9))
        evaluate(ConstantModel(0.1), data, out, EvalOptions())

    assert killed_at(point, second_run) == 9
    capsys.readouterr()
    check_output_dir(out)  # what a later `evaluate` does first, before its model loads
    notes = capsys.readouterr().err
    assert f"fakereasoning: note: {out}: " in notes
    new = evaluate(ConstantModel(0.1), data, tmp_path / "ref", EvalOptions())

    def scores(metrics: object) -> dict[str, object]:  # the run block holds the date: not compared
        return {k: v for k, v in json.loads(json.dumps(metrics)).items() if k != "run"}

    found = scores(json.loads((out / "metrics.json").read_text()))
    assert found in (scores(old), scores(new)) and scores(old) != scores(new)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "ref"], "hidden leftovers"
