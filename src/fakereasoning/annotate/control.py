"""`annotate collect`: the output control of spec section 4, without `eval`.

Each answer is untrusted model text. It is parsed as data only: the text from the first `{` to the last
`}` goes to `json.loads`, and if that fails to `ast.literal_eval`, which accepts Python literals (strings,
numbers, dicts, lists, ...) and nothing that can run (no names, calls, attributes or operators besides
literal arithmetic). An answer is kept only when its "Answer" agrees with the true label and at least one
attribute name of that label's kind is present; unknown names are dropped and the five names of the kind
are always written, `null` for the missing ones. Everything else is counted with a reason and skipped.
A reply without JSON that is a tagged FDR answer (what our own `serve` returns) is read with
`schema.parse_cot` under the same rules, so a trained detector can annotate too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakereasoning.annotate.batch import AnnotateError, label_of_key
from fakereasoning.fsio import UnsafePathError, check_relative
from fakereasoning.schema import ATTRIBUTES_OF_LABEL, LABELS, Label

MAX_ANSWER_CHARS = (
    20_000  # a 300-token answer is ~1,500 characters; more is not an answer, and parsing stays cheap
)
MAX_TEXT_CHARS = 2_000  # one attribute description

# Skip reasons (the keys of the counts that `collect` prints).
R_MALFORMED = "malformed output line"
R_UNSAFE_ID = "unsafe custom_id"
R_NO_LABEL = "no label (pass --label or use 0_real/1_fake folders)"
R_ERROR = "error response"
R_NO_TEXT = "no answer text"
R_NO_JSON = "no JSON object in the answer"
R_TOO_LONG = "answer too long"
R_TRUNCATED = "truncated JSON"
R_UNPARSABLE = "unparsable answer"
R_NOT_OBJECT = "answer is not an object"
R_UNDETERMINED = "cannot determine"
R_NO_ANSWER = "no clear Answer"
R_MISMATCH = "Answer disagrees with the label"
R_NO_ATTRIBUTES = "no known attribute"

_ATTRIBUTE_KEYS = ("Forgery Attributes", "Authentic Attributes", "Attributes")
_CONTROL_CHARS = dict.fromkeys([*range(32), 127], " ")  # control characters become spaces, then collapse
_VERDICT = re.compile(r"\b(?:is|as|appears|seems)\s+(?:to\s+be\s+)?(not\s+)?(real|fake)\b")
_WORD = re.compile(r"\b(real|fake)\b")
_UNDETERMINED = re.compile(
    r"\b(?:can\s*not|cannot|can't|unable\s+to)\s+(?:determine|tell|decide)\b|\bundetermin"
)


def _norm_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).replace("_", " ").split()).casefold()


_CANONICAL: dict[Label, dict[str, str]] = {
    label: {_norm_name(n): n for n in names} for label, names in ATTRIBUTES_OF_LABEL.items()
}


class _ParseFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_object(text: Any, finish_reason: str | None = None) -> Any:
    """The value of the text between the first `{` and the last `}`, parsed as data only.

    Raises `_ParseFailure` with a skip reason. Never evaluates anything: `json.loads`, then
    `ast.literal_eval` (for answers written with single quotes, `None`, trailing commas ...).
    """
    if not isinstance(text, str) or not text.strip():
        raise _ParseFailure(R_NO_TEXT)
    if len(text) > MAX_ANSWER_CHARS:
        raise _ParseFailure(R_TOO_LONG)
    start = text.find("{")
    end = text.rfind("}")
    if start == -1:
        raise _ParseFailure(R_NO_JSON)
    if end < start:
        raise _ParseFailure(R_TRUNCATED)
    snippet = text[start : end + 1]
    try:
        return json.loads(snippet)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(snippet)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, OverflowError):
        # A reply cut off by the token limit is the usual cause of unbalanced braces.
        if finish_reason == "length" or snippet.count("{") > snippet.count("}"):
            raise _ParseFailure(R_TRUNCATED) from None
        raise _ParseFailure(R_UNPARSABLE) from None


def answer_label(answer: Any) -> Label | str | None:
    """`real`/`fake` from an "Answer" sentence, `"undetermined"` for "Can not determine ...", else None."""
    if not isinstance(answer, str):
        return None
    text = " ".join(answer.split()).casefold()
    if _UNDETERMINED.search(text):
        return "undetermined"
    verdicts = {
        ("real" if (m.group(2) == "fake") == bool(m.group(1)) else "fake") for m in _VERDICT.finditer(text)
    }
    if not verdicts:
        verdicts = {m.group(1) for m in _WORD.finditer(text)}
    return verdicts.pop() if len(verdicts) == 1 else None  # type: ignore[return-value]


def _clean_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(unicodedata.normalize("NFC", value).translate(_CONTROL_CHARS).split())
    return text[:MAX_TEXT_CHARS] or None


def _get(obj: dict[Any, Any], key: str) -> Any:
    """`obj[key]`, else the value of the first key equal to it ignoring case, spacing and underscores."""
    if key in obj:
        return obj[key]
    wanted = _norm_name(key)
    return next((v for k, v in obj.items() if isinstance(k, str) and _norm_name(k) == wanted), None)


@dataclass
class Controlled:
    """The verdict of the output control on one answer: `attributes` when kept, else `reason`."""

    attributes: dict[str, str | None] | None = None
    reason: str | None = None
    dropped_names: list[str] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.attributes is not None


def control_answer(text: Any, label: Label, finish_reason: str | None = None) -> Controlled:
    """Apply the output control to one answer text for an image whose true label is `label`. Never raises."""
    try:
        obj = parse_object(text, finish_reason)
    except _ParseFailure as exc:
        tagged = _control_tagged(text, label) if exc.reason == R_NO_JSON else None
        return tagged or Controlled(reason=exc.reason)
    if not isinstance(obj, dict):
        return Controlled(reason=R_NOT_OBJECT)
    said = answer_label(_get(obj, "Answer"))
    if said == "undetermined":
        return Controlled(reason=R_UNDETERMINED)
    if said is None:
        return Controlled(reason=R_NO_ANSWER)
    if said != label:
        return Controlled(reason=R_MISMATCH)
    found: dict[str, str] = {}
    dropped: list[str] = []
    for key in _ATTRIBUTE_KEYS:
        group = _get(obj, key)
        if not isinstance(group, dict):
            continue
        for name, value in group.items():
            canonical = _CANONICAL[label].get(_norm_name(name)) if isinstance(name, str) else None
            if canonical is None:
                dropped.append(str(name)[:100])
                continue
            cleaned = _clean_text(value)
            if cleaned is not None and canonical not in found:
                found[canonical] = cleaned
    if not found:
        return Controlled(reason=R_NO_ATTRIBUTES, dropped_names=dropped)
    attributes = {name: found.get(name) for name in ATTRIBUTES_OF_LABEL[label]}
    return Controlled(attributes=attributes, dropped_names=dropped)


def _control_tagged(text: str, label: Label) -> Controlled | None:
    """The output control for a tagged FDR answer (<REASONING> ... <CONCLUSION>), as our own `serve`
    returns; None when the text is not one, so the JSON skip reason stands."""
    from fakereasoning.evidence.findings import parse_answer

    parsed = parse_answer(text)  # our serve writes the release format: no names in the text
    if not parsed.ok:
        return None
    if parsed.label != label:
        return Controlled(reason=R_MISMATCH)
    names = ATTRIBUTES_OF_LABEL[label]
    found = {n: _clean_text(v) for n, v in parsed.attributes.items() if n in names}
    dropped = [n for n in parsed.attributes if n not in names]
    if not any(found.values()):
        return Controlled(reason=R_NO_ATTRIBUTES, dropped_names=dropped)
    return Controlled(attributes={n: found.get(n) for n in names}, dropped_names=dropped)


def _answer_of_body(body: Any) -> tuple[Any, str | None]:
    """(content, finish_reason) of the first choice of a chat completion; content None when absent."""
    if not isinstance(body, dict):
        return None, None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, None
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content given as parts
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    finish = choice.get("finish_reason")
    return content, finish if isinstance(finish, str) else None


@dataclass
class LineDecision:
    custom_id: str
    label: Label | None
    controlled: Controlled


def control_line(line: Any, label: Label | None = None) -> LineDecision | str:
    """Decide one output line. Returns a `LineDecision`, or a skip reason when the line has no usable
    custom_id (it cannot be matched to an image)."""
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return R_MALFORMED
    custom_id = line["custom_id"]
    try:
        custom_id = check_relative(custom_id).as_posix()
    except UnsafePathError:
        return R_UNSAFE_ID
    true_label = label or label_of_key(custom_id)
    if true_label is None:
        return LineDecision(custom_id, None, Controlled(reason=R_NO_LABEL))
    response = line.get("response")
    if line.get("error") is not None or not isinstance(response, dict) or response.get("status_code") != 200:
        return LineDecision(custom_id, true_label, Controlled(reason=R_ERROR))
    content, finish = _answer_of_body(response.get("body"))
    return LineDecision(custom_id, true_label, control_answer(content, true_label, finish))


@dataclass
class CollectResult:
    """Kept annotations (custom_id -> the five attribute names of its kind) and the skip counts."""

    annotations: dict[str, dict[str, str | None]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    dropped_names: Counter[str] = field(default_factory=Counter)
    lines: int = 0
    labels: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return len(self.annotations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "kept": self.kept,
            "kept_by_label": dict(sorted(self.labels.items())),
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(self.skipped.most_common()),
            "dropped_attribute_names": dict(self.dropped_names.most_common(20)),
        }

    def text(self) -> str:
        lines = [
            f"kept: {self.kept} ({', '.join(f'{k} {v}' for k, v in sorted(self.labels.items())) or 'none'})"
        ]
        lines.append(f"skipped: {sum(self.skipped.values())}")
        lines += [f"  {reason}: {n}" for reason, n in self.skipped.most_common()]
        if self.dropped_names:
            lines.append(f"unknown attribute names dropped: {sum(self.dropped_names.values())}")
        return "\n".join(lines)


def _iter_lines(paths: Iterable[str | os.PathLike[str]]) -> Iterable[Any]:
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise AnnotateError(f"{p}: no such output file")
        with p.open("r", encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    yield json.loads(raw)
                except (ValueError, RecursionError):
                    yield None


def collect(paths: Iterable[str | os.PathLike[str]], label: Label | None = None) -> CollectResult:
    """Run the output control over Batch-API-format output files.

    An image with several lines (a rerun after failures, a resubmitted batch) keeps its last kept answer;
    only images that end up with no kept answer count as skipped, under their last line's reason.
    """
    if label is not None and label not in LABELS:
        raise AnnotateError(f"label must be 'real' or 'fake', got {label!r}")
    result = CollectResult()
    final: dict[str, LineDecision] = {}
    for line in _iter_lines(paths):
        result.lines += 1
        decision = control_line(line, label)
        if isinstance(decision, str):
            result.skipped[decision] += 1
            continue
        previous = final.get(decision.custom_id)
        if decision.controlled.kept or previous is None or not previous.controlled.kept:
            final[decision.custom_id] = decision
    for custom_id in sorted(final):
        decision = final[custom_id]
        controlled = decision.controlled
        result.dropped_names.update(controlled.dropped_names)
        if controlled.attributes is not None and decision.label is not None:
            result.annotations[custom_id] = controlled.attributes
            result.labels[decision.label] += 1
        else:
            result.skipped[controlled.reason or R_UNPARSABLE] += 1
    return result


def write_annotations(
    path: str | os.PathLike[str], annotations: Mapping[str, Mapping[str, str | None]]
) -> None:
    """Write the kept annotations as an MMFR `*_reasoning.json` (atomic, sorted keys)."""
    from fakereasoning.data.mmfr import write_reasoning_json

    write_reasoning_json(path, annotations)
