"""Default locations, in one place."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The shipped default model (safetensors + config + tokenizer), loaded when --model is omitted.
DEFAULT_MODEL_DIR = PACKAGE_DIR / "default_model"


def cache_dir() -> Path:
    """Where built data and trained generator weights are cached (FAKEREASONING_CACHE overrides)."""
    env = os.environ.get("FAKEREASONING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fakereasoning"
