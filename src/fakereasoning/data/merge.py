"""Merge MMFR-layout datasets into one root: training parts and evaluation sets side by side.

`fakereasoning train` reads one dataset root; a model trained on several (MMFR-Public's genuine generator
outputs with MMFR-Local's reconstructions, or either with a user's own data) needs them under one root.
Images are hard-linked when the file system allows (no extra space), else copied; reasoning JSONs are
copied, captions merged and the training conversations rebuilt. Names must not clash: two training parts
or two evaluation sets of one name are refused rather than silently mixed. The merged manifest keeps each
source's `in_training` marks per set, so seen and unseen sets stay apart in `evaluate`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fakereasoning.data.mmfr import CAPTIONS_FILE, COT_FILE, EVAL_DIR, scan
from fakereasoning.errors import DatasetError
from fakereasoning.fsio import atomic_write_json
from fakereasoning.progress import Progress

MANIFEST = "manifest.json"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        tmp = dst.with_name(dst.name + ".part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _folders(root: Path) -> tuple[list[str], list[str]]:
    """(training part folders, evaluation set names) of an MMFR root."""
    index = scan(root)
    errors = [p for p in index.problems if p.severity == "error"]
    if errors:
        raise DatasetError(f"{root}: the dataset has errors (first: {errors[0]}); run `fakereasoning data validate`")
    parts = sorted({Path(r.key).parts[0] for r in index.train})
    return parts, sorted(index.evaluation_sets)


def merge(out: str | os.PathLike[str], roots: list[str | os.PathLike[str]], progress: bool = True) -> dict[str, Any]:
    """Write the merge of ROOTS to OUT (created; an interrupted merge there is finished). Returns the manifest."""
    from fakereasoning.data.cot import write_cot

    out_path = Path(out)
    sources = [Path(r).resolve() for r in roots]
    if len(sources) < 2:
        raise DatasetError("merge needs at least two dataset roots")
    if out_path.resolve() in sources:
        raise DatasetError(f"{out}: the output cannot be one of the merged roots")
    layout = {root: _folders(root) for root in sources}
    for kind, pick in (("training part", 0), ("evaluation set", 1)):
        seen: dict[str, Path] = {}
        for root, names in layout.items():
            for name in names[pick]:
                if name in seen:
                    raise DatasetError(f"{kind} {name!r} is in both {seen[name]} and {root}: rename one before merging")
                seen[name] = root
    files = [(root, p) for root, (parts, sets) in layout.items()
             for folder in [*parts, *(f"{EVAL_DIR}/{s}" for s in sets)]
             for p in sorted((root / folder).rglob("*")) if p.is_file()]
    bar = Progress(len(files), "merge", "file", enabled=progress)
    try:
        for root, path in files:
            _link_or_copy(path, out_path / path.relative_to(root))
            bar.update(1)
    finally:
        bar.close()
    captions: dict[str, str] = {}
    generators: list[dict[str, Any]] = []
    merged_from: list[dict[str, Any]] = []
    for root, (parts, sets) in layout.items():
        if (root / CAPTIONS_FILE).is_file():
            captions.update(json.loads((root / CAPTIONS_FILE).read_text(encoding="utf-8")))
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8")) if (root / MANIFEST).is_file() else {}
        marks = manifest.get("generators") if isinstance(manifest.get("generators"), list) else []
        generators += [{k: g[k] for k in ("name", "in_training", "role", "description") if k in g}
                       for g in marks if isinstance(g, dict) and g.get("name") in sets]
        merged_from.append({"root": str(root), "name": manifest.get("name") or manifest.get("preset"),
                            "seed": manifest.get("seed"), "training_parts": parts, "evaluation_sets": sets})
    if captions:
        atomic_write_json(out_path / CAPTIONS_FILE, dict(sorted(captions.items())))
    merged = {"name": "merged", "merged_from": merged_from, "generators": generators}
    atomic_write_json(out_path / MANIFEST, merged)
    if any((root / COT_FILE).is_file() for root in sources):
        merged["conversations"] = write_cot(out_path, out_path / COT_FILE)
    return merged
