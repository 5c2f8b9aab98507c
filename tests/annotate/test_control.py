"""The output control: safe parsing (never eval), label agreement, attribute filtering, collect counts."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakereasoning.annotate import control
from fakereasoning.annotate.control import (
    R_ERROR,
    R_MALFORMED,
    R_MISMATCH,
    R_NO_ANSWER,
    R_NO_ATTRIBUTES,
    R_NO_JSON,
    R_NO_LABEL,
    R_NOT_OBJECT,
    R_TOO_LONG,
    R_TRUNCATED,
    R_UNDETERMINED,
    R_UNPARSABLE,
    R_UNSAFE_ID,
    answer_label,
    collect,
    control_answer,
)
from fakereasoning.annotate.online import chat_completion, output_line
from fakereasoning.schema import (
    ATTRIBUTES,
    ATTRIBUTES_OF_LABEL,
    AUTHENTIC_ATTRIBUTES,
    FORGERY_ATTRIBUTES,
    format_cot,
)

REASONS = {v for k, v in vars(control).items() if k.startswith("R_")}


def _fake_answer(attrs: dict[str, object], answer: str = "The image is fake.") -> str:
    return json.dumps({"Answer": answer, "Forgery Attributes": attrs})


# --- single answers ------------------------------------------------------------------------------------
def test_kept_answer_has_all_five_names_with_null_for_missing() -> None:
    out = control_answer(_fake_answer({"Irregular Image Edges": "  Jagged\n hair   outline. "}), "fake")
    assert out.kept and out.reason is None
    assert list(out.attributes) == list(FORGERY_ATTRIBUTES)
    assert out.attributes["Irregular Image Edges"] == "Jagged hair outline."
    assert sum(v is not None for v in out.attributes.values()) == 1


def test_unknown_and_wrong_kind_names_are_dropped_and_variants_mapped() -> None:
    text = _fake_answer(
        {
            "low image QUALITY": "Blurry background.",  # case / spacing variant of a forgery name
            "Semantic Rationality": "authentic name on a fake answer",
            "Colour Bleeding": "unknown",
            "Anomalous Image Texture": 42,  # not text: treated as missing
        }
    )
    out = control_answer(text, "fake")
    assert out.kept
    assert out.attributes == {
        n: ("Blurry background." if n == "Low Image Quality" else None) for n in FORGERY_ATTRIBUTES
    }
    assert set(out.dropped_names) == {"Semantic Rationality", "Colour Bleeding"}


def test_key_spelling_variants_are_accepted() -> None:
    text = json.dumps(
        {"answer": "The image is fake.", "forgery_attributes": {"Irregular Image Edges": "Halo."}}
    )
    out = control_answer(text, "fake")
    assert out.kept and out.attributes["Irregular Image Edges"] == "Halo."


def test_tagged_fdr_answer_from_our_serve_is_controlled_too() -> None:
    # our serve writes the release format (no attribute names); its findings have known forms
    edges = "edges follow a 2-pixel grid: pixel differences inside 2x2 cells are 7% stronger"
    attrs = {"Irregular Image Edges": edges, "Semantic Irrationality": None}
    text = format_cot("fake", attrs, "A portrait.")
    out = control_answer(text, "fake")
    assert out.kept
    assert out.attributes == {n: (edges + "." if n == "Irregular Image Edges" else None) for n in FORGERY_ATTRIBUTES}
    free = format_cot("fake", {"Irregular Image Edges": "The hair dissolves into the background."}, "A portrait.")
    assert control_answer(free, "fake").reason == R_NO_ATTRIBUTES  # free text names no attribute
    assert control_answer(text, "real").reason == R_MISMATCH
    no_findings = format_cot("fake", {}, "A portrait.")
    assert control_answer(no_findings, "fake").reason == R_NO_ATTRIBUTES
    assert control_answer("<REASONING> x </REASONING>", "fake").reason == R_NO_JSON


def test_python_literal_answer_with_prose_around_it() -> None:
    text = "Here you go:\n{'Answer': 'The image is real.', 'Attributes': {'High Image Quality': 'Crisp.', 'Semantic Rationality': None,}}\nThanks"
    out = control_answer(text, "real")
    assert out.kept
    assert out.attributes == {
        n: ("Crisp." if n == "High Image Quality" else None) for n in AUTHENTIC_ATTRIBUTES
    }


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        ('{"Answer": "Can not determine if the image is real or fake."}', "fake", R_UNDETERMINED),
        ('{"Answer": "I cannot determine this."}', "real", R_UNDETERMINED),
        (_fake_answer({"Irregular Image Edges": "x"}), "real", R_MISMATCH),
        (_fake_answer({"Irregular Image Edges": "x"}, answer="The image is not fake."), "fake", R_MISMATCH),
        (_fake_answer({"Irregular Image Edges": "x"}, answer="Real or fake?"), "fake", R_NO_ANSWER),
        ('{"Forgery Attributes": {"Irregular Image Edges": "x"}}', "fake", R_NO_ANSWER),
        (_fake_answer({"Colour Bleeding": "x"}), "fake", R_NO_ATTRIBUTES),
        (_fake_answer({"Irregular Image Edges": None}), "fake", R_NO_ATTRIBUTES),
        (_fake_answer({"Irregular Image Edges": "   "}), "fake", R_NO_ATTRIBUTES),
        (
            '{"Answer": "The image is fake.", "Forgery Attributes": {"Irregular Image Edges": "jag',
            "fake",
            R_TRUNCATED,
        ),
        (
            '{"Answer": "The image is fake.", "Forgery Attributes": {"Irregular Image Edges": "j"}',
            "fake",
            R_TRUNCATED,
        ),
        ("The image is fake.", "fake", R_NO_JSON),
        ("", "fake", control.R_NO_TEXT),
        (None, "fake", control.R_NO_TEXT),
        ("{" * 5000 + "}" * 5000, "fake", R_UNPARSABLE),
        ("{1, 2, 3}", "fake", R_NOT_OBJECT),
        ("{" + "x" * 30_000 + "}", "fake", R_TOO_LONG),
    ],
)
def test_skip_reasons(text: object, label: str, reason: str) -> None:
    out = control_answer(text, label)  # type: ignore[arg-type]
    assert not out.kept
    assert out.reason == reason


def test_finish_reason_length_marks_truncation() -> None:
    text = '{"Answer": "The image is fake.", "Forgery Attributes": {"Irregular Image Edges": "a", }} junk }'
    assert control_answer(text, "fake", finish_reason="length").reason == R_TRUNCATED
    assert control_answer(text, "fake").reason == R_UNPARSABLE


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The image is fake.", "fake"),
        ("The image is real.", "real"),
        ("This image appears to be fake", "fake"),
        ("The image is not real.", "fake"),
        ("Can not determine if the image is real or fake.", "undetermined"),
        ("Real or fake", None),
        (3, None),
    ],
)
def test_answer_label(answer: object, expected: str | None) -> None:
    assert answer_label(answer) == expected


# --- never executes anything ------------------------------------------------------------------------
def _hostile(marker: Path) -> list[str]:
    cmd = f"touch {marker}"
    return [
        f"__import__('os').system('{cmd}')",
        f"{{'Answer': __import__('os').system('{cmd}')}}",
        '{"Answer": "The image is fake.", "Forgery Attributes": {"Irregular Image Edges": '
        f"__import__('os').system('{cmd}')}}}}",
        f"{{'Answer': (lambda: __import__('os').system('{cmd}'))()}}",
        f"{{'Answer': [c for c in ().__class__.__base__.__subclasses__()], 'x': exec('import os; os.system(\"{cmd}\")')}}",
        f"{{'Answer': 'The image is fake.', 'Forgery Attributes': {{'Irregular Image Edges': open('{marker}', 'w')}}}}",
        f"{{'Answer': f'{{__import__(\"os\").system(\"{cmd}\")}}'}}",
        f"{{'Answer': 'The image is fake.'}} if __import__('os').system('{cmd}') else {{}}",
        f"{{**{{'Answer': __import__('os').system('{cmd}')}}}}",
    ]


def test_hostile_text_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for text in _hostile(marker):
        for label in ("real", "fake"):
            out = control_answer(text, label)  # type: ignore[arg-type]
            assert not out.kept, text
    assert not marker.exists()


def test_hostile_text_inside_a_string_stays_plain_text(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    out = control_answer(_fake_answer({"Irregular Image Edges": payload}), "fake")
    assert out.kept and out.attributes["Irregular Image Edges"] == payload
    assert not marker.exists()


# --- fuzzing --------------------------------------------------------------------------------------------
_name = st.one_of(st.sampled_from(ATTRIBUTES), st.text(max_size=30))
_value = st.one_of(st.none(), st.text(max_size=60), st.integers(), st.lists(st.text(max_size=5), max_size=2))
_answer_text = st.sampled_from(
    [
        "The image is fake.",
        "The image is real.",
        "Can not determine if the image is real or fake.",
        "maybe",
        "",
    ]
)
_group_key = st.sampled_from(["Forgery Attributes", "Attributes", "Authentic Attributes", "Other"])


@st.composite
def _answers(draw: st.DrawFn) -> tuple[str, dict]:
    obj: dict = {"Answer": draw(_answer_text)}
    if draw(st.booleans()):
        obj[draw(_group_key)] = draw(st.dictionaries(_name, _value, max_size=7))
    text = json.dumps(obj) if draw(st.booleans()) else repr(obj)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    if draw(st.booleans()):
        text = draw(st.text(max_size=20)) + text + draw(st.text(max_size=20))
    return text, obj


def _normal(text: str) -> str:
    """What a kept description should be: control characters as spaces, NFC, whitespace collapsed."""
    spaced = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return " ".join(unicodedata.normalize("NFC", spaced).split())[: control.MAX_TEXT_CHARS]


def _check_invariants(out: control.Controlled, label: str) -> None:
    if out.kept:
        assert out.reason is None
        assert list(out.attributes) == list(ATTRIBUTES_OF_LABEL[label])
        values = list(out.attributes.values())
        assert any(v is not None for v in values)
        assert all(v is None or (isinstance(v, str) and v.strip() == v and v) for v in values)
    else:
        assert out.reason in REASONS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300), label=st.sampled_from(["real", "fake"]))
def test_fuzz_arbitrary_text_never_raises(text: str, label: str) -> None:
    _check_invariants(control_answer(text, label), label)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_answers(), label=st.sampled_from(["real", "fake"]))
def test_fuzz_structured_answers_match_a_model(case: tuple[str, dict], label: str) -> None:
    text, obj = case
    out = control_answer(text, label)  # type: ignore[arg-type]
    _check_invariants(out, label)
    if out.kept:  # whatever was kept must come from the answer, for the true label and its own names
        assert answer_label(obj["Answer"]) == label
        given_texts = {
            _normal(v)
            for key, group in obj.items()
            if key != "Answer"
            for v in group.values()
            if isinstance(v, str)
        }
        for value in out.attributes.values():
            assert value is None or value in given_texts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.text(max_size=40),
    suffix=st.text(max_size=40),
    pick=st.integers(0, 8),
    label=st.sampled_from(["real", "fake"]),
)
def test_fuzz_hostile_fragments_never_run(
    tmp_path: Path, prefix: str, suffix: str, pick: int, label: str
) -> None:
    marker = tmp_path / "pwned_fuzz"
    text = prefix + _hostile(marker)[pick] + suffix
    _check_invariants(control_answer(text, label), label)  # type: ignore[arg-type]
    assert not marker.exists()


# --- collect over output files -------------------------------------------------------------------------
def _ok(custom_id: str, content: str) -> dict:
    return output_line(custom_id, 200, chat_completion(content, "m"), "req")


def test_collect_counts_reasons_and_prefers_a_later_success(tmp_path: Path) -> None:
    good_fake = _fake_answer({"Irregular Image Edges": "Jagged."})
    good_real = json.dumps({"Answer": "The image is real.", "Attributes": {"High Image Quality": "Sharp."}})
    lines = [
        output_line("sd/1_fake/a.png", 500, {"error": {"message": "boom"}}, "r1"),
        _ok("sd/1_fake/a.png", good_fake),  # the retry succeeded: kept, the error is not counted
        _ok("sd/0_real/b.png", good_real),
        _ok(
            "sd/0_real/b.png", '{"Answer": "Can not determine if the image is real or fake."}'
        ),  # kept one stays
        _ok("sd/1_fake/c.png", '{"Answer": "Can not determine if the image is real or fake."}'),
        output_line("sd/1_fake/d.png", error={"code": "transport_error", "message": "refused"}),
        _ok("sd/0_real/e.png", good_fake),
        _ok("../escape/1_fake/x.png", good_fake),
        _ok("/abs/1_fake/x.png", good_fake),
        _ok("nolabel/x.png", good_fake),
        {"custom_id": 7},
    ]
    out_file = tmp_path / "out.jsonl"
    text = (
        "".join(json.dumps(line) + "\n" for line in lines)
        + "not json at all\n"
        + '{"custom_id": "sd/1_fake/z.png", "resp'
    )
    out_file.write_text(text)
    result = collect([out_file])
    assert result.annotations == {
        "sd/0_real/b.png": {
            n: ("Sharp." if n == "High Image Quality" else None) for n in AUTHENTIC_ATTRIBUTES
        },
        "sd/1_fake/a.png": {
            n: ("Jagged." if n == "Irregular Image Edges" else None) for n in FORGERY_ATTRIBUTES
        },
    }
    assert result.labels == {"real": 1, "fake": 1}
    assert result.skipped == {
        R_UNDETERMINED: 1,
        R_ERROR: 1,
        R_MISMATCH: 1,
        R_UNSAFE_ID: 2,
        R_NO_LABEL: 1,
        R_MALFORMED: 3,
    }
    assert result.lines == len(lines) + 2
    summary = result.to_dict()
    assert summary["kept"] == 2 and summary["skipped"] == 9
    assert "skipped: 9" in result.text()


def test_collect_label_override(tmp_path: Path) -> None:
    out_file = tmp_path / "out.jsonl"
    out_file.write_text(json.dumps(_ok("mine/x.png", _fake_answer({"Irregular Image Edges": "e"}))) + "\n")
    assert collect([out_file]).skipped == {R_NO_LABEL: 1}
    assert list(collect([out_file], label="fake").annotations) == ["mine/x.png"]
    assert collect([out_file], label="real").skipped == {R_MISMATCH: 1}
