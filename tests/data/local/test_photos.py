"""The offline photo catalog: complete entries, wheel photos found, Debian skipped cleanly, user photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fakereasoning.data.local import photos as ph


def test_catalog_entries_are_complete_and_unique() -> None:
    entries = ph.PYPI_PHOTOS + ph.DEBIAN_PHOTOS
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    for e in entries:
        assert e.license and e.description.endswith(".") and len(e.description) > 15
        assert not Path(e.file).is_absolute() and ".." not in Path(e.file).parts
    assert set(ph.DEBIAN_PACKAGES) == {
        "plasma-workspace-wallpapers", "mate-backgrounds", "lomiri-wallpapers-16.04", "opencv-doc"
    }
    assert all("/nature/" in e.file for e in ph.DEBIAN_PHOTOS if e.origin == "mate-backgrounds")


def test_wheel_photos_are_found() -> None:
    found = ph.pypi_photos(log=lambda _m: None)
    assert {p.id for p in found} >= {"astronaut", "chelsea", "coffee", "china", "flower", "grace_hopper"}
    assert all(p.path.is_file() for p in found)


def test_debian_sources_are_skipped_with_a_message_without_apt(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ph.shutil, "which", lambda _name: None)
    messages: list[str] = []
    assert ph.debian_photos(tmp_path, log=messages.append) == []
    assert len(messages) == len(ph.DEBIAN_PACKAGES)
    assert all("apt-get/dpkg not available" in m for m in messages)


def test_failed_download_is_skipped_not_raised(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ph.shutil, "which", lambda name: f"/bin/false-{name}")

    def fail(*_a, **_k):
        raise OSError("offline")

    monkeypatch.setattr(ph.subprocess, "run", fail)
    messages: list[str] = []
    assert ph.fetch_debian_package("mate-backgrounds", tmp_path, log=messages.append) is None
    assert "could not fetch" in messages[0] and not (tmp_path / "debian" / "mate-backgrounds").exists()


def test_user_photos_and_collect(tmp_path: Path) -> None:
    folder = tmp_path / "mine" / "sub"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((80, 90, 3), np.uint8)).save(folder / "my_garden-2024.jpg")
    (folder / "notes.txt").write_text("not a photo")
    messages: list[str] = []
    users = ph.user_photos([tmp_path / "mine", tmp_path / "missing"], log=messages.append)
    assert len(users) == 1 and users[0].id.startswith("user_my_garden_2024_")
    assert "my garden 2024" in users[0].description and any("missing" in m for m in messages)
    allp = ph.collect_photos(False, tmp_path, [tmp_path / "mine"], log=lambda _m: None)
    assert [p.id for p in allp] == sorted(p.id for p in allp) and users[0].id in {p.id for p in allp}
