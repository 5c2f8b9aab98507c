"""Leave-family-out folds: how transfer to unseen generators is measured, and how calibration stays honest.

Modern generator families (2023 and later) are dealt into folds, each family in exactly one; real photos
are dealt into the same number of folds by source (repository), so a fold's test reals come from sources
its training never saw. Older families (SD 1.x/2.x, SDXL, DALL-E 2, GAN faces, DeepFloyd IF) and aligned
fakes are always in training: they are not what users meet today, and measuring transfer to them is not
the question. Dealing is greedy by size (largest first, to the lightest fold) and depends only on the
counts, so the same data always gives the same folds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ALWAYS_TRAIN = -1

# Families released before 2023 (or, for SDXL, an SD-architecture refresh of mid-2023 that the project
# counted with the old data), and reconstructions by an autoencoder: never held out.
LEGACY_FAMILIES = frozenset({
    "sd1", "sd2", "sd-unknown", "sdxl", "stylegan", "dall-e-2", "deepfloyd-if", "taef2-aligned",
})


def is_modern(family: str) -> bool:
    return family != "real" and family not in LEGACY_FAMILIES


@dataclass
class FoldPlan:
    """Fold of every modern family and every real source; -1 (always train) for the rest."""

    n_folds: int
    families: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)

    def fold_of(self, label: str, family: str, source: str) -> int:
        if label == "real":
            return self.sources.get(source, ALWAYS_TRAIN)
        return self.families.get(family, ALWAYS_TRAIN)

    def members(self, k: int) -> dict[str, list[str]]:
        return {"families": sorted(f for f, v in self.families.items() if v == k),
                "real_sources": sorted(s for s, v in self.sources.items() if v == k)}

    def to_dict(self) -> dict[str, object]:
        return {"n_folds": self.n_folds, "folds": [self.members(k) for k in range(self.n_folds)]}


def _deal(counts: Mapping[str, int], n_folds: int) -> dict[str, int]:
    load = [0] * n_folds
    out: dict[str, int] = {}
    for name in sorted(counts, key=lambda k: (-counts[k], k)):
        k = min(range(n_folds), key=lambda i: (load[i], i))
        out[name] = k
        load[k] += counts[name]
    return out


def plan_folds(fake_families: Mapping[str, int], real_sources: Mapping[str, int], n_folds: int = 6) -> FoldPlan:
    """Deal modern families (name -> images) and real sources (name -> images) into `n_folds` folds (fewer
    when there are fewer modern families or sources)."""
    modern = {f: n for f, n in fake_families.items() if is_modern(f) and n > 0}
    sources = {s: n for s, n in real_sources.items() if n > 0}
    n = min(n_folds, len(modern), len(sources))
    if n < 2:
        return FoldPlan(0)
    return FoldPlan(n, _deal(modern, n), _deal(sources, n))
