"""Process-group set-up and tear-down shared by the pipelines (training, evaluation).

`accelerate` only starts a CPU process group (gloo) when asked for the CPU explicitly, so on a machine
without CUDA every entry point must say so, or `torchrun`/`accelerate launch` would run N copies of the
whole job instead of N shards of it.

Every distributed job ends in `finish_distributed`: without it the ranks that finish first (the non-main
ones, which write nothing) exit while the main rank still writes its outputs, and an exit with a live
gloo group aborts now and then ("terminate called without an active exception"); the launcher then kills
the main rank before its files exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def distributed_state() -> Any:
    """The (singleton) `accelerate.PartialState`, CPU-aware."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def finish_distributed(wait: bool = True) -> None:
    """End the process group on this rank, after all ranks got here when `wait` (a no-op without one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if wait:
            dist.barrier()
    finally:
        dist.destroy_process_group()


@contextmanager
def distributed_job() -> Iterator[None]:
    """Wrap a whole distributed job: on success every rank waits for the others, then ends the group.

    On an error the group is ended without waiting (a barrier could hang on ranks that are still in a
    collective), so the other ranks fail fast instead of waiting for a partner that is gone.
    """
    try:
        yield
    except BaseException:
        finish_distributed(wait=False)
        raise
    finish_distributed(wait=True)
