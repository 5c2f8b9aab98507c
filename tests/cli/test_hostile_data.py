"""The hostile-dataset sweep of issue 22: every broken variant, with and without the conversations file,
through `data validate`, `data to-cot`, `train` and `evaluate`. Each command gives a correct result or a
one-line error naming the file; none exits 0 having skipped more than the allowed share; no image is
ever trained under a label its folder does not give."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mmfr_factory import separable_dataset, write_image

from fakereasoning import infer
from fakereasoning.cli import main
from fakereasoning.data.mmfr import COT_FILE
from fakereasoning.schema import Verdict, fast_answer, format_cot, parse_cot
from fakereasoning.train import trainer

HUGE = "9" * 5000
PART_JSON = "part/part_reasoning.json"


def _conversation(image: str, label: str) -> dict[str, Any]:
    answer = format_cot(label, {}, "A picture.")  # type: ignore[arg-type]
    return {"image": image, "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": answer}]}


def mismatched_cot(root: Path) -> None:
    """The issue's case: conversations for 2 of the images (one concluding the wrong label), 11 for none."""
    entries = [_conversation("part/0_real/r0.png", "real"), _conversation("part/1_fake/f1.png", "real")]
    (root / COT_FILE).write_text(json.dumps(entries + [_conversation(f"gone/0_real/x{i}.png", "real")
                                                       for i in range(11)]))


def huge_integer(root: Path) -> None:
    (root / PART_JSON).write_text('{"part/0_real/r0.png": {"High Image Quality": ' + HUGE + "}}")


def malformed_json(root: Path) -> None:
    (root / PART_JSON).write_text('{"part/0_real/r0.png": ')


def json_of_wrong_type(root: Path) -> None:
    (root / PART_JSON).write_text("[1, 2, 3]")


def annotation_of_wrong_type(root: Path) -> None:
    mapping = json.loads((root / PART_JSON).read_text())
    mapping["part/1_fake/f2.png"] = "pixels repeat"
    (root / PART_JSON).write_text(json.dumps(mapping))


def symlinked_evaluation_sets(root: Path) -> None:
    outside = root.parent / "outside"
    shutil.move(root / "evaluation_sets", outside)
    (root / "evaluation_sets").symlink_to(outside)


def bad_label_folder_in_training(root: Path) -> None:
    write_image(root / "part/2_fake/g0.png")


def bad_label_folder_in_evaluation(root: Path) -> None:
    write_image(root / "evaluation_sets/a/fake/g0.png")


def unreadable_training_image(root: Path) -> None:
    (root / "part/0_real/r3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def unreadable_evaluation_image(root: Path) -> None:
    (root / "evaluation_sets/b/1_fake/f1.png").write_bytes(b"")


def malformed_evaluation_json(root: Path) -> None:
    (root / "evaluation_sets/a/a_reasoning.json").write_text("{nope")


# variant -> (how to break the dataset, the file every refusal must name)
VARIANTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "mismatched-cot": (mismatched_cot, COT_FILE),
    "huge-integer-in-part-json": (huge_integer, PART_JSON),
    "malformed-part-json": (malformed_json, PART_JSON),
    "part-json-of-wrong-type": (json_of_wrong_type, PART_JSON),
    "annotation-of-wrong-type": (annotation_of_wrong_type, "part/1_fake/f2.png"),
    "symlinked-evaluation-sets": (symlinked_evaluation_sets, "evaluation_sets"),
    "bad-label-folder-in-training": (bad_label_folder_in_training, "part/2_fake"),
    "bad-label-folder-in-evaluation": (bad_label_folder_in_evaluation, "evaluation_sets/a/fake"),
    "unreadable-training-image": (unreadable_training_image, "part/0_real/r3.png"),
    "unreadable-evaluation-image": (unreadable_evaluation_image, "evaluation_sets/b/1_fake/f1.png"),
    "malformed-evaluation-json": (malformed_evaluation_json, "evaluation_sets/a/a_reasoning.json"),
}


class Constant:
    """Stands in for the model in `evaluate`: the sweep is about data, not scores."""

    model_id = "constant"

    def detect_many(self, images: list[Any], mode: str = "fast", **_: Any) -> list[Verdict]:
        return [Verdict.from_answer("x", 0.7, fast_answer("fake"), model_id=self.model_id) for _ in images]


class Accepted(Exception):  # noqa: N818 - a signal, not an error: train would go on to build the model
    pass


@pytest.fixture()
def sweep(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`train` stops where the model would be built (recording its examples); `evaluate` scores with
    `Constant` instead of loading a model."""
    seen: list[Any] = []

    def build(cfg: Any, train: list[Any], *_: Any) -> None:
        seen.append(train)
        raise Accepted

    monkeypatch.setattr(trainer, "_build_model", build)
    monkeypatch.setattr(infer, "load_model", lambda *_, **__: Constant())
    return seen


def _one_line_error_naming(err: str, root: Path, name: str) -> None:
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fakereasoning: error: ") and name in last and str(root) in last, last


def _folder_label(key: str) -> str:
    return "real" if "/0_real/" in key else "fake"


@pytest.mark.parametrize("with_cot", [True, False], ids=["with-cot", "without-cot"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_command_is_right_or_names_the_file(variant: str, with_cot: bool, tmp_path: Path, sweep: list[Any],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = separable_dataset(tmp_path / "d", n_train=6, n_eval=3, sets=("a", "b"))
    if not with_cot:
        (root / COT_FILE).unlink()
    breaks, name = VARIANTS[variant]
    breaks(root)
    if not with_cot:
        (root / COT_FILE).unlink(missing_ok=True)
    capsys.readouterr()

    # data validate: finds it (the mismatched conversations are gone without the file)
    code = main(["data", "validate", str(root)])
    out = capsys.readouterr().out
    broken = with_cot or variant != "mismatched-cot"
    assert code == (1 if broken else 0) and (name in out or not broken)

    # data to-cot: conversations true to the folders, or a refusal naming the file
    cot = tmp_path / "cot.json"
    code = main(["data", "to-cot", str(root), "--out", str(cot)])
    captured = capsys.readouterr()
    if code == 0:
        for entry in json.loads(cot.read_text()):
            assert parse_cot(entry["conversations"][1]["value"]).label == _folder_label(entry["image"])
    else:
        assert name in captured.err and "Traceback" not in captured.err

    # train: accepted (every example labelled by its folder, within the allowed share) or refused by name
    try:
        code = main(["train", "--data", str(root), "--output", str(tmp_path / "run")])
    except Accepted:
        code = 0
    err = capsys.readouterr().err
    if code == 0:
        examples = sweep[-1]
        assert examples and all(e.label == _folder_label(e.image) for e in examples)
        assert " 0 skipped (0.0%" in err  # this tiny set allows no skip at 1%
    else:
        _one_line_error_naming(err, root, name)

    # evaluate: whole sets scored, or refused by name
    out_dir = tmp_path / "eval"
    code = main(["evaluate", "--data", str(root), "--out", str(out_dir), "--bootstrap", "0"])
    err = capsys.readouterr().err
    if code == 0:
        data = json.loads((out_dir / "metrics.json").read_text())["data"]
        assert data["skipped"] == 0 and data["usable"] == 12
    else:
        _one_line_error_naming(err, root, name)

    assert (bool(sweep), code == 0) == EXPECTED[variant][0 if with_cot else 1], "outcome changed"


# variant -> ((train accepted, evaluate succeeded) with the conversations file, and without it)
OK, REFUSED = True, False
EXPECTED: dict[str, tuple[tuple[bool, bool], tuple[bool, bool]]] = {
    "mismatched-cot": ((REFUSED, OK), (OK, OK)),  # without the file, the tree is valid
    "huge-integer-in-part-json": ((OK, OK), (REFUSED, OK)),  # with it, the conversations carry the text
    "malformed-part-json": ((OK, OK), (REFUSED, OK)),
    "part-json-of-wrong-type": ((OK, OK), (REFUSED, OK)),
    "annotation-of-wrong-type": ((OK, OK), (REFUSED, OK)),
    "symlinked-evaluation-sets": ((OK, REFUSED), (OK, REFUSED)),
    "bad-label-folder-in-training": ((REFUSED, OK), (REFUSED, OK)),
    "bad-label-folder-in-evaluation": ((OK, REFUSED), (OK, REFUSED)),
    "unreadable-training-image": ((REFUSED, OK), (REFUSED, OK)),
    "unreadable-evaluation-image": ((OK, REFUSED), (OK, REFUSED)),
    "malformed-evaluation-json": ((OK, OK), (OK, OK)),  # fast mode scores no reference (a note names it)
}


def test_the_issue_s_tree_through_the_cli_trains_only_what_its_folders_say(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """No stand-ins: the mismatched tree is refused; allowed to skip, it trains on the one consistent
    image and train_summary.json names every skip."""
    root = separable_dataset(tmp_path / "d", n_train=24, n_eval=2, sets=("a",))
    mismatched_cot(root)
    small = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.ffn_dim=64", "model.facl_dim=16",
             "optim.batch_size=2", "model.forensic_crops=1", "data.val_fraction=0"]
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--output", str(out), "--max-steps", "1", *small]) == 1
    err = capsys.readouterr().err
    _one_line_error_naming(err, root, COT_FILE)
    assert "59 of 59 items" not in err and "58 of 59 items" in err  # 48 images + 11 conversations naming none
    assert main(["train", "--data", str(root), "--output", str(out), "--max-steps", "1", "--allow-skipped", "1",
                 *small]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["train_images"] == 1 and summary["data"]["usable"] == 1 and summary["data"]["skipped"] == 58
    skipped = {s["item"]: s["reason"] for s in summary["data"]["skips"]}
    assert "concludes real but part/1_fake/f1.png is fake" in skipped["part/1_fake/f1.png"]
    assert skipped[f"{COT_FILE} entry 2"].startswith(f"{COT_FILE} entry 2: image 'gone/0_real/x0.png'")
