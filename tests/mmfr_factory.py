"""Build small datasets in the released MMFR layout for tests (valid, or broken on purpose)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (24, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    return path


def released_layout(root: Path) -> Path:
    """A valid miniature of the release: 3 diffusiondb fakes, 2 laion reals, 2 evaluation sets."""
    for i in range(3):
        write_image(root / f"diffusiondb/part-00000{1 + i // 2}/img{i}.png", seed=i)
    write_json(
        root / "diffusiondb/diffusiondb_reasoning.json",
        {
            "diffusiondb/part-000001/img0.png": {
                "Anomalous Image Texture": "waxy skin",
                "Semantic Irrationality": "six fingers",
                "Low Image Quality": None,
            },
            "diffusiondb/part-000001/img1.png": {"Irregular Image Edges": "halo around the hair"},
            # the release does not document training keys: keys relative to the part folder also resolve
            "part-000002/img2.png": {"Inconsistent Lighting and Shadows": "two suns"},
        },
    )
    for i in range(2):
        write_image(root / f"laion/00000/00000000{i}.jpg", seed=10 + i)
    write_json(
        root / "laion/laion_reasoning.json",
        {
            "laion/00000/000000000.jpg": {"High Image Quality": "sharp", "Semantic Rationality": "a normal street"},
            "laion/00000/000000001.jpg": {"Consistent Lighting and Shadows": "one light source", "High Image Quality": None},
        },
    )
    for name, n in (("stablediffusion", 2), ("gigagan", 1)):
        mapping = {}
        for i in range(n):
            write_image(root / f"evaluation_sets/{name}/0_real/r{i}.png", seed=20 + i)
            write_image(root / f"evaluation_sets/{name}/1_fake/f{i}.png", seed=30 + i)
            mapping[f"{name}/0_real/r{i}.png"] = {"Natural and Consistent Image Texture": "film grain", "Semantic Rationality": None}
            mapping[f"{name}/1_fake/f{i}.png"] = {"Anomalous Image Texture": "grid pattern", "Low Image Quality": "blocky"}
        write_json(root / f"evaluation_sets/{name}/{name}_reasoning.json", mapping)
    from fakereasoning.data.cot import build_conversations

    write_json(root / "forgery_reasoning_cot.json", build_conversations(root))
    return root


def separable_dataset(root: Path, n_train: int = 24, n_eval: int = 4, sets: tuple[str, ...] = ("a", "b")) -> Path:
    """A learnable toy task in the MMFR layout: reals are white noise, fakes are 2x nearest-upsampled noise
    (the periodic trace of a learned upsampler). A training part with conversations, and evaluation sets."""
    from fakereasoning.data.cot import write_cot
    from fakereasoning.data.mmfr import write_reasoning_json

    rng = np.random.default_rng(0)

    def real() -> np.ndarray:
        return np.clip(rng.normal(128, 40, (96, 96, 3)), 0, 255).astype(np.uint8)

    def fake() -> np.ndarray:
        small = rng.normal(128, 40, (48, 48, 3))
        return np.clip(np.repeat(np.repeat(small, 2, 0), 2, 1), 0, 255).astype(np.uint8)

    def put(rel: str, arr: np.ndarray) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / rel)

    train: dict[str, dict[str, str | None]] = {}
    for i in range(n_train):
        put(f"part/0_real/r{i}.png", real())
        train[f"part/0_real/r{i}.png"] = {"High Image Quality": "fine noise with no periodic structure"}
        put(f"part/1_fake/f{i}.png", fake())
        train[f"part/1_fake/f{i}.png"] = {"Anomalous Image Texture": "pixels repeat in 2x2 blocks"}
    write_reasoning_json(root / "part/part_reasoning.json", train)
    for s in sets:
        mapping: dict[str, dict[str, str | None]] = {}
        for i in range(n_eval):
            put(f"evaluation_sets/{s}/0_real/r{i}.png", real())
            mapping[f"{s}/0_real/r{i}.png"] = {"High Image Quality": "fine noise"}
            put(f"evaluation_sets/{s}/1_fake/f{i}.png", fake())
            mapping[f"{s}/1_fake/f{i}.png"] = {"Anomalous Image Texture": "2x2 blocks"}
        write_reasoning_json(root / f"evaluation_sets/{s}/{s}_reasoning.json", mapping)
    write_cot(root, root / "forgery_reasoning_cot.json")
    return root
