"""The annotation prompts of the MMFR construction pipeline (spec section 4), fake and real variants.

The annotator is told the true label and the five attribute names of that label's kind, and asked for a
JSON answer of a fixed shape, so the output control (`control.py`) can check the answer against the label
and keep only known attribute names. Names come from `schema`, so the prompt and the checker never drift.
"""

from __future__ import annotations

import json

from fakereasoning.schema import ATTRIBUTES_OF_LABEL, Label

DEFAULT_MODEL = "gpt-4o-2024-08-06"
MAX_TOKENS = 300  # as in the release; long answers are truncated and then dropped by the output control

# The answer sentences and the JSON keys the model is asked to use (and the control accepts).
ANSWER_OF_LABEL: dict[Label, str] = {"fake": "The image is fake.", "real": "The image is real."}
UNDETERMINED_ANSWER = "Can not determine if the image is real or fake."
ATTRIBUTES_KEY_OF_LABEL: dict[Label, str] = {"fake": "Forgery Attributes", "real": "Attributes"}

_ROLE_OF_LABEL: dict[Label, str] = {
    "fake": (
        "You are an image forensic expert. The image below is known to be AI-generated (fake). "
        "Examine it and describe the forgery attributes that give it away."
    ),
    "real": (
        "You are an image forensic expert. The image below is known to be a real photograph (not "
        "AI-generated). Examine it and describe the attributes that show it is authentic."
    ),
}


def answer_template(label: Label) -> dict[str, object]:
    """The JSON shape the model is asked to return for `label` (descriptions as placeholders)."""
    names = ATTRIBUTES_OF_LABEL[label]
    return {
        "Answer": ANSWER_OF_LABEL[label],
        ATTRIBUTES_KEY_OF_LABEL[label]: {name: "<description>" for name in names},
    }


def build_prompt(label: Label) -> str:
    """The user text sent with the image: role, true label, the five attribute names, the answer shape."""
    if label not in ATTRIBUTES_OF_LABEL:
        raise ValueError(f"label must be 'real' or 'fake', got {label!r}")
    names = ATTRIBUTES_OF_LABEL[label]
    listed = "\n".join(f"- {name}" for name in names)
    return (
        f"{_ROLE_OF_LABEL[label]}\n"
        f"Consider only these attribute types:\n{listed}\n"
        "For each attribute type you can actually observe in this image, write one or two sentences that "
        "point to concrete regions or details. Leave out attribute types you cannot observe. "
        "Use the attribute type names exactly as written above.\n"
        "Reply with one JSON object and nothing else, in this form:\n"
        f"{json.dumps(answer_template(label), ensure_ascii=False)}\n"
        "If you cannot tell whether the image is real or fake, reply with:\n"
        f"{json.dumps({'Answer': UNDETERMINED_ANSWER})}"
    )
