"""File writing that never leaves half a file, and path checks that keep keys and walks inside a root."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def staging_dir(target: str | os.PathLike[str]) -> Path:
    """A fresh hidden folder beside TARGET (`.NAME.PID-XXXX.tmp`) to build a directory in, then move into
    place. The PID tells a later run whether its writer still lives (`recover_staged`).

    Created with the usual permissions (mkdtemp alone makes it private, 0700).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


@contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a whole folder in a staging folder beside TARGET, then swap it in on success.

    Readers see the old set of files or the new one, never new files beside old ones. The swap is three
    renames: the finished staging folder to `.NAME.new-PID` (complete, by its name), TARGET to
    `.NAME.old-PID`, `.NAME.new-PID` to TARGET; then the old set is removed. A kill at any point leaves
    names from which `recover_staged` (run first here, and by `evaluate` before it starts) restores the
    old set or finishes the swap. On an error the old set is put back and the staging folder removed.
    """
    target = Path(target)
    recover_staged(target)
    tmp = staging_dir(target)
    try:
        yield tmp
        share_files(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pid = os.getpid()
    new, old = _sibling(target, f"new-{pid}"), _sibling(target, f"old-{pid}")
    try:
        os.replace(tmp, new)
        if os.path.lexists(target):
            os.replace(target, old)
        os.replace(new, target)
    except BaseException:
        if not os.path.lexists(target) and os.path.lexists(old):
            os.replace(old, target)
        for path in (tmp, new):
            shutil.rmtree(path, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sibling(target: Path, tag: str) -> Path:
    return target.parent / f".{target.name}.{tag}"


_STAGED = re.compile(r"^(?:(?P<kind>new|old)-(?P<pid>\d+)|(?:(?P<tmp_pid>\d+)-)?[A-Za-z0-9_]{8}\.tmp)$")


def _alive(pid: int | None) -> bool:
    """Whether process PID (the writer of a staged folder) still runs; None (an old name): no."""
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def recover_staged(target: str | os.PathLike[str]) -> list[str]:
    """Clean up after a `staged_dir` writer of TARGET that was killed; returns what was done, in words.

    TARGET missing with a complete `.NAME.new-PID` beside it: the swap is finished (the new set moved into
    place); with only `.NAME.old-PID`: the old set is restored. Then every leftover of a writer that no
    longer runs is removed: unfinished staging folders, a new set whose swap never started (TARGET still
    holds the old one), an old set already replaced. A live writer's folders are left alone.
    """
    target = Path(target)
    prefix = f".{target.name}."
    found: dict[str, list[Path]] = {"new": [], "old": [], "tmp": []}
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    for name in names:
        m = _STAGED.match(name[len(prefix):]) if name.startswith(prefix) else None
        path = target.parent / name
        if m is None or path.is_symlink() or not path.is_dir():
            continue
        pid = m.group("pid") or m.group("tmp_pid")
        if not _alive(int(pid) if pid else None):
            found[m.group("kind") or "tmp"].append(path)
    notes: list[str] = []
    newest = sorted(found["new"] + found["old"], key=lambda p: p.stat().st_mtime)
    if not os.path.lexists(target) and newest:
        chosen = max(found["new"], key=lambda p: p.stat().st_mtime) if found["new"] else newest[-1]
        os.replace(chosen, target)
        found["new" if chosen in found["new"] else "old"].remove(chosen)
        notes.append(f"{target}: an earlier run was killed during its output swap; "
                     + ("finished the swap (its complete new output is now in place)" if chosen.name.startswith(
                         f"{prefix}new-") else "restored the previous output"))
    for kind, what in (("new", "an unswapped new output"), ("old", "a replaced old output"),
                       ("tmp", "an unfinished output")):
        for path in found[kind]:
            shutil.rmtree(path, ignore_errors=True)
            notes.append(f"{target}: removed {what} left by a killed run ({path.name})")
    return notes


def share_files(folder: str | os.PathLike[str]) -> None:
    """Give the files of a staged folder the usual permissions (some writers create them 0600)."""
    mode = 0o666 & ~_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file():
            path.chmod(mode)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half."""
    target = Path(path)
    if target.is_dir():  # os.replace would fail naming the temp file, not TARGET
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(target))
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


class JSONError(ValueError):
    """JSON that cannot be used; the message says why and where (never a bare parser exception)."""


def parse_json(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads` whose every failure is a `JSONError`: malformed text (line and column), nesting too
    deep, and numbers Python refuses (an integer of over 4300 digits raises a plain ValueError)."""
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError as exc:
        raise JSONError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise JSONError(f"malformed JSON: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise JSONError("malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise JSONError(f"malformed JSON: {str(exc).split(': value has')[0]}") from None


def read_text_file(path: str | os.PathLike[str]) -> str:
    """A UTF-8 text file, refusing anything but a regular file: opening a FIFO would block for ever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return fh.read().decode("utf-8")


MAX_NAME_BYTES = 255  # NAME_MAX of Linux and macOS file systems
MAX_PATH_BYTES = 4096  # PATH_MAX


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
    # what the file system would refuse anyway, with an OSError that names no file
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts):
        raise UnsafePathError(f"path {key[:80]!r}... has a name longer than {MAX_NAME_BYTES} bytes")
    if len(key.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise UnsafePathError(f"path {key[:80]!r}... is longer than {MAX_PATH_BYTES} bytes")
    return PurePosixPath(*parts)


def safe_join(root: str | os.PathLike[str], key: str) -> Path:
    """`root / key` after `check_relative`, and refusing symlinks that lead outside `root`."""
    rel = check_relative(key)
    base = Path(root).resolve()
    full = (base / rel).resolve()
    if full != base and base not in full.parents:
        raise UnsafePathError(f"path {key!r} resolves outside {base}")
    return Path(root) / rel


# --- the checked walk: how every reader lists a dataset folder ------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One listed path: a usable file or folder, or (kind None) why it cannot be used."""

    path: Path  # as listed (below the folder given, never resolved), so keys stay relative to the root
    kind: Literal["file", "dir"] | None
    problem: str | None = None


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def check_entry(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Entry:
    """Classify one path without reading it: a regular file, a folder, or a problem (a symbolic link
    loop, a broken link, a link leading outside ROOT, a FIFO, socket or device, which would block a
    reader or smuggle in data from elsewhere). ROOT None: links may lead anywhere."""
    path = Path(path)
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            try:
                target = path.resolve(strict=True)
            except FileNotFoundError:
                return Entry(path, None, f"broken symbolic link (to {os.readlink(path)})")
            except (OSError, RuntimeError) as exc:
                if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
                    return Entry(path, None, "symbolic link loop")
                raise
            if root is not None and not _inside(target, Path(root).resolve()):
                return Entry(path, None, f"symbolic link leads outside the dataset root (to {target})")
            info = os.stat(path)
    except OSError as exc:
        return Entry(path, None, f"cannot read ({exc.strerror or exc})")
    if stat.S_ISDIR(info.st_mode):
        return Entry(path, "dir")
    if stat.S_ISREG(info.st_mode):
        return Entry(path, "file")
    kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
    return Entry(path, None, f"not a regular file ({kind})")


def list_dir(folder: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Entry]:
    """The entries of FOLDER in sorted order, hidden ones (`.name`) skipped, each `check_entry`-ed."""
    folder = Path(folder)
    try:
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    except OSError as exc:
        return [Entry(folder, None, f"cannot list folder ({exc.strerror or exc})")]
    return [check_entry(folder / n, root) for n in names]


def walk_files(folder: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Iterator[Entry]:
    """Every file below FOLDER, depth first in sorted order, plus the entries that cannot be used (with
    their problem). Links are followed only where `check_entry` allows; a folder reached twice (a link to
    an ancestor) is reported once as a loop instead of being walked forever."""
    seen: set[tuple[int, int]] = set()

    def walk(directory: Path) -> Iterator[Entry]:
        try:
            info = os.stat(directory)
        except OSError as exc:
            yield Entry(directory, None, f"cannot read ({exc.strerror or exc})")
            return
        if (info.st_dev, info.st_ino) in seen:
            yield Entry(directory, None, "symbolic link loop (folder already walked)")
            return
        seen.add((info.st_dev, info.st_ino))
        for entry in list_dir(directory, root):
            if entry.kind == "dir":
                yield from walk(entry.path)
            else:
                yield entry

    yield from walk(Path(folder))
