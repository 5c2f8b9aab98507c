"""The package's front door: a cheap import, and `from fakereasoning import FakeReasoning`."""

from __future__ import annotations

import inspect
import subprocess
import sys


def test_import_is_cheap_and_the_model_class_loads_on_use() -> None:
    code = ("import sys, fakereasoning; heavy = 'torch' in sys.modules; "
            "from fakereasoning import FakeReasoning; print(heavy, FakeReasoning.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "FakeReasoning"]


def test_the_api_detects_in_the_clis_default_mode() -> None:
    from fakereasoning import FakeReasoning
    from fakereasoning.cli import build_parser

    cli_default = build_parser().parse_args(["detect", "x.png"]).mode
    assert inspect.signature(FakeReasoning.detect).parameters["mode"].default == cli_default
    assert inspect.signature(FakeReasoning.detect_many).parameters["mode"].default == cli_default
