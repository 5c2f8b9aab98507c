"""Parameters and memory a model needs, per precision, read from its files' headers (nothing is loaded).

`model info` prints it; `bench/gpu_check.py` and the tests compare it with a measured peak. The estimate is
for inference on one image: the weights at the precision's width (8/4-bit apply to the language model's
decoder linears, as bitsandbytes quantizes them; everything else stays 16-bit), plus the larger of the two
phases' working sets: the encoders (every hidden state and, for DINOv2, every attention map, which the
fusion reads) or the language model's prefill of `seq_len` tokens (KV cache, one layer's activations).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fakereasoning.models.config import PRECISIONS as PRECISIONS
from fakereasoning.models.config import WEIGHTS_NAME, FakeReasoningConfig, ModelConfigError

_WIDTH = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 2.0, "int4": 2.0}
_QUANT_WIDTH = {"int8": 1.0 + 1 / 64, "int4": 0.5 + 1 / 64}  # weights + per-row / per-block scales
_CLIP_UNUSED = ("text_model.", "text_projection", "visual_projection", "logit_scale")
_QUANTIZED = re.compile(r"(^|\.)layers\.\d+\..*(q|k|v|o|gate|up|down)_proj\.weight$")


@dataclass
class Footprint:
    """Parameter counts per part, and what the working-set estimate needs from each part's config."""

    backbone: str
    parts: dict[str, int] = field(default_factory=dict)
    quantizable: int = 0  # decoder linear weights of the language model (what 8/4-bit loading shrinks)
    lm: dict[str, int] = field(default_factory=dict)
    encoders: list[dict[str, int]] = field(default_factory=list)
    visual_tokens: int = 0

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a folder's safetensors files (headers only)."""
    from safetensors import safe_open

    out: dict[str, tuple[int, ...]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                out[key] = tuple(fh.get_slice(key).get_shape())
    return out


def _numel(shapes: dict[str, tuple[int, ...]], keep: Callable[[str], bool] = lambda _k: True) -> int:
    total = 0
    for key, shape in shapes.items():
        if keep(key):
            n = 1
            for s in shape:
                n *= s
            total += n
    return total


def _json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON config; a missing or broken one is a one-line error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelConfigError(f"{path}: cannot read this JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path}: expected a JSON object")
    return data


def _encoder(cfg: dict[str, Any], image: int, attentions: bool) -> dict[str, int]:
    tokens = (image // int(cfg["patch_size"])) ** 2 + 1
    return {"layers": int(cfg["num_hidden_layers"]), "hidden": int(cfg["hidden_size"]),
            "heads": int(cfg["num_attention_heads"]), "tokens": tokens, "attentions": int(attentions)}


def describe_files(model_dir: str | Path) -> Footprint:
    """The footprint of a saved model folder (any backbone), from file headers and JSON configs."""
    from fakereasoning.models.mof import component_dir
    from fakereasoning.paths import resolve_model_dir

    root = resolve_model_dir(model_dir)
    config = FakeReasoningConfig.load(root)
    fp = Footprint(config.backbone)
    trained = _shapes(root) if (root / WEIGHTS_NAME).is_file() else {}
    groups: dict[str, int] = {}
    for key in trained:
        name = key.split(".")[1] if key.startswith("backbone.") else key.split(".")[0]
        if "lora_" in key:
            name = "lora"
        groups[name] = groups.get(name, 0) + _numel({key: trained[key]})
    fp.parts.update(groups)
    if config.backbone == "mof":
        lm_dir = component_dir(config.base_model, "base_model", root)
        clip_dir = component_dir(config.clip_model, "clip_model", root)
        dino_dir = component_dir(config.dino_model, "dino_model", root)
        lm_shapes = _shapes(lm_dir)
        fp.parts["lm"] = _numel(lm_shapes)
        fp.quantizable = _numel(lm_shapes, lambda k: bool(_QUANTIZED.search(k)))
        # a full CLIP folder also holds the text tower and projections, which the vision model never loads
        fp.parts["clip"] = _numel(_shapes(clip_dir), lambda k: not k.startswith(_CLIP_UNUSED))
        fp.parts["dino"] = _numel(_shapes(dino_dir))
        clip_cfg = _json(clip_dir / "config.json")
        clip_cfg = clip_cfg.get("vision_config", clip_cfg)
        image = int(clip_cfg["image_size"])
        fp.encoders = [_encoder(clip_cfg, image, False), _encoder(_json(dino_dir / "config.json"), image, True)]
        fp.visual_tokens = (image // int(clip_cfg["patch_size"])) ** 2
        lm_cfg = _json(lm_dir / "config.json")
    elif config.backbone == "llava":
        base = Path(config.base_model or "")
        shapes = _shapes(base)
        fp.parts["llava"] = _numel(shapes)
        fp.quantizable = _numel(shapes, lambda k: "language_model" in k and bool(_QUANTIZED.search(k)))
        lm_cfg = _json(base / "config.json").get("text_config", {})
    else:
        heads = config.n_heads
        lm_cfg = {"num_hidden_layers": config.n_layers, "hidden_size": config.d_model, "num_attention_heads": heads,
                  "intermediate_size": config.ffn_dim, "vocab_size": config.vocab_size}
    heads = int(lm_cfg.get("num_attention_heads", 1))
    hidden = int(lm_cfg.get("hidden_size", config.d_model))
    fp.lm = {"layers": int(lm_cfg.get("num_hidden_layers", 0)), "hidden": hidden, "heads": heads,
             "kv_heads": int(lm_cfg.get("num_key_value_heads") or heads),
             "head_dim": int(lm_cfg.get("head_dim") or hidden // max(1, heads)),
             "intermediate": int(lm_cfg.get("intermediate_size", 4 * hidden)), "vocab": int(lm_cfg.get("vocab_size", 0))}
    return fp


def weight_bytes(fp: Footprint, precision: str) -> float:
    width = _WIDTH[precision]
    if precision in _QUANT_WIDTH:
        return (fp.total - fp.quantizable) * width + fp.quantizable * _QUANT_WIDTH[precision]
    return fp.total * width


def working_set_bytes(fp: Footprint, precision: str, seq_len: int) -> float:
    """The larger of the encoder phase and the LM prefill of seq_len tokens, at one image."""
    b = _WIDTH[precision]
    enc = 0.0
    for e in fp.encoders:  # all hidden states kept (output_hidden_states), plus attention maps where read
        enc += (e["layers"] + 1) * e["tokens"] * e["hidden"] * b + e["heads"] * e["tokens"] ** 2 * b * 2
        if e["attentions"]:
            enc += e["layers"] * e["heads"] * e["tokens"] ** 2 * b
    lm = fp.lm
    kv = 2 * lm["layers"] * lm["kv_heads"] * lm["head_dim"] * seq_len * b
    layer = seq_len * (2 * lm["hidden"] + 3 * lm["intermediate"]) * b + lm["heads"] * seq_len**2 * b
    prefill = kv + layer + seq_len * lm["hidden"] * b * 2 + lm["vocab"] * 4
    return max(enc, prefill)


def estimate_bytes(fp: Footprint, precision: str, seq_len: int) -> float:
    return weight_bytes(fp, precision) + working_set_bytes(fp, precision, seq_len)


def info(model_dir: str | Path, seq_len: int | None = None) -> dict[str, Any]:
    """What `model info` prints: parameters per part and the estimated memory per precision."""
    fp = describe_files(model_dir)
    seq = seq_len or (fp.visual_tokens + 64 + 512)  # one image, the prompt and a full answer
    precisions = PRECISIONS if fp.quantizable else tuple(p for p in PRECISIONS if not p.startswith("int"))
    return {"backbone": fp.backbone, "parameters": fp.total, "parts": fp.parts, "quantizable": fp.quantizable,
            "seq_len": seq, "memory_bytes": {p: int(estimate_bytes(fp, p, seq)) for p in precisions},
            "weights_bytes": {p: int(weight_bytes(fp, p)) for p in precisions}}


def measure_peak_bytes(model: torch.nn.Module, fn: Callable[[], Any]) -> int:
    """Peak bytes of the model's tensors plus every tensor storage allocated while FN runs (CPU or GPU;
    traced at the ATen level, so it counts what PyTorch allocates, not the process's RSS)."""
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    own = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    base = sum(t.untyped_storage().nbytes() for t in {id(t): t for t in list(model.parameters()) + list(model.buffers())}.values())
    live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors alive]
    state = {"now": 0, "peak": 0}

    def release(ptr: int) -> None:
        entry = live.get(ptr)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                state["now"] -= entry[0]
                del live[ptr]

    class Tracker(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            seen: set[int] = set()
            for t in out if isinstance(out, tuple | list) else (out,):
                if not isinstance(t, torch.Tensor) or id(t) in seen:
                    continue
                seen.add(id(t))
                ptr = t.untyped_storage().data_ptr()
                if ptr in own or ptr == 0:
                    continue
                if ptr not in live:
                    live[ptr] = [t.untyped_storage().nbytes(), 0]
                    state["now"] += live[ptr][0]
                    state["peak"] = max(state["peak"], state["now"])
                live[ptr][1] += 1
                weakref.finalize(t, release, ptr)
            return out

    with Tracker():
        fn()
    return base + state["peak"]
