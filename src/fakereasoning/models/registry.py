"""Backbone registry: a name -> builder, so new backbones plug in without touching `FakeReasoning`.

A builder takes (config, tokenizer or None, texts for a new tokenizer, source directory or None) and
returns (backbone module, tokenizer, config with backbone-derived fields filled in). `source` is a saved
model directory when loading (weights come from its safetensors afterwards), None for a fresh model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fakereasoning.models.config import FakeReasoningConfig, ModelConfigError

Builder = Callable[
    [FakeReasoningConfig, Any, Iterable[str], Path | None], tuple[Any, Any, FakeReasoningConfig]
]
_BACKBONES: dict[str, Builder] = {}


def register_backbone(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _BACKBONES[name] = fn
        return fn

    return deco


def backbone_names() -> list[str]:
    _ensure_builtin()
    return sorted(_BACKBONES)


def get_builder(name: str) -> Builder:
    _ensure_builtin()
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown backbone {name!r} (known: {', '.join(sorted(_BACKBONES))})"
        ) from None


def _ensure_builtin() -> None:
    if "tiny" not in _BACKBONES:
        _BACKBONES["tiny"] = _build_tiny
    if "llava" not in _BACKBONES:
        _BACKBONES["llava"] = _build_llava
    if "mof" not in _BACKBONES:
        _BACKBONES["mof"] = _build_mof


def _build_mof(
    config: FakeReasoningConfig, tokenizer: Any, texts: Iterable[str], source: Path | None
) -> tuple[Any, Any, FakeReasoningConfig]:
    from fakereasoning.models.mof import build_mof

    return build_mof(config, tokenizer, texts, source)


def _build_llava(
    config: FakeReasoningConfig, tokenizer: Any, texts: Iterable[str], source: Path | None
) -> tuple[Any, Any, FakeReasoningConfig]:
    from fakereasoning.models.llava import build_llava

    return build_llava(config, tokenizer, texts, source)


def _build_tiny(
    config: FakeReasoningConfig, tokenizer: Any, texts: Iterable[str], source: Path | None
) -> tuple[Any, Any, FakeReasoningConfig]:
    from fakereasoning.models.tiny import TinyBackbone
    from fakereasoning.models.tokenizer import train_tokenizer

    if tokenizer is None:
        if source is not None:
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(source))
        else:
            tokenizer = train_tokenizer(texts)
    config = config.replace(vocab_size=len(tokenizer))
    return TinyBackbone(config, pretrained_semantic=source is None), tokenizer, config
