"""Hostile data gets one line naming the file, never a traceback: huge integers, over-long keys, non-object
conversation entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import released_layout

from fakereasoning.cli import main
from fakereasoning.data.account import DataRefused
from fakereasoning.errors import FakeReasoningError
from fakereasoning.train.data import load_examples

HUGE = "9" * 5000


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return released_layout(tmp_path / "d")


def _no_traceback(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.out + captured.err


@pytest.mark.parametrize("command", ["validate", "to-cot"])
def test_a_5000_digit_integer_names_its_file(root: Path, tmp_path: Path, command: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (root / "laion/laion_reasoning.json").write_text('{"laion/00000/000000000.jpg": {"High Image Quality": ' + HUGE + "}}")
    extra = ["--out", str(tmp_path / "cot.json")] if command == "to-cot" else []
    assert main(["data", command, str(root), *extra]) == 1
    text = _no_traceback(capsys)
    assert "laion/laion_reasoning.json: malformed JSON: Exceeds the limit (4300 digits)" in text


@pytest.mark.parametrize("command", ["validate", "to-cot"])
def test_a_300_character_key_is_a_problem_not_an_oserror(root: Path, tmp_path: Path, command: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = root / "laion/laion_reasoning.json"
    mapping = json.loads(path.read_text())
    mapping["laion/" + "x" * 300 + ".jpg"] = {"High Image Quality": "sharp"}
    path.write_text(json.dumps(mapping))
    extra = ["--out", str(tmp_path / "cot.json")] if command == "to-cot" else []
    assert main(["data", command, str(root), *extra]) == 1
    text = _no_traceback(capsys)
    assert "laion/laion_reasoning.json: key" in text and "longer than 255 bytes" in text


def test_training_names_each_unusable_conversation_and_refuses_beyond_the_allowed_share(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cot = root / "forgery_reasoning_cot.json"
    entries = json.loads(cot.read_text())
    cot.write_text(json.dumps([12, None, "str", {"image": "x.png", "conversations": 5}, *entries]))
    with pytest.raises(DataRefused, match=r"4 of 9 items .*forgery_reasoning_cot.json entry 0: expected an object"):
        load_examples(root, 0.0)
    train, held = load_examples(root, 0.0, allowed_skipped=0.5)
    assert len(train) == len(entries)
    err = capsys.readouterr().err
    for i in range(4):
        assert f"skipped: forgery_reasoning_cot.json entry {i}: " in err


def test_training_on_an_unreadable_conversations_file_is_an_error_naming_it(root: Path) -> None:
    cot = root / "forgery_reasoning_cot.json"
    cot.write_text("[" + HUGE + "]")
    with pytest.raises(FakeReasoningError, match=r"forgery_reasoning_cot.json: malformed JSON"):
        load_examples(root, 0.0)


def test_train_config_with_a_huge_integer_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[optim]\nmax_steps = " + HUGE + "\n")
    assert main(["train", "--config", str(config), "--data", str(tmp_path)]) == 1
    text = _no_traceback(capsys)
    assert f"{config}: malformed TOML" in text and text.count("\n") == 1
