"""`fakereasoning detect`: errors printed once, and no model load when no input can be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakereasoning import infer
from fakereasoning.cli import main


def test_no_usable_input_means_no_model_load_and_each_error_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded although no input can be used")

    monkeypatch.setattr(infer, "load_model", never)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["detect", str(bad), str(tmp_path / "missing.png"), "--mode", "fast"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("bad.png") == 1 and captured.err.count("missing.png: file not found") == 1


def test_a_wrong_model_folder_fails_first_and_lists_what_is_below(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run/model").mkdir(parents=True)
    (tmp_path / "run/model/config.json").write_text("{}")
    assert main(["detect", str(tmp_path / "x.png"), "--model", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a model folder" in err and "run/model" in err


def test_readable_detect_says_what_the_verdict_is_worth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from PIL import Image

    from fakereasoning.paths import DEFAULT_MODEL_DIR
    from fakereasoning.schema import LIMITS_NOTE, Verdict, fast_answer

    class Model:
        model_id = "m"

        def detect_many(self, images, mode, batch_size, **_):  # type: ignore[no-untyped-def]
            return [Verdict.from_answer("x", 0.95, fast_answer("fake"), model_id="m") for _ in images]

    monkeypatch.setattr(infer, "load_model", lambda *a, **k: Model())
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert main(["detect", str(image), "--mode", "fast"]) == 0
    out = capsys.readouterr().out
    assert "p(fake) = 0.950: very likely fake" in out
    assert out.strip().splitlines()[-1] == f"note: {LIMITS_NOTE} (model card: {DEFAULT_MODEL_DIR / 'MODEL_CARD.md'})"
