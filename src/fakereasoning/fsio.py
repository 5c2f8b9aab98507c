"""File writing that never leaves half a file, and path checks that keep keys inside a root."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def staging_dir(target: str | os.PathLike[str]) -> Path:
    """A fresh hidden folder beside TARGET to build a directory in, then `os.replace` into place.

    Created with the usual permissions (mkdtemp alone makes it private, 0700).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def share_files(folder: str | os.PathLike[str]) -> None:
    """Give the files of a staged folder the usual permissions (some writers create them 0600)."""
    mode = 0o666 & ~_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file():
            path.chmod(mode)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; written files get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


class UnsafePathError(ValueError):
    """A relative path from data (a JSON key, a custom_id) that is absolute or escapes its root."""


def check_relative(key: str) -> PurePosixPath:
    """Validate a dataset key: relative, POSIX, no `..`, no empty or drive parts. Returns the parsed path."""
    if not isinstance(key, str) or not key.strip():
        raise UnsafePathError(f"empty path {key!r}")
    if "\x00" in key:
        raise UnsafePathError(f"path {key!r} contains a NUL byte")
    if key.startswith(("/", "\\")) or (len(key) > 1 and key[1] == ":"):
        raise UnsafePathError(f"path {key!r} is absolute")
    parts = PurePosixPath(key.replace("\\", "/")).parts
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"path {key!r} escapes its root with '..'")
    return PurePosixPath(*parts)


def safe_join(root: str | os.PathLike[str], key: str) -> Path:
    """`root / key` after `check_relative`, and refusing symlinks that lead outside `root`."""
    rel = check_relative(key)
    base = Path(root).resolve()
    full = (base / rel).resolve()
    if full != base and base not in full.parents:
        raise UnsafePathError(f"path {key!r} resolves outside {base}")
    return Path(root) / rel
