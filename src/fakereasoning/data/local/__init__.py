"""MMFR-Local: an offline benchmark of real photos and images from locally trained generative models.

`build_local(out, preset, seed)` writes the MMFR layout (training part `local_train`, one evaluation set
per generator family, reasoning JSONs, captions, CoT conversations) plus `manifest.json`.
"""

from fakereasoning.data.local.build import PRESETS, TRAIN_PART, BuildResult, build_local

__all__ = ["PRESETS", "TRAIN_PART", "BuildResult", "build_local"]
