"""Evidence an image carries about its origin, measured cheaply, and an annotator that states it in words.

`measure` returns numbers (spectral peaks of the noise residual, neighbouring-pixel relations, sharpness,
noise consistency, edge continuity, colour and lighting statistics); `EvidenceAnnotator` turns them into
attribute texts of the FakeReasoning schema, so reasoning is checkable rather than decorative.
"""

from fakereasoning.evidence.annotator import EvidenceAnnotator
from fakereasoning.evidence.measure import Measurements, measure

__all__ = ["EvidenceAnnotator", "Measurements", "measure"]
