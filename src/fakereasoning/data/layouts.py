"""Dataset layout adapters: the benchmarks people already hold, read into the same image records.

Layouts (auto-detected in this order, or forced with `--layout NAME`):

    mmfr         ROOT/evaluation_sets/<set>/{0_real,1_fake}/, training parts, *_reasoning.json   (data/mmfr.py)
    list         a CSV or JSONL file of `path,label[,set[,split]]` rows (paths relative to the file's folder)
    folders      ROOT/{real,fake}/ or ROOT/{0_real,1_fake}/ (one set named after ROOT), or ROOT/<set>/{real,fake}/
    genimage     ROOT/<gen>/[<sub>/]{train,val}/{ai,nature}/         (train -> training split, val -> evaluation)
    synthbuster  ROOT/RAISE*/ (the real photos) + ROOT/<generator>/ (fakes); every set pairs its fakes with all reals
    forensynths  ROOT/<gen>/[<class>/]{0_real,1_fake}/               (CNNDetection; classes merge into <gen>)

Every layout gives a `Dataset` whose `index` is an `MMFRIndex` (training records, evaluation sets, problems),
so evaluation, training, validation and statistics never care where a dataset came from. Every folder is
read through `list_dir`, the one checked listing: a symbolic link that resolves outside the root is an
error naming it, links to folders are not followed, and anything but a regular file is skipped with a
warning. Records of the MMFR scanner get the same check (`check_file`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakereasoning.data.mmfr import (
    EVAL_DIR,
    MANIFEST_FILE,
    ImageRecord,
    MMFRIndex,
    Problem,
    Split,
    ValidationReport,
    decode_problems,
    read_json,
    scan,
    sort_problems,
)
from fakereasoning.errors import DatasetError
from fakereasoning.fsio import UnsafePathError, check_relative, safe_join
from fakereasoning.imageio import is_image_path
from fakereasoning.schema import LABEL_FOLDERS, Label, attribute_label
from fakereasoning.wording import count

LAYOUTS: dict[str, str] = {
    "mmfr": "evaluation_sets/<set>/{0_real,1_fake} and training parts",
    "list": "a .csv or .jsonl file of path,label[,set[,split]]",
    "folders": "{real,fake} or {0_real,1_fake} folders, or <set>/{real,fake}",
    "genimage": "<gen>/{train,val}/{ai,nature}",
    "synthbuster": "RAISE*/ real photos + one folder per generator",
    "forensynths": "<gen>/[<class>/]{0_real,1_fake}",
}
LIST_SUFFIXES = (".csv", ".jsonl")
# Files that may hold `in_training` per set: MMFR-Local's manifest, and the demo set's README.json.
TRAINING_MARK_FILES = (MANIFEST_FILE, "README.json")
GENIMAGE_LABELS: dict[str, Label] = {"nature": "real", "ai": "fake"}
GENIMAGE_SPLITS: dict[str, Split] = {"train": "train", "val": "eval"}
PLAIN_LABELS: dict[str, Label] = {"real": "real", "fake": "fake", **LABEL_FOLDERS}
LIST_LABELS: dict[str, Label] = {"real": "real", "fake": "fake", "0": "real", "1": "fake", **LABEL_FOLDERS}
LIST_SPLITS: dict[str, Split] = {"train": "train", "eval": "eval", "val": "eval", "test": "eval"}


def expected_layouts() -> str:
    return "; ".join(f"{name} ({what})" for name, what in LAYOUTS.items())


# --- the one checked listing ----------------------------------------------------------------------------
def _inside(base: Path, target: Path) -> bool:
    return target == base or base in target.parents


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def check_file(root: Path, path: Path, problems: list[Problem]) -> bool:
    """Whether PATH may be read as a dataset file: a regular file, or a link to one inside ROOT.

    A link that resolves outside ROOT raises DatasetError naming it; anything else unusable is a warning.
    """
    rel = _rel(root, path)
    try:
        st = path.lstat()
    except OSError as exc:
        problems.append(Problem("warning", rel, f"cannot read ({exc.strerror or exc}): skipped"))
        return False
    target = Path(os.path.realpath(path))  # also catches a linked parent folder (the MMFR scanner follows them)
    if not _inside(Path(os.path.realpath(root)), target):
        raise DatasetError(f"{path}: symbolic link resolves outside the dataset root {root} (to {target})")
    if stat.S_ISLNK(st.st_mode):
        try:
            st = path.stat()
        except OSError:
            problems.append(Problem("warning", rel, "broken symbolic link (or a loop): skipped"))
            return False
        if stat.S_ISDIR(st.st_mode):
            problems.append(Problem("warning", rel, "symbolic link to a folder: not followed"))
            return False
    if not stat.S_ISREG(st.st_mode):
        if not stat.S_ISDIR(st.st_mode):
            problems.append(Problem("warning", rel, "not a regular file (a FIFO, socket or device): skipped"))
        return False
    return True


def list_dir(root: Path, folder: Path, problems: list[Problem]) -> tuple[list[Path], list[Path]]:
    """(sub-folders, regular files) of FOLDER, sorted, hidden entries skipped, every entry checked.

    Real folders only (never a symbolic link to one); files as `check_file` allows them.
    """
    folders: list[Path] = []
    files: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            folders.append(path)
        elif check_file(root, path, problems):
            files.append(path)
    return folders, files


def walk(root: Path, folder: Path, problems: list[Problem]) -> list[Path]:
    """Every regular file below FOLDER (depth first, sorted) through `list_dir`."""
    folders, files = list_dir(root, folder, problems)
    out = list(files)
    for sub in folders:
        out.extend(walk(root, sub, problems))
    return out


def subfolders(root: Path, folder: Path) -> list[Path]:
    """The real sub-folders of FOLDER (for layout detection; problems are reported by the adapters)."""
    return list_dir(root, folder, [])[0]


# --- the dataset ------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """Image records of one dataset, whatever its layout."""

    root: Path  # the folder, or the list file
    layout: str
    index: MMFRIndex
    detected: bool  # True when the layout was auto-detected, False when forced
    in_training: dict[str, bool] = field(default_factory=dict)  # set -> seen in training (from a manifest)
    in_training_source: str | None = None  # the file `in_training` came from

    @property
    def problems(self) -> list[Problem]:
        return self.index.problems

    def describe(self) -> str:
        """The one line that says which layout was read, and what it holds."""
        how = "detected" if self.detected else "forced with --layout"
        sets = self.index.evaluation_sets
        n_eval = sum(len(v) for v in sets.values())
        return (f"{self.root}: {self.layout} layout ({how}: {LAYOUTS[self.layout]}): "
                f"{count(len(self.index.train), 'training image')}, {count(len(sets), 'evaluation set')}, "
                f"{count(n_eval, 'evaluation image')}")


def _add(index: MMFRIndex, root: Path, file: Path, label: Label, split: Split, set_name: str,
         problems: list[Problem], key: str | None = None) -> ImageRecord | None:
    if not is_image_path(file):
        problems.append(Problem("warning", _rel(root, file), "not an image file (ignored)"))
        return None
    record = ImageRecord(key=key or _rel(root, file), path=file, label=label, split=split, set=set_name)
    if split == "train":
        index.train.append(record)
    else:
        index.evaluation_sets.setdefault(set_name, []).append(record)
    return record


def _labelled(index: MMFRIndex, root: Path, folder: Path, labels: dict[str, Label], split: Split, set_name: str,
              problems: list[Problem]) -> bool:
    """Add the images of FOLDER's label sub-folders; report anything else. True if any label folder."""
    sub, files = list_dir(root, folder, problems)
    found = False
    for f in files:
        problems.append(Problem("warning", _rel(root, f), "file outside a label folder: its label is unknown (ignored)"))
    for d in sub:
        label = labels.get(d.name)
        if label is None:
            problems.append(Problem("warning", _rel(root, d),
                                    f"folder is not a label folder ({', '.join(sorted(labels))}): ignored"))
            continue
        found = True
        for file in walk(root, d, problems):
            _add(index, root, file, label, split, set_name, problems)
    return found


def _has_children(root: Path, folder: Path, names: Iterable[str], need: int = 1) -> bool:
    present = {d.name for d in subfolders(root, folder)}
    return len(present & set(names)) >= need


# --- adapters ---------------------------------------------------------------------------------------------
def _read_mmfr(root: Path, problems: list[Problem]) -> MMFRIndex:
    """The MMFR scanner (data/mmfr.py), then `check_file` on every record it found."""
    index = scan(root)
    kept: list[ImageRecord] = []
    for r in index.train:
        if check_file(root, r.path, index.problems):
            kept.append(r)
    index.train = kept
    for name, recs in index.evaluation_sets.items():
        index.evaluation_sets[name] = [r for r in recs if check_file(root, r.path, index.problems)]
    return index


def _read_folders(root: Path, problems: list[Problem]) -> MMFRIndex:
    index = MMFRIndex(root=root, problems=problems)
    if _has_children(root, root, PLAIN_LABELS):
        _labelled(index, root, root, PLAIN_LABELS, "eval", root.name, problems)
        return index
    sub, files = list_dir(root, root, problems)
    for f in files:
        problems.append(Problem("warning", _rel(root, f), "file outside a set folder (ignored)"))
    for d in sub:
        if not _labelled(index, root, d, PLAIN_LABELS, "eval", d.name, problems):
            problems.append(Problem("warning", _rel(root, d), "set folder without real/ or fake/ (ignored)"))
    return index


def _genimage_splits(root: Path, gen: Path) -> list[Path]:
    """The train/ and val/ folders of a generator, directly below it or one wrapper folder down."""
    direct = [d for d in subfolders(root, gen) if d.name in GENIMAGE_SPLITS]
    if direct:
        return direct
    return [s for d in subfolders(root, gen) for s in subfolders(root, d) if s.name in GENIMAGE_SPLITS]


def _read_genimage(root: Path, problems: list[Problem]) -> MMFRIndex:
    index = MMFRIndex(root=root, problems=problems)
    for gen in list_dir(root, root, problems)[0]:
        splits = _genimage_splits(root, gen)
        if not splits:
            problems.append(Problem("warning", _rel(root, gen), "no train/ or val/ folder (ignored)"))
        for split_dir in splits:
            _labelled(index, root, split_dir, GENIMAGE_LABELS, GENIMAGE_SPLITS[split_dir.name], gen.name, problems)
    return index


def _raise_folder(root: Path) -> list[Path]:
    return [d for d in subfolders(root, root) if d.name.lower().startswith("raise")]


def _read_synthbuster(root: Path, problems: list[Problem]) -> MMFRIndex:
    index = MMFRIndex(root=root, problems=problems)
    reals_dirs = _raise_folder(root)
    if len(reals_dirs) != 1:
        found = ", ".join(d.name for d in reals_dirs) or "none"
        raise DatasetError(f"{root}: synthbuster layout needs exactly one RAISE* folder of real photos (found {found})")
    reals = [f for f in walk(root, reals_dirs[0], problems) if is_image_path(f)]
    for gen in list_dir(root, root, problems)[0]:
        if gen == reals_dirs[0]:
            continue
        fakes = walk(root, gen, problems)
        for f in fakes:
            _add(index, root, f, "fake", "eval", gen.name, problems)
        if gen.name in index.evaluation_sets:
            for f in reals:  # the same photos are the real half of every set
                _add(index, root, f, "real", "eval", gen.name, problems)
    return index


def _read_forensynths(root: Path, problems: list[Problem]) -> MMFRIndex:
    index = MMFRIndex(root=root, problems=problems)
    sub, files = list_dir(root, root, problems)
    for f in files:
        problems.append(Problem("warning", _rel(root, f), "file outside a generator folder (ignored)"))
    for gen in sub:
        if _has_children(root, gen, LABEL_FOLDERS):
            _labelled(index, root, gen, LABEL_FOLDERS, "eval", gen.name, problems)
            continue
        classes = [c for c in subfolders(root, gen) if _has_children(root, c, LABEL_FOLDERS)]
        if not classes:
            problems.append(Problem("warning", _rel(root, gen), "no 0_real/ or 1_fake/ folder (ignored)"))
        for c in classes:
            _labelled(index, root, c, LABEL_FOLDERS, "eval", gen.name, problems)
    return index


def _list_rows(path: Path, problems: list[Problem]) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV (optional header `path,label,set,split`) or JSONL list."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError, ValueError) as exc:
                problems.append(Problem("error", name, f"line {n}: malformed JSON ({exc})"))
                continue
            if not isinstance(row, dict):
                problems.append(Problem("error", name, f"line {n}: expected an object with path and label"))
                continue
            yield n, row
        return
    reader = csv.reader(io.StringIO(text))
    columns = ["path", "label", "set", "split"]
    for n, cells in enumerate(reader, 1):
        if not cells or not any(c.strip() for c in cells):
            continue
        if n == 1 and cells[0].strip().lower() == "path":
            columns = [c.strip().lower() for c in cells]
            continue
        yield n, {k: v.strip() for k, v in zip(columns, cells, strict=False)}


def _list_attributes(value: Any, label: Label, where: str, problems: list[Problem], name: str
                     ) -> dict[str, str | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem("error", name, f"{where}: attributes must be an object of name -> text"))
        return None
    attrs: dict[str, str | None] = {}
    for attr, text in value.items():
        kind = attribute_label(attr)
        if kind is None or (text is not None and not isinstance(text, str)):
            problems.append(Problem("error", name, f"{where}: bad attribute {attr!r} (unknown name or not text)"))
            continue
        if text is not None and kind != label:
            problems.append(Problem("error", name, f"{where}: attribute {attr!r} does not fit a {label} image"))
        attrs[attr] = text
    return attrs


def _read_list(path: Path, problems: list[Problem], allow_absolute: bool) -> MMFRIndex:
    base = path.parent
    index = MMFRIndex(root=base, problems=problems)
    name = path.name
    seen: set[tuple[str, str]] = set()
    for n, row in _list_rows(path, problems):
        where = f"line {n}"
        key, label_text = row.get("path"), str(row.get("label", "")).strip().lower()
        if not isinstance(key, str) or not key.strip():
            problems.append(Problem("error", name, f"{where}: missing path"))
            continue
        label = LIST_LABELS.get(label_text)
        if label is None:
            problems.append(Problem("error", name, f"{where}: label {row.get('label')!r} is not real/fake/0/1"))
            continue
        split = LIST_SPLITS.get(str(row.get("split") or "eval").strip().lower())
        if split is None:
            problems.append(Problem("error", name, f"{where}: split {row.get('split')!r} is not train/val/test/eval"))
            continue
        set_name = str(row.get("set") or path.stem).strip() or path.stem
        if os.path.isabs(key):
            if not allow_absolute:
                problems.append(Problem("error", name, f"{where}: absolute path {key!r} (paths are relative to "
                                        f"{base}; pass --allow-absolute-paths to accept absolute ones)"))
                continue
            file = Path(key)
        else:
            try:
                check_relative(key)
                file = safe_join(base, key)
            except UnsafePathError as exc:
                problems.append(Problem("error", name, f"{where}: {exc}"))
                continue
        if not file.exists() and not file.is_symlink():
            problems.append(Problem("error", name, f"{where}: {key!r}: no such file"))
            continue
        if not check_file(base if not os.path.isabs(key) else file.parent, file, problems):
            problems.append(Problem("error", name, f"{where}: {key!r} is not a regular file"))
            continue
        if not is_image_path(file):
            problems.append(Problem("error", name, f"{where}: {key!r} is not an image file (by its extension)"))
            continue
        if (key, set_name) in seen:
            problems.append(Problem("warning", name, f"{where}: {key!r} is listed twice in set {set_name!r}"))
        seen.add((key, set_name))
        record = _add(index, base, file, label, split, set_name, problems, key=key)
        if record is not None:
            record.attributes = _list_attributes(row.get("attributes"), label, where, problems, name)
    return index


_READERS: dict[str, Callable[[Path, list[Problem]], MMFRIndex]] = {
    "mmfr": _read_mmfr,
    "folders": _read_folders,
    "genimage": _read_genimage,
    "synthbuster": _read_synthbuster,
    "forensynths": _read_forensynths,
}


# --- detection --------------------------------------------------------------------------------------------
def _is_mmfr(root: Path) -> bool:
    if (root / EVAL_DIR).is_dir() or (root / "forgery_reasoning_cot.json").is_file():
        return True
    tops = subfolders(root, root)
    if {d.name for d in tops} & {"diffusiondb", "laion"}:
        return True
    return any((d / f"{d.name}_reasoning.json").is_file() for d in tops)


def detect_layout(root: Path) -> str | None:
    """The layout ROOT is in, or None when it matches none."""
    if root.is_file():
        return "list" if root.suffix.lower() in LIST_SUFFIXES else None
    if _is_mmfr(root):
        return "mmfr"
    if _has_children(root, root, PLAIN_LABELS):
        return "folders"
    tops = subfolders(root, root)
    if any(_has_children(root, s, GENIMAGE_LABELS) for g in tops for s in _genimage_splits(root, g)):
        return "genimage"
    if len(_raise_folder(root)) == 1 and len(tops) > 1:
        return "synthbuster"
    if any(_has_children(root, g, LABEL_FOLDERS) or any(_has_children(root, c, LABEL_FOLDERS)
                                                       for c in subfolders(root, g)) for g in tops):
        return "forensynths"
    if any(_has_children(root, g, PLAIN_LABELS) for g in tops):
        return "folders"
    return None


def read_in_training(root: Path, problems: list[Problem]) -> tuple[dict[str, bool], str | None]:
    """`in_training` per set from the dataset's manifest: a list (or name -> object mapping) under
    `generators`, `evaluation_sets` or `sets` whose entries carry `name` and a boolean `in_training`."""
    folder = root if root.is_dir() else root.parent
    for file_name in TRAINING_MARK_FILES:
        path = folder / file_name
        if not path.is_file() or path.is_symlink():
            continue
        data = read_json(path, file_name, problems)
        if not isinstance(data, dict):
            continue
        marks: dict[str, bool] = {}
        for key in ("generators", "evaluation_sets", "sets"):
            entries = data.get(key)
            if isinstance(entries, dict):
                entries = [{"name": k, **v} for k, v in entries.items() if isinstance(v, dict)]
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("in_training"), bool):
                    marks[e["name"]] = e["in_training"]
        if marks:
            return marks, file_name
    return {}, None


def load_dataset(root: str | os.PathLike[str], layout: str | None = None, allow_absolute: bool = False,
                 collect: bool = False) -> Dataset:
    """Read ROOT in LAYOUT (auto-detected when None).

    Errors found in a non-MMFR layout (bad list rows, unsafe paths) raise DatasetError naming the file,
    unless COLLECT (`data validate` reports them all). MMFR keeps its scanner's behaviour: problems are
    reported, not raised.
    """
    base = Path(root)
    if not base.exists():
        raise DatasetError(f"{base}: dataset root does not exist")
    if layout is not None and layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; expected one of: {', '.join(LAYOUTS)}")
    if layout == "list" and not base.is_file():
        raise DatasetError(f"{base}: the list layout reads a .csv or .jsonl file, not a folder")
    if layout not in (None, "list") and not base.is_dir():
        raise DatasetError(f"{base}: the {layout} layout reads a folder")
    found = layout or detect_layout(base)
    if found is None:
        what = "file" if base.is_file() else "folder"
        raise DatasetError(f"{base}: unknown dataset layout for this {what}; expected one of: {expected_layouts()}")
    problems: list[Problem] = []
    if found == "list":
        index = _read_list(base, problems, allow_absolute)
    else:
        index = _READERS[found](base, problems)
    marks, source = read_in_training(base, index.problems)
    dataset = Dataset(base, found, index, detected=layout is None, in_training=marks, in_training_source=source)
    errors = [p for p in index.problems if p.severity == "error"]
    if errors and found != "mmfr" and not collect:
        more = f" (and {len(errors) - 1} more: run `fakereasoning data validate`)" if len(errors) > 1 else ""
        first = errors[0]
        where = base if found == "list" else base / first.path
        raise DatasetError(f"{where}: {first.message}{more}")
    return dataset


# --- validation -------------------------------------------------------------------------------------------
def validate_dataset(root: str | os.PathLike[str], layout: str | None = None, allow_absolute: bool = False,
                     decode: bool = True, jobs: int | None = None, progress: bool = False
                     ) -> tuple[Dataset, ValidationReport]:
    """Read ROOT in its layout, collecting every problem, then decode every image (threads: PIL releases
    the GIL while decoding). The report has the counts of `data validate --json`."""
    dataset = load_dataset(root, layout, allow_absolute, collect=True)
    decodable, failed = decode_problems(dataset.index.records(), decode=decode, jobs=jobs, progress=progress)
    problems = sort_problems([*dataset.problems, *failed])
    return dataset, ValidationReport(root=dataset.root, index=dataset.index, problems=problems, decodable=decodable)
