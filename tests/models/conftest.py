"""Fixtures for model tests: tiny configs, synthetic images, a tiny random LLaVA directory (built by code)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakereasoning import schema

# Small enough that a forward pass takes milliseconds; same code paths as the shipped sizes.
TINY_KW = dict(
    semantic_size=32,
    semantic_grid=2,
    forensic_crop=32,
    forensic_crops=2,
    forensic_channels=16,
    d_model=64,
    n_layers=2,
    n_heads=2,
    ffn_dim=128,
    facl_dim=32,
    fusion_heads=2,
    max_length=400,
)
LLAVA_KW = dict(forensic_crop=32, forensic_crops=2, forensic_channels=16, facl_dim=16, fusion_heads=2)


def make_images(n: int, seed: int = 0) -> list[Image.Image]:
    """Half smooth gradients ("real"), half with a 2x2 checker upsampling trace ("fake"), varied sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(40, 72)), int(rng.integers(40, 88))
        base = np.linspace(0, 200, w)[None, :, None] + rng.normal(0, 8, (h, w, 3))
        if i % 2:
            base = base + 30 * ((np.indices((h, w)).sum(0) % 2)[..., None])
        out.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)))
    return out


def make_samples(images: list[Image.Image]) -> list[tuple]:
    samples = []
    for i, im in enumerate(images):
        label = "fake" if i % 2 else "real"
        attrs = {schema.ATTRIBUTES_OF_LABEL[label][i % 5]: f"finding number {i}"}
        samples.append(
            (im, label, schema.format_cot(label, attrs, f"caption {i}"), "full" if i % 3 else "fast")
        )
    return samples


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the CI box is shared); restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from fakereasoning.models.tokenizer import train_tokenizer

    return train_tokenizer(["finding number caption"], vocab_size=500)


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    return make_images(6)


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    from fakereasoning.models import FakeReasoning

    torch.manual_seed(0)
    return FakeReasoning.build("tiny", tokenizer=tiny_tokenizer, **TINY_KW)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A randomly initialised LLaVA (tiny CLIP vision + tiny Llama) saved the way users download one."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("llava") / "tiny-llava"
    tok = tiny_tokenizer
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    cfg = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>")
    )
    LlavaForConditionalGeneration(cfg).save_pretrained(base)
    tok.save_pretrained(base)
    (base / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    )
    return base
