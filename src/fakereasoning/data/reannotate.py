"""Rewrite an MMFR dataset's references with the evidence annotator, from its own images.

References written by an older annotator (other thresholds, drawn wordings) disagree with what the current
`evidence.findings` would state, and reference metrics then score the difference between annotators rather
than the model. `reannotate` measures every image again and writes each reasoning JSON afresh (atomically,
one file per training part or evaluation set), then the training conversations when the dataset has them.
An image that cannot be read keeps its old annotation and is named in the summary; nothing else is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakereasoning.data.mmfr import (
    COT_FILE,
    ImageRecord,
    annotation_key,
    reasoning_json_path,
    scan,
    write_reasoning_json,
)
from fakereasoning.errors import DatasetError, FakeReasoningError
from fakereasoning.progress import Progress


@dataclass
class ReannotateSummary:
    images: int = 0
    rewritten: int = 0
    changed: int = 0  # of the rewritten, how many differ from the old annotation
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "PATH: problem", one per unreadable image
    conversations: int | None = None  # training conversations written (None: the dataset has no CoT file)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def reannotate(root: str | os.PathLike[str], seed: int = 0, vary_wording: bool = False,
               progress: bool = True) -> ReannotateSummary:
    """Annotate every image of the MMFR dataset at ROOT with `EvidenceAnnotator(seed, vary_wording)`."""
    from fakereasoning.data.cot import write_cot
    from fakereasoning.evidence.annotator import EvidenceAnnotator
    from fakereasoning.imageio import load_image

    index = scan(root)
    if index.problems and any(p.severity == "error" for p in index.problems):
        first = next(p for p in index.problems if p.severity == "error")
        raise DatasetError(f"{root}: the dataset has errors (first: {first}); run `fakereasoning data validate`")
    groups: dict[Path, list[ImageRecord]] = {}
    for record in index.records():
        groups.setdefault(reasoning_json_path(index.root, record.set, record.split), []).append(record)
    annotator = EvidenceAnnotator(seed, vary_wording=vary_wording)
    summary = ReannotateSummary(images=sum(len(v) for v in groups.values()))
    bar = Progress(summary.images, "reannotate", "img", enabled=progress)
    try:
        for path, records in sorted(groups.items()):
            mapping: dict[str, dict[str, str | None]] = {}
            for record in records:
                old = record.attributes
                try:
                    image = load_image(record.path, name=str(record.path))
                    new = annotator.annotate(image, record.label, key=annotation_key(record))
                except (FakeReasoningError, ValueError, OSError) as exc:
                    summary.errors.append(f"{record.path}: {exc}")
                    if old:
                        mapping[annotation_key(record)] = old
                    bar.update(1)
                    continue
                mapping[annotation_key(record)] = new
                summary.rewritten += 1
                summary.changed += int(dict(old or {}) != new)
                bar.update(1)
            write_reasoning_json(path, mapping)
            summary.files.append(str(path))
    finally:
        bar.close()
    if (index.root / COT_FILE).is_file():
        summary.conversations = write_cot(index.root, index.root / COT_FILE)
    return summary
