"""What the server needs from a model, and the adapter that wraps the FakeReasoning model in it.

The server only depends on the small `Detector` protocol, so its mechanics (queue, limits, errors) are
tested with a test double and any other detector (a baseline, a remote model) can be served the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from fakereasoning.errors import FakeReasoningError

if TYPE_CHECKING:
    from PIL import Image

    from fakereasoning.schema import Verdict

Mode = Literal["fast", "full"]
MODES: tuple[Mode, Mode] = ("fast", "full")


@runtime_checkable
class Detector(Protocol):
    """A batch detector: one `Verdict` per image, in order. Called from one worker thread at a time."""

    model_id: str

    def detect_many(self, images: list[Image.Image], mode: str) -> list[Verdict]: ...


class ModelDetector:
    """Serves a `fakereasoning.models.FakeReasoning` model through the `Detector` protocol."""

    def __init__(self, model: object, model_id: str | None = None) -> None:
        self.model = model
        self.model_id = model_id or str(getattr(model, "model_id", None) or "fakereasoning")

    def detect_many(self, images: list[Image.Image], mode: str) -> list[Verdict]:
        verdicts = self.model.detect_many(images, mode=mode, batch_size=max(1, len(images)))  # type: ignore[attr-defined]
        return list(verdicts)

    def count_tokens(self, text: str) -> int | None:
        """Token count with the model's own tokenizer when it exposes one (used for `usage` fields)."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return None
        try:
            encoded = tokenizer.encode(text)
        except Exception:  # a tokenizer of another shape: fall back to the server's estimate
            return None
        ids = getattr(encoded, "ids", encoded)
        try:
            return len(ids)
        except TypeError:
            return None


def default_model_dir() -> Path | None:
    """Where the shipped default model lives, or None while the project ships none.

    `FAKEREASONING_MODEL` (a model directory) overrides it, so a deployment can pin a model without flags.
    """
    env = os.environ.get("FAKEREASONING_MODEL")
    if env:
        return Path(env)
    return None


def load_detector(model_dir: str | os.PathLike[str] | None) -> ModelDetector:
    """Load the FakeReasoning model from `model_dir` (or the default model) for serving."""
    path = Path(model_dir) if model_dir is not None else default_model_dir()
    if path is None:
        raise FakeReasoningError(
            "no model to serve: no default model is shipped yet; pass --model DIR (a directory written by "
            "FakeReasoning.save_pretrained) or set FAKEREASONING_MODEL"
        )
    if not path.is_dir():
        raise FakeReasoningError(f"{path}: model directory not found")
    try:
        from fakereasoning.models import FakeReasoning
    except ImportError as exc:  # pragma: no cover - only while the models package is missing
        raise FakeReasoningError(f"cannot load models ({exc})") from None
    model = FakeReasoning.from_pretrained(path)
    return ModelDetector(model, model_id=getattr(model, "model_id", None) or path.name)
