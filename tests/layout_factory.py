"""Tiny trees of the public benchmark layouts (GenImage, ForenSynths, Synthbuster, plain folders, lists)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mmfr_factory import write_image
from PIL import Image


def _img(path: Path, seed: int, fake: bool = False) -> None:
    """A learnable pair like `separable_dataset`: reals are noise, fakes 2x nearest-upsampled noise."""
    if not fake:
        write_image(path, seed=seed, size=(48, 48))
        return
    small = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.repeat(np.repeat(small, 2, 0), 2, 1)).save(path)


def genimage(root: Path, gens: tuple[str, ...] = ("sdv14", "midjourney"), n_train: int = 3, n_val: int = 2,
             eval_only: tuple[str, ...] = ()) -> Path:
    """<gen>/{train,val}/{ai,nature}: n_train per class in train/, n_val per class in val/ (EVAL_ONLY gens:
    val/ only)."""
    seed = 0
    for g in (*gens, *eval_only):
        for split, n in (("train", 0 if g in eval_only else n_train), ("val", n_val)):
            for i in range(n):
                _img(root / g / split / "nature" / f"n{i}.png", seed := seed + 1)
                _img(root / g / split / "ai" / f"a{i}.png", seed := seed + 1, fake=True)
    return root


def forensynths(root: Path) -> Path:
    """progan/{airplane,cat}/{0_real,1_fake} (2 + 2 per class each) and deepfake/{0_real,1_fake} (1 + 3)."""
    for c in ("airplane", "cat"):
        for i in range(2):
            _img(root / "progan" / c / "0_real" / f"r{i}.png", 100 + i)
            _img(root / "progan" / c / "1_fake" / f"f{i}.png", 200 + i, fake=True)
    _img(root / "deepfake/0_real/r0.png", 300)
    for i in range(3):
        _img(root / "deepfake/1_fake" / f"f{i}.png", 310 + i, fake=True)
    return root


def synthbuster(root: Path) -> Path:
    """RAISE-1k/ with 3 photos; dalle3/ with 2 fakes, glide/ with 1 fake (in a subfolder)."""
    for i in range(3):
        _img(root / "RAISE-1k" / f"r{i}.png", 400 + i)
    for i in range(2):
        _img(root / "dalle3" / f"d{i}.png", 500 + i, fake=True)
    _img(root / "glide/batch1/g0.png", 600, fake=True)
    return root


def plain_folders(root: Path, real: int = 2, fake: int = 3, names: tuple[str, str] = ("real", "fake")) -> Path:
    for i in range(real):
        _img(root / names[0] / f"r{i}.png", 700 + i)
    for i in range(fake):
        _img(root / names[1] / f"f{i}.png", 800 + i, fake=True)
    return root


def image_list(folder: Path, kind: str = "csv") -> Path:
    """imgs/ with 2 reals and 2 fakes and a list naming them: sets a (1+1) and b (1+1 ...)."""
    rows = []
    for i in range(2):
        _img(folder / "imgs" / f"r{i}.png", 900 + i)
        _img(folder / "imgs" / f"f{i}.png", 950 + i, fake=True)
        rows.append({"path": f"imgs/r{i}.png", "label": "real", "set": "ab"[i]})
        rows.append({"path": f"imgs/f{i}.png", "label": "fake" if i else "1", "set": "ab"[i]})
    if kind == "jsonl":
        path = folder / "list.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path = folder / "list.csv"
        path.write_text("path,label,set\n" + "".join(f"{r['path']},{r['label']},{r['set']}\n" for r in rows))
    return path
