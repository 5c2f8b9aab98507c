"""Atomic writes and path checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fakereasoning.fsio import (
    UnsafePathError,
    atomic_write_json,
    atomic_write_text,
    check_relative,
    safe_join,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("key", ["/etc/passwd", "..", "a/../../b", "a\\..\\..\\b", "C:/x", "", "a\x00b"])
def test_unsafe_keys(key: str) -> None:
    with pytest.raises(UnsafePathError):
        check_relative(key)


def test_symlink_escape(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path / "root", "link")
    assert safe_join(tmp_path / "root", "a/b.png") == tmp_path / "root" / "a" / "b.png"


def test_staging_dir_and_shared_files_use_umask(tmp_path: Path) -> None:
    from fakereasoning.fsio import share_files, staging_dir

    mask = os.umask(0)
    os.umask(mask)
    tmp = staging_dir(tmp_path / "model")
    assert tmp.parent == tmp_path and tmp.name.startswith(".model.")
    assert tmp.stat().st_mode & 0o777 == 0o777 & ~mask
    (tmp / "w.bin").write_bytes(b"x")
    (tmp / "w.bin").chmod(0o600)
    share_files(tmp)
    assert (tmp / "w.bin").stat().st_mode & 0o777 == 0o666 & ~mask
