"""MMFR layout: exact counts on a valid dataset, and every bad case reported (not just the first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import released_layout, write_image, write_json

from fakereasoning.data.mmfr import reasoning_json_path, scan, summarize, validate, write_reasoning_json
from fakereasoning.errors import DatasetError


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return released_layout(tmp_path / "mmfr")


def test_valid_release_layout_counts(dataset: Path) -> None:
    report = validate(dataset)
    d = report.to_dict()
    assert report.ok, d["problems"]
    assert d["problems"] == []
    assert d["train"] == {"real": 2, "fake": 3, "annotations": 7, "conversations": 5}
    assert d["evaluation_sets"] == {
        "gigagan": {"real": 1, "fake": 1, "annotations": 3},
        "stablediffusion": {"real": 2, "fake": 2, "annotations": 6},
    }


def test_records_have_labels_keys_and_references(dataset: Path) -> None:
    index = scan(dataset)
    by_key = index.by_key()
    assert by_key["diffusiondb/part-000002/img2.png"].attributes == {"Inconsistent Lighting and Shadows": "two suns"}
    rec = by_key["evaluation_sets/stablediffusion/1_fake/f0.png"]
    assert rec.label == "fake" and rec.split == "eval" and rec.set == "stablediffusion"
    assert rec.reference() == "grid pattern blocky"  # sorted attribute names: Anomalous..., Low...
    assert by_key["laion/00000/000000001.jpg"].label == "real"
    assert [r.set for r in index.records(split="eval")] == ["gigagan"] * 2 + ["stablediffusion"] * 4


def _problems(root: Path) -> list[dict[str, str]]:
    return validate(root).to_dict()["problems"]


def test_every_bad_case_is_reported(dataset: Path) -> None:
    ev = dataset / "evaluation_sets/stablediffusion"
    # a corrupt image, a truncated one, a bad label folder, an unannotated image
    (ev / "1_fake/f1.png").write_bytes(b"not a png")
    good = (ev / "0_real/r1.png").read_bytes()
    (ev / "0_real/r1.png").write_bytes(good[: len(good) // 2])
    write_image(ev / "fake/x.png")
    write_image(ev / "1_fake/unannotated.png", seed=5)
    mapping = json.loads((ev / "stablediffusion_reasoning.json").read_text())
    mapping["/etc/passwd"] = {"Semantic Irrationality": "x"}
    mapping["../../laion/00000/000000000.jpg"] = {"High Image Quality": "x"}
    mapping["stablediffusion/1_fake/gone.png"] = {"Low Image Quality": "x"}
    mapping["stablediffusion/0_real/r0.png"] = {"Semantic Irrationality": "wrong kind", "Pretty Colours": "unknown"}
    mapping["stablediffusion/1_fake/f0.png"] = {"High Image Quality": "authentic on fake"}
    write_json(ev / "stablediffusion_reasoning.json", mapping)
    (dataset / "evaluation_sets/gigagan/gigagan_reasoning.json").write_text('{"gigagan/0_real/r0.png": {"x": 1,}')
    problems = _problems(dataset)
    messages = [(p["severity"], p["path"], p["message"]) for p in problems]

    def has(severity: str, path: str, words: str) -> bool:
        return any(s == severity and p == path and words in m for s, p, m in messages)

    sd_json = "evaluation_sets/stablediffusion/stablediffusion_reasoning.json"
    assert has("error", "evaluation_sets/stablediffusion/1_fake/f1.png", "does not decode")
    assert has("error", "evaluation_sets/stablediffusion/0_real/r1.png", "truncated")
    assert has("error", "evaluation_sets/stablediffusion/fake", "not 0_real or 1_fake")
    assert has("warning", "evaluation_sets/stablediffusion/1_fake/unannotated.png", "no annotation")
    assert has("error", sd_json, "is absolute")
    assert has("error", sd_json, "escapes its root")
    assert has("error", sd_json, "missing image")
    assert has("error", sd_json, "forgery attribute 'Semantic Irrationality' on a real image")
    assert has("error", sd_json, "unknown attribute name 'Pretty Colours'")
    assert has("error", sd_json, "authentic attribute 'High Image Quality' on a fake image")
    assert has("error", "evaluation_sets/gigagan/gigagan_reasoning.json", "malformed JSON at line 1 column")
    assert not validate(dataset).ok


def test_training_part_labels_and_cot_problems(dataset: Path) -> None:
    write_image(dataset / "extra/0_real/a.png")
    write_image(dataset / "extra/1_fake/sub/b.png", seed=3)
    write_image(dataset / "extra/loose.png")
    write_image(dataset / "extra/maybe/c.png")
    cot = json.loads((dataset / "forgery_reasoning_cot.json").read_text())
    cot.append({"image": "laion/00000/nope.jpg", "conversations": cot[0]["conversations"]})
    cot.append({"image": "laion/00000/000000000.jpg", "conversations": cot[0]["conversations"]})  # says fake
    cot.append({"image": "/abs.png", "conversations": []})
    write_json(dataset / "forgery_reasoning_cot.json", cot)
    report = validate(dataset)
    d = report.to_dict()
    assert d["train"]["real"] == 3 and d["train"]["fake"] == 4 and d["train"]["conversations"] == 8
    msgs = [p["message"] for p in d["problems"] if p["path"] == "forgery_reasoning_cot.json"]
    assert any("entry 5" in m and "missing image" in m for m in msgs)
    assert any("entry 6" in m and "concludes fake" in m for m in msgs)
    assert any("entry 7" in m and "absolute" in m for m in msgs)
    paths = {p["path"]: p["message"] for p in d["problems"]}
    assert "label is unknown" in paths["extra/loose.png"]
    assert "not 0_real or 1_fake" in paths["extra/maybe"]
    assert "has no *_reasoning.json" in paths["extra"]


def test_missing_root_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        scan(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        scan(tmp_path / "file")


def test_empty_root_is_valid_and_empty(tmp_path: Path) -> None:
    d = validate(tmp_path).to_dict()
    assert d["train"] == {"real": 0, "fake": 0, "annotations": 0, "conversations": 0}
    assert d["evaluation_sets"] == {} and d["problems"] == []


def test_write_reasoning_json_round_trip(tmp_path: Path) -> None:
    write_image(tmp_path / "evaluation_sets/s/1_fake/a.png")
    path = reasoning_json_path(tmp_path, "s", "eval")
    assert path == tmp_path / "evaluation_sets/s/s_reasoning.json"
    write_reasoning_json(path, {"s/1_fake/a.png": {"Semantic Irrationality": "x", "Low Image Quality": None}})
    assert validate(tmp_path).ok
    with pytest.raises(ValueError):
        write_reasoning_json(path, {"../a.png": {}})
    with pytest.raises(ValueError):
        write_reasoning_json(path, {"a.png": {"Nope": "x"}})
    assert [r["annotated"] for r in summarize(scan(tmp_path))] == [1]


# --- the checked walk: links and special files ----------------------------------------------------------
def _errors(root: Path) -> dict[str, str]:
    return {p["path"]: p["message"] for p in _problems(root) if p["severity"] == "error"}


def test_links_leading_outside_the_root_are_errors_and_never_read(dataset: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_image(outside / "secret.png", seed=99)
    write_image(outside / "set/0_real/r.png", seed=98)
    write_image(outside / "set/1_fake/f.png", seed=97)
    write_image(outside / "part/img.png", seed=96)
    (dataset / "laion/00000/escape.png").symlink_to(outside / "secret.png")
    (dataset / "evaluation_sets/gigagan/1_fake/escape.png").symlink_to(outside / "secret.png")
    (dataset / "evaluation_sets/linked").symlink_to(outside / "set", target_is_directory=True)
    (dataset / "linkedpart").symlink_to(outside / "part", target_is_directory=True)
    errors = _errors(dataset)
    for key in ("laion/00000/escape.png", "evaluation_sets/gigagan/1_fake/escape.png", "evaluation_sets/linked",
                "linkedpart"):
        assert "outside the dataset root" in errors[key], key
    index = scan(dataset)
    assert not any("escape" in r.key or "linked" in r.key for r in index.records())
    assert "linked" not in index.evaluation_sets
    from fakereasoning.data.cot import build_conversations

    assert all("escape" not in c["image"] for c in build_conversations(index))


def test_a_linked_evaluation_sets_folder_is_invalid(dataset: Path, tmp_path: Path) -> None:
    import shutil

    shutil.move(dataset / "evaluation_sets", tmp_path / "elsewhere")
    (dataset / "evaluation_sets").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    report = validate(dataset)
    assert not report.ok
    assert "outside the dataset root" in _errors(dataset)["evaluation_sets"]
    assert report.index.evaluation_sets == {}


def test_links_inside_the_root_are_followed_and_loops_reported(dataset: Path) -> None:
    (dataset / "laion/00000/again.jpg").symlink_to(dataset / "laion/00000/000000000.jpg")
    (dataset / "laion/00000/loop.jpg").symlink_to(dataset / "laion/00000/loop.jpg")
    (dataset / "laion/00000/gone.jpg").symlink_to(dataset / "laion/00000/missing.jpg")
    (dataset / "laion/00000/up").symlink_to(dataset / "laion", target_is_directory=True)
    errors = _errors(dataset)
    assert errors["laion/00000/loop.jpg"] == "symbolic link loop"
    assert errors["laion/00000/gone.jpg"].startswith("broken symbolic link")
    assert "loop" in errors["laion/00000/up"]
    keys = scan(dataset).by_key()
    assert "laion/00000/again.jpg" in keys and keys["laion/00000/again.jpg"].label == "real"


def test_a_fifo_is_an_error_not_a_hang(dataset: Path) -> None:
    import os
    import threading

    os.mkfifo(dataset / "evaluation_sets/gigagan/extra_reasoning.json")
    os.mkfifo(dataset / "laion/laion_reasoning.json.fifo_reasoning.json")
    os.mkfifo(dataset / "laion/00000/pipe.png")
    result: list[dict[str, str]] = []
    worker = threading.Thread(target=lambda: result.append(_errors(dataset)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "validate blocked on a FIFO"
    errors = result[0]
    for key in ("evaluation_sets/gigagan/extra_reasoning.json", "laion/laion_reasoning.json.fifo_reasoning.json",
                "laion/00000/pipe.png"):
        assert errors[key] == "not a regular file (a FIFO)", key


def test_overlong_attribute_texts_and_captions_are_errors(dataset: Path) -> None:
    path = dataset / "laion/laion_reasoning.json"
    mapping = json.loads(path.read_text())
    mapping["laion/00000/000000000.jpg"]["High Image Quality"] = "x" * 5000
    path.write_text(json.dumps(mapping))
    write_json(dataset / "captions.json", {"laion/00000/000000001.jpg": "y" * 5000})
    errors = _errors(dataset)
    assert "is 5000 characters long (at most 4000)" in errors["laion/laion_reasoning.json"]
    assert "caption is 5000 characters long" in errors["captions.json"]
