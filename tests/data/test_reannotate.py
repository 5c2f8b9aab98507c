"""`data reannotate`: every reference rewritten from its own image, unreadable images kept and named."""

from __future__ import annotations

import json
from pathlib import Path

from mmfr_factory import released_layout

from fakereasoning.cli import main
from fakereasoning.data.mmfr import scan
from fakereasoning.data.reannotate import reannotate
from fakereasoning.evidence import EvidenceAnnotator, findings
from fakereasoning.imageio import load_image
from fakereasoning.schema import clean_finding


def test_every_reference_is_the_annotators_own_and_the_conversations_follow(tmp_path: Path) -> None:
    root = released_layout(tmp_path / "ds")
    summary = reannotate(root, progress=False)
    index = scan(root)
    records = list(index.records())
    assert summary.images == summary.rewritten == len(records) == 11
    assert summary.changed == len(records)  # the factory's hand-written texts were not the annotator's
    annotator = EvidenceAnnotator()
    for record in records:
        want = annotator.annotate(load_image(record.path), record.label)
        assert record.attributes == want, record.key
        for attribute, text in want.items():
            if text:
                assert findings.check_finding(attribute, text, findings.measure_view(load_image(record.path))).consistent
    cot = json.loads((root / "forgery_reasoning_cot.json").read_text())
    assert summary.conversations == len(cot) == len(index.train)
    stated = {r.key: {k: clean_finding(v) for k, v in (r.attributes or {}).items() if v} for r in index.train}
    for conv in cot:
        # the release format names no attribute in the text; the annotator's findings have known forms
        parsed = findings.parse_answer(conv["conversations"][1]["value"]).attributes
        assert {k: clean_finding(v) for k, v in parsed.items()} == stated[conv["image"]]
    # a second run changes nothing
    assert reannotate(root, progress=False).changed == 0


def test_an_unreadable_image_keeps_its_annotation_and_is_named(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    root = released_layout(tmp_path / "ds")
    broken = root / "evaluation_sets/gigagan/1_fake/f0.png"
    broken.write_bytes(b"not a png")
    rc = main(["data", "reannotate", str(root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert len(out["errors"]) == 1 and "f0.png" in out["errors"][0]
    assert out["rewritten"] == out["images"] - 1
    mapping = json.loads((root / "evaluation_sets/gigagan/gigagan_reasoning.json").read_text())
    assert mapping["gigagan/1_fake/f0.png"]["Anomalous Image Texture"] == "grid pattern"
