"""Read a manifest row's bytes from a local git snapshot (`--mirror DIR`) or from the network.

Mirrors are bare git directories laid out as `DIR/<owner>+<name>/repo` (what a snapshot tool or
`git clone --mirror` gives); one long-lived `git cat-file --batch` per repository answers every read.
Without a mirror, files come from raw.githubusercontent.com at the pinned commit. Either way the caller
checks the sha256: a file that changed or vanished is reported by name and skipped, never trusted.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Protocol

from fakereasoning.errors import DatasetError

RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
MAX_FILE_BYTES = 64 * 1024 * 1024


class FetchError(Exception):
    """One file could not be read (the message says why); the build goes on without it."""


class Reader(Protocol):
    def read(self, repo: str, commit: str, path: str) -> bytes: ...

    def close(self) -> None: ...


def mirror_dir(mirror: Path, repo: str) -> Path:
    return mirror / repo.replace("/", "+") / "repo"


class _CatFile:
    """A `git cat-file --batch` process on one bare repository."""

    def __init__(self, git_dir: Path) -> None:
        git = shutil.which("git")
        if git is None:
            raise DatasetError("reading --mirror snapshots needs the git command, which is not installed")
        self.proc = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            [git, f"--git-dir={git_dir}", "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )

    def read(self, spec: str) -> bytes | None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(spec.encode("utf-8") + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().decode("utf-8", "replace").split()
        if len(header) != 3:
            return None  # "<spec> missing" / "ambiguous"
        _, kind, size_text = header
        size = int(size_text)
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # the newline after the object
        return data if kind == "blob" else None

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


class MirrorReader:
    """Rows from local bare git directories."""

    def __init__(self, mirror: str | Path) -> None:
        self.mirror = Path(mirror)
        if not self.mirror.is_dir():
            raise DatasetError(f"{self.mirror}: --mirror folder not found")
        self._repos: dict[str, _CatFile | None] = {}

    def read(self, repo: str, commit: str, path: str) -> bytes:
        if repo not in self._repos:
            git_dir = mirror_dir(self.mirror, repo)
            if not (git_dir / "objects").is_dir() and (git_dir / ".git" / "objects").is_dir():
                git_dir = git_dir / ".git"  # a snapshot that came as a working copy's git folder
            self._repos[repo] = _CatFile(git_dir) if (git_dir / "objects").is_dir() else None
        cat = self._repos[repo]
        if cat is None:
            raise FetchError(f"no snapshot of {repo} under {self.mirror} (expected {mirror_dir(self.mirror, repo)})")
        data = cat.read(f"{commit}:{path}")
        if data is None:
            raise FetchError(f"{repo}@{commit[:10]}:{path} is missing from the snapshot")
        return data

    def close(self) -> None:
        for cat in self._repos.values():
            if cat is not None:
                cat.close()
        self._repos.clear()


class NetworkReader:
    """Rows from raw.githubusercontent.com at their pinned commit (for users with internet access)."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def read(self, repo: str, commit: str, path: str) -> bytes:
        url = RAW_URL.format(repo=repo, commit=commit, path=urllib.parse.quote(path))
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 (https URL built above)
                data = resp.read(MAX_FILE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise FetchError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        if len(data) > MAX_FILE_BYTES:
            raise FetchError(f"{url}: larger than {MAX_FILE_BYTES} bytes")
        return data

    def close(self) -> None:
        return None


def open_reader(mirror: str | Path | None) -> Reader:
    return MirrorReader(mirror) if mirror is not None else NetworkReader()
