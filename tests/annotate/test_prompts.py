"""The annotation prompts: true label stated, the five names of that kind only, the answer shapes."""

from __future__ import annotations

import json

import pytest

from fakereasoning.annotate.control import control_answer
from fakereasoning.annotate.prompts import UNDETERMINED_ANSWER, answer_template, build_prompt
from fakereasoning.schema import ATTRIBUTES_OF_LABEL


@pytest.mark.parametrize(("label", "other"), [("fake", "real"), ("real", "fake")])
def test_prompt_lists_own_names_only_and_states_the_label(label: str, other: str) -> None:
    prompt = build_prompt(label)  # type: ignore[arg-type]
    for name in ATTRIBUTES_OF_LABEL[label]:  # type: ignore[index]
        assert f"- {name}\n" in prompt
    for name in ATTRIBUTES_OF_LABEL[other]:  # type: ignore[index]
        assert name not in prompt
    assert ("AI-generated (fake)" in prompt) == (label == "fake")
    assert json.dumps(answer_template(label)) in prompt  # type: ignore[arg-type]
    assert UNDETERMINED_ANSWER in prompt


@pytest.mark.parametrize("label", ["fake", "real"])
def test_the_requested_answer_shape_passes_the_output_control(label: str) -> None:
    """A model that fills the template exactly as asked must have its answer kept, for every name."""
    template = answer_template(label)  # type: ignore[arg-type]
    out = control_answer(json.dumps(template), label)  # type: ignore[arg-type]
    assert out.kept and all(v == "<description>" for v in out.attributes.values())
    assert control_answer(json.dumps({"Answer": UNDETERMINED_ANSWER}), label).reason == "cannot determine"  # type: ignore[arg-type]


def test_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="label"):
        build_prompt("maybe")  # type: ignore[arg-type]
