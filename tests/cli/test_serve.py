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


@pytest.mark.parametrize("flags", [["--max-queue", "0"], ["--max-pixels", "-5"], ["--max-pixels-in-flight", "0"], ["--timeout", "0"], ["--port", "70000"]])
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


def test_one_access_line_per_request_on_stderr(capfd) -> None:
    import logging.config
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from fakereasoning.cli.serve import log_config
    from fakereasoning.serve import create_app

    from ..serve.conftest import StubDetector

    logging.config.dictConfig(log_config("info"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(StubDetector()), log_config=None, log_level="info"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        capfd.readouterr()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/v1/models").status_code == 200
        time.sleep(0.2)
        captured = capfd.readouterr()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    lines = [ln for ln in captured.err.splitlines() if '"GET /' in ln]
    assert len(lines) == 2 and '"GET /healthz HTTP/1.1" 200' in lines[0]
    assert '"GET' not in captured.out
