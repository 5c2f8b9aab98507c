"""Serving: a FastAPI app with a REST API, an OpenAI-compatible chat endpoint and an offline web page.

`create_app(detector, limits)` builds the app around any `Detector` (see `detector.py`); the CLI's
`fakereasoning serve` runs it with uvicorn on 127.0.0.1. Names are imported lazily so that importing
`fakereasoning.serve.detector` (the CLI does) does not load FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApiError": "fakereasoning.serve.app",
    "ServeLimits": "fakereasoning.serve.app",
    "create_app": "fakereasoning.serve.app",
    "MicroBatcher": "fakereasoning.serve.batching",
    "QueueFull": "fakereasoning.serve.batching",
    "Detector": "fakereasoning.serve.detector",
    "ModelDetector": "fakereasoning.serve.detector",
    "load_detector": "fakereasoning.serve.detector",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
