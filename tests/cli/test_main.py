"""The `fakereasoning` command itself: --debug at any level."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakereasoning.cli import main


@pytest.mark.parametrize("argv", [
    ["--debug", "data", "validate"],
    ["data", "--debug", "validate"],
    ["data", "validate", "--debug"],
])
def test_debug_works_before_or_after_the_subcommand(argv: list[str], tmp_path: Path) -> None:
    from fakereasoning.errors import DatasetError

    with pytest.raises(DatasetError):  # --debug re-raises instead of printing one line
        main([*argv, str(tmp_path / "missing")])


def test_without_debug_the_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(tmp_path / "missing.png"), "--model", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
