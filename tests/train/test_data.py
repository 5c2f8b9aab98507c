"""Training samples: the folder decides every label, and what a dataset holds is accounted for before
training (found, usable, skipped by reason, per part and class), refusing beyond `--allow-skipped`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import separable_dataset

from fakereasoning.data.account import DataRefused
from fakereasoning.data.mmfr import COT_FILE
from fakereasoning.schema import format_cot
from fakereasoning.train.data import load_examples, load_training_data

HUGE = "9" * 5000
N = 12  # per class: 24 training images


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return separable_dataset(tmp_path / "d", n_train=N, n_eval=2, sets=("a",))


def folder_label(key: str) -> str:
    return "real" if "/0_real/" in key else "fake"


def conversation(image: str, label: str) -> dict[str, object]:
    answer = format_cot(label, {}, "A picture.")  # type: ignore[arg-type]
    return {"image": image, "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": answer}]}


def _examples_follow_their_folders(root: Path, allowed: float = 0.0) -> list[str]:
    data = load_training_data(root, 0.25, allowed_skipped=allowed, verbose=False)
    for e in data.train + data.held:
        assert e.label == folder_label(e.image), e
    return sorted({e.image for e in data.train + data.held})


def test_a_conversation_that_disagrees_with_its_folder_is_an_error_naming_both(root: Path) -> None:
    cot = root / COT_FILE
    entries = json.loads(cot.read_text())
    wrong = next(i for i, e in enumerate(entries) if e["image"] == "part/1_fake/f0.png")
    entries[wrong] = conversation("part/1_fake/f0.png", "real")
    cot.write_text(json.dumps(entries))
    with pytest.raises(DataRefused) as excinfo:
        load_examples(root, 0.0, verbose=False)
    message = str(excinfo.value)
    assert "\n" not in message
    assert f"{COT_FILE} entry {wrong}" in message and "part/1_fake/f0.png" in message
    assert "concludes real" in message and "is fake" in message
    # allowed to skip it: trained on the rest, never on f0 as "real"
    used = _examples_follow_their_folders(root, allowed=0.1)
    assert "part/1_fake/f0.png" not in used and len(used) == 2 * N - 1


def test_a_cot_file_that_does_not_match_the_images_is_refused_with_its_causes(root: Path) -> None:
    """The issue's 48-image tree: conversations for 2 of its images (one concluding the wrong label)
    and 11 for images it does not hold."""
    entries = [conversation("part/0_real/r0.png", "real"), conversation("part/1_fake/f1.png", "real")]
    entries += [conversation(f"other/0_real/x{i}.png", "real") for i in range(11)]
    (root / COT_FILE).write_text(json.dumps(entries))
    with pytest.raises(DataRefused) as excinfo:
        load_training_data(root, 0.0, verbose=False)
    message = str(excinfo.value)
    total = 2 * N + 11  # every image, and every conversation naming none of them
    assert f"{2 * N - 1 + 11} of {total}" in message and "--allow-skipped" in message
    assert "no conversation" in message and "other/0_real/x0.png" in message and "concludes real" in message
    data = load_training_data(root, 0.0, allowed_skipped=1.0, verbose=False)
    assert [(e.image, e.label) for e in data.train] == [("part/0_real/r0.png", "real")]
    account = data.account.to_dict()
    assert account["found"] == total and account["usable"] == 1 and account["skipped"] == total - 1
    assert account["sets"]["part"]["fake"] == {"found": N, "usable": 0, "skipped": N}
    assert account["sets"]["part"]["real"] == {"found": N, "usable": 1, "skipped": N - 1}
    assert {s["item"] for s in account["skips"]} >= {"part/1_fake/f1.png", "part/0_real/r5.png"}
    assert all(s["reason"] for s in account["skips"])


def _no_cot(root: Path) -> Path:
    (root / COT_FILE).unlink()
    return root


@pytest.mark.parametrize("with_cot", [False, True], ids=["without-cot", "with-cot"])
@pytest.mark.parametrize("content", [
    '{"part/0_real/r0.png": {"High Image Quality": ' + HUGE + "}}",  # an integer Python refuses
    "{not json",
    "[1, 2]",  # wrongly typed: a list
])
def test_a_broken_reasoning_json_is_named(root: Path, content: str, with_cot: bool) -> None:
    if not with_cot:
        _no_cot(root)
    (root / "part/part_reasoning.json").write_text(content)
    if with_cot:  # the conversations are what trains: every image, and the broken file named in a note
        data = load_training_data(root, 0.0, verbose=False)
        assert len(data.train) == 2 * N and all(e.label == folder_label(e.image) for e in data.train)
        assert any("part/part_reasoning.json" in n for n in data.account.notes)
        return
    with pytest.raises(DataRefused, match=r"part/part_reasoning.json") as excinfo:
        load_training_data(root, 0.0, verbose=False)
    assert f"{2 * N} of {2 * N}" in str(excinfo.value)


def test_a_wrongly_typed_annotation_skips_its_image_only(root: Path) -> None:
    _no_cot(root)
    path = root / "part/part_reasoning.json"
    mapping = json.loads(path.read_text())
    mapping["part/1_fake/f3.png"] = "pixels repeat"  # a text, not an object of attributes
    path.write_text(json.dumps(mapping))
    with pytest.raises(DataRefused, match=r"1 of 24 .*part/1_fake/f3.png.*part/part_reasoning.json"):
        load_training_data(root, 0.0, verbose=False)
    used = _examples_follow_their_folders(root, allowed=0.05)
    assert len(used) == 2 * N - 1 and "part/1_fake/f3.png" not in used


@pytest.mark.parametrize("with_cot", [False, True], ids=["without-cot", "with-cot"])
def test_images_in_a_bad_label_folder_are_counted_and_skipped(root: Path, with_cot: bool) -> None:
    from mmfr_factory import write_image

    if not with_cot:
        _no_cot(root)
    write_image(root / "part/2_fake/g0.png")
    with pytest.raises(DataRefused, match=r"1 of 25 .*part/2_fake/g0.png: label folder '2_fake'"):
        load_training_data(root, 0.0, verbose=False)
    data = load_training_data(root, 0.0, allowed_skipped=0.05, verbose=False)
    assert len(data.train) == 2 * N
    assert data.account.to_dict()["sets"]["part"]["?"] == {"found": 1, "usable": 0, "skipped": 1}


@pytest.mark.parametrize("with_cot", [False, True], ids=["without-cot", "with-cot"])
def test_an_unreadable_image_is_found_before_training_not_during_it(root: Path, with_cot: bool,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    if not with_cot:
        _no_cot(root)
    (root / "part/0_real/r4.png").write_bytes(b"not a png")
    with pytest.raises(DataRefused, match=r"1 of 24 .*part/0_real/r4.png: does not decode"):
        load_training_data(root, 0.0)
    data = load_training_data(root, 0.5, allowed_skipped=0.05)
    images = {e.image for e in data.train + data.held}
    assert len(images) == 2 * N - 1 and "part/0_real/r4.png" not in images
    err = capsys.readouterr().err
    assert "skipped: part/0_real/r4.png: does not decode" in err  # every skip named in the log
    skips = data.account.to_dict()["skips"]
    assert [(s["item"], s["label"]) for s in skips] == [("part/0_real/r4.png", "real")]


def test_the_account_is_printed_per_part_and_class(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_training_data(root, 0.0)
    err = capsys.readouterr().err
    assert "training data: 24 images found, 24 usable, 0 skipped" in err
    assert "part: real 12 found, 12 usable, 0 skipped; fake 12 found, 12 usable, 0 skipped" in err


def test_a_second_contradicting_conversation_and_one_for_an_evaluation_image_are_items(root: Path) -> None:
    cot = root / COT_FILE
    entries = json.loads(cot.read_text())
    entries += [conversation("part/0_real/r1.png", "fake"), conversation("./evaluation_sets/a/0_real/r0.png", "real")]
    cot.write_text(json.dumps(entries))
    data = load_training_data(root, 0.0, allowed_skipped=0.1, verbose=False)
    assert len(data.train) == 2 * N and all(e.label == folder_label(e.image) for e in data.train)
    skips = {s["item"]: s for s in data.account.to_dict()["skips"]}
    n = len(entries)
    assert skips[f"{COT_FILE} entry {n - 2}"]["kind"] == "conversation disagrees with the folder's label"
    assert "concludes fake but part/0_real/r1.png is real" in skips[f"{COT_FILE} entry {n - 2}"]["reason"]
    assert "'evaluation_sets/a/0_real/r0.png' is not a training image" in skips[f"{COT_FILE} entry {n - 1}"]["reason"]
