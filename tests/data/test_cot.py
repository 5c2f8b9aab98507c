"""Reasoning JSON -> conversations in the released CoT format, and back."""

from __future__ import annotations

import json
from pathlib import Path

from mmfr_factory import released_layout

from fakereasoning.data.cot import build_conversations, conversation_to_record, write_cot
from fakereasoning.data.mmfr import scan
from fakereasoning.schema import IMAGE_TOKEN, PROMPT_FULL


def test_conversations_in_released_format_and_back(tmp_path: Path) -> None:
    root = released_layout(tmp_path / "d")
    (root / "captions.json").write_text(json.dumps({"laion/00000/000000000.jpg": "A quiet street at dusk."}))
    index = scan(root)
    convs = build_conversations(index)
    assert len(convs) == 5
    by_image = {c["image"]: c for c in convs}
    entry = by_image["laion/00000/000000000.jpg"]
    human, gpt = entry["conversations"]
    assert human == {"from": "human", "value": f"{IMAGE_TOKEN}\n{PROMPT_FULL}"}
    answer = gpt["value"]
    assert "<CAPTION> A quiet street at dusk. </CAPTION>" in answer
    assert "From low-level perspective: sharp." in answer  # the release format: no attribute names
    assert "From high-level perspective: a normal street." in answer
    assert "Therefore, this image is real. </REASONING> <CONCLUSION> This image is real. </CONCLUSION>" in answer
    for conv in convs:
        back = conversation_to_record(conv)
        record = index.by_key()[back.image]
        assert back.label == record.label
        assert back.attributes == {}  # free-text findings of no known form name no attribute
    out = tmp_path / "cot.json"
    assert write_cot(root, out) == 5
    assert json.loads(out.read_text()) == convs
