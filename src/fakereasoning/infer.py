"""Images, folders and globs -> `Verdict`s, batched; one unreadable file never stops the rest."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.fsio import check_entry, walk_files
from fakereasoning.imageio import image_pixels, is_image_path, load_image
from fakereasoning.paths import resolve_model_dir
from fakereasoning.progress import Progress
from fakereasoning.schema import DEFAULT_MODE, Verdict

MODES = ("fast", "full")
MAX_BATCH_PIXELS = 48_000_000  # decoded pixels one detect batch holds (about 140 MB of RGB)


def load_model(model_dir: str | os.PathLike[str] | None = None, device: str | None = None,
               crops: int | None = None) -> Any:
    """A `FakeReasoning` model from DIR (a model folder, a `train --output` or checkpoint folder), or the
    shipped default model when DIR is None. `crops`: native crops read per image (the model's
    `infer_crops`; None keeps the model's own)."""
    from fakereasoning.models import FakeReasoning

    model = FakeReasoning.from_pretrained(resolve_model_dir(model_dir), device=device)
    if crops is not None:
        model.config = model.config.replace(infer_crops=crops)
    return model


class LazyModel:
    """A model that loads on its first `detect_many` (loading takes seconds; when every input turns out
    unusable it never has to happen). The folder is resolved at once, so a wrong --model fails first."""

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, device: str | None = None,
                 crops: int | None = None) -> None:
        self.path = resolve_model_dir(model_dir)
        self.device = device
        self.crops = crops
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_model(self.path, device=self.device, crops=self.crops)
        return self._model

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def detect_many(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.detect_many(*args, **kwargs)


def expand_inputs(inputs: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    """Each input as (path as given or found, error or None): files, folders (recursive) and globs.

    Folders go through the checked walk, so a FIFO or a broken link named like an image is an error
    record instead of a silent skip (links may lead out of the folder: it is the user's own)."""
    for item in inputs:
        path = Path(item)
        if not os.path.lexists(path):
            if any(ch in item for ch in "*?["):
                matches = sorted(m for m in glob.glob(item, recursive=True) if Path(m).is_file())
                if not matches:
                    yield item, "pattern matches no file"
                for m in matches:
                    yield m, None
            else:
                yield item, "file not found"
            continue
        entry = check_entry(path)
        if entry.kind == "dir":
            found = [e for e in walk_files(path) if is_image_path(e.path)]
            if not found:
                yield item, "folder holds no image files"
            for e in found:
                yield str(e.path), e.problem
        else:
            yield item, entry.problem


@dataclass
class DetectionResult:
    """A verdict, or the one-line error that kept this input from getting one."""

    image: str
    verdict: Verdict | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.verdict is not None:
            return self.verdict.to_dict()
        return {"image": self.image, "error": self.error}


def detect_paths(
    model: Any, inputs: Sequence[str], mode: str = DEFAULT_MODE, batch_size: int = 16, progress: bool = False,
    max_batch_pixels: int = MAX_BATCH_PIXELS, **generate_kwargs: Any,
) -> Iterator[DetectionResult]:
    """Detect every input, results in input order, up to `batch_size` images per model call.

    A batch also holds at most `max_batch_pixels` decoded pixels (past its first image): the model reads
    a resized view and a few native crops, so holding many huge decoded images at once only costs memory
    (8 8000x8000 JPEGs peaked at 2.9 GB). Each verdict's `elapsed_ms` is that image's own time: reading
    and decoding it, plus the model call that answered it (not the batch time divided by its size).
    """
    if mode not in MODES:
        raise FakeReasoningError(f"mode must be fast or full, got {mode!r}")
    items = list(expand_inputs(inputs))
    bar = Progress(len(items), f"detect ({mode})", "img", enabled=progress)
    pending: list[tuple[str, Image.Image | None, str | None, float]] = []  # name, image, error, decode ms
    held = 0  # decoded pixels in `pending`

    def flush() -> Iterator[DetectionResult]:
        nonlocal held
        images = [im for _, im, _, _ in pending if im is not None]
        t0 = time.perf_counter()
        verdicts = iter(model.detect_many(images, mode=mode, batch_size=batch_size, **generate_kwargs)
                        if images else [])
        model_ms = (time.perf_counter() - t0) * 1000.0
        results = []
        for name, im, error, decode_ms in pending:
            if im is None:
                results.append(DetectionResult(name, error=error))
                continue
            verdict = next(verdicts)
            verdict.image = name
            verdict.elapsed_ms = decode_ms + model_ms
            results.append(DetectionResult(name, verdict=verdict))
        bar.update(len(pending))
        pending.clear()  # release the decoded images before the caller gets the results
        held = 0
        yield from results

    for name, error in items:
        if error is not None:
            pending.append((name, None, f"{name}: {error}", 0.0))
            continue
        try:
            pixels = image_pixels(name)
        except ImageLoadError:
            pixels = 0  # load_image below says what is wrong
        if held and held + pixels > max_batch_pixels:
            yield from flush()
        t0 = time.perf_counter()
        try:
            pending.append((name, load_image(name), None, (time.perf_counter() - t0) * 1000.0))
            held += pixels
        except ImageLoadError as exc:
            pending.append((name, None, str(exc), 0.0))
        if sum(im is not None for _, im, _, _ in pending) >= batch_size:
            yield from flush()
    yield from flush()
    bar.close()
