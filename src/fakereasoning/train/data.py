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
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from fakereasoning.data.account import (
    DEFAULT_ALLOWED_SKIPPED,
    DataAccount,
    charge_problems,
    evaluation_problems,
    is_reasoning_problem,
    skip_undecodable,
    training_problems,
)
from fakereasoning.data.cot import conversation_for, conversation_to_record, has_findings
from fakereasoning.data.layouts import Dataset, load_dataset
from fakereasoning.data.mmfr import COT_FILE, EVAL_DIR, REASONING_SUFFIX, ImageRecord, conversation_problems
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.fsio import UnsafePathError, check_relative
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


@dataclass
class TrainingData:
    """What `train` uses: the training and held-out examples, the calibration images (when set), and the
    account of what the dataset holds against what is used."""

    train: list[TrainExample]
    held: list[TrainExample]
    calibration: list[TrainExample] | None
    account: DataAccount


def _entry_key(entry: Any) -> str | None:
    """The ROOT-relative key a conversation names (as `conversation_problems` reads it), or None."""
    image = entry.get("image") if isinstance(entry, dict) else None
    try:
        return check_relative(image).as_posix() if isinstance(image, str) else None
    except UnsafePathError:
        return None


def _conversation_examples(dataset: Dataset, account: DataAccount, charged: set[str]) -> list[TrainExample]:
    """Examples from forgery_reasoning_cot.json, as released. The label is the image's, from its folder:
    a conversation that concludes otherwise is skipped with both named, never trained under its own."""
    index, records = dataset.index, {r.key: r for r in dataset.index.train}
    images = index.by_key()
    good: dict[str, list[TrainExample]] = {}
    bad: dict[str, list[tuple[str, str, str]]] = {}  # image -> (item, reason, kind) of its unusable conversations
    for i, entry in enumerate(index.conversations or []):
        item = f"{COT_FILE} entry {i}"
        key = _entry_key(entry)
        record = records.get(key) if key else None
        problems = conversation_problems(entry, images, dataset.root)
        if key in images and record is None:
            problems = [f"image {key!r} is not a training image (it is in {EVAL_DIR}/)", *problems]
        if not problems:
            conv = conversation_to_record(entry)
            good.setdefault(record.key, []).append(  # type: ignore[union-attr]
                TrainExample(record.key, record.path, record.label, conv.answer, "mix", record.set))  # type: ignore[union-attr]
            continue
        reason = f"{item}: {'; '.join(problems)}"
        if record is None:
            if key not in charged:  # else that image's own skip says what is wrong with it
                account.skip(item, reason, "unusable conversation", COT_FILE)
            continue
        try:
            disagrees = conversation_to_record(entry).label not in (None, record.label)
        except ValueError:  # no answer to read a conclusion from
            disagrees = False
        bad.setdefault(record.key, []).append(
            (item, reason, "conversation disagrees with the folder's label" if disagrees else "unusable conversation"))
    examples: list[TrainExample] = []
    for record in dataset.index.train:
        if record.key in charged:
            continue
        problems = bad.get(record.key, [])
        if record.key in good:  # a further, unusable conversation of a trained image is an item of its own
            examples.extend(good[record.key])
            account.use(record)
        elif not problems:
            account.skip(record.key, f"no conversation for it in {COT_FILE} (`fakereasoning data to-cot` "
                         "writes one per annotated image)", "no conversation", record.set, record.label)
        else:
            item, reason, kind = problems[0]
            account.skip(record.key, reason, kind, record.set, record.label)
            problems = problems[1:]
        for item, reason, kind in problems:
            account.skip(item, reason, kind, COT_FILE)
    return examples


def _annotation_examples(dataset: Dataset, account: DataAccount, charged: set[str]) -> list[TrainExample]:
    """Examples built from the training parts' reasoning JSON (no conversations file), as `data to-cot`
    would write them; an image without a finding has no reasoning to teach and is skipped, named."""
    examples = []
    for r in dataset.index.train:
        if r.key in charged:
            continue
        if not has_findings(r):
            json_name = f"{r.set}/{r.set}{REASONING_SUFFIX}"
            why = (f"no annotation in {json_name}" if (dataset.root / json_name).is_file()
                   else f"training part {r.set!r} has no {json_name}") if r.attributes is None else \
                f"its annotation in {json_name} states no finding (every attribute is null)"
            account.skip(r.key, f"{r.key}: {why}", "no annotation", r.set, r.label)
            continue
        answer = conversation_for(r)["conversations"][1]["value"]
        examples.append(TrainExample(r.key, r.path, r.label, answer, "mix", r.set))
        account.use(r)
    return examples


def _mmfr_charges(dataset: Dataset, account: DataAccount) -> set[str]:
    """Charge the training errors `data validate` reports to the images they concern (their keys)."""
    root, index = dataset.root, dataset.index
    unreadable = [p for p in index.problems if p.path == COT_FILE and p.severity == "error" and p.image is None
                  and not p.message.startswith("entry ")]
    if index.conversations is None and unreadable:  # never fall back silently from a broken file
        raise FakeReasoningError(f"{Path(root) / COT_FILE}: {unreadable[0].message}")
    problems = [p for p in training_problems(index) if p.path != COT_FILE]  # entries: _conversation_examples
    if index.conversations is not None:  # the conversations carry the text: the reasoning JSON is not read
        unused = [p for p in problems if is_reasoning_problem(p)]
        account.notes += [f"{p.path}: {p.message} (not used for training: the conversations of {COT_FILE} are)"
                          for p in unused]
        problems = [p for p in problems if not is_reasoning_problem(p)]
    return charge_problems(index, problems, index.train, account, "train")


def _layout_examples(dataset: Dataset, account: DataAccount, charged: set[str], verbose: bool
                     ) -> list[TrainExample]:
    if not dataset.index.train:
        where = " (GenImage: <gen>/train/{ai,nature}; lists: a split column with train)" if dataset.layout in (
            "genimage", "list") else ""
        raise FakeReasoningError(f"{dataset.root}: no training images in this {dataset.layout} layout{where}; "
                                 "ForenSynths, Synthbuster and plain folders are read as evaluation sets")
    examples = []
    for r in dataset.index.train:
        if r.key in charged:
            continue
        if has_findings(r):
            answer = conversation_for(r)["conversations"][1]["value"]
            examples.append(TrainExample(r.key, r.path, r.label, answer, "mix", r.set))
        else:
            examples.append(TrainExample(r.key, r.path, r.label, fast_answer(r.label), "fast", r.set))
        account.use(r)
    fast = sum(e.kind == "fast" for e in examples)
    if fast and verbose:
        print(f"fakereasoning: note: {fast} of {len(examples)} training images have no reasoning annotation "
              f"({dataset.layout} layout): they train the fast-mode verdict only; full-mode reasoning is not "
              "learned from them", file=sys.stderr)
    return examples


def _calibration_records(dataset: Dataset, set_name: str) -> list[ImageRecord]:
    records = dataset.index.evaluation_sets.get(set_name)
    if not records:
        known = ", ".join(sorted(dataset.index.evaluation_sets)) or "none"
        raise FakeReasoningError(f"{dataset.root}: no evaluation set {set_name!r} to calibrate on (sets: {known})")
    return records


def load_training_data(root: str | Path, val_fraction: float, layout: str | None = None, allow_absolute: bool = False,
                       verbose: bool = True, allowed_skipped: float = DEFAULT_ALLOWED_SKIPPED,
                       calibration_set: str | None = None) -> TrainingData:
    """The examples of the dataset's training split (and the calibration set's images), after every image
    is checked: labelled by its folder, annotated where the layout asks for it, decodable. Prints the
    account (VERBOSE) and raises `DataRefused` when more than ALLOWED_SKIPPED of it would be skipped.

    MMFR trains on its conversations (forgery_reasoning_cot.json, as released) or, without that file, on
    conversations built from the training parts' reasoning JSON; the other layouts on their labels."""
    dataset = load_dataset(root, layout, allow_absolute)
    if verbose:
        print(f"fakereasoning: data: {dataset.describe()}", file=sys.stderr)
    index = dataset.index
    account = DataAccount("training", str(dataset.root), allowed=allowed_skipped)
    charged = _mmfr_charges(dataset, account) if dataset.layout == "mmfr" else set()
    calibration: list[ImageRecord] = []
    if calibration_set:  # its images and labels are used, not its references
        calibration = _calibration_records(dataset, calibration_set)
        problems = [p for p in evaluation_problems(index, [calibration_set]) if not is_reasoning_problem(p)]
        charged |= charge_problems(index, problems, calibration, account, "eval")
    candidates = [r for r in [*index.train, *calibration] if r.key not in charged]
    charged |= skip_undecodable(candidates, account, progress=verbose)
    if dataset.layout != "mmfr":
        examples = _layout_examples(dataset, account, charged, verbose)
    elif index.conversations is not None:
        examples = _conversation_examples(dataset, account, charged)
    else:
        examples = _annotation_examples(dataset, account, charged)
    cal = None
    if calibration_set:
        cal = [TrainExample(r.key, r.path, r.label, "", "fast", r.set) for r in calibration if r.key not in charged]
        for r in calibration:
            if r.key not in charged:
                account.use(r)
    if verbose:
        account.print()
    account.check("train")
    train = [e for e in examples if not _held_out(e.image, val_fraction)]
    held = [e for e in examples if _held_out(e.image, val_fraction)]
    if not train:
        raise FakeReasoningError(f"{root}: every training image fell in the held-out split")
    return TrainingData(train, held, cal, account)


def load_examples(root: str | Path, val_fraction: float, layout: str | None = None, allow_absolute: bool = False,
                  verbose: bool = True, allowed_skipped: float = DEFAULT_ALLOWED_SKIPPED
                  ) -> tuple[list[TrainExample], list[TrainExample]]:
    """(train, held-out) examples of the dataset's training split (`load_training_data`)."""
    data = load_training_data(root, val_fraction, layout, allow_absolute, verbose, allowed_skipped)
    return data.train, data.held


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
