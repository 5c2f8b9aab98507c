"""Shared fixtures. Everything is built by code: tiny images, tiny datasets, tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# --- MMFR-Local (issue 3) -------------------------------------------------------------------------------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def local_tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    """Path of a `build-local --preset tiny` dataset (64x64, 48 training + 6 x 16 evaluation images).

    Built once per test session (about 10 s) into a temp dir with its own generator cache, which lies at
    `<dataset>.parent / "cache"`. Treat it as read-only: copy it before changing anything.
    """
    from fakereasoning.data.local import build_local

    base = tmp_path_factory.mktemp("mmfr_local")
    out = base / "tiny"
    build_local(out, preset="tiny", seed=0, cache=base / "cache", progress=False, log=lambda _m: None)
    return out
