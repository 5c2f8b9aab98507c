"""The FDR contract: attribute names, prompts, the tagged answer format and the `Verdict` record.

Everything that reads or writes an answer (dataset tools, models, evaluator, CLI, server) takes these
facts from here, so there is one place for each of them (spec sections 1-3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Label = Literal["real", "fake"]
LABELS: tuple[Label, Label] = ("real", "fake")
LABEL_FOLDERS: dict[str, Label] = {"0_real": "real", "1_fake": "fake"}
FOLDER_OF_LABEL: dict[Label, str] = {label: folder for folder, label in LABEL_FOLDERS.items()}

# --- The ten attribute types (spec section 2) -------------------------------------------------------
FORGERY_ATTRIBUTES: tuple[str, ...] = (
    "Inconsistent Lighting and Shadows",
    "Irregular Image Edges",
    "Anomalous Image Texture",
    "Low Image Quality",
    "Semantic Irrationality",
)
AUTHENTIC_ATTRIBUTES: tuple[str, ...] = (
    "Consistent Lighting and Shadows",
    "Smooth and Natural Image Edges",
    "Natural and Consistent Image Texture",
    "High Image Quality",
    "Semantic Rationality",
)
ATTRIBUTES: tuple[str, ...] = FORGERY_ATTRIBUTES + AUTHENTIC_ATTRIBUTES
HIGH_LEVEL_ATTRIBUTES: frozenset[str] = frozenset({"Semantic Irrationality", "Semantic Rationality"})
LOW_LEVEL_ATTRIBUTES: frozenset[str] = frozenset(ATTRIBUTES) - HIGH_LEVEL_ATTRIBUTES
ATTRIBUTES_OF_LABEL: dict[Label, tuple[str, ...]] = {"fake": FORGERY_ATTRIBUTES, "real": AUTHENTIC_ATTRIBUTES}
# The authentic counterpart of each forgery attribute, in the same position.
COUNTERPART: dict[str, str] = {
    **dict(zip(FORGERY_ATTRIBUTES, AUTHENTIC_ATTRIBUTES, strict=True)),
    **dict(zip(AUTHENTIC_ATTRIBUTES, FORGERY_ATTRIBUTES, strict=True)),
}


def attribute_label(name: str) -> Label | None:
    """Which label an attribute name belongs to (`fake` for forgery attributes), or None if unknown."""
    if name in FORGERY_ATTRIBUTES:
        return "fake"
    if name in AUTHENTIC_ATTRIBUTES:
        return "real"
    return None


def is_low_level(name: str) -> bool:
    return name in LOW_LEVEL_ATTRIBUTES


# --- Prompts and tags (spec section 1) ----------------------------------------------------------------
IMAGE_TOKEN = "<image>"
PROMPT_FULL = (
    "Is this image real or fake? Please describe the image, reasoning step-by-step and conclude with "
    "'this image is real' or 'this image is fake'."
)
PROMPT_FAST = "Is this image real or fake? Answer directly."
# The conversation the release trains and answers in (LLaVA's "v1" / vicuna_v1 template, system line
# included); a model config's `prompt_template` ({image} and {prompt} are filled in).
RELEASE_PROMPT_TEMPLATE = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. USER: {image}\n{prompt} ASSISTANT:"
)
EVIDENCE_OPEN, EVIDENCE_CLOSE = "<EVIDENCE>", "</EVIDENCE>"


def prompt_with_evidence(evidence: str | None, prompt: str = PROMPT_FULL) -> str:
    """The full-mode prompt with the image's measurements appended as an <EVIDENCE> block (grounded
    reasoning: the model reads what was measured and may state only those values)."""
    if not evidence:
        return prompt
    return f"{prompt}\n{EVIDENCE_OPEN} {clean_inline(evidence)} {EVIDENCE_CLOSE}"
# full: generate the reasoning; fast: p(fake) from one forward pass. The CLI, the server and the Python API
# default to the same one.
DEFAULT_MODE = "full"
# What a verdict is worth, said the same way by readable `detect` and the web page. p(fake) is calibrated
# (temperature fitted on held-out images) only for images like the model's training data: the words say
# how strong the evidence is there, and the note says where it ends.
PROB_WORDS: tuple[tuple[float, str], ...] = (
    (0.1, "very likely real"),
    (0.3, "likely real"),
    (0.7, "uncertain"),
    (0.9, "likely fake"),
    (1.01, "very likely fake"),
)
LIMITS_NOTE = ("p(fake) is calibrated on generator families held out of the model's fit, not on every generator: "
               "about one verdict in five is wrong on a generator family it never saw, more on downscaled "
               "images and on face crops. Read the model card before relying on a verdict.")


def prob_words(prob_fake: float) -> str:
    """The words for a p(fake) (PROB_WORDS), e.g. 0.95 -> "very likely fake"."""
    return next(words for bound, words in PROB_WORDS if prob_fake < bound)


# An attribute text or caption longer than this is not a finding but a data error (a 50 MB "text" passed).
MAX_TEXT_CHARS = 4000
SUMMARY_TEXT = (
    "I will determine if the image is real or fake by analyzing its content and identifying forgery "
    "attributes from both low-level and high-level perspectives. I will then conclude by stating either "
    "'this image is real' or 'this image is fake' based on my analysis."
)
TAGS: tuple[str, ...] = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")
LOW_LEVEL_LEAD = "From low-level perspective:"
HIGH_LEVEL_LEAD = "From high-level perspective:"
THEREFORE_LEAD = "Therefore, this image is"
CONCLUSION_LEAD = "This image is"
NO_LOW_LEVEL_FINDING = "no low-level finding."
NO_HIGH_LEVEL_FINDING = "no high-level finding."


def conclusion_text(label: Label) -> str:
    """The exact released conclusion sentence."""
    return f"{CONCLUSION_LEAD} {label}."


def fast_answer(label: Label) -> str:
    """The direct answer of fast mode: only the conclusion, so the verdict slot comes first."""
    return f"<CONCLUSION> {conclusion_text(label)} </CONCLUSION>"


# --- Formatting ---------------------------------------------------------------------------------------
_NAME_COLON = re.compile("(" + "|".join(re.escape(n) for n in ATTRIBUTES) + r")\s*:")
_LEADS = re.compile(
    "|".join(re.escape(t) for t in ("From low-level perspective:", "From high-level perspective:")), re.IGNORECASE
)


def clean_inline(text: str) -> str:
    """Text safe to put between tags: one line, no tag brackets."""
    return " ".join(text.replace("<", "(").replace(">", ")").split())


def reference_text(attributes: Mapping[str, Any]) -> str:
    """Attribute texts as the released evaluator joins a reference: non-null texts in sorted name order."""
    return " ".join(str(attributes[name]) for name in sorted(attributes) if attributes[name])


def clean_finding(text: str) -> str:
    """One finding as it appears in a formatted answer: one line, a full stop, nothing parse-breaking.

    Tag brackets, section leads and `Attribute Name:` prefixes inside a finding would be read back as
    structure, so they are neutralised; `parse_cot(format_cot(...))` returns exactly these texts.
    """
    text = clean_inline(text)
    text = _LEADS.sub(lambda m: m.group(0)[:-1] + " -", text)
    text = _NAME_COLON.sub(lambda m: m.group(1) + " -", text)
    text = re.sub(r"(?i)\btherefore\b", "thus", text)
    text = " ".join(text.split())
    if text and text[-1] not in ".!?":
        text += "."
    return text


def format_reasoning(attributes: Mapping[str, str | None], label: Label) -> str:
    """Reasoning in the released shape: findings as plain sentences, no attribute names inside them.

    Within each perspective, attributes are written in sorted name order, the order in which the released
    evaluator joins a reference's attribute texts, so a reasoning and its reference line up (ROUGE-L is an
    in-order measure); null texts are left out. Which attribute each sentence states is not in the text:
    a `Verdict` keeps that mapping in `attributes`, and `parse_cot(text, forms)` recovers it for findings
    of known forms (`evidence.findings.finding_forms`).
    """
    low: list[str] = []
    high: list[str] = []
    for name in sorted(ATTRIBUTES):
        finding = clean_finding(attributes.get(name) or "")
        if finding:
            (low if is_low_level(name) else high).append(finding)
    low_text = " ".join(low) or NO_LOW_LEVEL_FINDING
    high_text = " ".join(high) or NO_HIGH_LEVEL_FINDING
    return f"{LOW_LEVEL_LEAD} {low_text} {HIGH_LEVEL_LEAD} {high_text} {THEREFORE_LEAD} {label}."


def prefixed_finding(attribute: str, text: str) -> str:
    """A finding with its attribute name in front (`Name: text`): the form answers had before the release
    format, which models trained on it (config `finding_prefix`) still read while they choose findings."""
    return f"{attribute}: {clean_finding(text)}"


def format_cot(
    label: Label,
    attributes: Mapping[str, str | None],
    caption: str,
    summary: str = SUMMARY_TEXT,
) -> str:
    """The full tagged answer (SUMMARY, CAPTION, REASONING, CONCLUSION) of the released format."""
    parts = [
        f"<SUMMARY> {summary} </SUMMARY>",
        f"<CAPTION> {clean_inline(caption)} </CAPTION>",
        f"<REASONING> {format_reasoning(attributes, label)} </REASONING>",
        f"<CONCLUSION> {conclusion_text(label)} </CONCLUSION>",
    ]
    return " ".join(parts)


# --- Parsing ------------------------------------------------------------------------------------------
MAX_PARSE_CHARS = 200_000  # model output beyond this is ignored: parsing stays linear and bounded
_ATTR_PATTERN = re.compile("|".join(re.escape(n) for n in sorted(ATTRIBUTES, key=len, reverse=True)))
_VERDICT_PATTERN = re.compile(r"\bthis image is\s+(real|fake)\b", re.IGNORECASE)
_THEREFORE_PATTERN = re.compile(r"\btherefore,?\s+this image is\s+(real|fake)\b", re.IGNORECASE)


@dataclass
class ParsedAnswer:
    """What `parse_cot` found. Fields are None when absent; `missing` names the absent tags."""

    summary: str | None = None
    caption: str | None = None
    reasoning: str | None = None
    conclusion: str | None = None
    label: Label | None = None  # from the conclusion
    reasoning_label: Label | None = None  # from "Therefore, this image is X" inside the reasoning
    low_level: str | None = None
    high_level: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the answer has a reasoning and a conclusion with a verdict (else: a failure)."""
        return self.reasoning is not None and self.label is not None

    @property
    def consistent(self) -> bool | None:
        """Whether the reasoning's own verdict agrees with the conclusion (None if either is absent)."""
        if self.label is None or self.reasoning_label is None:
            return None
        return self.label == self.reasoning_label


def _find_tag(text: str, tag: str) -> str | None:
    """Content of the first complete `<TAG> ... </TAG>`; an unclosed tag is treated as absent.

    A repeated opening tag before the close restarts the span (nested or stuttered tags keep the innermost).
    """
    open_t, close_t = f"<{tag}>", f"</{tag}>"
    start = text.find(open_t)
    if start == -1:
        return None
    end = text.find(close_t, start + len(open_t))
    if end == -1:
        return None
    inner_start = text.rfind(open_t, start, end) + len(open_t)
    return text[inner_start:end].strip()


def _label_of(match: re.Match[str] | None) -> Label | None:
    if match is None:
        return None
    word = match.group(1).lower()
    return "fake" if word == "fake" else "real"


# Maps a perspective's text (the findings after "From low-level perspective:") and the answer's verdict to
# {attribute: finding} for the findings whose form it knows (a layer above: evidence.findings.finding_forms).
FindingForms = Callable[[str, "Label | None"], dict[str, str]]


def parse_attributes(reasoning: str) -> dict[str, str]:
    """Split reasoning text into `{attribute name: finding}` where findings are prefixed `Name:` (answers
    written before the release format, and annotators that name their attributes)."""
    found: dict[str, str] = {}
    matches = [m for m in _ATTR_PATTERN.finditer(reasoning) if reasoning[m.end() : m.end() + 1] == ":"]
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(reasoning)
        chunk = reasoning[m.end() + 1 : end]
        for stop in (HIGH_LEVEL_LEAD, THEREFORE_LEAD):
            cut = chunk.find(stop)
            if cut != -1:
                chunk = chunk[:cut]
        chunk = chunk.strip()
        if chunk and m.group(0) not in found:
            found[m.group(0)] = chunk
    return found


def parse_cot(text: Any, forms: FindingForms | None = None) -> ParsedAnswer:
    """Parse a tagged answer. Never raises: anything unusable is reported in `missing`.

    Attributes: `Name: finding` prefixes where the text has them; else, with `forms`, the findings of each
    perspective that `forms` recognises (the release format names no attribute in its sentences)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:MAX_PARSE_CHARS]
    out = ParsedAnswer()
    for tag in TAGS:
        value = _find_tag(text, tag)
        setattr(out, tag.lower(), value)
        if value is None:
            out.missing.append(tag)
    if out.conclusion is not None:
        out.label = _label_of(_VERDICT_PATTERN.search(out.conclusion))
    if out.reasoning is not None:
        reasoning = out.reasoning
        therefores = list(_THEREFORE_PATTERN.finditer(reasoning))
        therefore = therefores[-1] if therefores else None  # the released format ends with it
        out.reasoning_label = _label_of(therefore)
        low_at, high_at = reasoning.find(LOW_LEVEL_LEAD), reasoning.find(HIGH_LEVEL_LEAD)
        end = therefore.start() if therefore else len(reasoning)
        if low_at != -1:
            stop = high_at if high_at > low_at else end
            out.low_level = reasoning[low_at + len(LOW_LEVEL_LEAD) : max(stop, low_at)].strip() or None
        if high_at != -1:
            out.high_level = reasoning[high_at + len(HIGH_LEVEL_LEAD) : max(end, high_at)].strip() or None
        out.attributes = parse_attributes(reasoning)
        if not out.attributes and forms is not None:
            for section in (out.low_level, out.high_level):
                if section and section not in (NO_LOW_LEVEL_FINDING, NO_HIGH_LEVEL_FINDING):
                    try:
                        found = forms(section, out.label or out.reasoning_label)
                    except Exception:  # a matcher must not make parsing raise on model output
                        found = {}
                    for name, finding in found.items():
                        out.attributes.setdefault(name, finding)
    return out


# --- The Verdict ---------------------------------------------------------------------------------------
VERDICT_SCHEMA = "fakereasoning.verdict/v2"
# v1 had no `measurements`; records of either version are read
VERDICT_SCHEMAS = ("fakereasoning.verdict/v1", VERDICT_SCHEMA)


@dataclass
class Verdict:
    """One detection result. `to_dict` is the single JSON form used by CLI, JSONL, API and evaluator."""

    image: str
    label: Label
    prob_fake: float
    attributes: dict[str, str] = field(default_factory=dict)
    caption: str | None = None
    reasoning: str | None = None
    raw_text: str | None = None
    model_id: str | None = None
    elapsed_ms: float | None = None
    # what was measured on the image (evidence.findings.measured_values), the values the reasoning may
    # state; None in fast mode. Measured, not written by the model: shown as such.
    measurements: dict[str, float] | None = None
    # how many native crops of the image the detector read (multi-crop inference); None: not reported
    crops: int | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be 'real' or 'fake', got {self.label!r}")
        if not 0.0 <= float(self.prob_fake) <= 1.0:
            raise ValueError(f"prob_fake must lie in [0, 1], got {self.prob_fake!r}")
        self.prob_fake = float(self.prob_fake)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": VERDICT_SCHEMA, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        schema = data.get("schema")
        if schema not in VERDICT_SCHEMAS:
            raise ValueError(f"not a fakereasoning verdict record (schema={schema!r}; expected {VERDICT_SCHEMAS})")
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_answer(
        cls,
        image: str,
        prob_fake: float,
        text: str | None = None,
        model_id: str | None = None,
        elapsed_ms: float | None = None,
        threshold: float = 0.5,
        measurements: dict[str, float] | None = None,
        crops: int | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Verdict:
        """Build a verdict from a probability and (optionally) a generated tagged answer. `attributes`: which
        attribute each stated finding is (the model knows it; the release format's text does not say it);
        None: parsed from `Name:` prefixes where the text has them."""
        parsed = parse_cot(text or "")
        return cls(
            image=image,
            label="fake" if prob_fake >= threshold else "real",
            prob_fake=prob_fake,
            attributes=dict(parsed.attributes if attributes is None else attributes),
            caption=parsed.caption,
            reasoning=parsed.reasoning,
            raw_text=text,
            model_id=model_id,
            elapsed_ms=elapsed_ms,
            measurements=measurements,
            crops=crops,
        )
