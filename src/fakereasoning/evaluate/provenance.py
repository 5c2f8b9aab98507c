"""The `run` block of metrics.json: what another person needs to reproduce (and judge) an evaluation.

Model id and the sha256 of its weights, data root and layout, package version and git commit, UTC date,
every option, the CSS encoder, the seed; and which sets the model saw in training, from the dataset's
manifest or else from the model's training summary.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import fakereasoning

WEIGHT_SUFFIXES = (".safetensors",)
SUMMARY_FILE = "train_summary.json"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_digests(model_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """{weights file name: sha256} of a model folder (a `train --output` folder's model/ is looked into)."""
    if model_dir is None:
        return {}
    base = Path(model_dir)
    for folder in (base, base / "model"):
        files = sorted(f for f in folder.glob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file()) if folder.is_dir() else []
        if files:
            return {f.name: sha256_file(f) for f in files}
    return {}


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout the package runs from; (None, None) for an installed package
    (the package's own files must be tracked there, so a venv inside some repository does not count)."""
    pkg = Path(fakereasoning.__file__).resolve().parent
    if _git(["ls-files", "--error-unmatch", "__init__.py"], pkg) is None:
        return None, None
    commit = _git(["rev-parse", "HEAD"], pkg)
    status = _git(["status", "--porcelain", "--untracked-files=no"], pkg)
    return commit, (bool(status) if status is not None else None)


def training_summary_sets(model_dir: str | os.PathLike[str] | None) -> tuple[list[str], str] | None:
    """(sets seen in training, the summary file) from the `train_summary.json` that `train` / `baseline
    train` write next to the model (OUTPUT/model -> OUTPUT/train_summary.json); None when absent."""
    if model_dir is None:
        return None
    base = Path(model_dir)
    for path in (base / SUMMARY_FILE, base.parent / SUMMARY_FILE):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        seen = data.get("seen_sets") if isinstance(data, dict) else None
        if isinstance(seen, list) and all(isinstance(s, str) for s in seen):
            return sorted(seen), str(path)
    return None


def seen_unseen(sets: Sequence[str], manifest_marks: Mapping[str, bool], manifest_source: str | None,
                model_dir: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Which evaluated sets were in training: the dataset's manifest first (sets it does not name are
    neither), else the model's training summary (by set name). None when neither says."""
    marked = [s for s in sets if s in manifest_marks]
    if marked:
        return {"seen": [s for s in marked if manifest_marks[s]], "unseen": [s for s in marked if not manifest_marks[s]],
                "source": f"dataset {manifest_source}"}
    summary = training_summary_sets(model_dir)
    if summary is not None:
        seen, path = summary
        return {"seen": [s for s in sets if s in seen], "unseen": [s for s in sets if s not in seen],
                "source": f"model training summary {path} (by set name)"}
    return None


def jsonable(value: Any) -> Any:
    """Options as JSON: paths and other objects as text, containers kept."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    name = getattr(value, "name", None)  # a Perturbation reads as its spec, e.g. "jpeg:75"
    return name if isinstance(name, str) and not isinstance(value, os.PathLike) else str(value)


def run_block(*, command: str, model: Any, model_dir: str | os.PathLike[str] | None, data_root: str | os.PathLike[str],
              layout: str, layout_detected: bool, sets: Sequence[str], images: int, options: Mapping[str, Any],
              css_encoder: str, seed: int, in_training: Mapping[str, Any] | None) -> dict[str, Any]:
    from fakereasoning.evaluate.encoders import encoder_label

    commit, dirty = package_commit()
    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    return {
        "command": command,
        "model_id": getattr(model, "model_id", None),
        "model_path": str(Path(model_dir).resolve()) if model_dir is not None else None,
        "weights_sha256": weights_digests(model_dir),
        "data_root": str(Path(data_root).resolve()),
        "layout": layout,
        "layout_detected": layout_detected,
        "sets": list(sets),
        "images": images,
        "css_encoder": css_encoder,
        "css_model": encoder_label(css_encoder),
        "seed": seed,
        "in_training": dict(in_training) if in_training is not None else None,
        "package_version": fakereasoning.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch_version,
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": jsonable(dict(options)),
    }
