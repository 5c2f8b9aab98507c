"""FakeReasoning models: backbones (`tiny`, `llava`, `mof`), CPM, FACL, fast mode. Heavy imports are lazy."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeReasoning", "FakeReasoningConfig", "FakeReasoningOutput", "train_tokenizer", "backbone_names"]


def __getattr__(name: str) -> Any:
    if name in ("FakeReasoning", "FakeReasoningOutput"):
        from fakereasoning.models import model

        return getattr(model, name)
    if name == "FakeReasoningConfig":
        from fakereasoning.models.config import FakeReasoningConfig

        return FakeReasoningConfig
    if name == "train_tokenizer":
        from fakereasoning.models.tokenizer import train_tokenizer

        return train_tokenizer
    if name == "backbone_names":
        from fakereasoning.models.registry import backbone_names

        return backbone_names
    raise AttributeError(name)
