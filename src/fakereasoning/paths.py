"""Default locations, in one place."""

from __future__ import annotations

import os
from pathlib import Path

from fakereasoning.errors import FakeReasoningError

PACKAGE_DIR = Path(__file__).resolve().parent
# The shipped default model (safetensors + config + tokenizer), loaded when --model is omitted.
DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model"


def cache_dir() -> Path:
    """Where built data and trained generator weights are cached (FAKEREASONING_CACHE overrides)."""
    env = os.environ.get("FAKEREASONING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fakereasoning"


MODEL_CONFIG = "config.json"  # what every saved model folder holds (FakeReasoning and baselines alike)
MODEL_SUBDIR = "model"  # where `train --output` and each checkpoint keep their model
MODEL_CARD = "MODEL_CARD.md"  # what a model folder may say about its limits (the shipped one does)
_SHOWN = 10


def model_folders_below(folder: Path, depth: int = 4) -> list[Path]:
    """Saved model folders (holding config.json) at most DEPTH levels below FOLDER, sorted."""
    found: list[Path] = []
    level = [folder]
    for _ in range(depth):
        level = sorted(p for d in level for p in _subfolders(d))
        found += [p for p in level if (p / MODEL_CONFIG).is_file()]
    return sorted(found)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def resolve_model_dir(path: str | os.PathLike[str] | None) -> Path:
    """The model folder a user means: None -> the shipped model; a model folder; or a folder whose
    model/ is one (what `train --output` writes, and each checkpoint step-N/). Anything else is an error
    that says what was expected and lists the model folders found below it."""
    if path is None:
        if not (DEFAULT_MODEL_DIR / MODEL_CONFIG).is_file():
            raise FakeReasoningError(f"no default model is installed at {DEFAULT_MODEL_DIR}; pass --model DIR")
        return DEFAULT_MODEL_DIR
    folder = Path(path)
    for candidate in (folder, folder / MODEL_SUBDIR):
        if (candidate / MODEL_CONFIG).is_file():
            return candidate
    if not folder.exists():
        raise FakeReasoningError(f"{folder}: model folder not found")
    if not folder.is_dir():
        raise FakeReasoningError(f"{folder}: not a folder (a model is a folder holding {MODEL_CONFIG})")
    below = model_folders_below(folder)
    hint = (f"; model folders below it: {', '.join(str(p.relative_to(folder)) for p in below[:_SHOWN])}"
            + (f" and {len(below) - _SHOWN} more" if len(below) > _SHOWN else "")) if below else \
        "; no model folder below it either"
    raise FakeReasoningError(f"{folder}: not a model folder (expected {MODEL_CONFIG} and model weights in it, or a "
                             f"`train --output` / checkpoint folder holding {MODEL_SUBDIR}/){hint}")
