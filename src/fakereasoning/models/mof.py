"""The `mof` backbone: the release's dual-encoder architecture (paper v2) on local Hugging Face checkpoints.

CLIP ViT (semantics) and DINOv2 (low-level artifacts) read the same padded, CLIP-normalised image; both are
frozen. Each has its own two-layer MLP projector into the language model's width. Forgery-Aware Feature
Fusion lets the projected CLIP tokens query the projected DINO tokens in one cross-attention layer whose
scores get a bias learned from DINO's own last-layer attention map; its output tokens replace the image
placeholder of a Llama-style language model tuned with LoRA (`peft`). CPM, FACL, generation and saving
are `FakeReasoning`'s, as for every backbone.

A saved model stores only what trains (projectors, fusion, adapters) plus the paths of its three frozen
checkpoints, which may be relative to the model folder (what `model import-release` writes) and then must
stay inside it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from fakereasoning.models.config import FakeReasoningConfig, ModelConfigError
from fakereasoning.models.processor import semantic_tensor

FROZEN_PREFIXES = ("clip.", "dino.", "lm.")
LOG_EPS = 1e-6  # log(attention + eps): the release's bias input
NORM_EPS = 1e-6  # the fusion's layer norms
_FLOAT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUANTIZED = ("int8", "int4")


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype tensors are computed in: the precision itself, or bfloat16 under 8/4-bit weights."""
    return _FLOAT_DTYPES.get(precision, torch.bfloat16)


def mlp_projector(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear, GELU, Linear: the release's `mlp2x_gelu` projector (one per encoder)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


class ForgeryAwareFusion(nn.Module):
    """One post-norm cross-attention block: CLIP tokens query DINO tokens, with an additive bias on the
    attention scores computed from DINO's attention map (a 1x1-conv MLP over its heads), so the fusion
    starts from where DINO itself looks; then a ReLU feed-forward block."""

    def __init__(self, dim: int, heads: int, source_heads: int, bias_hidden: int, ffn_dim: int,
                 dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ModelConfigError(f"fusion: width {dim} is not divisible by fusion_heads={heads}")
        self.heads = heads
        self.bias_mlp = nn.Sequential(nn.Conv2d(source_heads, bias_hidden, 1), nn.GELU(),
                                      nn.Conv2d(bias_hidden, heads, 1))
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.attn_dropout = nn.Dropout(dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.drop_attn, self.drop_ffn = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_attn, self.norm_ffn = nn.LayerNorm(dim, eps=NORM_EPS), nn.LayerNorm(dim, eps=NORM_EPS)

    def attention_bias(self, attention: torch.Tensor) -> torch.Tensor:
        """(B, H_dino, 1+N, 1+N) attention probabilities -> (B, heads, N, N) score bias (CLS dropped)."""
        return self.bias_mlp(torch.log(attention[:, :, 1:, 1:] + LOG_EPS))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, kv: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._split(self.q(query)), self._split(self.k(kv)), self._split(self.v(kv))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if attention is not None:
            scores = scores + self.attention_bias(attention).to(scores.dtype)
        mixed = self.attn_dropout(torch.softmax(scores, dim=-1)) @ v
        mixed = mixed.transpose(1, 2).reshape(query.shape)
        x = self.norm_attn(query + self.drop_attn(self.out(mixed)))
        return self.norm_ffn(x + self.drop_ffn(self.ffn(x)))


def component_dir(value: str | None, key: str, root: Path | None) -> Path:
    """A checkpoint folder named in the config: absolute, or relative to the model folder ROOT (and then
    never outside it), or relative to the working directory for a fresh model."""
    from fakereasoning.fsio import UnsafePathError, safe_join

    if not value:
        raise ModelConfigError(f"the mof backbone needs {key}=<local Hugging Face checkpoint folder>")
    path = Path(value).expanduser()
    if root is not None and not path.is_absolute():
        try:
            path = safe_join(root, value)
        except UnsafePathError as exc:
            raise ModelConfigError(f"{root / 'config.json'}: {key}: {exc}") from None
    if not (path / "config.json").is_file():
        raise ModelConfigError(f"{path}: not a Hugging Face checkpoint folder ({key}; config.json not found)")
    return path.resolve()


def _quantization(config: FakeReasoningConfig) -> dict[str, Any]:
    """from_pretrained keyword arguments for the language model's precision and placement."""
    kwargs: dict[str, Any] = {}
    if config.precision in QUANTIZED:
        if not torch.cuda.is_available():
            raise ModelConfigError(f"precision={config.precision} loads the language model in 8/4 bits with "
                                   "bitsandbytes, which needs a CUDA GPU; none is available here (use bfloat16, "
                                   "float16 or float32)")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ModelConfigError(f"precision={config.precision} needs bitsandbytes: "
                                   "pip install 'fakereasoning[gpu]'") from None
        from transformers import BitsAndBytesConfig

        four = config.precision == "int4"
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=not four, load_in_4bit=four, bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = config.device_map or {"": 0}
    elif config.device_map:
        kwargs["device_map"] = config.device_map
    if config.offload_folder:
        kwargs["offload_folder"] = config.offload_folder
    return kwargs


class MofBackbone(nn.Module):
    """CLIP + DINOv2 -> projectors -> Forgery-Aware Feature Fusion -> LoRA-adapted language model."""

    def __init__(self, config: FakeReasoningConfig, lm_dir: Path, clip_dir: Path, dino_dir: Path) -> None:
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model
        from transformers import AutoModelForCausalLM, CLIPVisionConfig, CLIPVisionModel, Dinov2Model

        from fakereasoning.evaluate.encoders import quiet_loading
        from fakereasoning.models.llava import _mean_std

        quiet_loading()
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused CLIP text tower is not news on every load
        self.config = config
        dtype = compute_dtype(config.precision)
        try:
            vision = CLIPVisionConfig.from_pretrained(str(clip_dir))  # a full CLIP folder holds one too
            self.clip = CLIPVisionModel.from_pretrained(str(clip_dir), config=vision, dtype=dtype)
            # eager attention: the fusion reads DINO's attention probabilities
            self.dino = Dinov2Model.from_pretrained(str(dino_dir), dtype=dtype, attn_implementation="eager")
            self.lm = AutoModelForCausalLM.from_pretrained(str(lm_dir), dtype=dtype, **_quantization(config))
        except (OSError, ValueError) as exc:
            raise ModelConfigError(f"mof: cannot load a checkpoint ({exc})") from None
        for frozen in (self.clip, self.dino, self.lm):
            frozen.requires_grad_(False)
            frozen.eval()
        if not hasattr(self.lm, "model") or not hasattr(self.lm, "lm_head"):
            raise ModelConfigError(f"{lm_dir}: not a Llama-style causal LM (model + lm_head)")
        vcfg, dcfg = self.clip.config, self.dino.config
        self.image_size = int(vcfg.image_size)
        grid = self.image_size // int(vcfg.patch_size)
        if self.image_size // int(dcfg.patch_size) != grid:
            raise ModelConfigError(f"mof: DINO patch {dcfg.patch_size} and CLIP patch {vcfg.patch_size} give different "
                                   f"token grids at {self.image_size} px; the fusion pairs them one to one")
        self.n_visual_tokens = grid * grid
        self.hidden_size = d = int(self.lm.config.hidden_size)
        self.mean, self.std = _mean_std(clip_dir)
        self.clip_projector = mlp_projector(int(vcfg.hidden_size), d)
        self.dino_projector = mlp_projector(int(dcfg.hidden_size), d)
        self.fusion = ForgeryAwareFusion(d, config.fusion_heads, int(dcfg.num_attention_heads), config.fusion_bias_hidden,
                                         config.fusion_ffn_dim or 4 * d, config.fusion_dropout)
        for part in (self.clip_projector, self.dino_projector, self.fusion):
            part.to(dtype)
        if config.lora_r > 0:
            targets = "|".join(sorted(set(config.lora_targets)))
            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=rf".*\.({targets})$")
            inject_adapter_in_model(lora, self.lm)
        for name, param in self.named_parameters():
            param.requires_grad = "lora_" in name or (
                not name.startswith(FROZEN_PREFIXES) and (config.train_projector or name.startswith("fusion.")))
        if config.device_map or config.precision in QUANTIZED:  # the LM was placed; the rest follows its input
            device = self.lm.get_input_embeddings().weight.device
            for part in (self.clip, self.dino, self.clip_projector, self.dino_projector, self.fusion):
                part.to(device)

    def train(self, mode: bool = True) -> MofBackbone:
        super().train(mode)
        self.clip.eval()  # frozen encoders: never in training mode
        self.dino.eval()
        return self

    def image_inputs(self, image: Image.Image, rng: random.Random | None) -> dict[str, torch.Tensor]:
        """Padded to a square with the mean colour and resized to the CLIP input, as the release does;
        DINO reads the same tensor."""
        return {"pixel_values": semantic_tensor(image, self.image_size, self.mean, self.std, pad_square=True)}

    def encoder_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(CLIP patch tokens of the selected layer, DINO pre-norm patch tokens of its last layer, DINO's
        last-layer attention probabilities), CLS dropped from the tokens."""
        px = pixel_values.to(self.clip.device, self.clip.dtype)
        with torch.no_grad():
            clip = self.clip(pixel_values=px, output_hidden_states=True)
            dino = self.dino(pixel_values=px.to(self.dino.dtype), output_hidden_states=True, output_attentions=True)
        return (clip.hidden_states[self.config.vision_feature_layer][:, 1:], dino.hidden_states[-1][:, 1:],
                dino.attentions[-1])

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, None]:
        clip, dino, attention = self.encoder_features(batch["pixel_values"])
        dtype = self.clip_projector[0].weight.dtype
        tokens = self.fusion(self.clip_projector(clip.to(dtype)), self.dino_projector(dino.to(dtype)), attention)
        return tokens, None

    def visual_tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.encode(batch)[0]

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings. The image placeholder was added to the tokenizer and has no row: its positions
        are overwritten by the visual tokens, so any row does (0)."""
        table = self.lm.get_input_embeddings()
        return table(input_ids.masked_fill(input_ids >= table.num_embeddings, 0))

    def run_lm(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, position_ids: torch.Tensor,
               cache: Any = None, logits_to_keep: int = 0) -> tuple[torch.Tensor, torch.Tensor, Any]:
        from fakereasoning.models.tiny import run_decoder

        return run_decoder(self.lm.model, self.lm.lm_head, inputs_embeds, attention_mask, position_ids, cache,
                           logits_to_keep)

    def save_state(self) -> dict[str, torch.Tensor]:
        """What trains (projectors, fusion, adapters); the frozen checkpoints stay where the config says."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FROZEN_PREFIXES) or "lora_" in k}

    def load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        own = set(self.save_state())
        absent = sorted(own - set(state))
        unexpected = sorted(set(state) - own)
        if absent or unexpected:
            raise ModelConfigError(
                f"{source}: weights do not match the config (missing {absent[:5]}, unexpected {unexpected[:5]})")
        self.load_state_dict(state, strict=False)


def mof_tokenizer(folder: Path) -> Any:
    """The language model's fast tokenizer with the image placeholder added (the release splices the image
    in by position instead; our processor finds it as a token)."""
    from transformers import AutoTokenizer

    from fakereasoning.schema import IMAGE_TOKEN

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, ImportError) as exc:
        raise ModelConfigError(f"{folder}: cannot load its tokenizer ({exc}); a tokenizer.model alone needs "
                               "`pip install sentencepiece protobuf` to be converted") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelConfigError(f"{folder}: a fast tokenizer (tokenizer.json) is needed")
    if tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) in (None, tokenizer.unk_token_id):
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    return tokenizer


def build_mof(config: FakeReasoningConfig, tokenizer: Any, texts: Iterable[str], source: Path | None
              ) -> tuple[MofBackbone, Any, FakeReasoningConfig]:
    lm = component_dir(config.base_model, "base_model", source)
    clip = component_dir(config.clip_model, "clip_model", source)
    dino = component_dir(config.dino_model, "dino_model", source)
    if tokenizer is None:
        tokenizer = mof_tokenizer(source if source is not None and (source / "tokenizer_config.json").is_file() else lm)
    config = config.replace(vocab_size=len(tokenizer), base_model=str(lm), clip_model=str(clip), dino_model=str(dino))
    return MofBackbone(config, lm, clip, dino), tokenizer, config
