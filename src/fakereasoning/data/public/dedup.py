"""Perceptual hashes, the reserved-image list, and near-duplicate removal.

Why: the same picture often sits in several repositories (galleries copy each other, benchmark photos
are re-hosted), so exact hashes are not enough to keep one picture out of both training and evaluation,
or to keep pictures reserved for independent evaluation out entirely. The reserved list is matched the
way its header says it was made: sha256 of the file bytes, or imagehash phash / dhash of the RGB image
within a Hamming distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fakereasoning.errors import DatasetError

RESERVED_DISTANCE = 6
DUPLICATE_DISTANCE = 6


@dataclass(frozen=True)
class Hashes:
    phash: int
    dhash: int


def image_hashes(image: Image.Image) -> Hashes:
    import imagehash

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return Hashes(int(str(imagehash.phash(rgb)), 16), int(str(imagehash.dhash(rgb)), 16))


@dataclass
class ReservedList:
    sha256: frozenset[str]
    phash: np.ndarray  # uint64
    dhash: np.ndarray

    def __len__(self) -> int:
        return len(self.sha256)

    def matches(self, sha256: str, hashes: Hashes, distance: int = RESERVED_DISTANCE) -> str | None:
        """Why this image is reserved (None when it is not)."""
        if sha256 in self.sha256:
            return "equal sha256"
        for name, table, value in (("phash", self.phash, hashes.phash), ("dhash", self.dhash, hashes.dhash)):
            if table.size:
                d = int(hamming(table, value).min())
                if d <= distance:
                    return f"{name} within {d}"
        return None


def read_reserved(path: str | Path) -> ReservedList:
    """The TSV of reserved images (header `sha256 phash dhash`, `#` comments)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the reserved-image list ({exc})") from None
    shas: set[str] = set()
    ph: list[int] = []
    dh: list[int] = []
    header_seen = False
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if not header_seen:
            header_seen = True
            if cols[:3] != ["sha256", "phash", "dhash"]:
                raise DatasetError(f"{path}:{n}: expected the header 'sha256<TAB>phash<TAB>dhash'")
            continue
        try:
            shas.add(cols[0].lower())
            ph.append(int(cols[1], 16))
            dh.append(int(cols[2], 16))
        except (IndexError, ValueError):
            raise DatasetError(f"{path}:{n}: expected sha256, phash and dhash in hex") from None
    return ReservedList(frozenset(shas), np.array(ph, dtype=np.uint64), np.array(dh, dtype=np.uint64))


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming(table: np.ndarray, value: int) -> np.ndarray:
    """Bit distances between each 64-bit hash of `table` and `value`."""
    x = np.bitwise_xor(table.astype(np.uint64), np.uint64(value))
    return _POPCOUNT8[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)


def duplicate_clusters(hashes: list[Hashes], distance: int = DUPLICATE_DISTANCE) -> list[int]:
    """Cluster id per image: images whose phash AND dhash are both within `distance` are linked, and
    links are transitive (union-find). Requiring both hashes keeps look-alike but different pictures
    (two portraits on white) apart while catching re-encodes, resizes and small crops."""
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n:
        ph = np.array([h.phash for h in hashes], dtype=np.uint64)
        dh = np.array([h.dhash for h in hashes], dtype=np.uint64)
        for i in range(n - 1):
            close = np.nonzero(
                (hamming(ph[i + 1 :], hashes[i].phash) <= distance) & (hamming(dh[i + 1 :], hashes[i].dhash) <= distance)
            )[0]
            for j in close:
                a, b = find(i), find(i + 1 + int(j))
                if a != b:
                    parent[b] = a
    return [find(i) for i in range(n)]
