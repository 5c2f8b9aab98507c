"""The MMFR-Public manifest: one row per source image (or tile of a grid), and one entry per repository.

Why a checked-in manifest: the images themselves stay in their repositories (licenses vary), so the
project ships only what identifies each one exactly (repository, commit, path, sha256) and the evidence
for its label; `build-public` fetches and verifies them.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fakereasoning.errors import DatasetError
from fakereasoning.fsio import UnsafePathError, check_relative

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MANIFEST = PACKAGE_DIR / "manifest.tsv"
DEFAULT_SOURCES = PACKAGE_DIR / "sources.json"
DEFAULT_RESERVED = PACKAGE_DIR / "reserved_images.tsv"

COLUMNS = (
    "repo", "commit", "path", "sha256", "bytes", "width", "height", "label", "generator", "family", "group",
    "content", "evidence", "region",
)
LABELS = ("real", "fake")
CONTENTS = ("photo", "art", "unknown")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,38}/[A-Za-z0-9_.-]{1,100}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:+-]{0,79}$")


@dataclass(frozen=True)
class ManifestRow:
    """One image of MMFR-Public as identified in its source repository."""

    repo: str
    commit: str
    path: str
    sha256: str  # of the file's bytes
    bytes: int
    width: int
    height: int
    label: str
    generator: str
    family: str  # generator family ("real" for photos): the unit of the train / held-out split
    group: str  # images that must stay on one side of a split (same prompt, case, scene)
    content: str  # photo | art | unknown (for content-balance checks)
    evidence: str  # why the label and generator are right (README line, file name, folder)
    region: tuple[int, int, int, int] | None  # x, y, w, h of a tile inside a grid, else None

    @property
    def key(self) -> str:
        """Unique id of the row: file hash plus tile."""
        return self.sha256 if self.region is None else f"{self.sha256}@{','.join(map(str, self.region))}"

    @property
    def source_id(self) -> str:
        return f"{self.repo}@{self.commit}:{self.path}"

    @property
    def out_width(self) -> int:
        return self.region[2] if self.region else self.width

    @property
    def out_height(self) -> int:
        return self.region[3] if self.region else self.height


def _parse_row(raw: dict[str, str], where: str) -> ManifestRow:
    def need(name: str) -> str:
        value = (raw.get(name) or "").strip()
        if not value and name != "region":
            raise DatasetError(f"{where}: empty {name!r}")
        return value

    for name, value in raw.items():
        if value is not None and any(not ch.isprintable() for ch in str(value)):
            raise DatasetError(f"{where}: {name} holds a control character")
    repo, commit, path, sha = need("repo"), need("commit").lower(), need("path"), need("sha256").lower()
    if not _REPO.match(repo):
        raise DatasetError(f"{where}: repo {repo!r} is not owner/name")
    if not _HEX40.match(commit):
        raise DatasetError(f"{where}: commit {commit!r} is not 40 hex digits")
    if not _HEX64.match(sha):
        raise DatasetError(f"{where}: sha256 {sha!r} is not 64 hex digits")
    try:
        check_relative(path)
    except UnsafePathError as exc:
        raise DatasetError(f"{where}: {exc}") from None
    if "\n" in path or "\r" in path:
        raise DatasetError(f"{where}: path contains a line break")
    label = need("label")
    if label not in LABELS:
        raise DatasetError(f"{where}: label {label!r} is not one of {LABELS}")
    content = need("content")
    if content not in CONTENTS:
        raise DatasetError(f"{where}: content {content!r} is not one of {CONTENTS}")
    generator, family, group = need("generator"), need("family"), need("group")
    for name, value in (("generator", generator), ("family", family)):
        if not _NAME.match(value):
            raise DatasetError(f"{where}: {name} {value!r} must be lowercase letters, digits and . _ : + -")
    if (family == "real") != (label == "real"):
        raise DatasetError(f"{where}: family {family!r} does not fit label {label!r} (reals have family 'real')")
    try:
        size, width, height = int(need("bytes")), int(need("width")), int(need("height"))
    except ValueError:
        raise DatasetError(f"{where}: bytes, width and height must be integers") from None
    if min(size, width, height) <= 0:
        raise DatasetError(f"{where}: bytes, width and height must be positive")
    region = None
    text = need("region")
    if text:
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise DatasetError(f"{where}: region {text!r} is not x,y,w,h") from None
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            raise DatasetError(f"{where}: region {text!r} lies outside the {width}x{height} image")
        region = (x, y, w, h)
    return ManifestRow(repo, commit, path, sha, size, width, height, label, generator, family, group, content,
                       need("evidence"), region)


def read_manifest(path: str | Path = DEFAULT_MANIFEST) -> list[ManifestRow]:
    """Parse and check every row; the first bad row is an error naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the manifest ({exc})") from None
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise DatasetError(f"{path}: manifest header lacks columns {missing}")
    rows: list[ManifestRow] = []
    seen: set[str] = set()
    for n, raw in enumerate(reader, start=2):
        row = _parse_row(raw, f"{path}:{n}")
        if row.key in seen:
            raise DatasetError(f"{path}:{n}: duplicate row for {row.key}")
        seen.add(row.key)
        rows.append(row)
    return rows


def write_manifest(path: str | Path, rows: Iterable[ManifestRow]) -> None:
    """Write rows in the manifest format (used by tests and by whoever extends the manifest)."""
    from fakereasoning.fsio import atomic_write_text

    out = ["\t".join(COLUMNS)]
    for r in rows:
        region = ",".join(map(str, r.region)) if r.region else ""
        values = [r.repo, r.commit, r.path, r.sha256, str(r.bytes), str(r.width), str(r.height), r.label,
                  r.generator, r.family, r.group, r.content, r.evidence, region]
        if any("\t" in v or "\n" in v for v in values):
            raise DatasetError(f"manifest row {r.key}: a value contains a tab or line break")
        out.append("\t".join(values))
    atomic_write_text(path, "\n".join(out) + "\n")


@dataclass(frozen=True)
class Source:
    """A repository the manifest draws from, with its license."""

    repo: str
    commit: str
    license: str
    license_evidence: str
    kind: str
    description: str
    notes: str = ""


def read_sources(path: str | Path = DEFAULT_SOURCES) -> dict[str, Source]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the source list ({exc})") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of sources")
    out: dict[str, Source] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: entry {i} is not an object")
        try:
            src = Source(**{k: str(entry[k]) for k in ("repo", "commit", "license", "license_evidence", "kind",
                                                        "description")}, notes=str(entry.get("notes", "")))
        except KeyError as exc:
            raise DatasetError(f"{path}: entry {i} lacks {exc}") from None
        out[src.repo] = src
    return out
