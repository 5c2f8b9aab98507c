"""`fakereasoning evaluate`: a dataset or output folder it cannot use fails before the model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakereasoning import infer
from fakereasoning.cli import main


@pytest.fixture()
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded although nothing could be evaluated")

    monkeypatch.setattr(infer, "load_model", never)


def test_a_dataset_without_evaluation_sets_fails_before_the_model_loads(tmp_path: Path, no_model_load: None,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    assert main(["evaluate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")]) == 1
    assert "unknown dataset layout" in capsys.readouterr().err  # an empty folder is no dataset


def test_an_output_folder_of_other_files_fails_before_the_model_loads(tmp_path: Path, no_model_load: None,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("mine")
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "holds no earlier evaluation" in capsys.readouterr().err
