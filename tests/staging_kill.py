"""Kill a `fsio.staged_dir` writer at a chosen point, as SIGKILL would: in a forked child that leaves with
`os._exit` (no `except`/`finally` runs), so what a later run finds is what a real kill leaves."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable

# "writing": the caller's WORK exits by itself while writing; the others are the swap's three renames and
# the removal of the replaced set.
KILL_POINTS = ["writing", "rename-1", "rename-2", "rename-3", "removing-old"]


def killed_at(point: str, work: Callable[[], None]) -> int:
    """Run WORK in a forked child whose staged swap dies at POINT; the child's exit code (9: killed)."""

    def child() -> None:
        from fakereasoning import fsio

        calls: list[int] = []
        real_replace, real_rmtree = os.replace, shutil.rmtree

        def replace(src: object, dst: object) -> None:
            if os.path.isdir(src):  # a folder of the swap (files written atomically are renamed too)
                calls.append(1)
                if point == f"rename-{len(calls)}":
                    os._exit(9)
            real_replace(src, dst)  # type: ignore[arg-type]

        def rmtree(path: object, *args: object, **kwargs: object) -> None:
            if point == "removing-old" and ".old-" in str(path):
                os._exit(9)
            real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

        fsio.os.replace = replace  # type: ignore[attr-defined]
        fsio.shutil.rmtree = rmtree  # type: ignore[attr-defined]
        work()
        os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join()  # reaped: its pid no longer counts as a live writer
    return proc.exitcode or 0
