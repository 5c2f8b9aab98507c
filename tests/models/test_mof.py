"""The `mof` backbone and the release importer, on tiny random checkpoints built by code (tests/mof_factory.py).

The central check: the imported replica's forward equals an independent computation of the release's
architecture written here from its published semantics (torch-hub DINOv2 with its own position-embedding
resize and last-block attention map, `mlp2x_gelu` projectors, the crossattention module with its bias MLP,
the LM with the LoRA deltas merged into its weights), on the same weights.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import mof_factory as mf
import pytest
import torch
import torch.nn.functional as F

from fakereasoning import schema
from fakereasoning.models import FakeReasoning
from fakereasoning.models.config import ModelConfigError
from fakereasoning.models.release import ReleaseImportError, import_release

from .conftest import make_images, make_samples


@pytest.fixture(scope="session")
def mof_parts(tmp_path_factory) -> dict[str, str]:
    return mf.make_mof_parts(tmp_path_factory.mktemp("mof"))


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> dict[str, Path]:
    return mf.make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def imported(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "fakereasoning-release"
    import_release(release["src"], release["clip"], release["dino"], out, base=release["base"], precision="float32")
    return out


# --- an independent computation of the release's architecture ------------------------------------------
def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return w * (x - mean) / torch.sqrt(var + eps) + b


def _hub_dino(state: dict[str, torch.Tensor], px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DINOv2's hub ViT: (x_prenorm patch tokens, last block's attention probabilities)."""
    w = state["patch_embed.proj.weight"]
    patch = w.shape[-1]
    x = F.conv2d(px, w, state["patch_embed.proj.bias"], stride=patch).flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    pos = state["pos_embed"]
    m, g = math.isqrt(pos.shape[1] - 1), px.shape[-1] // patch
    grid = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((g + 0.1) / m, (g + 0.1) / m), mode="bicubic", antialias=False)
    x = x + torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, g * g, -1)], dim=1)
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    heads = x.shape[-1] // 64
    attn = None
    for i in range(depth):
        p = f"blocks.{i}."
        h = _layer_norm(x, state[p + "norm1.weight"], state[p + "norm1.bias"])
        b, n, c = h.shape
        qkv = F.linear(h, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"]).reshape(b, n, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        out = F.linear((attn @ v).transpose(1, 2).reshape(b, n, c), state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        x = x + state[p + "ls1.gamma"] * out
        h = _layer_norm(x, state[p + "norm2.weight"], state[p + "norm2.bias"])
        h = F.linear(F.gelu(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                     state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        x = x + state[p + "ls2.gamma"] * h
    return x[:, 1:], attn


def _crossattention(s: dict[str, torch.Tensor], q_in: torch.Tensor, kv: torch.Tensor, attn_map: torch.Tensor) -> torch.Tensor:
    c = "base_model.model.model.crossattention."
    bias = F.conv2d(torch.log(attn_map[:, :, 1:, 1:] + 1e-6), s[c + "attention_mlp.mlp.0.weight"], s[c + "attention_mlp.mlp.0.bias"])
    bias = F.conv2d(F.gelu(bias), s[c + "attention_mlp.mlp.2.weight"], s[c + "attention_mlp.mlp.2.bias"])
    heads = bias.shape[1]

    def proj(name: str, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, s[f"{c}mhatt.0.{name}.weight"], s[f"{c}mhatt.0.{name}.bias"])
        return y.view(y.shape[0], -1, heads, y.shape[-1] // heads).transpose(1, 2)

    q, k, v = proj("linear_q", q_in), proj("linear_k", kv), proj("linear_v", kv)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + bias
    att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(q_in.shape)
    att = F.linear(att, s[c + "mhatt.0.linear_merge.weight"], s[c + "mhatt.0.linear_merge.bias"])
    x = _layer_norm(q_in + att, s[c + "norm.0.a_2"], s[c + "norm.0.b_2"])
    ffn = F.linear(F.relu(F.linear(x, s[c + "ffn.0.mlp.fc.linear.weight"], s[c + "ffn.0.mlp.fc.linear.bias"])),
                   s[c + "ffn.0.mlp.linear.weight"], s[c + "ffn.0.mlp.linear.bias"])
    return _layer_norm(x + ffn, s[c + "norm.1.a_2"], s[c + "norm.1.b_2"])


def _mlp2x_gelu(s: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(F.gelu(F.linear(x, s[prefix + "0.weight"], s[prefix + "0.bias"])), s[prefix + "2.weight"], s[prefix + "2.bias"])


def _release_logits(release: dict[str, Path], batch: dict, image_token: int) -> torch.Tensor:
    """The release's forward on the replica's own files: fused tokens spliced in at the image position."""
    from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    cfg = json.loads((release["src"] / "config.json").read_text())
    non_lora = torch.load(release["src"] / "non_lora_trainables.bin", weights_only=True)
    from safetensors.torch import load_file

    adapter = load_file(str(release["src"] / "adapter_model.safetensors"))
    base: dict[str, torch.Tensor] = {}
    for shard in sorted(release["base"].glob("pytorch_model-*.bin")):
        base |= torch.load(shard, weights_only=True)
    scale = json.loads((release["src"] / "adapter_config.json").read_text())
    scale = scale["lora_alpha"] / scale["r"]
    lm_state = {k: v.clone() for k, v in base.items() if not k.startswith("model.mm_projector")}
    for key, a in adapter.items():
        if key.endswith("lora_A.weight"):
            name = key[len("base_model.model."):-len(".lora_A.weight")] + ".weight"
            lm_state[name] += scale * adapter[key.replace("lora_A", "lora_B")] @ a
    lm = LlamaForCausalLM(LlamaConfig(**{k: cfg[k] for k in ("vocab_size", "hidden_size", "intermediate_size",
                                                             "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                                             "max_position_embeddings", "rms_norm_eps", "rope_theta")},
                                      tie_word_embeddings=False)).eval()
    lm.load_state_dict(lm_state, strict=False)
    clip = CLIPVisionModel.from_pretrained(str(release["clip"])).eval()
    px = batch["pixel_values"]
    with torch.no_grad():
        clip_tokens = clip(pixel_values=px, output_hidden_states=True).hidden_states[cfg["mm_vision_select_layer"]][:, 1:]
        dino_tokens, attn_map = _hub_dino(torch.load(release["dino"], weights_only=True), px)
        p = "base_model.model.model."
        fused = _crossattention(non_lora, _mlp2x_gelu(non_lora, p + "mm_projector.", clip_tokens),
                                _mlp2x_gelu(non_lora, p + "dino_mm_projector.", dino_tokens), attn_map)
        ids = batch["input_ids"]
        embeds = lm.get_input_embeddings()(ids.masked_fill(ids == image_token, 0))
        embeds[ids == image_token] = fused.reshape(-1, fused.shape[-1])
        return lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits


def test_imported_replica_forward_equals_the_release_architecture(release, imported, images) -> None:
    model = FakeReasoning.from_pretrained(imported)
    assert model.config.backbone == "mof" and model.config.reasoning_mode == "generate"
    batch = model.collate(make_samples(images[:3]))
    with torch.no_grad():
        ours = model(batch)
    reference = _release_logits(release, batch, model.text.image_token_id)
    valid = batch["attention_mask"].bool()
    diff = (ours.logits - reference).abs()[valid].max().item()
    assert diff <= 1e-5, f"imported forward differs from the release's architecture by {diff}"
    assert torch.isfinite(reference).all() and reference.abs().max() > 0.1  # not a trivially zero comparison
    slots = batch["slots"]
    rows = torch.arange(len(slots))
    assert (slots >= 0).all()
    pair = reference[rows, slots][:, list(model.text.verdict_ids)]
    assert torch.allclose(ours.cpm_logits, pair / model.config.cpm_scale, atol=1e-6)  # the verdict logits too


def test_import_writes_safetensors_and_json_only_and_says_what_it_mapped(imported) -> None:
    files = [p for p in imported.rglob("*") if p.is_file()]
    assert files and all(p.suffix in (".safetensors", ".json", ".txt", ".model") for p in files), files
    report = json.loads((imported / "import_report.json").read_text())
    assert report["layout"] == "lora"
    assert report["mapped"]["lora"] == 2 * mf.LM_LAYERS * len(mf.TARGETS)
    cfg = json.loads((imported / "config.json").read_text())
    assert (cfg["base_model"], cfg["clip_model"], cfg["dino_model"]) == ("lm", "clip", "dino")  # relocatable
    assert cfg["lora_r"] == mf.LORA_R and cfg["prompt_template"] == schema.RELEASE_PROMPT_TEMPLATE
    from safetensors.torch import load_file

    index = json.loads((imported / "lm" / "model.safetensors.index.json").read_text())
    shards = [load_file(str(imported / "lm" / name)) for name in sorted(set(index["weight_map"].values()))]
    assert sorted(index["weight_map"]) == sorted(k for shard in shards for k in shard)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for s in shards for t in s.values())


def test_import_reads_pickles_only_with_weights_only(release, tmp_path, monkeypatch) -> None:
    real_load = torch.load
    calls = []

    def checked(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        assert kwargs.get("weights_only") is True, "a pickle must be read with weights_only=True"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", checked)
    import_release(release["src"], release["clip"], release["dino"], tmp_path / "out", base=release["base"])
    assert len(calls) >= 4  # non-LoRA file, two base shards, DINO hub weights


def test_import_fails_naming_an_unknown_key(release, tmp_path) -> None:
    src = tmp_path / "src"
    shutil.copytree(release["src"], src)
    state = torch.load(src / "non_lora_trainables.bin", weights_only=True)
    state["base_model.model.model.mystery_adapter.weight"] = torch.zeros(2)
    torch.save(state, src / "non_lora_trainables.bin")
    with pytest.raises(ReleaseImportError, match=r"non_lora_trainables\.bin: unknown key 'base_model\.model\.model\.mystery_adapter\.weight'"):
        import_release(src, release["clip"], release["dino"], tmp_path / "out", base=release["base"])
    assert not (tmp_path / "out").exists()  # nothing half-written
    bad_dino = tmp_path / "dino.pth"
    torch.save({**torch.load(release["dino"], weights_only=True), "blocks.0.attn.extra": torch.zeros(1)}, bad_dino)
    with pytest.raises(ReleaseImportError, match=r"dino\.pth: unknown key 'blocks\.0\.attn\.extra'"):
        import_release(release["src"], release["clip"], bad_dino, tmp_path / "out", base=release["base"])
    with pytest.raises(ReleaseImportError, match="--base"):
        import_release(release["src"], release["clip"], release["dino"], tmp_path / "out")


def test_import_refuses_a_pickle_that_runs_code(release, tmp_path) -> None:
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    src = tmp_path / "src"
    shutil.copytree(release["src"], src)
    with open(src / "non_lora_trainables.bin", "wb") as fh:
        pickle.dump({"x": Boom()}, fh)
    with pytest.raises(ReleaseImportError, match="non_lora_trainables.bin: not a plain tensor file"):
        import_release(src, release["clip"], release["dino"], tmp_path / "out", base=release["base"])


def test_merged_release_imports_to_the_same_model(release, imported, images, tmp_path) -> None:
    """The merged layout (what the release's inference loads: one full model, LoRA merged, encoder copies
    inside) imports to the same forward as the LoRA folder with its base."""
    from safetensors.torch import save_file

    base: dict[str, torch.Tensor] = {}
    for shard in sorted(release["base"].glob("pytorch_model-*.bin")):
        base |= torch.load(shard, weights_only=True)
    from safetensors.torch import load_file

    adapter = load_file(str(release["src"] / "adapter_model.safetensors"))
    for key, a in adapter.items():
        if key.endswith("lora_A.weight"):
            name = key[len("base_model.model."):-len(".lora_A.weight")] + ".weight"
            base[name] = base[name] + (mf.LORA_ALPHA / mf.LORA_R) * adapter[key.replace("lora_A", "lora_B")] @ a
    non_lora = torch.load(release["src"] / "non_lora_trainables.bin", weights_only=True)
    base |= {k[len("base_model.model."):]: v for k, v in non_lora.items()}
    base["model.vision_tower.vision_tower.vision_model.post_layernorm.weight"] = torch.ones(mf.CLIP_WIDTH)
    base["model.dino_tower.vision_tower.cls_token"] = torch.zeros(1, 1, mf.DINO_WIDTH)
    merged = tmp_path / "merged"
    merged.mkdir()
    save_file({k: v.contiguous() for k, v in base.items()}, str(merged / "model.safetensors"))
    shutil.copy(release["src"] / "config.json", merged / "config.json")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(release["base"] / name, merged / name)
    report = import_release(merged, release["clip"], release["dino"], tmp_path / "out", precision="float32")
    assert report.layout == "merged" and set(report.dropped) == {"model.vision_tower.", "model.dino_tower."}
    a, b = FakeReasoning.from_pretrained(imported), FakeReasoning.from_pretrained(tmp_path / "out")
    assert b.config.lora_r == 0
    batch = a.collate(make_samples(images[:2]))
    with torch.no_grad():
        diff = (a(batch).logits - b(batch).logits).abs().max().item()
    assert diff <= 1e-5


def test_fresh_mof_trains_only_adapters_projectors_and_fusion(mof_parts, images, tmp_path) -> None:
    torch.manual_seed(0)
    model = FakeReasoning.build("mof", **mof_parts, **mf.MOF_KW)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for n in trainable)
    assert {n.split(".")[1] for n in trainable if n.startswith("backbone.")} == {"clip_projector", "dino_projector", "fusion", "lm"}
    assert all("lora_" in n for n in trainable if n.startswith(("backbone.lm.", "backbone.clip.", "backbone.dino.")))
    assert model.backbone.n_visual_tokens == (mf.IMAGE // mf.PATCH) ** 2
    out = model(model.collate(make_samples(images[:4])))
    out.loss.backward()
    assert set(out.facl_terms) == {"cross", "image", "text"} and torch.isfinite(out.loss)
    assert model.backbone.fusion.bias_mlp[0].weight.grad is not None  # DINO's attention map feeds the bias
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    model.eval()
    model.save_pretrained(tmp_path / "m")
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "m" / "model.safetensors")))
    assert not any(k.startswith(("backbone.clip.", "backbone.dino.")) or ("backbone.lm." in k and "lora_" not in k) for k in keys)
    loaded = FakeReasoning.from_pretrained(tmp_path / "m")
    batch = model.collate(make_samples(images[:2]))
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)
    full = loaded._generate_full(images[:1], max_new_tokens=8)
    assert schema.parse_cot(full.texts[0]).label == ("fake" if full.probs[0] >= 0.5 else "real")


def test_component_paths_stay_inside_the_model_folder(imported, tmp_path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(imported, copy)
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "clip_model": "../../etc"}))
    with pytest.raises(ModelConfigError, match=r"clip_model: path '\.\./\.\./etc' escapes its root"):
        FakeReasoning.from_pretrained(copy)
    model = FakeReasoning.from_pretrained(imported)
    with pytest.raises(ModelConfigError, match="holds the checkpoints this model reads"):
        model.save_pretrained(imported)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_low_bit_loading_needs_cuda(mof_parts, precision) -> None:
    with pytest.raises(ModelConfigError, match=f"precision={precision} .* needs a CUDA GPU"):
        FakeReasoning.build("mof", **mof_parts, **mf.MOF_KW, precision=precision)


def test_bfloat16_and_device_map(mof_parts, images) -> None:
    model = FakeReasoning.build("mof", **mof_parts, **mf.MOF_KW, precision="bfloat16", device_map="cpu")
    assert model.backbone.lm.dtype == torch.bfloat16 and model.backbone.fusion.q.weight.dtype == torch.bfloat16
    p = model.fast_probabilities(make_images(2))
    assert all(0.0 <= x <= 1.0 for x in p)
