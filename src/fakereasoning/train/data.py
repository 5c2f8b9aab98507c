"""Training samples from a dataset in any layout (`data.layouts`): (image, label, tagged answer), a held-out
split, and a deterministic order that `--resume` can replay exactly.

MMFR datasets train on their conversations (full reasoning). The other layouts train on their training
split's labels: an image with an annotation (a JSONL list's `attributes`) gets its tagged answer; one
without gets only the fast-mode verdict, so the model learns to detect but not to write reasoning.
"""

from __future__ import annotations

import hashlib
import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from fakereasoning.data.cot import build_conversations, conversation_for, conversation_to_record
from fakereasoning.data.layouts import Dataset, load_dataset
from fakereasoning.data.mmfr import COT_FILE
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.fsio import UnsafePathError, safe_join
from fakereasoning.imageio import load_image
from fakereasoning.schema import Label, fast_answer
from fakereasoning.train.config import DataConfig


@dataclass(frozen=True)
class TrainExample:
    image: str  # ROOT-relative path (a list's path as written)
    path: Path
    label: Label
    answer: str  # the tagged chain-of-thought answer (the fast answer when the image has no annotation)
    kind: str = "mix"  # prompt kind for the processor: "mix" (full or fast), "fast" (no reasoning to teach)
    set: str = ""  # training part / generator the image belongs to


def _held_out(key: str, fraction: float) -> bool:
    """Stable split by a hash of the image path, so it never depends on listing order."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return (h / 2**64) < fraction


def _mmfr_examples(dataset: Dataset) -> list[TrainExample]:
    """Conversations from forgery_reasoning_cot.json when it exists (as released), else built from the
    training parts' reasoning JSON."""
    root, index = dataset.root, dataset.index
    unreadable = [p for p in index.problems if p.path == COT_FILE and p.severity == "error"]
    if index.conversations is None and unreadable:  # never fall back silently from a broken file
        raise FakeReasoningError(f"{Path(root) / COT_FILE}: {unreadable[0].message}")
    records = {r.key: r for r in index.train}
    entries = index.conversations if index.conversations is not None else build_conversations(index)
    examples: list[TrainExample] = []
    skipped = 0
    for entry in entries:
        try:
            conv = conversation_to_record(entry)
            path = safe_join(root, conv.image)
        except (ValueError, UnsafePathError):
            skipped += 1
            continue
        record = records.get(conv.image)
        label = conv.label or (record.label if record else None)
        if label is None or not path.is_file():
            skipped += 1
            continue
        examples.append(TrainExample(conv.image, path, label, conv.answer, "mix", record.set if record else ""))
    if skipped:
        source = Path(root) / COT_FILE if index.conversations is not None else root
        print(f"fakereasoning: warning: skipped {skipped} unusable training conversations of {source} "
              "(`fakereasoning data validate` lists them)", file=sys.stderr)
    if not examples:
        raise FakeReasoningError(f"{root}: no training conversations (run `fakereasoning data to-cot`)")
    return examples


def _layout_examples(dataset: Dataset, verbose: bool) -> list[TrainExample]:
    train = dataset.index.train
    if not train:
        where = " (GenImage: <gen>/train/{ai,nature}; lists: a split column with train)" if dataset.layout in (
            "genimage", "list") else ""
        raise FakeReasoningError(f"{dataset.root}: no training images in this {dataset.layout} layout{where}; "
                                 "ForenSynths, Synthbuster and plain folders are read as evaluation sets")
    examples = []
    for r in train:
        if r.attributes and any(r.attributes.values()):
            answer = conversation_for(r)["conversations"][1]["value"]
            examples.append(TrainExample(r.key, r.path, r.label, answer, "mix", r.set))
        else:
            examples.append(TrainExample(r.key, r.path, r.label, fast_answer(r.label), "fast", r.set))
    fast = sum(e.kind == "fast" for e in examples)
    if fast and verbose:
        print(f"fakereasoning: note: {fast} of {len(examples)} training images have no reasoning annotation "
              f"({dataset.layout} layout): they train the fast-mode verdict only; full-mode reasoning is not "
              "learned from them", file=sys.stderr)
    return examples


def calibration_examples(root: str | Path, set_name: str, layout: str | None = None) -> list[TrainExample]:
    """The images of evaluation set SET_NAME, to fit the CPM temperature on a generator the model never
    saw (held-out images of the training generators would make p(fake) look better calibrated than it is
    on unseen sources)."""
    dataset = load_dataset(root, layout)
    records = dataset.index.evaluation_sets.get(set_name)
    if not records:
        known = ", ".join(sorted(dataset.index.evaluation_sets)) or "none"
        raise FakeReasoningError(f"{root}: no evaluation set {set_name!r} to calibrate on (sets: {known})")
    return [TrainExample(r.key, r.path, r.label, "", "fast", set_name) for r in records]


def load_examples(root: str | Path, val_fraction: float, layout: str | None = None, allow_absolute: bool = False,
                  verbose: bool = True) -> tuple[list[TrainExample], list[TrainExample]]:
    """(train, held-out) examples of the dataset's training split."""
    dataset = load_dataset(root, layout, allow_absolute)
    if verbose:
        print(f"fakereasoning: data: {dataset.describe()}", file=sys.stderr)
    examples = _mmfr_examples(dataset) if dataset.layout == "mmfr" else _layout_examples(dataset, verbose)
    train = [e for e in examples if not _held_out(e.image, val_fraction)]
    held = [e for e in examples if _held_out(e.image, val_fraction)]
    if not train:
        raise FakeReasoningError(f"{root}: every training image fell in the held-out split")
    return train, held


def seen_sets(root: str | Path, examples: list[TrainExample]) -> list[str]:
    """Names of the sets a model trained on EXAMPLES has seen: the sets (parts, generators) of its training
    images, and the sets the training data's manifest marks `in_training`. Written to train_summary.json,
    where `evaluate` reads them when the evaluation data has no manifest."""
    from fakereasoning.data.layouts import read_in_training

    marks, _ = read_in_training(Path(root), [])
    return sorted({e.set for e in examples if e.set} | {name for name, seen in marks.items() if seen})


def augment(img: Image.Image, cfg: DataConfig, rng: random.Random, label: Label | None = None) -> Image.Image:
    """Post-processing seen in the wild (JPEG, blur, resampling), applied alike to real and fake; plus the
    optional real-only blur that removes a softness shortcut (`real_blur_prob`)."""
    if label == "real" and cfg.real_blur_prob and rng.random() < cfg.real_blur_prob:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*cfg.real_blur_sigma)))
    if cfg.resize_prob and rng.random() < cfg.resize_prob:
        s = rng.uniform(*cfg.resize_scale)
        w, h = img.size
        img = img.resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.BICUBIC)
    if cfg.blur_prob and rng.random() < cfg.blur_prob:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*cfg.blur_sigma)))
    if cfg.jpeg_prob and rng.random() < cfg.jpeg_prob:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(*cfg.jpeg_quality))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


class Schedule:
    """Which examples each micro-batch holds: a seeded permutation per epoch, cut into global batches of
    `batch_size * world` and sliced per process. Micro-batch k is a pure function of (seed, k)."""

    def __init__(self, n: int, batch_size: int, world: int, seed: int) -> None:
        self.n, self.batch_size, self.world, self.seed = n, batch_size, world, seed
        self.global_batch = batch_size * world
        self.per_epoch = max(1, n // self.global_batch)  # drop the ragged tail: equal shapes everywhere
        self._cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            self._cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._cache[epoch]

    def micro_batch(self, k: int, rank: int) -> list[int]:
        epoch, pos = divmod(k, self.per_epoch)
        perm = self._perm(epoch)
        start = pos * self.global_batch + rank * self.batch_size
        idx = perm[start : start + self.batch_size]
        if len(idx) < self.batch_size:  # fewer examples than one global batch: wrap around
            idx = np.resize(perm, self.batch_size) if self.n else idx
        return [int(i) for i in idx]


def load_sample(example: TrainExample, cfg: DataConfig, rng: random.Random) -> Image.Image | None:
    try:
        img = load_image(example.path, name=example.image)
    except ImageLoadError as exc:
        print(f"fakereasoning: warning: skipped training image: {exc}", file=sys.stderr)
        return None
    return augment(img, cfg, rng, example.label)
