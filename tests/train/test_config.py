"""Training configs: every key of every config dataclass accepts only its type and range, and a bad value
is one line naming the key, the value and what is expected (never a traceback, never a NaN model)."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from fakereasoning.cli import main
from fakereasoning.models.config import FakeReasoningConfig
from fakereasoning.train.config import (
    DataConfig,
    OptimConfig,
    RunConfig,
    TrainConfigError,
    from_dict,
    load_config,
)

SECTIONS: dict[str, type] = {"data": DataConfig, "optim": OptimConfig, "run": RunConfig, "model": FakeReasoningConfig}
KEYS = [(section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _accepts_text(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    return hint is str or str in typing.get_args(hint)


def wrong_type(cls: type, name: str) -> object:
    """A value of a type the key does not take: a number for text keys, text for every other key."""
    return 12 if _accepts_text(cls, name) else "abc"


def _message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_every_key_refuses_a_wrong_type_and_a_non_finite_number(section: str, key: str) -> None:
    cls = SECTIONS[section]
    for value in (wrong_type(cls, key), math.nan, math.inf, -math.inf):
        with pytest.raises(TrainConfigError) as excinfo:
            from_dict({section: {key: value}}, source="c.toml")
        text = _message(excinfo)
        assert text.startswith(f"c.toml: {section}.{key} = ") and "expected" in text, text
    # the same through a `key=value` override, as TOML reads it
    for text_value in ("nan", "inf", "-inf", "[1, 2, 3]"):
        with pytest.raises(TrainConfigError, match=rf"^defaults: {section}\.{key} = .*expected"):
            load_config(None, [f"{section}.{key}={text_value}"])


@pytest.mark.parametrize("override", ["optim.lr=abc", "optim.batch_size=1.5", "optim.epochs=abc", "optim.betas=abc",
                                      "run.seed=abc", "run.threads=abc", "model.d_model=abc", "data.jpeg_prob=abc",
                                      "optim.lr=1e999", "optim.betas=[0.9, nan]", "optim.batch_size=true",
                                      "data.jpeg_quality=[90, 200]", "run.seed=-1", "model.use_facl=1"])
def test_the_issue_s_overrides_are_one_line_errors(override: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path), "--output", str(tmp_path / "out"), override]) == 1
    captured = capsys.readouterr()
    key = override.split("=")[0]
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    assert f"{key} = " in captured.err and "expected" in captured.err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_same_values_in_a_toml_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nlr = \"abc\"\n")
    with pytest.raises(TrainConfigError, match=rf"^{path}: optim.lr = 'abc': expected a finite number > 0$"):
        load_config(path)
    path.write_text("[model]\nd_model = 1.5\n")
    with pytest.raises(TrainConfigError, match=rf"^{path}: model.d_model = 1.5: expected a whole number >= 1$"):
        load_config(path)


def test_good_values_are_kept_and_normalised() -> None:
    cfg = from_dict({"optim": {"lr": 1, "betas": [0.8, 0.9]}, "data": {"jpeg_quality": [70, 90]},
                     "model": {"d_model": 64, "cpm_weight": 2}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.8, 0.9) and cfg.data.jpeg_quality == (70, 90)
    assert cfg.model == {"backbone": "tiny", "d_model": 64, "cpm_weight": 2}
    assert from_dict({}).to_dict() == from_dict(from_dict({}).to_dict()).to_dict()  # defaults pass their own check


def test_a_pair_must_be_ordered_and_a_choice_known() -> None:
    with pytest.raises(TrainConfigError, match=r"data.blur_sigma = \[2.0, 1.0\]: expected .*low <= high"):
        from_dict({"data": {"blur_sigma": [2.0, 1.0]}})
    with pytest.raises(TrainConfigError, match=r"run.mixed_precision = 'fp8': expected one of 'no', 'bf16', 'fp16'"):
        from_dict({"run": {"mixed_precision": "fp8"}})


def test_a_huge_integer_is_shown_by_its_size() -> None:
    with pytest.raises(TrainConfigError, match=r"run.seed = <an integer of 5000 digits>: expected"):
        from_dict({"run": {"seed": 10**5000 - 1}})


def test_the_train_only_model_key_is_checked_too() -> None:
    with pytest.raises(TrainConfigError, match=r"^config: model.init_from = 12: expected text$"):
        from_dict({"model": {"init_from": 12}})
    with pytest.raises(TrainConfigError, match=r"unknown key 'bogus'"):
        from_dict({"model": {"bogus": 1}})
