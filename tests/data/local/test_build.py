"""MMFR-Local builder: layout, validation, no shortcuts, split by source, manifest, resume, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from fakereasoning.cli import main
from fakereasoning.data.local import PRESETS, build_local
from fakereasoning.data.local.build import STATE_DIR, STATE_FILE, TRAIN_PART, crop, finish, split_sources
from fakereasoning.data.local.generators import FAMILIES, TRAINING_FAMILIES
from fakereasoning.data.mmfr import scan, validate
from fakereasoning.schema import ATTRIBUTES_OF_LABEL


@pytest.fixture(scope="module")
def manifest(local_tiny_dataset: Path) -> dict:
    return json.loads((local_tiny_dataset / "manifest.json").read_text())


def test_tiny_build_passes_validation(local_tiny_dataset: Path) -> None:
    report = validate(local_tiny_dataset)
    assert report.ok, report.to_dict()
    index = scan(local_tiny_dataset)
    assert len(index.train) == PRESETS["tiny"].train_real * 2
    assert set(index.evaluation_sets) == set(FAMILIES)


def test_train_one_test_many_layout(local_tiny_dataset: Path, manifest: dict) -> None:
    fake_dirs = {p.name for p in (local_tiny_dataset / TRAIN_PART / "1_fake").iterdir()}
    assert fake_dirs == set(TRAINING_FAMILIES)
    assert 2 <= len(TRAINING_FAMILIES) <= 3 and len(FAMILIES) - len(TRAINING_FAMILIES) >= 3
    for family in FAMILIES:
        real = list((local_tiny_dataset / "evaluation_sets" / family / "0_real").glob("*.png"))
        fake = list((local_tiny_dataset / "evaluation_sets" / family / "1_fake").glob("*.png"))
        assert len(real) == len(fake) == PRESETS["tiny"].eval_per_class
    gens = {g["name"]: g for g in manifest["generators"]}
    assert set(gens) == set(FAMILIES)
    assert {n for n, g in gens.items() if g["in_training"]} == set(TRAINING_FAMILIES)
    assert all(g["psnr_mean"] is not None and g["sharpness_fake_mean"] is not None for g in gens.values())


def test_split_is_by_source_photo(manifest: dict) -> None:
    train = {im["source"] for im in manifest["images"] if im["split"] == "train"}
    evals = {im["source"] for im in manifest["images"] if im["split"] == "eval"}
    assert train and evals and not (train & evals)
    ids = [f"p{i}" for i in range(20)]
    a, b = split_sources(ids, PRESETS["standard"], seed=3)
    assert sorted(a + b) == sorted(ids) and not set(a) & set(b)
    assert (a, b) == split_sources(list(reversed(ids)), PRESETS["standard"], seed=3)


def test_no_format_or_size_shortcut(local_tiny_dataset: Path, manifest: dict) -> None:
    sizes, formats, info_keys = set(), set(), set()
    for im in manifest["images"]:
        with Image.open(local_tiny_dataset / im["path"]) as img:
            sizes.add(img.size)
            formats.add(img.format)
            info_keys |= set(img.info) - {"dpi"}
    assert sizes == {(64, 64)} and formats == {"PNG"} and not info_keys


def test_manifest_records_every_image(local_tiny_dataset: Path, manifest: dict) -> None:
    assert manifest["preset"] == "tiny" and manifest["seed"] == 0
    assert {"id", "file", "license", "description"} <= set(manifest["sources"][0])
    on_disk = {p.relative_to(local_tiny_dataset).as_posix() for p in local_tiny_dataset.rglob("*.png")}
    listed = {im["path"] for im in manifest["images"]}
    assert on_disk == listed
    for im in manifest["images"][:: max(1, len(manifest["images"]) // 12)]:
        digest = hashlib.sha256((local_tiny_dataset / im["path"]).read_bytes()).hexdigest()
        assert digest == im["sha256"]
        assert (im["generator"] is None) == (im["label"] == "real")
        if im["split"] == "eval" and im["label"] == "fake":
            assert im["generator"] == im["set"]


def test_annotations_captions_and_conversations(local_tiny_dataset: Path, manifest: dict) -> None:
    index = scan(local_tiny_dataset)
    for record in index.train + [r for rs in index.evaluation_sets.values() for r in rs]:
        assert record.attributes is not None, record.key
        assert set(record.attributes) == set(ATTRIBUTES_OF_LABEL[record.label])
        assert any(record.attributes.values())
        assert record.caption
    captions = json.loads((local_tiny_dataset / "captions.json").read_text())
    assert set(captions) == {im["path"] for im in manifest["images"]}
    cot = json.loads((local_tiny_dataset / "forgery_reasoning_cot.json").read_text())
    assert len(cot) == len(index.train)
    assert {c["image"] for c in cot} == {r.key for r in index.train}


def test_same_pipeline_for_both_classes() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    out = crop(photo, (128, 10, 20, True), 64)
    assert out.shape == (64, 64, 3)
    png = finish(out, jpeg=80)
    with Image.open(__import__("io").BytesIO(png)) as img:
        assert img.format == "PNG" and img.size == (64, 64)
    assert finish(out, None) != png  # the JPEG round trip changed pixels, the container did not


def test_resume_after_interruption_gives_identical_dataset(local_tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    cache = local_tiny_dataset.parent / "cache"
    out = tmp_path / "copy"
    shutil.copytree(local_tiny_dataset, out)
    before = json.loads((out / "manifest.json").read_text())
    # simulate a kill: images lost, manifest not yet written, a state line cut in half, a stray temp file
    removed = [im["path"] for im in before["images"][::7]]
    for rel in removed:
        (out / rel).unlink()
    (out / "manifest.json").unlink()
    state = out / STATE_DIR / STATE_FILE
    lines = state.read_text().splitlines()
    state.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:20])
    rc = main(["data", "build-local", str(out), "--preset", "tiny", "--cache", str(cache), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["counts"]["train"] == PRESETS["tiny"].train_real * 2
    after = json.loads((out / "manifest.json").read_text())
    assert [(i["path"], i["sha256"]) for i in after["images"]] == [(i["path"], i["sha256"]) for i in before["images"]]
    assert (out / "local_train" / "local_train_reasoning.json").read_text() == (
        local_tiny_dataset / "local_train" / "local_train_reasoning.json"
    ).read_text()
    assert not list(out.rglob("*.tmp"))


def test_cli_rejects_bad_preset(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "build-local", "/tmp/x", "--preset", "huge"])
    assert exc.value.code == 2


def test_taef2_family_is_added_as_an_unseen_evaluation_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taef2_factory import taef2_weights

    weights = taef2_weights(tmp_path / "w", monkeypatch)
    out = tmp_path / "local"
    result = build_local(out, preset="tiny", seed=0, cache=tmp_path / "cache", progress=False, log=lambda _m: None,
                         taef2=weights)
    index = scan(out)
    assert "taef2" in index.evaluation_sets
    recs = index.evaluation_sets["taef2"]
    assert sum(r.label == "fake" for r in recs) == sum(r.label == "real" for r in recs) == PRESETS["tiny"].eval_per_class
    gen = {g["name"]: g for g in result.manifest["generators"]}["taef2"]
    assert gen["in_training"] is False and gen["psnr_mean"] is not None
    assert validate(out).ok
