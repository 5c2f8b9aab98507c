"""`data merge`: every training part and evaluation set of the sources under one root, clashes refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmfr_factory import released_layout, separable_dataset, write_json

from fakereasoning.cli import main
from fakereasoning.data.merge import merge
from fakereasoning.data.mmfr import scan
from fakereasoning.errors import DatasetError


def test_merged_root_holds_both_datasets_with_their_annotations(tmp_path: Path) -> None:
    a = released_layout(tmp_path / "a")
    b = separable_dataset(tmp_path / "b", n_train=3, n_eval=2, sets=("x", "y"))
    write_json(b / "manifest.json", {"preset": "toy", "generators": [{"name": "x", "in_training": True},
                                                                     {"name": "y", "in_training": False}]})
    manifest = merge(tmp_path / "m", [a, b], progress=False)
    merged, ia, ib = scan(tmp_path / "m"), scan(a), scan(b)
    assert not [p for p in merged.problems if p.severity == "error"]
    assert len(merged.train) == len(ia.train) + len(ib.train)
    assert set(merged.evaluation_sets) == set(ia.evaluation_sets) | set(ib.evaluation_sets)
    want = {r.key: (r.label, r.attributes) for idx in (ia, ib) for r in idx.records()}
    assert {r.key: (r.label, r.attributes) for r in merged.records()} == want
    cot = json.loads((tmp_path / "m/forgery_reasoning_cot.json").read_text())
    assert manifest["conversations"] == len(cot) == len(merged.train)
    assert {(g["name"], g["in_training"]) for g in manifest["generators"]} == {("x", True), ("y", False)}
    assert main(["data", "validate", str(tmp_path / "m"), "--json"]) == 0


def test_a_clashing_name_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    a = released_layout(tmp_path / "a")
    b = released_layout(tmp_path / "b")
    with pytest.raises(DatasetError, match="in both"):
        merge(tmp_path / "m", [a, b], progress=False)
    assert not (tmp_path / "m").exists()
