"""The data account: what a command uses of a dataset against what it holds, and the share it refuses at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import released_layout, write_image

from fakereasoning.data.account import DataAccount, DataRefused, charge_problems, evaluation_problems
from fakereasoning.data.mmfr import ImageRecord, scan


def _record(key: str, label: str, set_name: str) -> ImageRecord:
    return ImageRecord(key, Path(key), label, "train", set_name)  # type: ignore[arg-type]


def test_rows_totals_and_the_refusal_line() -> None:
    account = DataAccount("training", "/d", allowed=0.25)
    for i in range(3):
        account.use(_record(f"p/0_real/{i}.png", "real", "p"))
    account.skip("p/1_fake/x.png", "p/1_fake/x.png: does not decode: empty file", "does not decode", "p", "fake")
    assert account.found == 4 and account.share == 0.25
    assert account.rows() == {"p": {"real": {"found": 3, "usable": 3, "skipped": 0},
                                    "fake": {"found": 1, "usable": 0, "skipped": 1}}}
    account.check("train")  # exactly the allowed share
    account.skip("cot.json entry 4", "cot.json entry 4: missing image", "unusable conversation", "cot.json")
    with pytest.raises(DataRefused) as info:
        account.check("train")
    assert str(info.value) == (
        "/d: refusing to train: 2 of 5 items of the training data would be skipped (40.0%) (more than "
        "--allow-skipped 0.25): does not decode: 1 (e.g. p/1_fake/x.png: does not decode: empty file); "
        "unusable conversation: 1 (e.g. cot.json entry 4: missing image). Fix the data (`fakereasoning data "
        "validate` lists every problem) or pass --allow-skipped FRACTION")
    assert account.to_dict()["reasons"] == {"does not decode": 1, "unusable conversation": 1}


def test_nothing_usable_is_refused_even_when_everything_may_be_skipped() -> None:
    with pytest.raises(DataRefused, match="0 of 0 items .*the dataset holds no usable image"):
        DataAccount("evaluation", "/d", allowed=1.0).check("evaluate")


def test_each_error_is_charged_to_the_image_it_concerns(tmp_path: Path) -> None:
    root = released_layout(tmp_path / "d")
    path = root / "laion/laion_reasoning.json"
    mapping = json.loads(path.read_text())
    mapping["laion/00000/000000001.jpg"] = ["not", "an", "object"]
    mapping["laion/00000/missing.jpg"] = {"High Image Quality": "sharp"}
    path.write_text(json.dumps(mapping))
    write_image(root / "evaluation_sets/gigagan/real/x.png")  # a set's bad label folder: not training's
    index = scan(root)
    account = DataAccount("training", str(root))
    charged = charge_problems(index, [p for p in index.problems if not p.path.startswith("evaluation_sets")],
                              index.train, account, "train")
    assert charged == {"laion/00000/000000001.jpg"}
    by_item = {s.item: s for s in account.skips}
    assert by_item["laion/00000/000000001.jpg"].label == "real"
    assert "expected an object of attribute -> text" in by_item["laion/00000/000000001.jpg"].reason
    assert "missing image" in by_item["laion/laion_reasoning.json"].reason  # a key naming no image: its own item
    evaluation = DataAccount("evaluation", str(root))
    records = index.evaluation_sets["gigagan"]
    charge_problems(index, evaluation_problems(index, ["gigagan"]), records, evaluation, "eval")
    assert [(s.item, s.kind, s.set) for s in evaluation.skips] == [
        ("evaluation_sets/gigagan/real/x.png", "label unknown", "gigagan")]
