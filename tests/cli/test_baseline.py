"""`fakereasoning baseline train|evaluate`: end to end through `main`, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import separable_dataset

from fakereasoning.cli import main
from fakereasoning.cli.baseline import KIND_CHOICES


def test_kind_choices_match_the_registry() -> None:
    from fakereasoning.baselines import KINDS

    assert KIND_CHOICES == KINDS


def test_train_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = separable_dataset(tmp_path / "d", n_train=8, n_eval=2)
    out = tmp_path / "npr"
    assert main(["baseline", "train", "--kind", "npr", "--data", str(root), "--output", str(out),
                 "--max-steps", "2", "--batch-size", "4", "--crop", "32", "--seed", "1"]) == 0
    assert "trained npr for 2 steps" in capsys.readouterr().out
    assert json.loads((out / "model/config.json").read_text())["options"]["crop"] == 32
    ev = tmp_path / "ev"
    assert main(["baseline", "evaluate", "--kind", "npr", "--model", str(out), "--data", str(root),
                 "--out", str(ev), "--sets", "a", "--perturb", "jpeg:75", "--max-per-class", "1"]) == 0
    assert "mean accuracy over 1 set:" in capsys.readouterr().out
    metrics = json.loads((ev / "metrics.json").read_text())
    assert list(metrics["sets"]) == ["a"] and metrics["sets"]["a"]["n"] == 2
    assert "jpeg:75" in (ev / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["baseline", "evaluate", "--kind", "npr", "--model", "{tmp}/none", "--data", "{tmp}", "--out", "{tmp}/o"],
         "not a baseline model directory"),
        (["baseline", "train", "--kind", "npr", "--data", "{tmp}", "--output", "{tmp}/o", "--clip", "{tmp}"],
         "--clip applies to --kind univfd only"),
        (["baseline", "train", "--kind", "univfd", "--data", "{tmp}", "--output", "{tmp}/o", "--crop", "64"],
         "--crop applies to"),
        (["baseline", "train", "--kind", "npr", "--data", "{tmp}", "--output", "{tmp}/o", "--crop", "36"],
         "multiple of 8"),
    ],
)
def test_user_errors_exit_1_with_one_line(argv: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["baseline", "train", "--kind", "resnet", "--data", str(tmp_path), "--output", str(tmp_path)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["baseline", "train", "--kind", "npr", "--data", str(tmp_path), "--output", str(tmp_path),
              "--lr", "-1"])
    assert exc.value.code == 2
