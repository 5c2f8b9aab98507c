"""Read, validate, summarise and write the released MMFR layout (spec section 3).

Everything in the project that reads MMFR goes through `scan`. Layout:

    ROOT/<part>/...                     training parts: diffusiondb/ (fake), laion/ (real), or any other
                                        folder whose first-level folders are 0_real/ and 1_fake/
    ROOT/<part>/<part>_reasoning.json   keys relative to ROOT (also accepted: relative to <part>/)
    ROOT/evaluation_sets/<set>/{0_real,1_fake}/...
    ROOT/evaluation_sets/<set>/<set>_reasoning.json   keys relative to evaluation_sets/ (or to <set>/)
    ROOT/forgery_reasoning_cot.json     training conversations (LLaVA format)
    ROOT/captions.json                  optional, ours: {ROOT-relative image path: caption}

`scan` reports structural problems (layout, JSON, keys, attributes); `validate` adds a decode check of
every image and the counts of `data validate --json`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from fakereasoning.errors import DatasetError, ImageLoadError
from fakereasoning.fsio import (
    Entry,
    JSONError,
    UnsafePathError,
    atomic_write_json,
    check_entry,
    check_relative,
    list_dir,
    parse_json,
    read_text_file,
    walk_files,
)
from fakereasoning.imageio import is_image_path, load_image
from fakereasoning.progress import Progress
from fakereasoning.schema import (
    ATTRIBUTES,
    LABEL_FOLDERS,
    MAX_TEXT_CHARS,
    Label,
    attribute_label,
    parse_cot,
    reference_text,
)

EVAL_DIR = "evaluation_sets"
COT_FILE = "forgery_reasoning_cot.json"
CAPTIONS_FILE = "captions.json"
MANIFEST_FILE = "manifest.json"
REASONING_SUFFIX = "_reasoning.json"
PART_LABELS: dict[str, Label] = {"diffusiondb": "fake", "laion": "real"}

Severity = Literal["error", "warning"]
Split = Literal["train", "eval"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    path: str  # ROOT-relative path of the file the problem is about
    message: str
    image: str | None = None  # ROOT-relative key of the image it concerns, when it is one image's problem

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class ImageRecord:
    """One image of the dataset with its label and (if any) annotation."""

    key: str  # path relative to ROOT, POSIX separators
    path: Path
    label: Label
    split: Split
    set: str  # training part or evaluation set name
    attributes: dict[str, str | None] | None = None
    caption: str | None = None

    def reference(self) -> str:
        """The released reference reasoning: non-null attribute texts joined in sorted attribute order."""
        return reference_text(self.attributes or {})


@dataclass(frozen=True)
class Unlabelled:
    """An image found where no label applies (a folder that is not 0_real/1_fake, or none at all): it is
    not a record, but commands that count what a dataset holds must count it."""

    key: str
    split: Split
    set: str
    reason: str


@dataclass
class MMFRIndex:
    root: Path
    train: list[ImageRecord] = field(default_factory=list)
    evaluation_sets: dict[str, list[ImageRecord]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    conversations: list[Any] | None = None  # entries of forgery_reasoning_cot.json, None if absent
    captions: dict[str, str] = field(default_factory=dict)
    unlabelled: list[Unlabelled] = field(default_factory=list)

    def records(self, split: Split | None = None, sets: Iterable[str] | None = None) -> Iterator[ImageRecord]:
        """Images in a stable order: training parts first, then evaluation sets by name."""
        wanted = set(sets) if sets is not None else None
        if split in (None, "train"):
            yield from (r for r in self.train if wanted is None or r.set in wanted)
        if split in (None, "eval"):
            for name in sorted(self.evaluation_sets):
                if wanted is None or name in wanted:
                    yield from self.evaluation_sets[name]

    def by_key(self) -> dict[str, ImageRecord]:
        return {r.key: r for r in self.records()}


# --- JSON reading ----------------------------------------------------------------------------------------
def _pairs_without_duplicates(dups: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                dups.append(k)
            out[k] = v
        return out

    return hook


def read_json(path: Path, rel: str, problems: list[Problem]) -> Any | None:
    """Parse a JSON file, reporting malformed JSON (with line and column), duplicate keys and files that
    are not regular (a FIFO would block the reader) as problems."""
    try:
        text = read_text_file(path)
    except UnicodeDecodeError as exc:
        problems.append(Problem("error", rel, f"malformed JSON: not UTF-8 text (byte {exc.start})"))
        return None
    except OSError as exc:
        problems.append(Problem("error", rel, f"cannot read file ({exc.strerror or exc})"))
        return None
    dups: list[str] = []
    try:
        data = parse_json(text, object_pairs_hook=_pairs_without_duplicates(dups))
    except JSONError as exc:
        problems.append(Problem("error", rel, str(exc)))
        return None
    for k in dups[:20]:
        problems.append(Problem("warning", rel, f"duplicate key {k!r}: the last value is used"))
    return data


# --- Scanning -------------------------------------------------------------------------------------------
def _posix(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


class _Scanner:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = MMFRIndex(root=root)
        self.images: dict[str, ImageRecord] = {}
        self.annotated: set[str] = set()

    def problem(self, severity: Severity, path: str, message: str, image: str | None = None) -> None:
        self.index.problems.append(Problem(severity, path, message, image))

    def unlabelled(self, file: Path, split: Split, set_name: str, reason: str) -> None:
        self.index.unlabelled.append(Unlabelled(_posix(file, self.root), split, set_name, reason))

    def usable(self, entry: Entry) -> bool:
        """Whether a listed entry can be read; if not, its problem (escaping link, FIFO...) is an error."""
        if entry.problem is not None:
            self.problem("error", _posix(entry.path, self.root), entry.problem)
        return entry.kind is not None

    def list_dir(self, folder: Path) -> list[Entry]:
        return [e for e in list_dir(folder, self.root) if self.usable(e)]

    def walk_files(self, folder: Path) -> list[Path]:
        return [e.path for e in walk_files(folder, self.root) if self.usable(e)]

    def add_image(self, file: Path, label: Label, split: Split, set_name: str) -> ImageRecord:
        key = _posix(file, self.root)
        record = ImageRecord(key=key, path=file, label=label, split=split, set=set_name)
        self.images[key] = record
        if split == "train":
            self.index.train.append(record)
        else:
            self.index.evaluation_sets.setdefault(set_name, []).append(record)
        return record

    # training parts --------------------------------------------------------------------------------
    def scan_part(self, part: Path) -> list[Path]:
        name = part.name
        fixed = PART_LABELS.get(name)
        jsons: list[Path] = []
        if fixed is None:
            for entry in list_dir(part, self.root):  # problems are reported by the walk below
                child = entry.path
                if entry.kind == "dir" and child.name not in LABEL_FOLDERS:
                    self.problem(
                        "error",
                        _posix(child, self.root),
                        f"label folder {child.name!r} is not 0_real or 1_fake (training part {name!r} is "
                        "neither diffusiondb (fake) nor laion (real), so its labels come from its folders)",
                    )
        for file in self.walk_files(part):
            rel_in_part = file.relative_to(part)
            if file.parent == part and file.name.endswith(REASONING_SUFFIX):
                jsons.append(file)
                continue
            if not is_image_path(file):
                if file.parent != part:
                    self.problem("warning", _posix(file, self.root), "not an image file (ignored)")
                continue
            label = fixed
            if label is None:
                first = rel_in_part.parts[0] if len(rel_in_part.parts) > 1 else None
                label = LABEL_FOLDERS.get(first) if first else None
                if label is None:
                    reason = (f"image outside a 0_real/ or 1_fake/ folder of training part {name!r}: its label "
                              "is unknown" if first is None else f"label folder {first!r} is not 0_real or 1_fake")
                    if first is None:  # (a bad label folder is reported once, above)
                        self.problem("error", _posix(file, self.root), reason)
                    self.unlabelled(file, "train", name, reason)
                    continue
            self.add_image(file, label, "train", name)
        return jsons

    # evaluation sets -------------------------------------------------------------------------------
    def scan_eval_set(self, folder: Path) -> list[Path]:
        jsons: list[Path] = []
        for entry in self.list_dir(folder):
            child = entry.path
            rel = _posix(child, self.root)
            if entry.kind == "dir":
                label = LABEL_FOLDERS.get(child.name)
                if label is None:
                    reason = f"label folder {child.name!r} is not 0_real or 1_fake"
                    self.problem("error", rel, reason)
                    for file in self.walk_files(child):
                        if is_image_path(file):
                            self.unlabelled(file, "eval", folder.name, reason)
                    continue
                for file in self.walk_files(child):
                    if is_image_path(file):
                        self.add_image(file, label, "eval", folder.name)
                    else:
                        self.problem("warning", _posix(file, self.root), "not an image file (ignored)")
            elif child.name.endswith(REASONING_SUFFIX):
                jsons.append(child)
            elif is_image_path(child):
                reason = "image outside a 0_real/ or 1_fake/ folder: its label is unknown"
                self.problem("error", rel, reason)
                self.unlabelled(child, "eval", folder.name, reason)
        self.index.evaluation_sets.setdefault(folder.name, [])
        return jsons

    # annotations -----------------------------------------------------------------------------------
    def resolve_key(self, key: str, bases: list[Path]) -> str | None:
        """The ROOT-relative key of an annotation key, trying each base folder in turn."""
        rel = check_relative(key)
        for base in bases:
            candidate = base / Path(*rel.parts)
            root_key = _posix(candidate, self.root)
            if root_key in self.images:
                return root_key
        for base in bases:  # exists but is not an indexed image (wrong folder, not an image file)
            candidate = base / Path(*rel.parts)
            if candidate.is_file():
                return _posix(candidate, self.root)
        return None

    def read_annotations(self, json_path: Path, bases: list[Path]) -> None:
        rel = _posix(json_path, self.root)
        data = read_json(json_path, rel, self.index.problems)
        if data is None:
            return
        if not isinstance(data, dict):
            self.problem("error", rel, f"expected a JSON object of image path -> attributes, got {type(data).__name__}")
            return
        for key, value in data.items():
            try:
                root_key = self.resolve_key(key, bases)
            except UnsafePathError as exc:
                self.problem("error", rel, f"key {key!r}: {exc}")
                continue
            if root_key is None:
                self.problem("error", rel, f"key {key!r}: missing image (no such file)")
                continue
            record = self.images.get(root_key)
            if record is None:
                self.problem("error", rel, f"key {key!r}: {root_key} is not an image of a labelled folder")
                continue
            if not isinstance(value, dict):
                self.problem("error", rel, f"key {key!r}: expected an object of attribute -> text, got "
                             f"{type(value).__name__}", root_key)
                continue
            attrs: dict[str, str | None] = {}
            for name, text in value.items():
                kind = attribute_label(name)
                if kind is None:
                    self.problem("error", rel, f"key {key!r}: unknown attribute name {name!r}", root_key)
                    continue
                if text is not None and not isinstance(text, str):
                    self.problem("error", rel, f"key {key!r}: attribute {name!r} must be text or null, got "
                                 f"{type(text).__name__}", root_key)
                    continue
                if text is not None and len(text) > MAX_TEXT_CHARS:
                    self.problem("error", rel, f"key {key!r}: attribute {name!r} is {len(text)} characters long "
                                 f"(at most {MAX_TEXT_CHARS})", root_key)
                    continue
                if text is not None and kind != record.label:
                    kind_word = "forgery" if kind == "fake" else "authentic"
                    self.problem("error", rel, f"key {key!r}: {kind_word} attribute {name!r} on a {record.label} image",
                                 root_key)
                attrs[name] = text
            if root_key in self.annotated:
                self.problem("warning", rel, f"key {key!r}: {root_key} is annotated more than once; the last one is used")
            self.annotated.add(root_key)
            record.attributes = attrs

    def top_file(self, name: str) -> Path | None:
        """ROOT/NAME when it exists and is a usable file (an escaping link or a FIFO is an error)."""
        path = self.root / name
        if not os.path.lexists(path):
            return None
        entry = check_entry(path, self.root)
        if entry.kind == "dir":
            self.problem("error", name, "is a folder, expected a JSON file")
        return path if self.usable(entry) and entry.kind == "file" else None

    def read_captions(self) -> None:
        path = self.top_file(CAPTIONS_FILE)
        if path is None:
            return
        data = read_json(path, CAPTIONS_FILE, self.index.problems)
        if data is None:
            return
        if not isinstance(data, dict):
            self.problem("error", CAPTIONS_FILE, "expected a JSON object of image path -> caption")
            return
        for key, caption in data.items():
            try:
                rel = check_relative(key).as_posix()
            except UnsafePathError as exc:
                self.problem("error", CAPTIONS_FILE, f"key {key!r}: {exc}")
                continue
            image = rel if rel in self.images else None
            if not isinstance(caption, str):
                self.problem("error", CAPTIONS_FILE, f"key {key!r}: caption must be text", image)
                continue
            if len(caption) > MAX_TEXT_CHARS:
                self.problem("error", CAPTIONS_FILE, f"key {key!r}: caption is {len(caption)} characters long "
                             f"(at most {MAX_TEXT_CHARS})", image)
                continue
            self.index.captions[rel] = caption
            if rel in self.images:
                self.images[rel].caption = caption
            else:
                self.problem("warning", CAPTIONS_FILE, f"key {key!r}: caption for an image that does not exist")

    def read_conversations(self) -> None:
        path = self.top_file(COT_FILE)
        if path is None:
            if self.index.train and not os.path.lexists(self.root / COT_FILE):
                self.problem("warning", COT_FILE, "no training conversations file (make one with `data to-cot`)")
            return
        data = read_json(path, COT_FILE, self.index.problems)
        if data is None:
            return
        if not isinstance(data, list):
            self.problem("error", COT_FILE, f"expected a JSON list of conversations, got {type(data).__name__}")
            return
        self.index.conversations = data
        for i, entry in enumerate(data):
            for message in conversation_problems(entry, self.images, self.root):
                self.problem("error", f"{COT_FILE}", f"entry {i}: {message}")

    def run(self) -> MMFRIndex:
        root = self.root
        part_jsons: list[tuple[Path, list[Path]]] = []
        eval_jsons: list[tuple[Path, list[Path]]] = []
        for top in list_dir(root, root):
            child = top.path
            if child.name in (COT_FILE, CAPTIONS_FILE):
                continue  # read (and checked) by top_file
            if not self.usable(top) or top.kind != "dir":
                continue
            if child.name == EVAL_DIR:
                for entry in self.list_dir(child):
                    set_dir = entry.path
                    if entry.kind == "dir":
                        for j in self.scan_eval_set(set_dir):
                            eval_jsons.append((j, [child, set_dir]))
                    elif is_image_path(set_dir):
                        self.problem("error", _posix(set_dir, root), "image outside an evaluation set folder")
            else:
                for j in self.scan_part(child):
                    part_jsons.append((j, [root, child]))
        for json_path, bases in part_jsons + eval_jsons:
            self.read_annotations(json_path, bases)
        has_json = {p.parent for p, _ in part_jsons + eval_jsons}
        for record in self.images.values():
            if record.attributes is not None:
                continue
            top = root / record.key.split("/")[0]
            folder = top if record.split == "train" else root / EVAL_DIR / record.set
            if folder in has_json:
                self.problem("warning", record.key, "image has no annotation")
        for folder in sorted({root / r.key.split("/")[0] for r in self.index.train} - has_json):
            self.problem("warning", _posix(folder, root), f"training part has no *{REASONING_SUFFIX}")
        for name in sorted(self.index.evaluation_sets):
            if root / EVAL_DIR / name not in has_json:
                self.problem("warning", f"{EVAL_DIR}/{name}", f"evaluation set has no *{REASONING_SUFFIX}")
        self.read_captions()
        self.read_conversations()
        return self.index


def conversation_problems(entry: Any, images: Mapping[str, ImageRecord], root: Path) -> list[str]:
    """What is wrong with one `forgery_reasoning_cot.json` entry (empty when nothing is)."""
    if not isinstance(entry, dict):
        return [f"expected an object, got {type(entry).__name__}"]
    out: list[str] = []
    image = entry.get("image")
    record = None
    if not isinstance(image, str):
        out.append("missing 'image' path")
    else:
        try:
            key = check_relative(image).as_posix()
            record = images.get(key)
            if record is None:
                out.append(f"image {image!r}: missing image (no such labelled image file)")
        except UnsafePathError as exc:
            out.append(f"image {image!r}: {exc}")
    convs = entry.get("conversations")
    if not isinstance(convs, list) or not convs:
        return out + ["missing 'conversations' list"]
    answer = None
    for turn in convs:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            return out + ["each conversation turn needs 'from' and a text 'value'"]
        if turn.get("from") == "gpt" and answer is None:
            answer = turn["value"]
    if answer is None:
        return out + ["no 'gpt' answer turn"]
    parsed = parse_cot(answer)
    if parsed.label is None:
        out.append("answer has no parsable <CONCLUSION> verdict")
    elif record is not None and parsed.label != record.label:
        out.append(f"answer concludes {parsed.label} but {record.key} is {record.label}")
    return out


def scan(root: str | os.PathLike[str]) -> MMFRIndex:
    """Index a dataset in the MMFR layout. Raises DatasetError only when ROOT itself is unusable."""
    base = Path(root)
    if not base.exists():
        raise DatasetError(f"{base}: dataset root does not exist")
    if not base.is_dir():
        raise DatasetError(f"{base}: dataset root is not a folder")
    return _Scanner(base).run()


# --- Validation -----------------------------------------------------------------------------------------
@dataclass
class ValidationReport:
    root: Path
    index: MMFRIndex
    problems: list[Problem]
    decodable: set[str]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def _counts(self, records: list[ImageRecord]) -> dict[str, int]:
        real = sum(1 for r in records if r.label == "real")
        return {"real": real, "fake": len(records) - real, "annotations": count_annotations(records)}

    def to_dict(self) -> dict[str, Any]:
        conversations = self.index.conversations
        return {
            "root": str(self.root),
            "train": {**self._counts(self.index.train), "conversations": len(conversations or [])},
            "evaluation_sets": {
                name: self._counts(recs) for name, recs in sorted(self.index.evaluation_sets.items())
            },
            "problems": [{"severity": p.severity, "path": p.path, "message": p.message} for p in self.problems],
        }


def decode_one(record: ImageRecord) -> tuple[str, str | None]:
    """(key, problem or None): whether the record's image decodes (validate's per-image check)."""
    try:
        load_image(record.path, name=record.key)
        return record.key, None
    except ImageLoadError as exc:
        return record.key, exc.problem


def decode_all(records: Iterable[ImageRecord], *, jobs: int | None = None, progress: bool = False
               ) -> dict[str, str]:
    """{key: problem} of the records whose image does not decode; each distinct image decoded once, in
    threads (PIL releases the GIL while decoding). What `validate`, `train` and `evaluate` all check."""
    unique = list({r.key: r for r in records}.values())
    failed: dict[str, str] = {}
    if not unique:
        return failed
    workers = jobs or min(8, (os.cpu_count() or 1) * 2)
    bar = Progress(len(unique), "decoding", "img", enabled=progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for key, error in pool.map(decode_one, unique):
            bar.update()
            if error is not None:
                failed[key] = error
    bar.close()
    return failed


def decode_problems(records: Iterable[ImageRecord], *, decode: bool = True, jobs: int | None = None,
                    progress: bool = False) -> tuple[set[str], list[Problem]]:
    """(decodable keys, one error per image that does not decode): the decode check of `data validate`."""
    records = list(records)
    keys = {r.key for r in records}
    if not decode:
        return keys, []
    failed = decode_all(records, jobs=jobs, progress=progress)
    return keys - set(failed), [Problem("error", k, f"image does not decode: {e}", k) for k, e in failed.items()]


def validate(
    root: str | os.PathLike[str],
    *,
    decode: bool = True,
    jobs: int | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Scan, then decode every image."""
    index = scan(root)
    decodable, failed = decode_problems(index.records(), decode=decode, jobs=jobs, progress=progress)
    problems = sort_problems([*index.problems, *failed])
    return ValidationReport(root=Path(root), index=index, problems=problems, decodable=decodable)


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Errors first, then warnings, each by path."""
    order = {"error": 0, "warning": 1}
    return sorted(problems, key=lambda p: (order[p.severity], p.path))


# --- Summaries ------------------------------------------------------------------------------------------
def count_annotations(records: Iterable[ImageRecord]) -> int:
    """Attribute texts (non-null findings) of the records: what `data validate` and `data stats` both count
    as annotations (an image that does not decode is an error of its own, its annotations still count)."""
    return sum(1 for r in records for name, text in (r.attributes or {}).items() if text and name in ATTRIBUTES)


def summarize(index: MMFRIndex) -> list[dict[str, Any]]:
    """One row per training part and evaluation set: image counts and attribute frequencies."""
    groups: dict[tuple[str, str], list[ImageRecord]] = {}
    for r in index.records():
        groups.setdefault((r.split, r.set), []).append(r)
    rows = []
    for (split, name), recs in groups.items():
        freq: Counter[str] = Counter()
        for r in recs:
            for attr, text in (r.attributes or {}).items():
                if text:
                    freq[attr] += 1
        real = sum(r.label == "real" for r in recs)
        rows.append(
            {
                "split": split,
                "set": name,
                "images": len(recs),
                "real": real,
                "fake": len(recs) - real,
                "annotated": sum(r.attributes is not None for r in recs),  # images with an entry
                "annotations": count_annotations(recs),  # attribute texts, as `data validate` counts
                "attributes": {a: freq[a] for a in ATTRIBUTES if freq[a]},
            }
        )
    return rows


# --- Writing --------------------------------------------------------------------------------------------
def write_reasoning_json(path: str | os.PathLike[str], mapping: Mapping[str, Mapping[str, str | None]]) -> None:
    """Write a `*_reasoning.json` atomically, keys sorted. Keys are checked: relative, no `..`."""
    clean: dict[str, dict[str, str | None]] = {}
    for key in sorted(mapping):
        rel = check_relative(key).as_posix()
        attrs = mapping[key]
        unknown = [n for n in attrs if attribute_label(n) is None]
        if unknown:
            raise ValueError(f"{key}: unknown attribute names {unknown}")
        clean[rel] = {name: attrs[name] for name in ATTRIBUTES if name in attrs}
    atomic_write_json(path, clean, indent=2)


def reasoning_json_path(root: str | os.PathLike[str], set_name: str, split: Split) -> Path:
    """Where the reasoning JSON of a training part or evaluation set lives."""
    base = Path(root) / (EVAL_DIR if split == "eval" else "") / set_name
    return base / f"{set_name}{REASONING_SUFFIX}"


def annotation_key(record: ImageRecord) -> str:
    """The key a record has in its reasoning JSON (eval keys are relative to evaluation_sets/)."""
    if record.split == "eval":
        return PurePosixPath(record.key).relative_to(EVAL_DIR).as_posix()
    return record.key
