"""What the server needs from a model, and the adapter that wraps the FakeReasoning model in it.

The server only depends on the small `Detector` protocol, so its mechanics (queue, limits, errors) are
tested with a test double and any other detector (a baseline, a remote model) can be served the same way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

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

    def __init__(self, model: object, model_id: str | None = None, model_card: str | None = None) -> None:
        self.model = model
        self.model_id = model_id or str(getattr(model, "model_id", None) or "fakereasoning")
        self.model_card = model_card  # the MODEL_CARD.md text, served at /model-card

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


def load_detector(model_dir: str | os.PathLike[str] | None, device: str | None = None,
                  crops: int | None = None) -> ModelDetector:
    """Load the FakeReasoning model from `model_dir` (None: the shipped default model) for serving."""
    from fakereasoning.infer import load_model
    from fakereasoning.paths import MODEL_CARD, resolve_model_dir

    path = resolve_model_dir(model_dir)
    card = path / MODEL_CARD
    model = load_model(path, device=device, crops=crops)
    return ModelDetector(model, model_card=card.read_text(encoding="utf-8") if card.is_file() else None)
