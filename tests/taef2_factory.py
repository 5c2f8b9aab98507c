"""Random TAEF2 weights in the published file layout, with their digests accepted (the real files are
not in the repository; tests only need the architecture and the loading path)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def taef2_weights(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torch

    from fakereasoning.data.local.generators import taef2

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = taef2.TAEF2()
    digests = {}
    for name, part in (("taef2_encoder.pth", model.encoder), ("taef2_decoder.pth", model.decoder)):
        torch.save(part.state_dict(), folder / name)
        digests[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    monkeypatch.setattr(taef2, "WEIGHTS_SHA256", digests)
    return folder
