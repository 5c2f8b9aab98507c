"""Inputs -> results: folder walks, errors as records, and how many pixels a batch holds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from fakereasoning.infer import detect_paths, expand_inputs
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


def test_a_batch_holds_a_bounded_number_of_decoded_pixels(tmp_path: Path) -> None:
    paths = [str(_png(tmp_path / f"{i}.png", (100, 100))) for i in range(4)]
    model = RecordingModel()
    results = list(detect_paths(model, paths, batch_size=8, max_batch_pixels=15_000))
    assert [r.error for r in results] == [None] * 4
    assert model.batches == [[(100, 100)]] * 4  # 2 images would be 20 000 pixels
    model = RecordingModel()
    list(detect_paths(model, paths, batch_size=8))
    assert model.batches == [[(100, 100)] * 4]


class SlowModel(RecordingModel):
    def detect_many(self, images: list[Image.Image], mode: str, batch_size: int, **kw: object) -> list[Verdict]:
        import time

        time.sleep(0.2)
        verdicts = super().detect_many(images, mode, batch_size)
        for v in verdicts:  # what the model reports: its batch time shared out
            v.elapsed_ms = 200.0 / len(images)
        return verdicts


def test_elapsed_ms_is_each_images_own_time_not_a_share_of_the_batch(tmp_path: Path) -> None:
    paths = [str(_png(tmp_path / f"{i}.png")) for i in range(4)]
    results = list(detect_paths(SlowModel(), paths, batch_size=4))
    assert all(r.verdict is not None and r.verdict.elapsed_ms >= 200.0 for r in results)
