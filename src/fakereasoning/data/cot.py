"""Reasoning JSON <-> training conversations in the released CoT format (spec sections 1 and 3)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakereasoning.data.mmfr import COT_FILE, EVAL_DIR, ImageRecord, MMFRIndex, Problem, scan
from fakereasoning.errors import FakeReasoningError
from fakereasoning.fsio import atomic_write_json, check_relative, parse_json, read_text_file
from fakereasoning.schema import IMAGE_TOKEN, PROMPT_FULL, Label, format_cot
from fakereasoning.wording import count

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


def has_findings(record: ImageRecord) -> bool:
    """Whether the record's annotation states at least one finding (else it has no reasoning to teach)."""
    return bool(record.attributes and any(record.attributes.values()))


def build_conversations(root_or_index: str | os.PathLike[str] | MMFRIndex) -> list[dict[str, Any]]:
    """Conversations for every annotated training image (unannotated ones have no reasoning to teach)."""
    index = root_or_index if isinstance(root_or_index, MMFRIndex) else scan(root_or_index)
    records = [r for r in index.train if has_findings(r)]
    return [conversation_for(r, i) for i, r in enumerate(records)]


class ConversionRefused(FakeReasoningError):
    """`write_cot` wrote nothing: the annotations it reads have errors, or the result would empty OUT."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def conversion_errors(index: MMFRIndex) -> list[Problem]:
    """The errors that change what `write_cot` writes: those of training parts and captions (not those
    of evaluation sets, nor of the conversations file it replaces)."""
    return [p for p in index.problems if p.severity == "error"
            and p.path != COT_FILE and p.path.split("/")[0] != EVAL_DIR]


def _holds_conversations(path: Path) -> bool:
    """Whether OUT holds anything but an empty list (unreadable or not JSON counts as holding data)."""
    if not path.exists():
        return False
    try:
        return parse_json(read_text_file(path)) != []
    except (OSError, ValueError):
        return path.stat().st_size > 0


def write_cot(root: str | os.PathLike[str], out: str | os.PathLike[str], *, allow_errors: bool = False) -> int:
    """Write the training conversations of ROOT to OUT; returns how many.

    Refuses (`ConversionRefused`, nothing written) when the annotations have errors, unless
    `allow_errors`: a malformed reasoning JSON silently drops its images, and written over
    ROOT/forgery_reasoning_cot.json that loses good conversations. Never replaces a file holding
    conversations with an empty list, whatever `allow_errors` says.
    """
    if Path(out).is_dir():  # else the atomic rename fails naming its temp file
        raise FakeReasoningError(f"{out}: is a folder; --out names the file to write, e.g. {Path(out) / COT_FILE}")
    index = scan(root)
    errors = conversion_errors(index)
    if errors and not allow_errors:
        raise ConversionRefused(f"{root}: {count(len(errors), 'error')} in the training annotations; nothing written "
                                "(fix them, or pass --allow-errors to convert what is readable)", errors)
    conversations = build_conversations(index)
    if not conversations and _holds_conversations(Path(out)):
        raise ConversionRefused(f"{out}: not replaced with an empty list (no annotated training image in {root})",
                                errors)
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


def conversation_to_record(entry: Any) -> ConversationRecord:
    """Read back image, label (from <CONCLUSION>), caption and attribute texts of one conversation.

    Raises ValueError for an entry that is not an object, or has no image path or no gpt answer.
    """
    if not isinstance(entry, dict):
        raise ValueError(f"conversation is not an object (got {type(entry).__name__})")
    image = entry.get("image")
    if not isinstance(image, str):
        raise ValueError("conversation has no 'image' path")
    check_relative(image)
    turns = entry.get("conversations")
    answer = next(
        (t.get("value") for t in (turns if isinstance(turns, list) else [])
         if isinstance(t, dict) and t.get("from") == "gpt"),
        None,
    )
    if not isinstance(answer, str):
        raise ValueError(f"conversation for {image!r} has no 'gpt' answer")
    from fakereasoning.evidence.findings import parse_answer

    parsed = parse_answer(answer)  # release-format answers name no attribute
    return ConversationRecord(
        image=image, label=parsed.label, caption=parsed.caption, attributes=parsed.attributes, answer=answer
    )
