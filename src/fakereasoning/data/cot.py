"""Reasoning JSON <-> training conversations in the released CoT format (spec sections 1 and 3)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fakereasoning.data.mmfr import ImageRecord, MMFRIndex, scan
from fakereasoning.fsio import atomic_write_json, check_relative
from fakereasoning.schema import IMAGE_TOKEN, PROMPT_FULL, Label, format_cot, parse_cot

DEFAULT_CAPTION = "The image content is not described in the dataset."


def human_turn(prompt: str = PROMPT_FULL) -> dict[str, str]:
    return {"from": "human", "value": f"{IMAGE_TOKEN}\n{prompt}"}


def conversation_for(record: ImageRecord, index_in_list: int | None = None) -> dict[str, Any]:
    """One LLaVA-format training conversation for an annotated image."""
    answer = format_cot(record.label, record.attributes or {}, record.caption or DEFAULT_CAPTION)
    entry: dict[str, Any] = {}
    if index_in_list is not None:
        entry["id"] = f"{index_in_list:08d}"
    entry["image"] = record.key
    entry["conversations"] = [human_turn(), {"from": "gpt", "value": answer}]
    return entry


def build_conversations(root_or_index: str | os.PathLike[str] | MMFRIndex) -> list[dict[str, Any]]:
    """Conversations for every annotated training image (unannotated ones have no reasoning to teach)."""
    index = root_or_index if isinstance(root_or_index, MMFRIndex) else scan(root_or_index)
    records = [r for r in index.train if r.attributes and any(r.attributes.values())]
    return [conversation_for(r, i) for i, r in enumerate(records)]


def write_cot(root: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the training conversations of ROOT to OUT; returns how many."""
    conversations = build_conversations(root)
    atomic_write_json(out, conversations, indent=None)
    return len(conversations)


@dataclass
class ConversationRecord:
    """What a conversation says about its image (the inverse of `conversation_for`)."""

    image: str
    label: Label | None
    caption: str | None
    attributes: dict[str, str]
    answer: str


def conversation_to_record(entry: dict[str, Any]) -> ConversationRecord:
    """Read back image, label (from <CONCLUSION>), caption and attribute texts of one conversation.

    Raises ValueError for an entry without an image path or a gpt answer.
    """
    image = entry.get("image")
    if not isinstance(image, str):
        raise ValueError("conversation has no 'image' path")
    check_relative(image)
    answer = next(
        (t.get("value") for t in entry.get("conversations", []) if isinstance(t, dict) and t.get("from") == "gpt"),
        None,
    )
    if not isinstance(answer, str):
        raise ValueError(f"conversation for {image!r} has no 'gpt' answer")
    parsed = parse_cot(answer)
    return ConversationRecord(
        image=image, label=parsed.label, caption=parsed.caption, attributes=parsed.attributes, answer=answer
    )
