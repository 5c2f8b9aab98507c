"""`model import-release`: the authors' published FakeReasoning checkpoint -> a `mof` model folder of ours.

The release is a LLaVA-style `LlavaLlamaForCausalLM` ("MoF" base) with two encoders, two projectors and a
cross-attention fusion module, trained with LoRA. It comes either as a LoRA folder (`adapter_config.json`,
`adapter_model.*`, `non_lora_trainables.bin`, `config.json`; its base language model given by `--base`)
or as a merged folder (`config.json` and the full weights, sharded or not), plus the CLIP checkpoint its
`mm_vision_tower` names and DINOv2's torch-hub weights. The output holds safetensors and JSON only:

    OUT/config.json, model.safetensors, tokenizer files   what trains (projectors, fusion, LoRA) + settings
    OUT/lm/     the language model (Hugging Face Llama layout)
    OUT/clip/   the CLIP vision tower          OUT/dino/   DINOv2 in the Hugging Face layout
    OUT/import_report.json                     every source file, and what each key became

Every key of the release is mapped or explicitly dropped with a reason; any other key stops the import
with its name. Pickled files are read with `torch.load(weights_only=True)` (tensors only, no code).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fakereasoning.errors import FakeReasoningError
from fakereasoning.fsio import UnsafePathError, atomic_write_json, safe_join, staged_dir

LORA_CONFIG = "adapter_config.json"
NON_LORA = "non_lora_trainables.bin"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
# the release's recipe (finetune_task_lora.sh: every linear layer of the LM, r 128, alpha 256)
RELEASE_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DINO_POS_OFFSET = 0.1  # DINOv2's interpolate_offset: its hub model resizes position embeddings with it
DINO_HEAD_DIM = 64  # every DINOv2 ViT (S 384/6, B 768/12, L 1024/16, g 1536/24)
LM_SHARD_BYTES = 4 << 30

_LM_KEY = re.compile(r"^(model\.(embed_tokens|layers|norm)\.|lm_head\.)")
_FUSION_KEYS = {
    "attention_mlp.mlp.0.": "bias_mlp.0.", "attention_mlp.mlp.2.": "bias_mlp.2.",
    "mhatt.0.linear_q.": "q.", "mhatt.0.linear_k.": "k.", "mhatt.0.linear_v.": "v.", "mhatt.0.linear_merge.": "out.",
    "ffn.0.mlp.fc.linear.": "ffn.0.", "ffn.0.mlp.linear.": "ffn.3.",
    "norm.0.a_2": "norm_attn.weight", "norm.0.b_2": "norm_attn.bias",
    "norm.1.a_2": "norm_ffn.weight", "norm.1.b_2": "norm_ffn.bias",
}
_DROPPED = {
    "model.vision_tower.": "CLIP copy saved with the merged model; the release reloads CLIP from mm_vision_tower (--clip)",
    "model.dino_tower.": "encoder copies saved with the merged model; the release reloads DINOv2 from DINO_WEIGHT (--dino)",
    "model.rotary_emb.": "rotary buffer, recomputed from the config",
}


class ReleaseImportError(FakeReasoningError):
    """The release folder cannot be imported (missing file, unknown key, wrong shape)."""


@dataclass
class ImportReport:
    layout: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    mapped: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, part: str) -> None:
        self.mapped[part] = self.mapped.get(part, 0) + 1

    def drop(self, prefix: str, reason: str) -> None:
        entry = self.dropped.setdefault(prefix, {"reason": reason, "keys": 0})
        entry["keys"] += 1


# --- reading ------------------------------------------------------------------------------------------
def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A tensor file: safetensors, or a pickle read with weights_only=True (no code runs)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise ReleaseImportError(f"{path}: not a readable safetensors file ({exc})") from None
    if path.suffix not in PICKLE_SUFFIXES:
        raise ReleaseImportError(f"{path}: unknown weight file type (expected .safetensors, .bin, .pt or .pth)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)  # tensors and containers only
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ReleaseImportError(f"{path}: not a plain tensor file ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):  # a training checkpoint wrapper
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise ReleaseImportError(f"{path}: expected a mapping of names to tensors")
    return data


def weight_files(folder: Path) -> list[Path]:
    """The full-model weight files of a Hugging Face folder: the shards its index names (inside the folder),
    or its single weights file; safetensors first."""
    for index in WEIGHT_INDEXES:
        path = folder / index
        if path.is_file():
            try:
                names = sorted(set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values()))
                return [safe_join(folder, n) for n in names]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ReleaseImportError(f"{path}: unreadable shard index ({exc})") from None
            except UnsafePathError as exc:
                raise ReleaseImportError(f"{path}: {exc}") from None
    return [folder / n for n in WEIGHT_FILES if (folder / n).is_file()][:1]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseImportError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise ReleaseImportError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReleaseImportError(f"{path}: expected a JSON object")
    return data


# --- key mapping --------------------------------------------------------------------------------------
def map_release_key(key: str) -> tuple[str, str] | None:
    """A key of the release's `LlavaLlamaForCausalLM` state -> ("lm", key in OUT/lm), ("trained", key in
    OUT/model.safetensors) or ("drop", reason); None when the key is unknown."""
    if _LM_KEY.match(key):
        return "lm", key
    for prefix, ours in (("model.mm_projector.", "backbone.clip_projector."),
                         ("model.dino_mm_projector.", "backbone.dino_projector.")):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            return ("trained", ours + rest) if rest in ("0.weight", "0.bias", "2.weight", "2.bias") else None
    if key.startswith("model.crossattention."):
        rest = key[len("model.crossattention."):]
        for theirs, ours in _FUSION_KEYS.items():
            if rest == theirs or (theirs.endswith(".") and rest.startswith(theirs) and rest[len(theirs):] in ("weight", "bias")):
                return "trained", "backbone.fusion." + ours + rest[len(theirs):]
        return None
    for prefix, reason in _DROPPED.items():
        if key.startswith(prefix):
            return "drop", reason
    if key.endswith("rotary_emb.inv_freq"):
        return "drop", _DROPPED["model.rotary_emb."]
    return None


def _unknown(key: str, source: Path) -> ReleaseImportError:
    return ReleaseImportError(f"{source}: unknown key {key!r}: no part of the release's architecture holds it")


def _non_lora_key(key: str) -> str:
    """non_lora_trainables keys carry PEFT's wrapper prefix (`base_model.model.`), as the release strips it."""
    if key.startswith("base_model.model."):
        return key[len("base_model.model."):]
    return key


def map_lora_key(key: str, targets: set[str], source: Path) -> str:
    """`base_model.model.model.layers.N....q_proj.lora_A.weight` -> our adapter key in model.safetensors."""
    m = re.fullmatch(r"base_model\.model\.(model\.layers\.\d+\.[\w.]+\.(\w+))\.(lora_[AB])(?:\.default)?\.weight", key)
    if m is None or m.group(2) not in targets:
        raise _unknown(key, source)
    return f"backbone.lm.{m.group(1)}.{m.group(3)}.default.weight"


# --- DINOv2: torch-hub layout -> Hugging Face layout ----------------------------------------------------
def hub_position_embeddings(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """DINOv2's position embeddings resized to a grid x grid token grid the way its hub model does at run
    time (bicubic with scale factor (grid + 0.1) / M), so the converted model reads images of that size
    exactly as the release's DINO does (Hugging Face interpolates by output size instead)."""
    cls, patch = pos[:, :1], pos[:, 1:]
    side = math.isqrt(patch.shape[1])
    if side * side != patch.shape[1]:
        raise ReleaseImportError(f"DINOv2 pos_embed: {patch.shape[1]} patch positions is not a square grid")
    if side == grid:
        return pos
    scale = (grid + DINO_POS_OFFSET) / side
    grid_map = patch.float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(grid_map, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if resized.shape[-2:] != (grid, grid):
        raise ReleaseImportError(f"DINOv2 pos_embed: cannot resize {side}x{side} positions to {grid}x{grid}")
    return torch.cat([cls, resized.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos.dtype)], dim=1)


def _hf_dino_names() -> dict[str, str]:
    """Our generic DINOv2 part names -> the installed transformers' names (they changed across versions)."""
    from transformers import Dinov2Config, Dinov2Model

    with torch.device("meta"):
        keys = set(Dinov2Model(Dinov2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=1)).state_dict())
    if "encoder.layer.0.attention.q_proj.weight" in keys:
        return {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj", "o": "attention.o_proj"}
    return {"q": "attention.attention.query", "k": "attention.attention.key", "v": "attention.attention.value",
            "o": "attention.output.dense"}


def hub_to_hf_dino(state: dict[str, torch.Tensor], source: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(Dinov2Config kwargs, state dict in the Hugging Face layout) of DINOv2 torch-hub weights."""
    names = _hf_dino_names()
    out: dict[str, torch.Tensor] = {}
    blocks: set[int] = set()
    simple = {"cls_token": "embeddings.cls_token", "mask_token": "embeddings.mask_token",
              "pos_embed": "embeddings.position_embeddings",
              "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
              "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
              "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    inner = {"norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "attn.proj": names["o"]}
    for key, value in state.items():
        if key in simple:
            out[simple[key]] = value
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
        if m is None:
            raise _unknown(key, source)
        i, rest = int(m.group(1)), m.group(2)
        blocks.add(i)
        prefix = f"encoder.layer.{i}."
        if rest in ("ls1.gamma", "ls2.gamma"):
            out[prefix + f"layer_scale{rest[2]}.lambda1"] = value
        elif rest.startswith("attn.qkv."):
            kind = rest.split(".")[-1]
            for part, chunk in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[f"{prefix}{names[part]}.{kind}"] = chunk.clone()
        else:
            head, _, kind = rest.rpartition(".")
            if head not in inner or kind not in ("weight", "bias"):
                raise _unknown(key, source)  # SwiGLU (ViT-g) and register tokens are not the release's DINO
            out[f"{prefix}{inner[head]}.{kind}"] = value
    for needed in ("cls_token", "pos_embed", "patch_embed.proj.weight"):
        if needed not in state:
            raise ReleaseImportError(f"{source}: not DINOv2 hub weights ({needed!r} missing)")
    hidden = int(state["cls_token"].shape[-1])
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    positions = int(state["pos_embed"].shape[1]) - 1
    config = {
        "hidden_size": hidden, "num_hidden_layers": len(blocks), "num_attention_heads": max(1, hidden // DINO_HEAD_DIM),
        "mlp_ratio": int(state["blocks.0.mlp.fc1.weight"].shape[0]) // hidden, "patch_size": patch,
        "image_size": math.isqrt(positions) * patch, "layer_norm_eps": 1e-6, "qkv_bias": "blocks.0.attn.qkv.bias" in state,
        "layerscale_value": 1.0, "use_swiglu_ffn": False, "drop_path_rate": 0.0,
    }
    if "mask_token" in state and state["mask_token"].ndim == 1:
        out["embeddings.mask_token"] = state["mask_token"][None]
    return config, out


def convert_dino(source: Path, image_size: int, out: Path, report: ImportReport) -> None:
    """DINOv2 (hub weights FILE, or a Hugging Face folder) -> OUT: Hugging Face layout, with position
    embeddings for IMAGE_SIZE computed as the hub model does, loaded strictly (every parameter filled)."""
    from transformers import Dinov2Config, Dinov2Model

    if source.is_dir():
        model = Dinov2Model.from_pretrained(str(source), attn_implementation="eager")
        config = model.config
        state = model.state_dict()
        report.sources.append({"part": "dino", "path": str(source), "layout": "huggingface"})
    else:
        kwargs, state = hub_to_hf_dino(load_tensors(source), source)
        config = Dinov2Config(**kwargs)
        report.sources.append({"part": "dino", "path": str(source), "bytes": source.stat().st_size, "layout": "torch-hub"})
    patch = int(config.patch_size)
    if image_size % patch:
        raise ReleaseImportError(f"{source}: DINOv2 patch {patch} does not divide the CLIP input size {image_size}")
    state = dict(state)
    state["embeddings.position_embeddings"] = hub_position_embeddings(state["embeddings.position_embeddings"],
                                                                      image_size // patch)
    config.image_size = image_size
    with torch.device("meta"):
        model = Dinov2Model(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ReleaseImportError(f"{source}: DINOv2 weights do not fit a DINOv2 ViT ({str(exc).splitlines()[0]})") from None
    model.save_pretrained(str(out), safe_serialization=True)
    report.mapped["dino"] = len(state)


def convert_clip(source: Path, out: Path, report: ImportReport) -> int:
    """The CLIP vision tower the release reads (a full CLIP or a vision-only folder) -> OUT; returns its
    input size. Loading is transformers' own (`CLIPVisionModel.from_pretrained`, as the release does; a
    pickled checkpoint is read with weights_only=True); the text tower is not used and not written."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    if not (source / "config.json").is_file():
        raise ReleaseImportError(f"{source}: not a CLIP checkpoint folder (config.json not found)")
    try:
        vision = CLIPVisionConfig.from_pretrained(str(source))
        model = CLIPVisionModel.from_pretrained(str(source), config=vision)
    except (OSError, ValueError) as exc:
        raise ReleaseImportError(f"{source}: cannot load a CLIP vision tower ({exc})") from None
    model.save_pretrained(str(out), safe_serialization=True)
    pre = source / "preprocessor_config.json"
    if pre.is_file():
        data = _read_json(pre)
        atomic_write_json(out / "preprocessor_config.json",
                          {k: data[k] for k in ("image_mean", "image_std", "crop_size", "size") if k in data})
    report.sources.append({"part": "clip", "path": str(source)})
    report.mapped["clip"] = len(model.state_dict())
    return int(vision.image_size)


# --- the language model and the trained parts ----------------------------------------------------------
def _lm_config(release: dict[str, Any], source: Path) -> Any:
    from transformers import LlamaConfig

    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    missing = [k for k in keys if not isinstance(release.get(k), int)]
    if missing:
        raise ReleaseImportError(f"{source / 'config.json'}: not a LLaVA-Llama config (missing {missing})")
    optional = ("num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
                "hidden_act", "bos_token_id", "eos_token_id", "pad_token_id", "attention_bias", "initializer_range")
    kwargs = {k: release[k] for k in keys + optional if release.get(k) is not None}
    return LlamaConfig(**kwargs, tie_word_embeddings=bool(release.get("tie_word_embeddings", False)))


def _lm_required(config: Any) -> set[str]:
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        keys = set(LlamaForCausalLM(config).state_dict())
    if config.tie_word_embeddings:
        keys.discard("lm_head.weight")
    return keys


def _iter_release(files: list[Path], report: ImportReport) -> Iterator[tuple[Path, dict[str, torch.Tensor]]]:
    for path in files:
        report.sources.append({"part": "release", "path": str(path), "bytes": path.stat().st_size})
        yield path, load_tensors(path)


def _write_lm(files: list[Path], overrides: dict[str, torch.Tensor], trained: dict[str, torch.Tensor],
              config: Any, out: Path, report: ImportReport) -> None:
    """Stream the release's full-model shards: LM weights go to OUT (safetensors shards + index), the
    trained parts they hold are kept unless the LoRA folder's non-LoRA file gave them, encoder copies are
    dropped with their reason, unknown keys stop the import. A written shard is let go (a 13B model
    does not fit in memory twice)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    shards = size = total = 0

    def flush() -> None:
        nonlocal shard, size, shards, total
        if shard:
            shards += 1
            name = f"model-part-{shards:05d}.safetensors"
            save_file({k: v.contiguous() for k, v in shard.items()}, str(out / name), metadata={"format": "pt"})
            written.update(dict.fromkeys(shard, name))
            total += sum(v.numel() * v.element_size() for v in shard.values())
        shard, size = {}, 0

    for path, state in _iter_release(files, report):
        for key, value in state.items():
            mapped = map_release_key(key)
            if mapped is None:
                raise _unknown(key, path)
            part, target = mapped
            if part == "drop":
                report.drop(next(p for p in (*_DROPPED, key) if key.startswith(p)), target)
            elif part == "trained":
                if target not in trained:  # the non-LoRA file, when there is one, supersedes the base
                    trained[target] = value
                report.count("trained")
            else:
                shard[target] = overrides.pop(target, value)
                size += value.numel() * value.element_size()
                report.count("lm")
                if size >= LM_SHARD_BYTES:
                    flush()
        del state
    for key, value in list(overrides.items()):  # LM weights only the non-LoRA file had
        shard[key] = value
        report.count("lm")
    flush()
    missing = sorted(_lm_required(config) - set(written))
    if missing:
        raise ReleaseImportError(f"{files[0].parent}: the language model weights lack {missing[:3]}"
                                 + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    atomic_write_json(out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": written})
    config.save_pretrained(str(out))


def _fusion_shapes(trained: dict[str, torch.Tensor], hidden: int, source: Path) -> dict[str, int]:
    """Fusion settings read from its weights (the release hard-codes 16 heads of 320 in a 5120-wide LM)."""
    need = [f"backbone.{k}" for k in ("clip_projector.0.weight", "clip_projector.2.weight", "dino_projector.0.weight",
                                      "dino_projector.2.weight", "fusion.bias_mlp.0.weight", "fusion.bias_mlp.2.weight",
                                      "fusion.q.weight", "fusion.ffn.0.weight")]
    missing = [k for k in need if k not in trained]
    if missing:
        raise ReleaseImportError(f"{source}: the release's trained parts lack {missing} (projectors and fusion)")
    for key in ("backbone.clip_projector.2.weight", "backbone.dino_projector.2.weight", "backbone.fusion.q.weight"):
        if tuple(trained[key].shape) != (hidden, hidden):
            raise ReleaseImportError(f"{source}: {key} has shape {tuple(trained[key].shape)}, expected ({hidden}, {hidden})")
    return {"fusion_heads": int(trained["backbone.fusion.bias_mlp.2.weight"].shape[0]),
            "fusion_bias_hidden": int(trained["backbone.fusion.bias_mlp.0.weight"].shape[0]),
            "fusion_ffn_dim": int(trained["backbone.fusion.ffn.0.weight"].shape[0])}


def _tokenizer_folder(*folders: Path | None) -> Path:
    for folder in folders:
        if folder is not None and any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
            return folder
    raise ReleaseImportError(f"{folders[0]}: no tokenizer files (tokenizer.json or tokenizer.model) here or in --base")


def import_release(src: str | os.PathLike[str], clip: str | os.PathLike[str], dino: str | os.PathLike[str],
                   out: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
                   precision: str = "bfloat16", model_id: str = "fakereasoning-release-mof") -> ImportReport:
    """Convert the release (see the module docstring). Returns the report also written to OUT."""
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    from fakereasoning import schema
    from fakereasoning.models.config import CONFIG_NAME, WEIGHTS_NAME, FakeReasoningConfig, ModelConfigError
    from fakereasoning.models.mof import mof_tokenizer

    hf_logging.set_verbosity_error()  # our report says what was used and dropped
    src_dir, clip_dir, dino_path = Path(src), Path(clip), Path(dino)
    base_dir = Path(base) if base is not None else None
    for path, what in ((src_dir, "release folder"), (clip_dir, "CLIP folder"), (dino_path, "DINOv2 weights"),
                       *(((base_dir, "base model folder"),) if base_dir else ())):
        if not path.exists():
            raise ReleaseImportError(f"{path}: {what} not found")
    release = _read_json(src_dir / "config.json")
    if release.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ReleaseImportError(f"{src_dir / 'config.json'}: mm_projector_type {release['mm_projector_type']!r} "
                                 "is not the release's mlp2x_gelu")
    report = ImportReport()
    trained: dict[str, torch.Tensor] = {}
    lm_overrides: dict[str, torch.Tensor] = {}
    lora: dict[str, Any] = {"lora_r": 0}
    if (src_dir / LORA_CONFIG).is_file():
        report.layout = "lora"
        adapter = _read_json(src_dir / LORA_CONFIG)
        targets = set(adapter.get("target_modules") or [])
        if adapter.get("peft_type", "LORA") != "LORA" or not targets or adapter.get("use_dora") or adapter.get("use_rslora"):
            raise ReleaseImportError(f"{src_dir / LORA_CONFIG}: not a plain LoRA adapter of named modules")
        adapter_file = next((src_dir / n for n in ADAPTER_FILES if (src_dir / n).is_file()), None)
        if adapter_file is None or not (src_dir / NON_LORA).is_file():
            raise ReleaseImportError(f"{src_dir}: a LoRA release needs {' or '.join(ADAPTER_FILES)} and {NON_LORA}")
        for path in (adapter_file, src_dir / NON_LORA):
            report.sources.append({"part": "release", "path": str(path), "bytes": path.stat().st_size})
        for key, value in load_tensors(adapter_file).items():
            trained[map_lora_key(key, targets, adapter_file)] = value
            report.count("lora")
        for key, value in load_tensors(src_dir / NON_LORA).items():
            mapped = map_release_key(_non_lora_key(key))
            if mapped is None:
                raise _unknown(key, src_dir / NON_LORA)
            part, target = mapped
            if part == "trained":
                trained[target] = value
            elif part == "lm":
                lm_overrides[target] = value
            else:
                report.drop(key, target)
        lm_source = base_dir if base_dir is not None else src_dir
        lora = {"lora_r": int(adapter.get("r", 8)), "lora_alpha": int(adapter.get("lora_alpha", 16)),
                "lora_dropout": float(adapter.get("lora_dropout", 0.0)), "lora_targets": sorted(targets)}
    else:
        report.layout = "merged"
        lm_source = src_dir
    files = weight_files(lm_source)
    if not files:
        hint = " (a LoRA release: pass the base model folder with --base)" if report.layout == "lora" else ""
        raise ReleaseImportError(f"{lm_source}: no language model weights (model*.safetensors / pytorch_model*.bin){hint}")
    lm_config = _lm_config(release, src_dir)
    target = Path(out)
    with staged_dir(target) as tmp:
        _write_lm(files, lm_overrides, trained, lm_config, tmp / "lm", report)
        fusion = _fusion_shapes(trained, int(lm_config.hidden_size), src_dir)
        image_size = convert_clip(clip_dir, tmp / "clip", report)
        convert_dino(dino_path, image_size, tmp / "dino", report)
        tokenizer = mof_tokenizer(_tokenizer_folder(src_dir, base_dir))
        tokenizer.save_pretrained(str(tmp))
        try:
            config = FakeReasoningConfig(
                backbone="mof", model_id=model_id, base_model="lm", clip_model="clip", dino_model="dino",
                vision_feature_layer=int(release.get("mm_vision_select_layer", -2)), precision=precision,
                prompt_template=schema.RELEASE_PROMPT_TEMPLATE, reasoning_mode="generate", use_facl=False,
                max_length=int(release.get("tokenizer_model_max_length") or 2048), vocab_size=len(tokenizer),
                fast_prompt_ratio=0.0, **fusion, **lora)
        except ModelConfigError as exc:
            raise ReleaseImportError(f"{src_dir}: {exc}") from None
        save_file({k: v.contiguous() for k, v in trained.items()}, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        atomic_write_json(tmp / CONFIG_NAME, config.to_dict())
        report.mapped["trained_total"] = len(trained)
        atomic_write_json(tmp / "import_report.json", {"layout": report.layout, "sources": report.sources,
                                                       "mapped": report.mapped, "dropped": report.dropped})
    return report
