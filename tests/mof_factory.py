"""Tiny random checkpoints for the `mof` backbone and a tiny replica of the released FakeReasoning checkpoint.

Everything is built by code, the way `transformers` tests its own models: a byte-level tokenizer without
an image token (as a Llama tokenizer has none), a tiny Llama, a tiny full CLIP (text and vision towers,
as `clip-vit-large-patch14-336` is), DINOv2 as torch-hub weights (`dinov2_vitl14_pretrain.pth` key names)
or as a Hugging Face folder. The replica has the release's file layout and key names: a LoRA folder
(`config.json` of a `LlavaLlamaForCausalLM`, `adapter_config.json`, `adapter_model.safetensors`,
`non_lora_trainables.bin` with PEFT's prefixes) and its base "MoF" model as two pickled shards with an index.
Sizes: LM width 64, DINO width 128 (head size 64, as every DINOv2), 28 px input, 7 px patches (16 tokens);
the hub position grid is 5 x 5, so the import resizes it to 4 x 4 as the hub model does at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

LM_WIDTH, LM_FFN, LM_LAYERS, LM_HEADS = 64, 128, 2, 2
CLIP_WIDTH, IMAGE, PATCH = 32, 28, 7
DINO_WIDTH, DINO_LAYERS, DINO_HUB_IMAGE = 128, 2, 35
FUSION_HEADS, BIAS_HIDDEN, FUSION_FFN = 2, 4, 96
LORA_R, LORA_ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MOF_KW: dict[str, Any] = dict(fusion_heads=FUSION_HEADS, fusion_bias_hidden=BIAS_HIDDEN, fusion_ffn_dim=FUSION_FFN,
                              lora_r=LORA_R, lora_alpha=LORA_ALPHA, lora_targets=TARGETS, facl_dim=16, max_length=400)


def lm_tokenizer() -> Any:
    """A byte-level BPE with Llama's special tokens and no `<image>` token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from fakereasoning.models.tokenizer import schema_texts

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(schema_texts() * 3 + ["A chat between a curious user and an artificial intelligence"
                                                  " assistant. USER: ASSISTANT: helpful detailed polite"] * 3,
                            trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def llama_config(vocab: int, tok: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab, hidden_size=LM_WIDTH, intermediate_size=LM_FFN, num_hidden_layers=LM_LAYERS,
                       num_attention_heads=LM_HEADS, num_key_value_heads=LM_HEADS, max_position_embeddings=512,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)


def make_clip(folder: Path) -> Path:
    """A tiny full CLIP (text + vision), saved as a user downloads one, with its preprocessor config."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;-()%+x")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in symbols:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(1)
    cfg = CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=CLIP_WIDTH, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           image_size=IMAGE, patch_size=PATCH),
        projection_dim=8)
    CLIPModel(cfg).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
         "crop_size": {"height": IMAGE, "width": IMAGE}, "size": {"shortest_edge": IMAGE}}))
    return folder


def dino_hub_state(seed: int = 2) -> dict[str, torch.Tensor]:
    """DINOv2 ViT weights with the torch-hub key names (layer scale, qkv fused, no registers)."""
    g = torch.Generator().manual_seed(seed)
    d, grid = DINO_WIDTH, DINO_HUB_IMAGE // PATCH

    def r(*shape: int, std: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    state = {"cls_token": r(1, 1, d, std=0.5), "pos_embed": r(1, 1 + grid * grid, d, std=0.5), "mask_token": r(1, d),
             "patch_embed.proj.weight": r(d, 3, PATCH, PATCH), "patch_embed.proj.bias": r(d),
             "norm.weight": 1 + r(d), "norm.bias": r(d)}
    for i in range(DINO_LAYERS):
        p = f"blocks.{i}."
        state |= {p + "norm1.weight": 1 + r(d), p + "norm1.bias": r(d), p + "attn.qkv.weight": r(3 * d, d, std=0.2),
                  p + "attn.qkv.bias": r(3 * d), p + "attn.proj.weight": r(d, d), p + "attn.proj.bias": r(d),
                  p + "ls1.gamma": 1 + r(d), p + "norm2.weight": 1 + r(d), p + "norm2.bias": r(d),
                  p + "mlp.fc1.weight": r(4 * d, d), p + "mlp.fc1.bias": r(4 * d), p + "mlp.fc2.weight": r(d, 4 * d),
                  p + "mlp.fc2.bias": r(d), p + "ls2.gamma": 1 + r(d)}
    return state


def make_dino_hf(folder: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(3)
    Dinov2Model(Dinov2Config(hidden_size=DINO_WIDTH, num_hidden_layers=DINO_LAYERS, num_attention_heads=DINO_WIDTH // 64,
                             image_size=IMAGE, patch_size=PATCH)).save_pretrained(folder)
    return folder


def make_lm(folder: Path) -> Path:
    """A tiny Llama with its tokenizer: the language model of a fresh `mof` model."""
    from transformers import LlamaForCausalLM

    tok = lm_tokenizer()
    torch.manual_seed(4)
    LlamaForCausalLM(llama_config(len(tok), tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_mof_parts(root: Path) -> dict[str, str]:
    """Folders of a fresh tiny `mof` model: FakeReasoning.build("mof", **parts, **MOF_KW)."""
    return {"base_model": str(make_lm(root / "lm")), "clip_model": str(make_clip(root / "clip")),
            "dino_model": str(make_dino_hf(root / "dino"))}


def release_parts(vocab: int, seed: int = 5) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(base model state, LoRA adapter state, non-LoRA trainables) with the release's key names."""
    from transformers import LlamaForCausalLM

    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, std: float = 0.1) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    torch.manual_seed(seed)
    tok = lm_tokenizer()
    lm = LlamaForCausalLM(llama_config(vocab, tok)).state_dict()
    base = {k: v for k, v in lm.items() if "rotary" not in k}
    d = LM_WIDTH
    # the MoF base carries a projector of its own, superseded by the non-LoRA file (as in the release)
    base |= {"model.mm_projector.0.weight": r(d, CLIP_WIDTH), "model.mm_projector.0.bias": r(d),
             "model.mm_projector.2.weight": r(d, d), "model.mm_projector.2.bias": r(d)}
    adapter: dict[str, torch.Tensor] = {}
    dims = {"q_proj": (d, d), "k_proj": (d, d), "v_proj": (d, d), "o_proj": (d, d), "gate_proj": (d, LM_FFN),
            "up_proj": (d, LM_FFN), "down_proj": (LM_FFN, d)}
    for i in range(LM_LAYERS):
        for name, (fan_in, fan_out) in dims.items():
            block = "self_attn" if name in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            key = f"base_model.model.model.layers.{i}.{block}.{name}"
            adapter[f"{key}.lora_A.weight"] = r(LORA_R, fan_in)
            adapter[f"{key}.lora_B.weight"] = r(fan_out, LORA_R)
    p = "base_model.model.model."
    non_lora = {p + "mm_projector.0.weight": r(d, CLIP_WIDTH), p + "mm_projector.0.bias": r(d),
                p + "mm_projector.2.weight": r(d, d), p + "mm_projector.2.bias": r(d),
                p + "dino_mm_projector.0.weight": r(d, DINO_WIDTH), p + "dino_mm_projector.0.bias": r(d),
                p + "dino_mm_projector.2.weight": r(d, d), p + "dino_mm_projector.2.bias": r(d)}
    c = p + "crossattention."
    non_lora |= {c + "attention_mlp.mlp.0.weight": r(BIAS_HIDDEN, DINO_WIDTH // 64, 1, 1, std=0.5),
                 c + "attention_mlp.mlp.0.bias": r(BIAS_HIDDEN), c + "attention_mlp.mlp.2.weight": r(FUSION_HEADS, BIAS_HIDDEN, 1, 1, std=0.5),
                 c + "attention_mlp.mlp.2.bias": r(FUSION_HEADS)}
    for name in ("linear_v", "linear_k", "linear_q", "linear_merge"):
        non_lora |= {f"{c}mhatt.0.{name}.weight": r(d, d), f"{c}mhatt.0.{name}.bias": r(d)}
    non_lora |= {c + "ffn.0.mlp.fc.linear.weight": r(FUSION_FFN, d), c + "ffn.0.mlp.fc.linear.bias": r(FUSION_FFN),
                 c + "ffn.0.mlp.linear.weight": r(d, FUSION_FFN), c + "ffn.0.mlp.linear.bias": r(d)}
    for i in (0, 1):
        non_lora |= {f"{c}norm.{i}.a_2": 1 + r(d), f"{c}norm.{i}.b_2": r(d)}
    return base, adapter, non_lora


def release_config(vocab: int, tok: Any, clip: Path) -> dict[str, Any]:
    """config.json of the release's `LlavaLlamaForCausalLM` (the fields its code reads)."""
    return {"_name_or_path": "path_to_MoF_Models", "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava_llama",
            "vocab_size": vocab, "hidden_size": LM_WIDTH, "intermediate_size": LM_FFN, "num_hidden_layers": LM_LAYERS,
            "num_attention_heads": LM_HEADS, "num_key_value_heads": LM_HEADS, "max_position_embeddings": 512,
            "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": 0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "mm_hidden_size": CLIP_WIDTH, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
            "mm_vision_select_feature": "patch", "mm_vision_tower": str(clip), "mm_patch_merge_type": "flat",
            "image_aspect_ratio": "pad", "mm_use_im_start_end": False, "mm_use_im_patch_token": False,
            "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right", "tune_mm_mlp_adapter": False,
            "freeze_mm_mlp_adapter": False, "mm_projector_lr": 2e-5, "use_cache": True}


def make_release(root: Path) -> dict[str, Path]:
    """The replica: {"src": LoRA folder, "base": MoF base folder, "clip": CLIP folder, "dino": hub .pth}."""
    from safetensors.torch import save_file

    tok = lm_tokenizer()
    vocab = len(tok)
    clip = make_clip(root / "clip-vit-large-patch14-336")
    base_state, adapter, non_lora = release_parts(vocab)
    cfg = release_config(vocab, tok, clip)
    base = root / "MoF_Models"
    base.mkdir(parents=True)
    keys = sorted(base_state)
    shards = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2], "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2:]}
    for name, part in shards.items():
        torch.save({k: base_state[k] for k in part}, base / name)
    (base / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, part in shards.items() for k in part}}))
    (base / "config.json").write_text(json.dumps(cfg))
    tok.save_pretrained(base)
    src = root / "fakereasoning-lora"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "path_to_MoF_Models", "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
         "init_lora_weights": True, "lora_alpha": LORA_ALPHA, "lora_dropout": 0.05, "modules_to_save": None,
         "peft_type": "LORA", "r": LORA_R, "target_modules": TARGETS, "task_type": "CAUSAL_LM"}))
    save_file(adapter, str(src / "adapter_model.safetensors"))
    torch.save(non_lora, src / "non_lora_trainables.bin")
    (src / "trainer_state.json").write_text("{}")
    dino = root / "dinov2_vitl14_pretrain.pth"
    torch.save(dino_hub_state(), dino)
    return {"src": src, "base": base, "clip": clip, "dino": dino}
