"""Regression: a permuted (channels-last) crop batch must train like a contiguous one (it used to abort
torch's multithreaded CPU backward with a double free)."""

from __future__ import annotations

import torch

from fakereasoning.models.tiny import ForensicCNN


def test_channels_last_input_backward_matches_contiguous() -> None:
    torch.manual_seed(0)
    cnn = ForensicCNN(16, grid=1)
    x = torch.rand(15, 32, 32, 3).permute(0, 3, 1, 2)
    cnn(x).sum().backward()
    grads = [p.grad.clone() for p in cnn.parameters()]
    cnn.zero_grad()
    cnn(x.contiguous()).sum().backward()
    for a, p in zip(grads, cnn.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6)
