"""Evidence-grounded annotation: attribute texts that state what was measured.

For an image and its known label, `EvidenceAnnotator.annotate` returns all five attribute names of that
label's kind (schema.ATTRIBUTES_OF_LABEL). A text is written only where a measurement supports it (null
otherwise), and always states the number it rests on, e.g. "the high-frequency residual repeats every 2
pixels (3.1x its spectral neighbourhood), a trace of learned x2 upsampling". The findings, their thresholds
and wordings live in `evidence.findings`, shared with grounded generation and the evaluator. At least one
attribute is non-null: when no finding holds, a hedge says that no single measurement is decisive and states
them.

Each finding is stated in its canonical wording by default. A drawn wording carries no information about the
image, so a reference that draws one makes reference metrics (ROUGE-L, CSS) score the draw rather than the
finding; `vary_wording=True` draws among a finding's phrasings with a generator seeded by (seed, key,
attribute), for training text that should vary, deterministic for a seed and key.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
from PIL import Image

from fakereasoning.evidence import findings
from fakereasoning.evidence.measure import Measurements
from fakereasoning.schema import ATTRIBUTES_OF_LABEL, Label


class EvidenceAnnotator:
    """Writes attribute texts from measurements. Deterministic (for (seed, key) with `vary_wording`)."""

    def __init__(self, seed: int = 0, vary_wording: bool = False) -> None:
        self.seed = int(seed)
        self.vary_wording = bool(vary_wording)

    def _rng(self, key: str, attribute: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}\x00{key}\x00{attribute}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def annotate(
        self, image: Image.Image | np.ndarray, label: Label, key: str = "", measured: Measurements | None = None
    ) -> dict[str, str | None]:
        """Attribute name -> text or None, for the five attributes of `label`'s kind."""
        if label not in ATTRIBUTES_OF_LABEL:
            raise ValueError(f"label must be 'real' or 'fake', got {label!r}")
        m = measured if measured is not None else findings.measure_view(image)
        if not self.vary_wording:
            return findings.annotate(m, label)
        return findings.annotate(m, label, lambda attribute, n: self._rng(key, attribute).randrange(n))
