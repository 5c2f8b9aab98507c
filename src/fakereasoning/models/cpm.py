"""CPM, the Classification Probability Mapper (spec section 5): a calibrated p(fake) from the LM's logits.

At the verdict slot (the position whose next token is the verdict word after "This image is") the logits
of the two verdict words give z = [real, fake] / scale; p(fake) = softmax(z / T)[1], with T fitted on
held-out data. Training adds cross-entropy(z, label) to the LM loss; samples without a slot weigh zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SCALE = 10.0


def verdict_logits(logits: torch.Tensor, slots: torch.Tensor, verdict_ids: Sequence[int]) -> torch.Tensor:
    """Gather the [real, fake] logits at each sample's slot: (B, T, V) -> (B, 2). Slot -1 gives zeros."""
    batch = logits.shape[0]
    safe = slots.clamp(min=0)
    at_slot = logits[torch.arange(batch, device=logits.device), safe]  # (B, V)
    ids = torch.as_tensor(list(verdict_ids), device=logits.device)
    pair = at_slot.index_select(-1, ids)
    return torch.where((slots >= 0)[:, None], pair, torch.zeros_like(pair))


def cpm_z(pair_logits: torch.Tensor, scale: float = DEFAULT_SCALE) -> torch.Tensor:
    return pair_logits / scale


def cpm_probability(
    pair_logits: torch.Tensor, scale: float = DEFAULT_SCALE, temperature: float = 1.0, bias: float = 0.0
) -> torch.Tensor:
    """p(fake) = softmax([real, fake] / scale / T)[1], with an optional shift `bias` of the fake-minus-real
    margin (Platt scaling: a prior fitted on a held-out generator; 0 = plain temperature scaling)."""
    z = cpm_z(pair_logits.float(), scale) / temperature
    return torch.sigmoid(z[..., 1] - z[..., 0] + bias)


def cpm_loss(
    pair_logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, scale: float = DEFAULT_SCALE
) -> torch.Tensor:
    """Mean CE over samples with a slot (`valid`); exactly 0 (still differentiable) when none has one."""
    ce = F.cross_entropy(cpm_z(pair_logits.float(), scale), labels.long().clamp(0, 1), reduction="none")
    weight = valid.to(ce.dtype)
    return (ce * weight).sum() / weight.sum().clamp(min=1.0)


def _as_z(logits: np.ndarray | torch.Tensor | Sequence) -> np.ndarray:
    z = np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 2:
        return z[:, 1] - z[:, 0]  # only the difference matters for a 2-way softmax
    return z.reshape(-1)


def fit_temperature(
    logits: np.ndarray | torch.Tensor | Sequence,
    labels: np.ndarray | torch.Tensor | Sequence,
    scale: float = 1.0,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """Temperature T minimising the held-out NLL of softmax(z / scale / T).

    `logits`: (N, 2) [real, fake] logits (or already-scaled z, with scale=1), or (N,) fake-minus-real
    margins. A one-dimensional search over log T (golden section), bounded so T stays sane on tiny or
    separable held-out sets.
    """
    margin = _as_z(logits) / scale
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64)
    y = y.reshape(-1)
    if margin.shape != y.shape or margin.size == 0:
        raise ValueError(
            f"fit_temperature needs matching non-empty logits and labels, got {margin.shape} {y.shape}"
        )

    def nll(log_t: float) -> float:
        m = margin / np.exp(log_t)
        # -[y log s(m) + (1-y) log(1-s(m))] = softplus(m) - y m, computed stably
        return float(np.mean(np.logaddexp(0.0, m) - y * m))

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2.0))


def fit_platt(
    logits: np.ndarray | torch.Tensor | Sequence,
    labels: np.ndarray | torch.Tensor | Sequence,
    scale: float = 1.0,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> tuple[float, float]:
    """(T, bias) minimising the held-out NLL of sigmoid(margin / scale / T + bias): temperature scaling
    plus a shift, for a detector whose errors lean to one side on unseen generators."""
    from scipy.optimize import minimize

    margin = _as_z(logits) / scale
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64)
    y = y.reshape(-1)
    if margin.shape != y.shape or margin.size == 0:
        raise ValueError(f"fit_platt needs matching non-empty logits and labels, got {margin.shape} {y.shape}")
    lo, hi = np.log(bounds[0]), np.log(bounds[1])

    def nll(params: np.ndarray) -> float:
        m = margin / np.exp(np.clip(params[0], lo, hi)) + params[1]
        return float(np.mean(np.logaddexp(0.0, m) - y * m))

    start = np.array([np.log(fit_temperature(margin, y, 1.0, bounds)), 0.0])
    best = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    return float(np.exp(np.clip(best.x[0], lo, hi))), float(best.x[1])


def expected_calibration_error(
    probs: np.ndarray | torch.Tensor | Sequence, labels: np.ndarray | torch.Tensor | Sequence, bins: int = 15
) -> float:
    """Expected calibration error of binary p(fake), in the usual top-label form.

    Confidence = max(p, 1 - p); per equal-width confidence bin, |accuracy - mean confidence| weighted by
    the bin's share of samples.
    """
    p = np.asarray(
        probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64
    ).reshape(-1)
    y = np.asarray(
        labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64
    ).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"probs and labels differ in size: {p.shape} vs {y.shape}")
    if p.size == 0:
        return 0.0
    pred = (p >= 0.5).astype(np.float64)
    conf = np.where(pred == 1.0, p, 1.0 - p)
    correct = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        in_bin = (conf > lo) & (conf <= hi) if i else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)
