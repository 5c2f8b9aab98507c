"""Build MMFR-Local: real photo crops and fakes from locally trained generators, in the MMFR layout.

Pipeline (the same for both classes, so no format, size, metadata or JPEG history gives the label away):
source photo -> random-scale square crop, resized to `size` (or a native crop) -> [fakes only: the
generator, whose output is every pixel of the fake] -> optional JPEG round trip at a random quality ->
lossless PNG. Sources are split BY PHOTO: a photo feeds either training or evaluation, never both;
generators are trained on crops of training photos only. Train-one-test-many: training fakes come from
`TRAINING_FAMILIES`; every family gets a balanced evaluation set.

Resumable: the plan is a pure function of (preset, seed, photos); every image is written atomically and
logged (one JSON line) to `OUT/.build/state.jsonl`; a rerun skips what exists. The JSON files (reasoning,
captions, CoT) are written at the end and `manifest.json` last, so its presence means "complete".
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fakereasoning.data.local.generators import FAMILIES, TRAINING_FAMILIES, cache_dir, get_family
from fakereasoning.data.local.photos import Photo, collect_photos
from fakereasoning.data.mmfr import CAPTIONS_FILE, COT_FILE, EVAL_DIR, MANIFEST_FILE, write_reasoning_json
from fakereasoning.errors import DatasetError, FakeReasoningError
from fakereasoning.evidence.annotator import EvidenceAnnotator
from fakereasoning.evidence.measure import measure
from fakereasoning.fsio import atomic_write_bytes, atomic_write_json
from fakereasoning.imageio import encode_png, load_image

TRAIN_PART = "local_train"
STATE_DIR = ".build"
STATE_FILE = "state.jsonl"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Preset:
    name: str
    size: int  # output side in pixels
    debian: bool  # also fetch the Debian photo packages
    eval_fraction: float  # share of source photos held out for evaluation
    train_real: int
    train_fake_per_family: int
    eval_per_class: int  # per evaluation set and class
    max_scale: float  # crop windows span size .. size * max_scale before resizing
    native_prob: float  # share of crops taken at native resolution (no resampling)
    jpeg_prob: float  # share of images (both classes alike) that get a JPEG round trip
    jpeg_quality: tuple[int, int]
    max_side: int  # photos are reduced to this long side once, on load
    gen_batch: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", 64, False, 0.375, 24, 8, 8, 3.0, 0.25, 0.3, (75, 95), 640, 32),
    "standard": Preset("standard", 256, True, 0.3, 1560, 520, 100, 4.0, 0.25, 0.3, (70, 95), 1600, 8),
}


@dataclass
class Item:
    """One planned image."""

    id: str
    path: str  # relative to OUT
    label: str
    split: str
    set: str
    source: str
    generator: str | None
    crop: tuple[int, int, int, bool]  # window side, x, y, horizontal flip
    jpeg: int | None
    annotation_key: str = ""


@dataclass
class BuildResult:
    out: Path
    counts: dict[str, int]
    seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)


def _stderr_log(message: str) -> None:
    tqdm.write(f"build-local: {message}", file=sys.stderr)


# --- planning -----------------------------------------------------------------------------------------
def _load_photo(photo: Photo, preset: Preset) -> np.ndarray:
    img = load_image(photo.path)
    if max(img.size) > preset.max_side:
        img = img.copy()
        img.thumbnail((preset.max_side, preset.max_side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def split_sources(ids: list[str], preset: Preset, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train / eval split of photo ids (each photo goes to exactly one side)."""
    order = sorted(ids)
    random.Random(f"split-{seed}").shuffle(order)
    n_eval = max(1, round(len(order) * preset.eval_fraction))
    if len(order) - n_eval < 1:
        raise DatasetError(f"need at least 2 usable photos to split train/eval, found {len(order)}")
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def _crop_spec(rng: random.Random, shape: tuple[int, ...], preset: Preset) -> tuple[int, int, int, bool]:
    h, w = shape[0], shape[1]
    short = min(h, w)
    top = min(short, int(preset.size * preset.max_scale))
    side = preset.size
    if rng.random() >= preset.native_prob and top > preset.size:
        side = int(round(math.exp(rng.uniform(math.log(preset.size), math.log(top)))))
    side = max(preset.size, min(side, short))
    return side, rng.randint(0, w - side), rng.randint(0, h - side), rng.random() < 0.5


def crop(photo: np.ndarray, spec: tuple[int, int, int, bool], size: int) -> np.ndarray:
    side, x, y, flip = spec
    window = photo[y : y + side, x : x + side]
    img = Image.fromarray(window)
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(img)


def plan(
    photos: dict[str, np.ndarray], train_ids: list[str], eval_ids: list[str], preset: Preset, seed: int,
    families: Iterable[str] = FAMILIES,
) -> list[Item]:
    """Every image of the build, in a fixed order (a pure function of its inputs)."""
    rng = random.Random(f"plan-{seed}")
    items: list[Item] = []
    counter = 0

    def cycle(ids: list[str], n: int) -> list[str]:
        order = list(ids)
        rng.shuffle(order)
        return [order[i % len(order)] for i in range(n)]

    def add(source: str, label: str, split: str, set_name: str, generator: str | None, rel: str) -> None:
        nonlocal counter
        spec = _crop_spec(rng, photos[source].shape, preset)
        jpeg = rng.randint(*preset.jpeg_quality) if rng.random() < preset.jpeg_prob else None
        item_id = f"{source}_{counter:05d}"
        counter += 1
        path = f"{rel}/{item_id}.png"
        key = path if split == "train" else path[len(EVAL_DIR) + 1 :]
        items.append(Item(item_id, path, label, split, set_name, source, generator, spec, jpeg, key))

    for source in cycle(train_ids, preset.train_real):
        add(source, "real", "train", TRAIN_PART, None, f"{TRAIN_PART}/0_real")
    for family in TRAINING_FAMILIES:
        for source in cycle(train_ids, preset.train_fake_per_family):
            add(source, "fake", "train", TRAIN_PART, family, f"{TRAIN_PART}/1_fake/{family}")
    for family in families:
        for source in cycle(eval_ids, preset.eval_per_class):
            add(source, "real", "eval", family, None, f"{EVAL_DIR}/{family}/0_real")
        for source in cycle(eval_ids, preset.eval_per_class):
            add(source, "fake", "eval", family, family, f"{EVAL_DIR}/{family}/1_fake")
    return items


# --- encoding -----------------------------------------------------------------------------------------
def finish(pixels: np.ndarray, jpeg: int | None) -> bytes:
    """The shared last step of both classes: optional JPEG round trip, then lossless PNG, no metadata."""
    img = Image.fromarray(pixels)
    if jpeg is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(jpeg))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
        img.load()
    return encode_png(img)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# --- state (resume) -----------------------------------------------------------------------------------
def _read_state(path: Path) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return state
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill: that image is redone
        if isinstance(rec, dict) and isinstance(rec.get("path"), str):
            state[rec["path"]] = rec
    return state


class _StateLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("a", encoding="utf-8")

    def add(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


# --- the build ----------------------------------------------------------------------------------------
def _patch_sampler(crops: np.ndarray) -> Callable[[int, int, np.random.Generator], np.ndarray]:
    def sample(batch: int, size: int, rng: np.random.Generator) -> np.ndarray:
        n, h, w, _ = crops.shape
        out = np.empty((batch, 3, size, size), dtype=np.float32)
        for i in range(batch):
            c = crops[rng.integers(n)]
            y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            out[i] = c[y : y + size, x : x + size].transpose(2, 0, 1) / 255.0
        return out

    return sample


def build_local(
    out: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    photo_dirs: Iterable[str | Path] = (),
    cache: str | Path | None = None,
    log: Log = _stderr_log,
    progress: bool = True,
    threads: int | None = None,
    taef2: str | Path | None = None,
) -> BuildResult:
    """Build (or finish building) MMFR-Local under `out`. Returns counts and timing.

    `threads`: torch threads while building (default 1: on a shared machine a second spinning thread
    slows small convolutions down tenfold; pass the core count on an idle machine). `taef2`: a folder with
    the TAEF2 weights adds the evaluation-only family "taef2" (aligned fakes through FLUX.2's latent space).
    """
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads or 1)))
    try:
        return _build(out, preset, seed, photo_dirs, cache, log, progress, taef2)
    finally:
        torch.set_num_threads(previous_threads)


def _build(
    out: str | Path,
    preset: str,
    seed: int,
    photo_dirs: Iterable[str | Path],
    cache: str | Path | None,
    log: Log,
    progress: bool,
    taef2: str | Path | None = None,
) -> BuildResult:
    import torch

    if preset not in PRESETS:
        raise FakeReasoningError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    started = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cache) if cache is not None else cache_dir().parent

    photos = collect_photos(cfg.debian, cache_root, photo_dirs, log)
    pixels: dict[str, np.ndarray] = {}
    usable: list[Photo] = []
    for photo in photos:
        try:
            arr = _load_photo(photo, cfg)
        except FakeReasoningError as exc:
            log(f"skipping photo {photo.id}: {exc}")
            continue
        if min(arr.shape[:2]) < cfg.size:
            log(f"skipping photo {photo.id}: {arr.shape[1]}x{arr.shape[0]} is smaller than {cfg.size}px")
            continue
        pixels[photo.id] = arr
        usable.append(photo)
    if len(usable) < 2:
        raise DatasetError("fewer than 2 usable source photos: install scikit-image or pass --photos DIR")
    by_id = {p.id: p for p in usable}
    train_ids, eval_ids = split_sources(list(by_id), cfg, seed)
    families = [*FAMILIES, *(["taef2"] if taef2 is not None else [])]

    def family_of(name: str) -> Any:
        if name == "taef2":
            from fakereasoning.data.local.generators.taef2 import TAEF2Family

            return TAEF2Family(taef2)  # type: ignore[arg-type]
        return get_family(name)

    items = plan(pixels, train_ids, eval_ids, cfg, seed, families)

    state_path = root / STATE_DIR / STATE_FILE
    state = _read_state(state_path)
    todo = [it for it in items if not (it.path in state and (root / it.path).is_file())]
    annotator = EvidenceAnnotator(seed)
    log_state = _StateLog(state_path)

    # Generators: config drawn per family from the seed; the training data fingerprint joins the config.
    fingerprint = hashlib.sha256(json.dumps([cfg.size, train_ids]).encode()).hexdigest()[:12]
    configs = {
        name: {**family_of(name).sample_config(random.Random(f"{seed}-{name}"), preset), "data": fingerprint}
        for name in families
    }
    needed = sorted({it.generator for it in todo if it.generator})
    models: dict[str, Any] = {}
    cached: dict[str, bool] = {}
    if needed:
        crop_rng = random.Random(f"gen-train-{seed}")
        pool = np.stack([
            crop(pixels[src], _crop_spec(crop_rng, pixels[src].shape, cfg), cfg.size)
            for src in [train_ids[i % len(train_ids)] for i in range(max(64, 4 * len(train_ids)))]
        ])
        sampler = _patch_sampler(pool)
        for name in needed:
            family = family_of(name)
            steps = int(configs[name]["steps"])
            with tqdm(total=steps, desc=f"train {name}", disable=not progress, file=sys.stderr, leave=False) as bar:
                model, was_cached = family.load_or_train(
                    configs[name], sampler, seed, cache_root / "generators", progress=bar.update
                )
            models[name] = model
            cached[name] = was_cached
            log(f"generator {name}: {'loaded from cache' if was_cached else f'trained {steps} steps'}")

    try:
        with tqdm(total=len(items), initial=len(items) - len(todo), desc="images", unit="img",
                  disable=not progress, file=sys.stderr) as bar:
            # reals one by one; fakes in batches per family (same crop code for both)
            reals = [it for it in todo if it.generator is None]
            for it in reals:
                src = crop(pixels[it.source], it.crop, cfg.size)
                log_state.add(_write(root, it, src, None, annotator))
                bar.update(1)
            pending = {it.path for it in todo}
            for name in needed:
                # batches are fixed by the plan (not by what is left), so a resumed build computes
                # exactly the same batches and noise as an uninterrupted one
                group = [it for it in items if it.generator == name]
                family = family_of(name)
                for start in range(0, len(group), cfg.gen_batch):
                    chunk = group[start : start + cfg.gen_batch]
                    if not any(it.path in pending for it in chunk):
                        continue
                    inputs = np.stack([crop(pixels[it.source], it.crop, cfg.size) for it in chunk])
                    gen_seed = int(hashlib.sha256(f"{seed}-{chunk[0].id}".encode()).hexdigest()[:8], 16)
                    with torch.inference_mode():
                        fakes = family.run(models[name], inputs, configs[name], gen_seed)
                    for it, src, fake in zip(chunk, inputs, fakes, strict=True):
                        if it.path in pending:
                            log_state.add(_write(root, it, fake, psnr(fake, src), annotator))
                            bar.update(1)
    finally:
        log_state.close()

    state = _read_state(state_path)
    manifest = _finalise(root, cfg, seed, items, state, by_id, configs, cached, log, families, family_of)
    seconds = time.perf_counter() - started
    counts = {
        "train": sum(1 for it in items if it.split == "train"),
        "eval": sum(1 for it in items if it.split == "eval"),
        "eval_sets": len(families),
        "sources": len(usable),
        "train_sources": len(train_ids),
        "eval_sources": len(eval_ids),
    }
    log(f"done in {seconds:.1f}s: {counts['train']} training and {counts['eval']} evaluation images in {root}")
    return BuildResult(root, counts, seconds, manifest)


def _write(root: Path, it: Item, pixels: np.ndarray, fidelity: float | None, annotator: EvidenceAnnotator) -> dict[str, Any]:
    data = finish(pixels, it.jpeg)
    atomic_write_bytes(root / it.path, data)
    return _describe(it, data, fidelity, annotator)


def _describe(it: Item, data: bytes, fidelity: float | None, annotator: EvidenceAnnotator) -> dict[str, Any]:
    """The state record of a written image, measured on the pixels as stored (after encoding)."""
    final = np.asarray(load_image(data, name=it.path))
    m = measure(final)
    return {
        "path": it.path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "psnr": fidelity,
        "sharpness": m.sharpness,
        "attributes": annotator.annotate(final, it.label, it.annotation_key, measured=m),  # type: ignore[arg-type]
    }


def _record_for(root: Path, it: Item, state: dict[str, dict[str, Any]], annotator: EvidenceAnnotator) -> dict[str, Any]:
    """The state record of an image; recomputed from the file when the log lost it (kill after write)."""
    rec = state.get(it.path)
    if rec is not None:
        return rec
    return _describe(it, (root / it.path).read_bytes(), None, annotator)


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def _finalise(
    root: Path,
    cfg: Preset,
    seed: int,
    items: list[Item],
    state: dict[str, dict[str, Any]],
    photos: dict[str, Photo],
    configs: dict[str, dict[str, Any]],
    cached: dict[str, bool],
    log: Log,
    families: list[str],
    family_of: Callable[[str], Any],
) -> dict[str, Any]:
    from fakereasoning.data.cot import build_conversations

    annotator = EvidenceAnnotator(seed)
    records = {it.path: _record_for(root, it, state, annotator) for it in items}
    reasoning: dict[str, dict[str, dict[str, str | None]]] = {}
    for it in items:
        reasoning.setdefault(it.set if it.split == "eval" else TRAIN_PART, {})[it.annotation_key] = records[it.path]["attributes"]
    write_reasoning_json(root / TRAIN_PART / f"{TRAIN_PART}_reasoning.json", reasoning[TRAIN_PART])
    for family in families:
        write_reasoning_json(root / EVAL_DIR / family / f"{family}_reasoning.json", reasoning[family])
    captions = {it.path: photos[it.source].description for it in items}
    atomic_write_json(root / CAPTIONS_FILE, dict(sorted(captions.items())))
    atomic_write_json(root / COT_FILE, build_conversations(root), indent=None)

    generators = []
    for name in families:
        family = family_of(name)
        fakes = [records[it.path] for it in items if it.generator == name]
        reals = [records[it.path] for it in items if it.split == "eval" and it.set == name and it.label == "real"]
        generators.append({
            "name": name,
            "description": family.description,
            "config": configs[name],
            "in_training": name in TRAINING_FAMILIES,
            "reconstruction": family.reconstruction,
            "psnr_mean": _mean([r["psnr"] for r in fakes if r.get("psnr") is not None]),
            "sharpness_fake_mean": _mean([r["sharpness"] for r in fakes]),
            "sharpness_real_mean": _mean([r["sharpness"] for r in reals]),
        })
    all_real = [records[it.path]["sharpness"] for it in items if it.label == "real"]
    all_fake = [records[it.path]["sharpness"] for it in items if it.label == "fake"]
    used = sorted({it.source for it in items})
    manifest = {
        "preset": cfg.name,
        "seed": seed,
        "size": cfg.size,
        "sharpness_statistic": "variance of the Laplacian of luminance (0-255 scale)",
        "sharpness": {"real_mean": _mean(all_real), "fake_mean": _mean(all_fake)},
        "sources": [
            {"id": p.id, "file": p.file, "license": p.license, "description": p.description,
             "split": "train" if any(it.source == p.id and it.split == "train" for it in items) else "eval"}
            for p in (photos[i] for i in used)
        ],
        "generators": generators,
        "images": [
            {"path": it.path, "label": it.label, "split": it.split, "set": it.set, "source": it.source,
             "generator": it.generator, "sha256": records[it.path]["sha256"]}
            for it in items
        ],
    }
    atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)
    for g in generators:
        log(f"{g['name']}: PSNR {g['psnr_mean']} dB, sharpness fake {g['sharpness_fake_mean']} vs real {g['sharpness_real_mean']}")
    return manifest
