"""Inputs -> results: folder walks, errors as records, and how many pixels a batch holds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from fakereasoning.infer import expand_inputs
from fakereasoning.schema import Verdict, fast_answer


def _png(path: Path, size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, dtype=np.uint8)).save(path)
    return path


class RecordingModel:
    """Answers every image real; records the batches it is given."""

    model_id = "recording"

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def detect_many(self, images: list[Image.Image], mode: str, batch_size: int, **_: object) -> list[Verdict]:
        self.batches.append([im.size for im in images])
        return [Verdict.from_answer("x", 0.1, fast_answer("real"), model_id=self.model_id) for _ in images]


def test_links_and_fifos_are_named_not_skipped_or_called_missing(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _png(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (tmp_path / "self.png").symlink_to(tmp_path / "self.png")
    found = dict(expand_inputs([str(folder), str(tmp_path / "self.png"), str(tmp_path / "nope.png")]))
    assert found[str(folder / "a.png")] is None
    assert found[str(folder / "pipe.png")] == "not a regular file (a FIFO)"
    assert found[str(folder / "loop.png")] == "symbolic link loop"
    assert found[str(tmp_path / "self.png")] == "symbolic link loop"
    assert found[str(tmp_path / "nope.png")] == "file not found"
