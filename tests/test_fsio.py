"""Atomic writes and path checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from staging_kill import KILL_POINTS, killed_at

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


def test_writing_over_a_folder_names_the_folder_not_a_temp_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_text(tmp_path / "out", "x")
    assert info.value.filename == str(tmp_path / "out") and ".tmp" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


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


# --- a kill at any point of the staged swap ------------------------------------------------------------


def _write_set(folder: Path, tag: str) -> None:
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(f"{tag}:{name}")


def _set_of(folder: Path) -> set[str]:
    """The tag every file of FOLDER holds ({"old"} or {"new"} for a whole set; two tags: a mix)."""
    return {p.read_text().split(":")[0] for p in folder.iterdir()} if folder.is_dir() else set()


def kill_staged_write(target: Path, point: str) -> int:
    def write() -> None:
        from fakereasoning import fsio

        with fsio.staged_dir(target) as tmp:
            (tmp / "a.txt").write_text("new:a.txt")
            if point == "writing":
                os._exit(9)
            (tmp / "b.txt").write_text("new:b.txt")

    return killed_at(point, write)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_rename_is_recovered_by_the_next_run(tmp_path: Path, point: str) -> None:
    from fakereasoning.fsio import recover_staged, staged_dir

    target = tmp_path / "out"
    with staged_dir(target) as tmp:
        _write_set(tmp, "old")
    assert kill_staged_write(target, point) == 9
    notes = recover_staged(target)
    assert _set_of(target) in ({"old"}, {"new"}), (point, _set_of(target))
    if point in ("rename-3", "removing-old"):  # the new set was complete and half swapped in: finished
        assert _set_of(target) == {"new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "hidden leftovers"
    assert notes and all(str(target) in note for note in notes)
    assert recover_staged(target) == []  # nothing left to do
    with staged_dir(target) as tmp:
        _write_set(tmp, "next")
    assert _set_of(target) == {"next"} and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_next_staged_write_recovers_by_itself(tmp_path: Path) -> None:
    from fakereasoning.fsio import staged_dir

    target = tmp_path / "out"
    with staged_dir(target) as tmp:
        _write_set(tmp, "old")
    kill_staged_write(target, "rename-3")  # OUT missing: the old set and the new one hidden beside it
    assert not target.exists()
    with staged_dir(target) as tmp:
        _write_set(tmp, "next")
    assert _set_of(target) == {"next"} and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_swap_puts_the_old_set_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakereasoning import fsio

    target = tmp_path / "out"
    with fsio.staged_dir(target) as tmp:
        _write_set(tmp, "old")
    real_replace = os.replace
    failed: list[object] = []

    def replace(src: object, dst: object) -> None:
        if Path(str(dst)) == target and ".new-" in str(src) and not failed:  # the new set's move into place
            failed.append(src)
            raise OSError(5, "I/O error")
        real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "replace", replace)
    with pytest.raises(OSError), fsio.staged_dir(target) as tmp:
        _write_set(tmp, "new")
    monkeypatch.undo()
    assert _set_of(target) == {"old"} and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_live_writer_s_staging_folder_is_left_alone(tmp_path: Path) -> None:
    from fakereasoning.fsio import recover_staged, staging_dir

    target = tmp_path / "out"
    (tmp_path / f".out.new-{os.getppid()}").mkdir()  # a live process (our parent) mid-swap
    staging_dir(target)  # ours, in progress
    assert recover_staged(target) == []
    assert len(list(tmp_path.iterdir())) == 2
