"""`annotate prepare`: OpenAI Batch-API request files (JSONL) for a collection of images.

Also home of what `prepare` and `run` share: which images to annotate, their `custom_id` (the image path
relative to the dataset folder, so the `0_real`/`1_fake` folder is part of it and the collector can read
the label back), and the request body (spec section 4: the label's prompt, the image as a re-encoded JPEG
data URL under a byte cap, `max_tokens` 300).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from fakereasoning.annotate.prompts import DEFAULT_MODEL, MAX_TOKENS, build_prompt
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.fsio import atomic_write_text, walk_files
from fakereasoning.imageio import is_image_path, load_image
from fakereasoning.schema import LABEL_FOLDERS, LABELS, Label

DEFAULT_PER_FILE = 50  # images per request file, as in the release (the Batch API caps file size)
DEFAULT_MAX_IMAGE_BYTES = 1_000_000  # encoded JPEG bytes per image (before base64)
DEFAULT_MAX_SIDE = 2048  # the API downsizes larger images anyway; sending more only costs bytes
MAX_FILE_BYTES = 190 * 1024 * 1024  # stay under the Batch API's 200 MB upload limit
REQUEST_URL = "/v1/chat/completions"
REQUEST_FILE_PATTERN = "requests_{:04d}.jsonl"
_REQUEST_FILE_RE = re.compile(r"^requests_(\d{4,})\.jsonl$")
_JPEG_QUALITIES = (92, 85, 75, 65, 50)
_MIN_SIDE = 32


class AnnotateError(FakeReasoningError):
    """A problem with the annotation inputs or settings (not with one image's answer)."""


@dataclass(frozen=True)
class ImageJob:
    """One image to annotate: where it is, its key in the reasoning JSON, and its true label."""

    custom_id: str
    path: Path
    label: Label


def label_of_key(key: str) -> Label | None:
    """The label given by the last `0_real` / `1_fake` folder of a key or path, if any."""
    for part in reversed(PurePosixPath(key.replace("\\", "/")).parts[:-1]):
        if part in LABEL_FOLDERS:
            return LABEL_FOLDERS[part]
    return None


def _iter_images(arg: Path) -> Iterable[Path]:
    if arg.is_dir():  # the checked walk: a link out of the folder would send a file from elsewhere away
        for entry in walk_files(arg, root=arg):
            if entry.problem is not None and is_image_path(entry.path):
                raise AnnotateError(f"{entry.path}: {entry.problem}")
            if entry.kind == "file" and is_image_path(entry.path):
                yield entry.path
    elif arg.exists():
        if is_image_path(arg):
            yield arg
    else:
        raise AnnotateError(f"{arg}: no such file or directory")


def _default_key(path: Path, arg: Path) -> str:
    """Key relative to the folder above the set folder that holds the label folder (the MMFR convention:
    `evaluation_sets/<set>/0_real/x.png` -> `<set>/0_real/x.png`, `ROOT/<part>/1_fake/x.png` ->
    `<part>/1_fake/x.png`); without a label folder, relative to the parent of the folder argument."""
    full = path.resolve()
    parts = full.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] in LABEL_FOLDERS:
            start = max(i - 1, 1)
            return PurePosixPath(*parts[start:]).as_posix()
    if arg.is_dir():
        return PurePosixPath(*full.relative_to(arg.resolve().parent).parts).as_posix()
    return full.name


def plan_images(
    inputs: Sequence[str | os.PathLike[str]],
    label: Label | None = None,
    root: str | os.PathLike[str] | None = None,
) -> list[ImageJob]:
    """Expand files and folders into `ImageJob`s sorted by custom_id.

    `root` makes every custom_id the path relative to it; without it, see `_default_key`. The label is
    `label`, else the image's last `0_real`/`1_fake` folder; a contradiction or no label at all is an
    error, because the prompt tells the model the true label. (When the custom_id holds no label folder,
    `collect` needs `--label`.)
    """
    if label is not None and label not in LABELS:
        raise AnnotateError(f"label must be 'real' or 'fake', got {label!r}")
    if not inputs:
        raise AnnotateError("no images given")
    root_path = Path(root).resolve() if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise AnnotateError(f"{root}: --root is not a directory")
    jobs: dict[str, ImageJob] = {}
    for raw in inputs:
        arg = Path(raw)
        for path in _iter_images(arg):
            if root_path is not None:
                try:
                    key = PurePosixPath(*path.resolve().relative_to(root_path).parts).as_posix()
                except ValueError:
                    raise AnnotateError(f"{path}: not inside --root {root_path}") from None
            else:
                key = _default_key(path, arg)
            folder_label = label_of_key(key) or label_of_key(path.resolve().as_posix())
            if label is not None and folder_label is not None and folder_label != label:
                raise AnnotateError(f"{path}: --label {label} contradicts its folder ({folder_label})")
            image_label = label or folder_label
            if image_label is None:
                raise AnnotateError(f"{path}: no label: pass --label or put it under 0_real/ or 1_fake/")
            previous = jobs.get(key)
            if previous is not None and previous.path.resolve() != path.resolve():
                raise AnnotateError(f"{path}: same custom_id {key!r} as {previous.path}; pass --root")
            jobs[key] = ImageJob(custom_id=key, path=path, label=image_label)
    if not jobs:
        raise AnnotateError("no image files found in " + ", ".join(str(a) for a in inputs))
    return [jobs[k] for k in sorted(jobs)]


def encode_jpeg(
    path: str | os.PathLike[str],
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_side: int = DEFAULT_MAX_SIDE,
    name: str | None = None,
) -> bytes:
    """Load through `imageio.load_image` and re-encode as JPEG no larger than `max_bytes`.

    Re-encoding strips metadata and odd formats the API would refuse; quality drops first, then the
    image is downscaled, so small images keep their pixels as exactly as the cap allows.
    """
    label = name or str(path)
    img = load_image(path, name=label)
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    while True:
        for quality in _JPEG_QUALITIES:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality)
            if buf.tell() <= max_bytes:
                return buf.getvalue()
        w, h = img.size
        nw, nh = int(w * 0.75), int(h * 0.75)
        if min(nw, nh) < _MIN_SIDE:
            raise ImageLoadError(label, f"cannot encode under {max_bytes} bytes even downscaled to {w}x{h}")
        img = img.resize((nw, nh), Image.Resampling.LANCZOS)


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def build_body(
    label: Label, image_url: str, model: str = DEFAULT_MODEL, max_tokens: int = MAX_TOKENS
) -> dict[str, Any]:
    """A `/v1/chat/completions` request body: the label's prompt and the image in one user message."""
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": build_prompt(label)},
                    {"type": "image_url", "image_url": {"url": image_url}},
                ],
            }
        ],
        "max_tokens": max_tokens,
    }


def build_request(
    job: ImageJob,
    model: str = DEFAULT_MODEL,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_tokens: int = MAX_TOKENS,
) -> dict[str, Any]:
    """One Batch-API request line (raises `ImageLoadError` for an unusable image)."""
    jpeg = encode_jpeg(job.path, max_bytes=max_image_bytes, name=str(job.path))
    return {
        "custom_id": job.custom_id,
        "method": "POST",
        "url": REQUEST_URL,
        "body": build_body(job.label, data_url(jpeg), model=model, max_tokens=max_tokens),
    }


@dataclass
class PrepareResult:
    files: list[Path] = field(default_factory=list)
    requests: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [str(p) for p in self.files],
            "requests": self.requests,
            "skipped": [{"image": i, "reason": r} for i, r in self.skipped],
        }


def prepare(
    jobs: Sequence[ImageJob],
    out_dir: str | os.PathLike[str],
    model: str = DEFAULT_MODEL,
    per_file: int = DEFAULT_PER_FILE,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_tokens: int = MAX_TOKENS,
    progress: bool = True,
) -> PrepareResult:
    """Write `requests_NNNN.jsonl` files of at most `per_file` requests each (atomically).

    An unusable image is reported and skipped, never fatal. Request files left by an earlier, larger
    run in the same folder are removed so the folder holds exactly this run's batches.
    """
    from tqdm import tqdm

    if per_file < 1:
        raise AnnotateError(f"--per-file must be at least 1, got {per_file}")
    if max_image_bytes < 1024:
        raise AnnotateError(f"--max-image-bytes must be at least 1024, got {max_image_bytes}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AnnotateError(f"{out}: --out exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    result = PrepareResult()
    lines: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal lines, size
        if not lines:
            return
        path = out / REQUEST_FILE_PATTERN.format(len(result.files))
        atomic_write_text(path, "".join(lines))
        result.files.append(path)
        lines, size = [], 0

    for job in tqdm(jobs, desc="prepare", unit="img", file=sys.stderr, disable=not progress):
        try:
            line = (
                json.dumps(build_request(job, model, max_image_bytes, max_tokens), ensure_ascii=False) + "\n"
            )
        except ImageLoadError as exc:
            result.skipped.append((str(job.path), exc.problem))
            continue
        if lines and (len(lines) >= per_file or size + len(line) > MAX_FILE_BYTES):
            flush()
        lines.append(line)
        size += len(line)
        result.requests += 1
    flush()
    written = {p.name for p in result.files}
    for stale in out.iterdir():
        if _REQUEST_FILE_RE.match(stale.name) and stale.name not in written:
            stale.unlink()
    return result
