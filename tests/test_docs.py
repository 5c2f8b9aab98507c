"""The docs say what the code does: README command rows, serve --help, the model card's references."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from fakereasoning.cli import build_parser
from fakereasoning.paths import DEFAULT_MODEL_DIR

REPO = Path(__file__).resolve().parent.parent


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [m.group(1).replace("\\|", "|") for m in re.finditer(r"^\| `(fakereasoning [^`]+)` \|", text, re.M)]


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_shows_optional_options_in_brackets(command: str) -> None:
    words = command.split()[1:]
    path = [w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]*", w)]
    parser = build_parser()
    try:
        sub = _subparser(parser, path)
    except (KeyError, StopIteration):
        sub = _subparser(parser, path[:1])
    unbracketed = command
    while re.search(r"\[[^\[\]]*\]", unbracketed):
        unbracketed = re.sub(r"\[[^\[\]]*\]", "", unbracketed)
    shown_required = set(re.findall(r"(--[a-z][a-z-]*)", unbracketed))
    for action in sub._actions:
        for flag in action.option_strings:
            if flag in shown_required:
                assert action.required, f"README shows {flag} of `{' '.join(path)}` as required; it is optional"


def test_serve_help_shows_the_default_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--default-mode \{fast,full\}.*\(default: full\)", text)


def test_the_model_card_cites_only_files_in_the_repository() -> None:
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    cited = [c for c in re.findall(r"`([\w.-]+(?:/[\w.-]+)+)`", card) if not c.startswith(("http", "OUT", "DATA"))]
    assert cited, "the card cites no file at all: the check below would be empty"
    missing = [c for c in cited if not (REPO / c).exists()]
    assert missing == [], f"the model card cites files outside the repository: {missing}"
