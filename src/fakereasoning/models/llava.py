"""The `llava` backbone: a local LLaVA-1.5-style Hugging Face directory, LoRA on its language model.

What a user downloads for `LlavaForConditionalGeneration` (config.json, safetensors weights, tokenizer,
preprocessor_config.json) is read from `config.base_model`; the vision tower stays frozen, the projector
trains (as in LLaVA fine-tuning), the language model gets LoRA adapters (`peft`), and an optional forensic
branch (the tiny backbone's native-pixel residual CNN) is fused into the visual tokens by cross-attention.
A saved FakeReasoning llava model stores only what was trained (adapters, projector, forensic branch,
FACL heads) plus the path of its base: the base weights are never copied.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from fakereasoning.models.config import FakeReasoningConfig, ModelConfigError
from fakereasoning.models.processor import forensic_crops, semantic_tensor
from fakereasoning.models.tiny import CrossAttentionFusion, ForensicCNN, run_decoder

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _base_dir(config: FakeReasoningConfig) -> Path:
    if not config.base_model:
        raise ModelConfigError(
            "the llava backbone needs base_model=<local LLaVA directory in Hugging Face format>"
        )
    base = Path(config.base_model).expanduser()
    if not (base / "config.json").is_file():
        raise ModelConfigError(f"{base}: not a Hugging Face model directory (config.json not found)")
    return base


def _mean_std(base: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    path = base / "preprocessor_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return tuple(data["image_mean"]), tuple(data["image_std"])
    except (OSError, ValueError, KeyError, TypeError):
        return CLIP_MEAN, CLIP_STD


class LlavaBackbone(nn.Module):
    """LLaVA vision tower + projector (+ forensic fusion) -> LoRA-adapted language model."""

    def __init__(self, config: FakeReasoningConfig, base: Path) -> None:
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model
        from transformers import LlavaForConditionalGeneration

        self.config = config
        dtype = _DTYPES.get(config.llava_dtype)
        if dtype is None:
            raise ModelConfigError(
                f"llava_dtype must be one of {sorted(_DTYPES)}, got {config.llava_dtype!r}"
            )
        try:
            self.llava = LlavaForConditionalGeneration.from_pretrained(
                str(base), dtype=dtype, use_safetensors=True
            )
        except (OSError, ValueError) as exc:
            raise ModelConfigError(f"{base}: cannot load a LLaVA model ({exc})") from None
        self.llava.requires_grad_(False)
        if config.lora_r > 0:
            targets = "|".join(sorted(set(config.lora_targets)))
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=rf".*language_model.*\.({targets})$",
            )
            inject_adapter_in_model(lora, self.llava)
        for name, param in self.llava.named_parameters():
            param.requires_grad = "lora_" in name or (
                config.train_projector and "multi_modal_projector" in name
            )
        vcfg = self.llava.config.vision_config
        self.image_size = int(vcfg.image_size)
        n_patches = (self.image_size // int(vcfg.patch_size)) ** 2
        if config.vision_feature_select_strategy == "full":
            n_patches += 1
        self.mean, self.std = _mean_std(base)
        self.hidden_size = int(self.llava.config.text_config.hidden_size)
        if config.use_forensic:
            d = self.hidden_size
            self.forensic = ForensicCNN(config.forensic_channels, config.forensic_grid)
            self.forensic_proj = nn.Linear(self.forensic.out_dim, d)
            self.forensic_pos = nn.Parameter(torch.zeros(1, config.forensic_grid**2, d))
            self.fusion = CrossAttentionFusion(d, config.fusion_heads)
            self.fusion.to(dtype)
            self.forensic_proj.to(dtype)
        self.n_visual_tokens = n_patches + (1 if config.use_forensic else 0)

    def image_inputs(self, image: Image.Image, rng: random.Random | None) -> dict[str, torch.Tensor]:
        out = {"pixel_values": semantic_tensor(image, self.image_size, self.mean, self.std, pad_square=True)}
        if self.config.use_forensic:
            out["forensic_crops"] = forensic_crops(
                image, self.config.forensic_crop, self.config.forensic_crops, rng
            )
        return out

    def visual_tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        dtype = self.llava.dtype
        feats = self.llava.model.get_image_features(
            pixel_values=batch["pixel_values"].to(dtype),
            vision_feature_layer=self.config.vision_feature_layer,
            vision_feature_select_strategy=self.config.vision_feature_select_strategy,
        ).pooler_output
        tokens = torch.stack(list(feats)) if isinstance(feats, list | tuple) else feats
        if self.config.use_forensic:
            crops = batch["forensic_crops"]
            b, k = crops.shape[:2]
            f = self.forensic(crops.flatten(0, 1).float())
            f = (self.forensic_proj(f.to(dtype)) + self.forensic_pos.to(dtype)).reshape(
                b, -1, self.hidden_size
            )
            tokens = torch.cat([self.fusion(tokens, f), f.mean(1, keepdim=True)], dim=1)
        return tokens

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.llava.get_input_embeddings()(input_ids)

    def run_lm(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor,
        cache: Any = None,
        logits_to_keep: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        return run_decoder(self.llava.model.language_model, self.llava.lm_head, inputs_embeds, attention_mask,
                           position_ids, cache, logits_to_keep)

    def save_state(self) -> dict[str, torch.Tensor]:
        """Only what trains (adapters, projector, forensic branch): the base weights stay in base_model."""
        trained = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in trained or not k.startswith("llava.")}

    def load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        _, unexpected = self.load_state_dict(state, strict=False)
        own = set(self.state_dict())
        absent = [k for k in own if not k.startswith("llava.") and k not in state]
        if unexpected or absent:
            raise ModelConfigError(
                f"{source}: weights do not match the config (missing {absent[:5]}, unexpected {unexpected[:5]})"
            )


def build_llava(
    config: FakeReasoningConfig, tokenizer: Any, texts: Iterable[str], source: Path | None
) -> tuple[LlavaBackbone, Any, FakeReasoningConfig]:
    from transformers import AutoTokenizer

    base = _base_dir(config)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(str(source or base))
    config = config.replace(vocab_size=len(tokenizer), base_model=str(base))
    return LlavaBackbone(config, base), tokenizer, config
