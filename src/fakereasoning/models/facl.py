"""FACL, Forgery-Aligned Contrastive Learning: our formulation of the paper's idea (spec section 5).

The paper's equations are not public. Here: an image embedding (pooled visual tokens -> head) and a
reasoning-text embedding (pooled LM hidden states over the reasoning span -> head), both L2-normalised.
- cross-modal: symmetric InfoNCE between each image and its own reasoning, learnable temperature;
- intra-modal: supervised contrastive loss among images and among texts, positives = same label,
  optionally weighted by how many forgery attributes the two samples share.
Each term has its own weight and is skipped when the weight is 0 (ablations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """Small 2-layer MLP to the contrastive space (keeps the LM's own space free of the contrastive pull)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x.float()), dim=-1)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, D) over positions where mask (B, T) is true; rows with no position give zeros."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def attribute_weights(attributes: Sequence[frozenset[str]], labels: torch.Tensor) -> torch.Tensor:
    """Positive-pair weights: 1 for same label, raised towards 2 by the Jaccard overlap of attributes."""
    n = len(attributes)
    w = torch.ones(n, n, device=labels.device)
    for i in range(n):
        for j in range(n):
            a, b = attributes[i], attributes[j]
            if a or b:
                w[i, j] = 1.0 + len(a & b) / max(1, len(a | b))
    return w


def info_nce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between matched rows of `image` and `text` (both (N, D), normalised)."""
    if image.shape[0] < 2:
        return image.sum() * 0.0
    scale = logit_scale.exp().clamp(max=100.0)
    sims = scale * image @ text.t()
    target = torch.arange(image.shape[0], device=image.device)
    return 0.5 * (F.cross_entropy(sims, target) + F.cross_entropy(sims.t(), target))


def supervised_contrastive(
    emb: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """SupCon (Khosla et al. 2020) with optional pair weights; anchors without a positive are skipped."""
    n = emb.shape[0]
    if n < 2:
        return emb.sum() * 0.0
    sims = emb @ emb.t() / temperature
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    sims = sims.masked_fill(eye, float("-inf"))
    log_prob = sims - torch.logsumexp(sims, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    w = pos.to(emb.dtype) if weights is None else pos.to(emb.dtype) * weights.to(emb.dtype)
    has_pos = pos.any(dim=1)
    if not bool(has_pos.any()):
        return emb.sum() * 0.0
    per_anchor = -(w * log_prob.masked_fill(~pos, 0.0)).sum(1) / w.sum(1).clamp(min=1e-8)
    return per_anchor[has_pos].mean()


class FACL(nn.Module):
    """Heads, learnable temperature and the three terms. `forward` returns (total, {term: value})."""

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        dim: int = 128,
        init_temperature: float = 0.07,
        cross_weight: float = 0.1,
        image_weight: float = 0.1,
        text_weight: float = 0.1,
        supcon_temperature: float = 0.1,
        attribute_weighting: bool = True,
    ) -> None:
        super().__init__()
        self.image_head = ProjectionHead(image_dim, dim)
        self.text_head = ProjectionHead(text_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.weights = {"cross": cross_weight, "image": image_weight, "text": text_weight}
        self.supcon_temperature = supcon_temperature
        self.attribute_weighting = attribute_weighting

    def embed(
        self, visual_tokens: torch.Tensor, hidden: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image_embeds (B, D), text_embeds (B, D), has_text (B,)) from visual tokens and LM states."""
        image = self.image_head(visual_tokens.mean(1))
        text = self.text_head(masked_mean(hidden, text_mask))
        return image, text, text_mask.any(dim=1)

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        has_text: torch.Tensor,
        labels: torch.Tensor,
        attributes: Sequence[frozenset[str]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms: dict[str, torch.Tensor] = {}
        weights = None
        if self.attribute_weighting and attributes is not None:
            weights = attribute_weights(attributes, labels)
        sel = has_text.nonzero(as_tuple=True)[0]
        if self.weights["cross"] > 0:
            terms["cross"] = info_nce(image[sel], text[sel], self.logit_scale)
        if self.weights["image"] > 0:
            terms["image"] = supervised_contrastive(image, labels, self.supcon_temperature, weights)
        if self.weights["text"] > 0:
            tw = None if weights is None else weights[sel][:, sel]
            terms["text"] = supervised_contrastive(text[sel], labels[sel], self.supcon_temperature, tw)
        total = image.sum() * 0.0
        for name, value in terms.items():
            total = total + self.weights[name] * value
        return total, terms
