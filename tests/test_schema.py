"""The FDR answer contract: formatting and parsing round trip; parsing never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakereasoning.schema import (
    ATTRIBUTES,
    ATTRIBUTES_OF_LABEL,
    AUTHENTIC_ATTRIBUTES,
    FORGERY_ATTRIBUTES,
    NO_HIGH_LEVEL_FINDING,
    NO_LOW_LEVEL_FINDING,
    TAGS,
    VERDICT_SCHEMA,
    Verdict,
    attribute_label,
    clean_finding,
    clean_inline,
    conclusion_text,
    fast_answer,
    format_cot,
    is_low_level,
    parse_cot,
    prefixed_finding,
    reference_text,
)


def test_ten_attributes_five_per_label() -> None:
    assert len(set(ATTRIBUTES)) == 10
    assert len(FORGERY_ATTRIBUTES) == len(AUTHENTIC_ATTRIBUTES) == 5
    assert all(attribute_label(a) == "fake" for a in FORGERY_ATTRIBUTES)
    assert all(attribute_label(a) == "real" for a in AUTHENTIC_ATTRIBUTES)
    assert attribute_label("Nice Colours") is None
    assert ATTRIBUTES_OF_LABEL["fake"] == FORGERY_ATTRIBUTES


def test_released_shape() -> None:
    text = format_cot(
        "fake",
        {"Anomalous Image Texture": "the residual repeats every 2 pixels", "Semantic Irrationality": "six fingers"},
        "A hand holding a cup.",
    )
    assert text.startswith("<SUMMARY> I will determine if the image is real or fake")
    # the release format: findings as plain sentences, no attribute names inside the reasoning
    assert "<REASONING> From low-level perspective: the residual repeats every 2 pixels." in text
    assert "From high-level perspective: six fingers. Therefore, this image is fake. </REASONING>" in text
    assert not any(name in text for name in ATTRIBUTES)
    assert text.endswith("<CONCLUSION> This image is fake. </CONCLUSION>")
    parsed = parse_cot(text)
    assert parsed.ok and parsed.label == "fake" and parsed.reasoning_label == "fake" and parsed.consistent
    assert parsed.caption == "A hand holding a cup."
    assert parsed.missing == []


def test_findings_follow_the_reference_order() -> None:
    """Within a perspective, findings come in sorted attribute-name order, the order in which the released
    evaluator joins a reference: a reasoning stating the reference's findings lines up with it."""
    attrs = {"Smooth and Natural Image Edges": "edges", "Consistent Lighting and Shadows": "light",
             "Natural and Consistent Image Texture": "texture", "High Image Quality": "quality"}
    reasoning = parse_cot(format_cot("real", attrs, "")).reasoning or ""
    positions = [reasoning.index(attrs[name]) for name in sorted(attrs)]
    assert positions == sorted(positions)
    assert reference_text(attrs) == "light quality texture edges"
    assert parse_cot(format_cot("real", attrs, "")).low_level == "light. quality. texture. edges."


def test_prefixed_answers_still_parse() -> None:
    """Answers written before the release format (and annotators) name each finding's attribute."""
    text = ("<REASONING> From low-level perspective: Low Image Quality: blocky. From high-level perspective: "
            "Semantic Irrationality: six fingers. Therefore, this image is fake. </REASONING> "
            "<CONCLUSION> This image is fake. </CONCLUSION>")
    assert parse_cot(text).attributes == {"Low Image Quality": "blocky.", "Semantic Irrationality": "six fingers."}
    assert prefixed_finding("Low Image Quality", "blocky") == "Low Image Quality: blocky."


def test_findings_map_back_through_known_forms() -> None:
    """The parser gives each sentence to the attribute whose known form it fits (and nothing else), the
    verdict's kind first: the hedge is worded alike for fakes and reals."""
    def forms(section: str, label: str | None) -> dict[str, str]:
        known = {"blocky.": "Low Image Quality", "undecided.": "Anomalous Image Texture" if label == "fake"
                 else "Natural and Consistent Image Texture"}
        return {known[s]: s for s in section.split(" ") if s in known}

    for label, attribute in (("fake", "Anomalous Image Texture"), ("real", "Natural and Consistent Image Texture")):
        text = format_cot(label, {attribute: "undecided", "Semantic Irrationality": "odd"}, "")  # type: ignore[arg-type]
        assert parse_cot(text).attributes == {}
        assert parse_cot(text, forms=forms).attributes == {attribute: "undecided."}


def test_fast_answer_is_only_the_conclusion() -> None:
    parsed = parse_cot(fast_answer("real"))
    assert parsed.label == "real" and parsed.reasoning is None and parsed.missing == ["SUMMARY", "CAPTION", "REASONING"]
    assert conclusion_text("real") == "This image is real."


findings = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, dict[str, str], str]:
    label = draw(st.sampled_from(["real", "fake"]))
    names = draw(st.lists(st.sampled_from(ATTRIBUTES_OF_LABEL[label]), unique=True, max_size=5))
    attrs = {n: draw(findings) for n in names}
    return label, attrs, draw(findings)


@given(answers())
@settings(max_examples=200, deadline=None)
def test_round_trip(answer: tuple[str, dict[str, str], str]) -> None:
    label, attrs, caption = answer
    parsed = parse_cot(format_cot(label, attrs, caption))  # type: ignore[arg-type]
    assert parsed.ok
    assert parsed.label == label and parsed.reasoning_label == label
    findings_ = {n: clean_finding(t) for n, t in attrs.items() if clean_finding(t)}
    low = " ".join(findings_[n] for n in sorted(findings_) if is_low_level(n))
    high = " ".join(findings_[n] for n in sorted(findings_) if not is_low_level(n))
    assert parsed.low_level == (low or NO_LOW_LEVEL_FINDING)
    assert parsed.high_level == (high or NO_HIGH_LEVEL_FINDING)
    assert parsed.attributes == {}  # the release format names no attribute; no forms were given
    by_text = {t: n for n, t in findings_.items()}
    mapped = parse_cot(format_cot(label, attrs, caption),  # type: ignore[arg-type]
                       forms=lambda section, _label: {by_text[t]: t for t in by_text if t in section})
    assert mapped.attributes == {n: findings_[n] for n in mapped.attributes}  # each finding to its own attribute
    assert parsed.caption == clean_inline(caption)


@given(st.text(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_garbage_never_raises(text: str) -> None:
    parsed = parse_cot(text)
    assert set(parsed.missing) <= set(TAGS)


tag_soup = st.lists(
    st.sampled_from([f"<{t}>" for t in TAGS] + [f"</{t}>" for t in TAGS] + ["This image is fake.", "real", " x "]),
    max_size=40,
).map("".join)


@given(tag_soup)
@settings(max_examples=300, deadline=None)
def test_repeated_nested_and_unbalanced_tags(text: str) -> None:
    parsed = parse_cot(text)
    if parsed.reasoning is not None:
        assert "</REASONING>" not in parsed.reasoning


@given(answers(), st.integers(min_value=0, max_value=2000))
@settings(max_examples=150, deadline=None)
def test_truncated_answer(answer: tuple[str, dict[str, str], str], cut: int) -> None:
    label, attrs, caption = answer
    text = format_cot(label, attrs, caption)  # type: ignore[arg-type]
    parsed = parse_cot(text[:cut])
    if cut < len(text):
        assert "CONCLUSION" in parsed.missing or parsed.label == label
        assert not parsed.ok or text[:cut].endswith("</CONCLUSION>")


def test_non_string_and_huge_input() -> None:
    assert not parse_cot(None).ok
    assert not parse_cot(12345).ok  # type: ignore[arg-type]
    huge = "<REASONING>" * 200_000 + "x"
    assert parse_cot(huge).reasoning is None
    ok = "<REASONING> a </REASONING><CONCLUSION> This image is real. </CONCLUSION>"
    assert parse_cot(ok + "y" * 5_000_000).label == "real"


def test_nested_tags_keep_innermost_and_repeated_take_first() -> None:
    text = "<REASONING> outer <REASONING> inner </REASONING> <CONCLUSION> This image is fake. </CONCLUSION>"
    assert parse_cot(text).reasoning == "inner"
    twice = "<CONCLUSION> This image is real. </CONCLUSION><CONCLUSION> This image is fake. </CONCLUSION>"
    assert parse_cot(twice).label == "real"


def test_inconsistent_reasoning_is_detected() -> None:
    text = "<REASONING> Therefore, this image is real. </REASONING><CONCLUSION> This image is fake. </CONCLUSION>"
    parsed = parse_cot(text)
    assert parsed.consistent is False


def test_verdict_json_form() -> None:
    v = Verdict(image="a.png", label="fake", prob_fake=0.9, attributes={"Low Image Quality": "blur."}, elapsed_ms=3.5)
    d = json.loads(v.to_json())
    assert d["schema"] == VERDICT_SCHEMA
    assert set(d) == {"schema", "image", "label", "prob_fake", "attributes", "caption", "reasoning", "raw_text",
                      "model_id", "elapsed_ms", "measurements", "crops"}
    assert Verdict.from_dict(d) == v
    with pytest.raises(ValueError):
        Verdict.from_dict({**d, "schema": "other/v0"})
    with pytest.raises(ValueError):
        Verdict(image="a", label="maybe", prob_fake=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Verdict(image="a", label="real", prob_fake=1.5)


def test_verdict_from_answer_uses_probability() -> None:
    text = format_cot("fake", {"Low Image Quality": "blocky"}, "cap")
    v = Verdict.from_answer("x.png", 0.7, text, model_id="m", attributes={"Low Image Quality": "blocky"})
    assert v.label == "fake" and v.attributes == {"Low Image Quality": "blocky"} and v.caption == "cap"
    assert Verdict.from_answer("x.png", 0.7, text).attributes == {}  # the text alone does not name them
    assert Verdict.from_answer("x.png", 0.2).label == "real"
