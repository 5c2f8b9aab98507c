"""Reimplemented baseline detectors (UnivFD-, NPR- and CNNSpot-style), trained and evaluated by the same
loaders and evaluator as FakeReasoning so that every comparison is side by side (docs/baselines.md)."""

from fakereasoning.baselines.common import BaselineDetector, BaselineError, TrainOptions, train_baseline
from fakereasoning.baselines.registry import KINDS, build, detector_class, load

__all__ = ["KINDS", "BaselineDetector", "BaselineError", "TrainOptions", "build", "detector_class", "load",
           "train_baseline"]
