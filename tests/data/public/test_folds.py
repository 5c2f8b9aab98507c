"""Leave-family-out folds: a family (or a real source) is on one side only; older families always train."""

from __future__ import annotations

from fakereasoning.data.public.folds import ALWAYS_TRAIN, LEGACY_FAMILIES, is_modern, plan_folds

FAKES = {"gemini": 300, "gpt-image": 280, "midjourney": 120, "flux": 200, "qwen-image": 90, "seedream": 40,
         "krea": 380, "sd1": 5000, "stylegan": 900, "sdxl": 60, "taef2-aligned": 600}
REALS = {"imagenet": 900, "phones": 300, "dslr": 250, "lowlight": 120, "faces": 80, "portfolio": 400, "old": 30}


def test_every_modern_family_and_source_in_exactly_one_fold() -> None:
    plan = plan_folds(FAKES, REALS, 6)
    assert plan.n_folds == 6
    modern = [f for f in FAKES if is_modern(f)]
    assert sorted(plan.families) == sorted(modern)
    assert sorted(plan.sources) == sorted(REALS)
    members = [plan.members(k) for k in range(plan.n_folds)]
    for name in modern:
        assert sum(name in m["families"] for m in members) == 1
    for name in REALS:
        assert sum(name in m["real_sources"] for m in members) == 1
    assert all(m["families"] and m["real_sources"] for m in members)


def test_older_families_always_train() -> None:
    plan = plan_folds(FAKES, REALS, 6)
    for family in LEGACY_FAMILIES & set(FAKES):
        assert plan.fold_of("fake", family, "") == ALWAYS_TRAIN
    assert plan.fold_of("real", "real", "unknown-source") == ALWAYS_TRAIN


def test_folds_depend_only_on_counts_and_shrink_with_few_families() -> None:
    assert plan_folds(FAKES, REALS, 6) == plan_folds(dict(reversed(FAKES.items())), dict(reversed(REALS.items())), 6)
    small = plan_folds({"gemini": 10, "flux": 5, "sd1": 100}, REALS, 6)
    assert small.n_folds == 2
    assert plan_folds({"gemini": 10, "sd1": 100}, REALS, 6).n_folds == 0  # one modern family: no folds
