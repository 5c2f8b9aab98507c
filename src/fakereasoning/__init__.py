"""fakereasoning: tell whether an image is AI-generated and explain why (FakeReasoning, arXiv 2503.21210).

`from fakereasoning import FakeReasoning` works; the model code (torch, transformers) loads only when the
name is first used, so `import fakereasoning` (the CLI does) stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["FakeReasoning", "Verdict", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "FakeReasoning":
        from fakereasoning.models.model import FakeReasoning

        return FakeReasoning
    if name == "Verdict":
        from fakereasoning.schema import Verdict

        return Verdict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
