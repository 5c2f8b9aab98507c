"""`fakereasoning serve`: usage, and one-line errors (exit 1) before any server starts.

Starting the server for real is tested in tests/serve/test_model_e2e.py (a subprocess with a tiny model).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fakereasoning.cli import main


def test_help_lists_the_limits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--host", "--port", "--max-upload-mb", "--max-pixels", "--max-queue", "--max-batch"):
        assert flag in out
    assert "127.0.0.1" in out


def test_without_a_model_the_error_says_what_to_pass(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("fakereasoning.paths.DEFAULT_MODEL_DIR", tmp_path / "no-default-model")
    assert main(["serve", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--model DIR" in err and "Traceback" not in err


def test_a_missing_model_directory_is_named(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--model", str(tmp_path / "nope"), "--port", "0"]) == 1
    assert str(tmp_path / "nope") in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--max-queue", "0"], ["--max-pixels", "-5"], ["--timeout", "0"], ["--port", "70000"]])
def test_invalid_limits_exit_1(flags: list[str], capsys) -> None:
    assert main(["serve", *flags]) == 1
    assert "error" in capsys.readouterr().err


def test_a_taken_port_is_a_one_line_error(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_bad_mode_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--default-mode", "slow"])
    assert exc.value.code == 2
