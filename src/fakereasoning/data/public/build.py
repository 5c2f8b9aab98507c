"""Build MMFR-Public: genuine generator outputs and real photos from public repositories, in the MMFR layout.

Stages (each resumable; a kill at any point loses at most the image being written):
1. scan: read every manifest row (mirror or network), check its sha256, decode it (metadata is dropped
   here), hash it; the outcome of each row is logged to `OUT/.build/scan.jsonl`.
2. select: drop rows reserved for independent evaluation (sha256 or perceptual hash) and near-duplicates
   across the whole set, so one picture never feeds training and evaluation.
3. split by generator family (`splits.json`): held-out families become evaluation sets, each balanced with
   real photos from sources used nowhere in training; a calibration family (a held-out generator too) is
   where the CPM temperature is fitted; the rest trains. Groups (prompt, case) never straddle a split.
4. write: native-resolution crops with one compression history for both classes (`normalize.py`),
   evidence-grounded reasoning, the CoT file, `manifest.json` (provenance and licenses of every image) and
   `summary.json` (what was built from what, what was dropped and why, the shortcut audit), last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm import tqdm

from fakereasoning.data.mmfr import COT_FILE, EVAL_DIR, MANIFEST_FILE, write_reasoning_json
from fakereasoning.data.public.audit import jpeg_blockiness, shortcut_audit
from fakereasoning.data.public.dedup import Hashes, duplicate_clusters, image_hashes, read_reserved
from fakereasoning.data.public.fetch import FetchError, open_reader
from fakereasoning.data.public.manifest import (
    DEFAULT_MANIFEST,
    DEFAULT_RESERVED,
    DEFAULT_SOURCES,
    PACKAGE_DIR,
    ManifestRow,
    Source,
    read_manifest,
    read_sources,
)
from fakereasoning.data.public.normalize import (
    CropPlan,
    Recipe,
    is_lossy,
    plan_crops,
    prepare,
    render,
    source_format,
)
from fakereasoning.errors import DatasetError, FakeReasoningError
from fakereasoning.evidence.annotator import EvidenceAnnotator
from fakereasoning.evidence.measure import measure
from fakereasoning.fsio import atomic_write_bytes, atomic_write_json
from fakereasoning.imageio import decode_image_bytes
from fakereasoning.progress import Progress

DEFAULT_SPLITS = PACKAGE_DIR / "splits.json"
# Packaged split definitions by name: "heldout" keeps generator families out of training to measure
# transfer on them (evaluation sets); "all" trains on every family (what the shipped model is built from;
# transfer is then measured by leave-family-out folds over it, bench/lofo.py).
NAMED_SPLITS = {"heldout": DEFAULT_SPLITS, "all": PACKAGE_DIR / "splits-all.json"}


def splits_path(value: str | Path) -> Path:
    """A packaged split definition by name, or a JSON file."""
    return NAMED_SPLITS.get(str(value), Path(value))
TRAIN_PART = "public_train"
STATE_DIR = ".build"
SUMMARY_FILE = "summary.json"
LEFT_OUT = "left_out"
ALIGNED_FAMILY = "taef2-aligned"
ALIGNED_GENERATOR = "taef2"
Log = Callable[[str], None]
T = TypeVar("T")


def _stderr_log(message: str) -> None:
    tqdm.write(f"build-public: {message}", file=sys.stderr)


# --- the split definition ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Splits:
    """Which families are held out (evaluation set name -> families), which one calibrates, and which
    real sources (repositories, or `repo:path-prefix`) are kept for evaluation."""

    held_out: dict[str, list[str]]
    calibration: dict[str, list[str]]
    eval_real_sources: list[str]
    eval_per_class: int = 200
    train_fake_crops_per_family: int = 600
    family_caps: dict[str, int] = field(default_factory=dict)  # per-family crop caps (e.g. a dominant one)
    max_crops_per_fake: int = 4
    max_crops_per_real: int = 2
    aligned_crops: int = 600  # aligned fakes (TAEF2 reconstructions of training real crops), when weights are given
    balance_bytes: bool = True  # equalise the PNG size distribution of the classes (see _balance_file_sizes)
    recipe: Recipe = field(default_factory=Recipe)

    @classmethod
    def read(cls, path: str | Path) -> Splits:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path}: cannot read the split definition ({exc})") from None
        try:
            recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.pop("recipe", {}).items()})
            splits = cls(recipe=recipe, **data)
        except TypeError as exc:
            raise DatasetError(f"{path}: {exc}") from None
        names = list(splits.held_out) + list(splits.calibration)
        if len(set(names)) != len(names):
            raise DatasetError(f"{path}: evaluation set names repeat")
        fams = [f for fs in (*splits.held_out.values(), *splits.calibration.values()) for f in fs]
        if len(set(fams)) != len(fams):
            raise DatasetError(f"{path}: a family is listed in two evaluation sets")
        return splits

    def set_of_family(self) -> dict[str, str]:
        return {f: name for sets in (self.held_out, self.calibration) for name, fs in sets.items() for f in fs}


def _real_is_eval(row: ManifestRow, splits: Splits) -> bool:
    for spec in splits.eval_real_sources:
        repo, _, prefix = spec.partition(":")
        if row.repo == repo and row.path.startswith(prefix):
            return True
    return False


# --- stage 1: scan --------------------------------------------------------------------------------------
@dataclass
class Scanned:
    key: str
    status: str  # ok | missing | sha256 mismatch | undecodable | too small
    reason: str = ""
    lossy: bool = False
    phash: int = 0
    dhash: int = 0
    file_phash: int = 0  # of the whole file (what the reserved list was made from)
    file_dhash: int = 0
    width: int = 0  # of the decoded tile, EXIF orientation applied (what crops are planned on)
    height: int = 0


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill: that entry is redone
        if isinstance(rec, dict):
            out.append(rec)
    return out


@contextlib.contextmanager
def _bar(total: int, initial: int, desc: str, enabled: bool) -> Iterator[Progress]:
    bar = Progress(total, desc, "img", initial=initial, enabled=enabled)
    try:
        yield bar
    finally:
        bar.close()


class _Log:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("a", encoding="utf-8")

    def add(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _decode_row(row: ManifestRow, data: bytes) -> Image.Image:
    """Pixels of a row's file, upright (EXIF orientation applied; the manifest size is the stored one)."""
    img = decode_image_bytes(data, row.source_id)
    if img.size not in ((row.width, row.height), (row.height, row.width)):
        raise FakeReasoningError(f"{row.source_id}: decoded size {img.size} differs from the manifest")
    return img


def _scan(rows: list[ManifestRow], reader: Any, root: Path, recipe: Recipe, log: Log, progress: bool) -> dict[str, Scanned]:
    path = root / STATE_DIR / "scan.jsonl"
    # a record of a decoded image without its oriented size (an older build's) is scanned again
    done = {rec["key"]: Scanned(**rec) for rec in _jsonl(path)
            if "key" in rec and (rec.get("status") != "ok" or rec.get("width"))}
    todo = [r for r in rows if r.key not in done]
    by_file: dict[str, list[ManifestRow]] = defaultdict(list)
    for r in todo:
        by_file[r.source_id].append(r)
    out = _Log(path)
    try:
        with _bar(len(rows), len(rows) - len(todo), "scan", progress) as bar:
            for source_id, group in by_file.items():
                first = group[0]
                results: list[Scanned]
                try:
                    data = reader.read(first.repo, first.commit, first.path)
                    if hashlib.sha256(data).hexdigest() != first.sha256:
                        raise _Skip("sha256 mismatch", f"{source_id}: content differs from the manifest's sha256")
                    img = _decode_row(first, data)
                    fmt = source_format(data)
                    whole = image_hashes(img)
                    results = []
                    for r in group:
                        tile = img.crop((r.region[0], r.region[1], r.region[0] + r.region[2], r.region[1] + r.region[3])) if r.region else img
                        if min(tile.size) < recipe.crop:
                            results.append(Scanned(r.key, "too small", f"{source_id}: {tile.size[0]}x{tile.size[1]} is under {recipe.crop}px"))
                            continue
                        h = image_hashes(tile) if r.region else whole
                        results.append(Scanned(r.key, "ok", "", is_lossy(fmt, data), h.phash, h.dhash, whole.phash,
                                               whole.dhash, *tile.size))
                except _Skip as exc:
                    results = [Scanned(r.key, exc.status, exc.reason) for r in group]
                except FetchError as exc:
                    results = [Scanned(r.key, "missing", str(exc)) for r in group]
                except FakeReasoningError as exc:
                    results = [Scanned(r.key, "undecodable", str(exc)) for r in group]
                for s in results:
                    if s.status != "ok":
                        log(f"skipped {s.status}: {s.reason}")
                    done[s.key] = s
                    out.add(asdict(s))
                bar.update(len(group))
    finally:
        out.close()
    return done


class _Skip(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


# --- stage 2 + 3: select and plan ----------------------------------------------------------------------
@dataclass
class Planned:
    path: str  # relative to OUT
    key: str  # row key
    label: str
    split: str  # train | eval
    set: str
    role: str  # train | held_out | calibration
    plan: CropPlan
    annotation_key: str
    aligned: bool = False  # a reconstruction of a real crop by a generator's autoencoder (an aligned fake)

    def family(self, rows: dict[str, ManifestRow]) -> str:
        return ALIGNED_FAMILY if self.aligned else rows[self.key].family

    def generator(self, rows: dict[str, ManifestRow]) -> str:
        return ALIGNED_GENERATOR if self.aligned else rows[self.key].generator


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text.lower()).strip("-")[:40] or "x"


def _select(rows: list[ManifestRow], scanned: dict[str, Scanned], reserved_path: Path | None, log: Log) -> tuple[list[ManifestRow], Counter, list[dict[str, str]]]:
    dropped: Counter = Counter()
    notes: list[dict[str, str]] = []
    ok = []
    for r in rows:
        s = scanned[r.key]
        if s.status != "ok":
            dropped[s.status] += 1
            notes.append({"key": r.key, "source": r.source_id, "why": s.status, "detail": s.reason})
        else:
            ok.append(r)
    if reserved_path is not None:
        reserved = read_reserved(reserved_path)
        kept = []
        for r in ok:
            s = scanned[r.key]
            why = reserved.matches(r.sha256, Hashes(s.file_phash, s.file_dhash))
            if why:
                dropped["reserved"] += 1
                notes.append({"key": r.key, "source": r.source_id, "why": "reserved", "detail": why})
            else:
                kept.append(r)
        log(f"reserved-image list {reserved_path} ({len(reserved)} images): dropped {dropped['reserved']}")
        ok = kept
    # near-duplicates: one picture kept per cluster; a cluster holding both labels is dropped entirely
    ok.sort(key=lambda r: (r.repo, r.path, r.key))
    clusters = duplicate_clusters([Hashes(scanned[r.key].phash, scanned[r.key].dhash) for r in ok])
    members: dict[int, list[ManifestRow]] = defaultdict(list)
    for r, c in zip(ok, clusters, strict=True):
        members[c].append(r)
    kept = []
    for group in members.values():
        if len({r.label for r in group}) > 1:
            for r in group:
                dropped["duplicate across labels"] += 1
                notes.append({"key": r.key, "source": r.source_id, "why": "duplicate across labels", "detail": ""})
            continue
        kept.append(group[0])
        for r in group[1:]:
            dropped["duplicate"] += 1
            notes.append({"key": r.key, "source": r.source_id, "why": "duplicate", "detail": f"of {group[0].source_id}"})
    kept.sort(key=lambda r: r.key)
    return kept, dropped, notes


def _plan(rows: list[ManifestRow], scanned: dict[str, Scanned], splits: Splits, seed: int,
          aligned: bool = False) -> list[Planned]:
    """Every output image, a pure function of the kept rows, the splits and the seed."""
    rng = random.Random(f"mmfr-public-{seed}")
    recipe = splits.recipe
    set_of = splits.set_of_family()
    eval_fakes: dict[str, list[ManifestRow]] = defaultdict(list)
    train_fakes: dict[str, list[ManifestRow]] = defaultdict(list)
    eval_reals: list[ManifestRow] = []
    train_reals: list[ManifestRow] = []
    for r in rows:
        if r.label == "fake":
            (eval_fakes[set_of[r.family]] if r.family in set_of else train_fakes[r.family]).append(r)
        else:
            (eval_reals if _real_is_eval(r, splits) else train_reals).append(r)
    planned: list[Planned] = []

    native_only = dataclasses.replace(recipe, rescale_prob=0.0)  # evaluation sets read native pixels

    def add(r: ManifestRow, split: str, set_name: str, role: str, count: int, rel: str) -> int:
        s = scanned[r.key]  # planned on the pixels as decoded: a photo's EXIF orientation may swap its sides
        crops = plan_crops(rng, s.width or r.out_width, s.height or r.out_height, count, s.lossy,
                           recipe if split == "train" else native_only)
        for k, p in enumerate(crops):
            name = f"{_slug(r.generator)}_{r.sha256[:12]}{'' if r.region is None else f't{r.region[0]}-{r.region[1]}'}_{k}.png"
            path = f"{rel}/{name}"
            key = path if split == "train" else path[len(EVAL_DIR) + 1 :]
            planned.append(Planned(path, r.key, r.label, split, set_name, role, p, key))
        return len(crops)

    # evaluation: one crop per image; reals dealt out round-robin over sources, disjoint between sets
    by_source: dict[str, list[ManifestRow]] = defaultdict(list)
    for r in sorted(eval_reals, key=lambda r: r.key):
        by_source[r.repo].append(r)
    for lst in by_source.values():
        rng.shuffle(lst)
    pool = _round_robin([r for src in sorted(by_source) for r in by_source[src]], lambda r: r.repo)
    sets = [(name, "held_out") for name in splits.held_out] + [(name, "calibration") for name in splits.calibration]
    need = {name: min(splits.eval_per_class, len(eval_fakes[name])) for name, _ in sets}
    total_need = sum(need.values())
    if total_need > len(pool) and pool:  # not enough reals for disjoint sets: shrink every set alike
        scale = len(pool) / total_need
        need = {k: int(v * scale) for k, v in need.items()}
    cursor = 0
    for name, role in sets:
        fakes = sorted(eval_fakes[name], key=lambda r: r.key)
        rng.shuffle(fakes)
        fakes = _round_robin(fakes, lambda r: r.group)[: need[name]]
        for r in fakes:
            add(r, "eval", name, role, 1, f"{EVAL_DIR}/{name}/1_fake")
        for r in pool[cursor : cursor + len(fakes)]:
            add(r, "eval", name, role, 1, f"{EVAL_DIR}/{name}/0_real")
        cursor += len(fakes)
    # training: fake crops per family up to a cap, then as many real crops
    n_fake = 0
    for family in sorted(train_fakes):
        imgs = sorted(train_fakes[family], key=lambda r: r.key)
        budget = splits.family_caps.get(family, splits.train_fake_crops_per_family)
        per = max(1, min(splits.max_crops_per_fake, -(-budget // max(1, len(imgs)))))
        rng.shuffle(imgs)
        imgs = _round_robin(imgs, lambda r: r.group)
        for r in imgs:
            if budget <= 0:
                break
            got = add(r, "train", TRAIN_PART, "train", min(per, budget), f"{TRAIN_PART}/1_fake/{_slug(family)}")
            budget -= got
            n_fake += got
    reals = sorted(train_reals, key=lambda r: r.key)
    per = max(1, min(splits.max_crops_per_real, -(-n_fake // max(1, len(reals)))))
    budget = n_fake
    rng.shuffle(reals)
    for r in reals:
        if budget <= 0:
            break
        budget -= add(r, "train", TRAIN_PART, "train", min(per, budget), f"{TRAIN_PART}/0_real/{_slug(r.repo.split('/')[-1])}")
    if aligned:
        train_reals_planned = [p for p in planned if p.split == "train" and p.label == "real"]
        for p in _round_robin(train_reals_planned, lambda p: p.path.split("/")[2])[: splits.aligned_crops]:
            jpeg = rng.randint(*recipe.jpeg_quality) if rng.random() < recipe.jpeg_prob else None
            path = f"{TRAIN_PART}/1_fake/{ALIGNED_FAMILY}/{Path(p.path).name}"
            planned.append(Planned(path, p.key, "fake", "train", TRAIN_PART, "train",
                                   CropPlan(p.plan.x, p.plan.y, p.plan.web_jpeg, jpeg, p.plan.scale), path,
                                   aligned=True))
    return planned


def _round_robin(items: list[T], group: Callable[[T], str]) -> list[T]:
    """Items reordered so that groups (prompts, sources) take turns: a capped selection then covers as
    many groups as it can."""
    by: dict[str, list[Planned]] = defaultdict(list)
    for p in items:
        by[group(p)].append(p)
    queues = [by[g] for g in sorted(by)]
    out: list[Planned] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def _load_autoencoder(weights: str | Path) -> Callable[[Image.Image], Image.Image]:
    """TAEF2 as an image -> image round trip (sides cropped to multiples of 8 never happen: crops are)."""
    import torch

    from fakereasoning.data.local.generators.taef2 import TAEF2

    model = TAEF2.from_dir(weights)

    def reconstruct(img: Image.Image) -> Image.Image:
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        y = model.reconstruct(x)[0].permute(1, 2, 0).mul(255.0).round().to(torch.uint8).numpy()
        return Image.fromarray(y)

    return reconstruct


def _stored(root: Path, path: str) -> Path | None:
    """Where a written image is: in the dataset, or set aside by the size balance."""
    for candidate in (root / path, root / STATE_DIR / LEFT_OUT / path):
        if candidate.is_file():
            return candidate
    return None


def _balance_file_sizes(written: list[Planned], state: dict[str, dict[str, Any]], seed: int, max_bins: int = 16) -> set[str]:
    """Paths to leave out so that, within training and within each evaluation set, both classes have the
    same distribution of PNG file size. Why: lossless size measures how much noise and detail a crop holds,
    and camera photos hold more than most generator outputs; left alone, size alone tells the classes apart
    (the shortcut audit sees it) and a detector can learn "smooth = fake" instead of generator traces."""
    rng = random.Random(f"balance-{seed}")
    groups: dict[str, list[Planned]] = defaultdict(list)
    for p in written:
        groups[p.set].append(p)
    rejected: set[str] = set()
    for name in sorted(groups):
        items = sorted(groups[name], key=lambda p: p.path)
        sizes = np.log([state[p.path]["bytes"] for p in items])
        bins = max(1, min(max_bins, len(items) // 6))  # about 6+ images per bin: quantiles stay stable
        edges = np.quantile(sizes, np.linspace(0, 1, bins + 1)[1:-1])
        cell = np.searchsorted(edges, sizes)
        n_real = sum(p.label == "real" for p in items)
        n_fake = len(items) - n_real
        if not n_real or not n_fake:
            continue
        for b in range(bins):
            members = [p for p, c in zip(items, cell, strict=True) if c == b]
            real = [p for p in members if p.label == "real"]
            fake = [p for p in members if p.label == "fake"]
            # the same share of each class per bin (so the class ratio of the set is kept)
            keep_real = min(len(real), round(len(fake) * n_real / n_fake))
            keep_fake = min(len(fake), round(len(real) * n_fake / n_real))
            for side, keep in ((real, keep_real), (fake, keep_fake)):
                rng.shuffle(side)
                rejected.update(p.path for p in side[keep:])
    return rejected


# --- stage 4: write -------------------------------------------------------------------------------------
def build_public(
    out: str | Path,
    mirror: str | Path | None = None,
    manifest: str | Path = DEFAULT_MANIFEST,
    sources: str | Path = DEFAULT_SOURCES,
    splits: str | Path = DEFAULT_SPLITS,
    reserved: str | Path | None = DEFAULT_RESERVED,
    seed: int = 0,
    log: Log = _stderr_log,
    progress: bool = True,
    aligned_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Build (or finish building) MMFR-Public under `out`; returns the summary (also in summary.json).

    `aligned_weights`: a folder with the TAEF2 weights (taef2_encoder.pth / taef2_decoder.pth): training
    then also holds aligned fakes, reconstructions of training real crops, with the same processing."""
    started = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rows = read_manifest(manifest)
    repos = read_sources(sources)
    unknown = sorted({r.repo for r in rows} - set(repos))
    if unknown:
        raise DatasetError(f"{sources}: no license entry for {unknown[:5]}")
    split_def = Splits.read(splits_path(splits))
    reader = open_reader(mirror)
    log(f"{len(rows)} manifest rows from {len({r.repo for r in rows})} repositories; reading from "
        f"{'snapshots in ' + str(mirror) if mirror is not None else 'the network (raw.githubusercontent.com)'}")
    try:
        scanned = _scan(rows, reader, root, split_def.recipe, log, progress)
        kept, dropped, notes = _select(rows, scanned, Path(reserved) if reserved is not None else None, log)
        planned = _plan(kept, scanned, split_def, seed, aligned=aligned_weights is not None)
        autoencoder = _load_autoencoder(aligned_weights) if aligned_weights is not None else None
        by_key = {r.key: r for r in kept}
        state_path = root / STATE_DIR / "state.jsonl"
        state = {rec["path"]: rec for rec in _jsonl(state_path) if "path" in rec}
        todo = [p for p in planned if not (p.path in state and _stored(root, p.path) is not None)]
        annotator = EvidenceAnnotator(seed)
        writer = _Log(state_path)
        try:
            todo_by_source: dict[str, list[Planned]] = defaultdict(list)
            for p in todo:
                todo_by_source[by_key[p.key].source_id].append(p)
            with _bar(len(planned), len(planned) - len(todo), "write", progress) as bar:
                for group in todo_by_source.values():
                    row = by_key[group[0].key]
                    try:
                        img = _decode_row(row, reader.read(row.repo, row.commit, row.path))
                    except (FetchError, FakeReasoningError) as exc:  # vanished since the scan
                        log(f"skipped: {exc}")
                        continue
                    prepared: dict[tuple[str, int | None], Image.Image] = {}  # (tile, web JPEG) -> image
                    for p in group:
                        r = by_key[p.key]
                        tile = img.crop((r.region[0], r.region[1], r.region[0] + r.region[2], r.region[1] + r.region[3])) if r.region else img
                        if (p.key, p.plan.web_jpeg) not in prepared:
                            prepared[(p.key, p.plan.web_jpeg)] = prepare(tile, p.plan)
                        ready = prepared[(p.key, p.plan.web_jpeg)]
                        try:
                            data, pixels = render(tile, p.plan, split_def.recipe, autoencoder if p.aligned else None,
                                                  prepared=ready)
                        except ValueError as exc:  # one crop that cannot be cut: named, the rest goes on
                            log(f"skipped {p.path}: {row.source_id}: {exc}")
                            continue
                        atomic_write_bytes(root / p.path, data)
                        m = measure(pixels)
                        writer.add({
                            "path": p.path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                            "blockiness": jpeg_blockiness(pixels),
                            "attributes": annotator.annotate(pixels, p.label, p.annotation_key, measured=m),  # type: ignore[arg-type]
                        })
                        bar.update(1)
        finally:
            writer.close()
        state = {rec["path"]: rec for rec in _jsonl(state_path) if "path" in rec}
    finally:
        reader.close()
    written = [p for p in planned if p.path in state and _stored(root, p.path) is not None]
    rejected = _balance_file_sizes(written, state, seed) if split_def.balance_bytes else set()
    for p in written:  # left-out images move under .build/, so a rerun neither rewrites nor scans them
        target = root / STATE_DIR / LEFT_OUT / p.path if p.path in rejected else root / p.path
        current = _stored(root, p.path)
        if current is not None and current != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            current.replace(target)
    written = [p for p in written if p.path not in rejected]
    if rejected:
        dropped["file-size balance"] += len(rejected)
    summary = _finalise(root, written, state, by_key, repos, split_def, seed, dropped, notes, len(rows), log)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(root / SUMMARY_FILE, summary)
    log(f"done in {summary['seconds']}s: {summary['counts']['train']} training and {summary['counts']['eval']} "
        f"evaluation images in {root}; shortcut audit AUC {summary['audit']['all']['auc']}")
    return summary


def _finalise(root: Path, written: list[Planned], state: dict[str, dict[str, Any]], rows: dict[str, ManifestRow],
              repos: dict[str, Source], splits: Splits, seed: int, dropped: Counter, notes: list[dict[str, str]],
              n_rows: int, log: Log) -> dict[str, Any]:
    from fakereasoning.data.cot import build_conversations

    reasoning: dict[str, dict[str, Any]] = defaultdict(dict)
    for p in written:
        reasoning[p.set][p.annotation_key] = state[p.path]["attributes"]
    sets = [(name, fams, "held_out") for name, fams in splits.held_out.items()] + [
        (name, fams, "calibration") for name, fams in splits.calibration.items()]
    if reasoning.get(TRAIN_PART):
        write_reasoning_json(root / TRAIN_PART / f"{TRAIN_PART}_reasoning.json", reasoning[TRAIN_PART])
    for name, _, _ in sets:
        if reasoning.get(name):
            write_reasoning_json(root / EVAL_DIR / name / f"{name}_reasoning.json", reasoning[name])
    atomic_write_json(root / COT_FILE, build_conversations(root), indent=None)

    def count(pred: Callable[[Planned], bool]) -> int:
        return sum(1 for p in written if pred(p))

    train_families = sorted({p.family(rows) for p in written if p.split == "train" and p.label == "fake"})
    eval_sets = []
    for name, fams, role in sets:
        members = [p for p in written if p.set == name]
        eval_sets.append({
            "name": name, "role": role, "families": fams, "in_training": False,
            "real": sum(p.label == "real" for p in members), "fake": sum(p.label == "fake" for p in members),
            "generators": dict(Counter(p.generator(rows) for p in members if p.label == "fake")),
            "real_sources": dict(Counter(rows[p.key].repo for p in members if p.label == "real")),
        })
    audit = {}
    for split_name, pred in (("all", lambda p: True), ("train", lambda p: p.split == "train"),
                             ("eval", lambda p: p.split == "eval")):
        items = [p for p in written if pred(p)]
        feats = [[float(np.log(state[p.path]["bytes"])), float(splits.recipe.crop), float(splits.recipe.crop),
                  float(state[p.path]["blockiness"])] for p in items]
        audit[split_name] = shortcut_audit(feats, [int(p.label == "fake") for p in items], seed).to_dict()
    train = [p for p in written if p.split == "train"]
    content = {lab: dict(Counter(rows[p.key].content for p in train if p.label == lab)) for lab in ("real", "fake")}
    used_repos = sorted({rows[p.key].repo for p in written})
    manifest = {
        "name": "MMFR-Public",
        "seed": seed,
        "crop": splits.recipe.crop,
        "recipe": asdict(splits.recipe),
        "training": {"part": TRAIN_PART, "families": train_families,
                     "real_sources": sorted({rows[p.key].repo for p in train if p.label == "real"})},
        "evaluation_sets": eval_sets,
        # same shape as MMFR-Local's manifest, so readers of `generators[].in_training` work on both
        "generators": [{"name": s["name"], "in_training": False, "role": s["role"]} for s in eval_sets],
        "sources": [{**asdict(repos[r]), "images": sum(1 for p in written if rows[p.key].repo == r)} for r in used_repos],
        "images": [
            {"path": p.path, "label": p.label, "split": p.split, "set": p.set, "role": p.role,
             "family": p.family(rows), "generator": p.generator(rows), "aligned": p.aligned, "content": rows[p.key].content,
             "repo": rows[p.key].repo, "commit": rows[p.key].commit, "source_path": rows[p.key].path,
             "source_sha256": rows[p.key].sha256, "region": rows[p.key].region, "crop_xy": [p.plan.x, p.plan.y],
             "web_jpeg": p.plan.web_jpeg, "jpeg": p.plan.jpeg, "scale": p.plan.scale, "sha256": state[p.path]["sha256"]}
            for p in written
        ],
    }
    atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)
    summary = {
        "manifest_rows": n_rows,
        "counts": {"train": len(train), "train_real": sum(p.label == "real" for p in train),
                   "train_fake": sum(p.label == "fake" for p in train), "eval": count(lambda p: p.split == "eval")},
        "train_fakes_by_family": dict(sorted(Counter(p.family(rows) for p in train if p.label == "fake").items())),
        "train_reals_by_source": dict(sorted(Counter(rows[p.key].repo for p in train if p.label == "real").items())),
        "train_content": content,
        "evaluation_sets": eval_sets,
        "dropped": dict(sorted(dropped.items())),
        "dropped_detail": notes,
        "audit": audit,
        "licenses": {r: repos[r].license for r in used_repos},
    }
    for s in eval_sets:
        log(f"evaluation set {s['name']} ({s['role']}): {s['real']} real, {s['fake']} fake")
    log(f"dropped: {dict(sorted(dropped.items())) or 'nothing'}")
    return summary
