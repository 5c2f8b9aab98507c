"""The shipped default model: small enough to ship, loaded when --model is omitted, answers in the FDR format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakereasoning.cli import main
from fakereasoning.paths import DEFAULT_MODEL_DIR
from fakereasoning.schema import parse_cot

DEMO = Path(__file__).resolve().parent.parent / "examples" / "mmfr-local-demo"


def test_shipped_files_are_safetensors_json_and_small() -> None:
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "MODEL_CARD.md"} <= set(files)
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    assert sum(files.values()) < 50 * 1024 * 1024


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from fakereasoning import FakeReasoning

    return FakeReasoning.from_pretrained()  # no argument: the shipped model


def test_default_model_detects_fast_and_full(model) -> None:  # type: ignore[no-untyped-def]
    images = sorted(DEMO.glob("evaluation_sets/*/*/*.png"))[:2]
    fast = model.detect_many(images, mode="fast")
    assert all(0.0 <= v.prob_fake <= 1.0 for v in fast)
    full = model.detect(images[0], mode="full", max_new_tokens=256)
    parsed = parse_cot(full.raw_text)
    assert parsed.ok, full.raw_text
    assert parsed.label == full.label == ("fake" if full.prob_fake >= 0.5 else "real")


def test_detect_without_model_flag_uses_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted(DEMO.glob("evaluation_sets/*/1_fake/*.png"))[0]
    assert main(["detect", str(image), "--mode", "fast", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == str(image) and record["model_id"]
