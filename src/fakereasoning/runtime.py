"""Process-group set-up shared by the pipelines (training, evaluation).

`accelerate` only starts a CPU process group (gloo) when asked for the CPU explicitly, so on a machine
without CUDA every entry point must say so, or `torchrun`/`accelerate launch` would run N copies of the
whole job instead of N shards of it.
"""

from __future__ import annotations

from typing import Any


def use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def distributed_state() -> Any:
    """The (singleton) `accelerate.PartialState`, CPU-aware."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())
