"""Layout adapters: each layout's tiny tree gives exact counts; detection, forcing, and checked paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from layout_factory import forensynths, genimage, image_list, plain_folders, synthbuster
from mmfr_factory import released_layout, write_image

from fakereasoning.data.layouts import LAYOUTS, detect_layout, load_dataset
from fakereasoning.errors import DatasetError


def counts(ds) -> dict[str, tuple[int, int]]:
    """set -> (real, fake) of the evaluation sets, plus "<train>" for the training split."""
    out = {name: (sum(r.label == "real" for r in recs), sum(r.label == "fake" for r in recs))
           for name, recs in ds.index.evaluation_sets.items()}
    if ds.index.train:
        out["<train>"] = (sum(r.label == "real" for r in ds.index.train), sum(r.label == "fake" for r in ds.index.train))
    return out


def test_mmfr_as_today(tmp_path: Path) -> None:
    ds = load_dataset(released_layout(tmp_path / "d"))
    assert ds.layout == "mmfr" and ds.detected
    assert counts(ds) == {"stablediffusion": (2, 2), "gigagan": (1, 1), "<train>": (2, 3)}
    assert {r.set for r in ds.index.train} == {"diffusiondb", "laion"}
    assert all(r.attributes for r in ds.index.records())


def test_genimage(tmp_path: Path) -> None:
    ds = load_dataset(genimage(tmp_path / "g"))
    assert ds.layout == "genimage"
    assert counts(ds) == {"sdv14": (2, 2), "midjourney": (2, 2), "<train>": (6, 6)}
    assert {r.set for r in ds.index.train} == {"sdv14", "midjourney"}
    assert all(r.split == "train" and "/train/" in r.key for r in ds.index.train)
    assert "genimage layout (detected" in ds.describe() and "2 evaluation sets" in ds.describe()


def test_genimage_with_a_wrapper_folder(tmp_path: Path) -> None:
    root = tmp_path / "g"
    genimage(root / "sd14", gens=("imagenet_ai_0419_sdv4",), n_train=1, n_val=1)  # sd14/imagenet_.../train/ai
    ds = load_dataset(root)
    assert counts(ds) == {"sd14": (1, 1), "<train>": (1, 1)}


def test_forensynths_merges_classes(tmp_path: Path) -> None:
    ds = load_dataset(forensynths(tmp_path / "f"))
    assert ds.layout == "forensynths"
    assert counts(ds) == {"progan": (4, 4), "deepfake": (1, 3)}


def test_synthbuster_pairs_every_generator_with_the_reals(tmp_path: Path) -> None:
    ds = load_dataset(synthbuster(tmp_path / "s"))
    assert ds.layout == "synthbuster"
    assert counts(ds) == {"dalle3": (3, 2), "glide": (3, 1)}
    reals = {r.key for r in ds.index.evaluation_sets["glide"] if r.label == "real"}
    assert reals == {"RAISE-1k/r0.png", "RAISE-1k/r1.png", "RAISE-1k/r2.png"}


@pytest.mark.parametrize("names", [("real", "fake"), ("0_real", "1_fake")])
def test_plain_folders_one_set_named_after_root(tmp_path: Path, names: tuple[str, str]) -> None:
    ds = load_dataset(plain_folders(tmp_path / "chameleon", names=names))
    assert ds.layout == "folders" and counts(ds) == {"chameleon": (2, 3)}


def test_plain_folders_with_set_folders(tmp_path: Path) -> None:
    plain_folders(tmp_path / "w/reddit", 1, 2)
    plain_folders(tmp_path / "w/twitter", 2, 1)
    ds = load_dataset(tmp_path / "w")
    assert ds.layout == "folders" and counts(ds) == {"reddit": (1, 2), "twitter": (2, 1)}


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_list(tmp_path: Path, kind: str) -> None:
    ds = load_dataset(image_list(tmp_path, kind))
    assert ds.layout == "list"
    assert counts(ds) == {"a": (1, 1), "b": (1, 1)}
    assert ds.index.evaluation_sets["a"][0].key == "imgs/r0.png"


def test_list_without_header_set_or_split_defaults(tmp_path: Path) -> None:
    write_image(tmp_path / "x/a.png", 1)
    write_image(tmp_path / "x/b.png", 2)
    (tmp_path / "mine.csv").write_text("x/a.png,0\nx/b.png,fake,,train\n")
    ds = load_dataset(tmp_path / "mine.csv")
    assert counts(ds) == {"mine": (1, 0), "<train>": (0, 1)}


def test_list_jsonl_attributes_become_annotations(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 1)
    row = {"path": "a.png", "label": "fake", "split": "train", "attributes": {"Anomalous Image Texture": "grid"}}
    (tmp_path / "l.jsonl").write_text(json.dumps(row) + "\n")
    ds = load_dataset(tmp_path / "l.jsonl")
    assert ds.index.train[0].attributes == {"Anomalous Image Texture": "grid"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("../outside.png,real\n", "escapes its root"),
        ("missing.png,real\n", "line 1: 'missing.png': no such file"),
        ("a.png,maybe\n", "line 1: label 'maybe' is not real/fake/0/1"),
        ("a.png,real,s,holdout\n", "split 'holdout'"),
        ("notes.txt,real\n", "not an image file"),
    ],
)
def test_list_bad_rows_are_one_line_errors_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    write_image(tmp_path / "d/a.png", 1)
    (tmp_path / "d/notes.txt").write_text("x")
    write_image(tmp_path / "outside.png", 2)
    (tmp_path / "d/l.csv").write_text(text)
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "d/l.csv")
    msg = str(info.value)
    assert message in msg and str(tmp_path / "d/l.csv") in msg and "\n" not in msg


def test_list_absolute_paths_need_the_flag(tmp_path: Path) -> None:
    img = write_image(tmp_path / "elsewhere/a.png", 1)
    (tmp_path / "d").mkdir()
    (tmp_path / "d/l.csv").write_text(f"{img},fake\n")
    with pytest.raises(DatasetError, match="--allow-absolute-paths"):
        load_dataset(tmp_path / "d/l.csv")
    ds = load_dataset(tmp_path / "d/l.csv", allow_absolute=True)
    assert counts(ds) == {"l": (0, 1)} and ds.index.evaluation_sets["l"][0].path == img


def test_list_jsonl_malformed_line(tmp_path: Path) -> None:
    (tmp_path / "l.jsonl").write_text('{"path": "a.png", "label": "real"\n')
    with pytest.raises(DatasetError, match=r"l\.jsonl: line 1: malformed JSON"):
        load_dataset(tmp_path / "l.jsonl")
    report = load_dataset(tmp_path / "l.jsonl", collect=True)
    assert [p.severity for p in report.problems] == ["error"]


def test_forcing_and_unknown_layouts(tmp_path: Path) -> None:
    root = forensynths(tmp_path / "f")
    forced = load_dataset(root, layout="folders")  # <gen>/{0_real,1_fake} reads as set folders too
    assert not forced.detected and "forced with --layout" in forced.describe()
    assert counts(forced) == {"deepfake": (1, 3)}  # progan's class level is not a folders layout
    with pytest.raises(DatasetError, match="unknown layout 'imagenet'; expected one of: mmfr, list"):
        load_dataset(root, layout="imagenet")
    (tmp_path / "junk/a/b").mkdir(parents=True)
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "junk")
    msg = str(info.value)
    assert "unknown dataset layout" in msg and "\n" not in msg
    assert all(name in msg for name in LAYOUTS) and "<gen>/{train,val}/{ai,nature}" in msg
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    assert detect_layout(tmp_path / "junk") is None


def test_symlink_escaping_the_root_is_an_error_naming_it(tmp_path: Path) -> None:
    root = plain_folders(tmp_path / "d")
    secret = write_image(tmp_path / "secret.png", 5)
    os.symlink(secret, root / "fake/leak.png")
    with pytest.raises(DatasetError, match=r"fake/leak\.png: symbolic link resolves outside"):
        load_dataset(root)


def test_symlinked_set_folder_outside_is_an_error_in_every_layout(tmp_path: Path) -> None:
    outside = plain_folders(tmp_path / "outside", names=("0_real", "1_fake"))
    g = genimage(tmp_path / "g", gens=("sdv14",), n_train=1, n_val=1)
    os.symlink(outside / "0_real", g / "sdv14/val/nature/more")
    with pytest.raises(DatasetError, match="more: symbolic link resolves outside"):
        load_dataset(g)
    m = released_layout(tmp_path / "m")
    os.symlink(outside, m / "evaluation_sets/leaked")
    # MMFR keeps its scanner's behaviour: the escaping set is an error problem naming it, and is not read
    index = load_dataset(m).index
    assert "leaked" not in index.evaluation_sets
    assert any(p.severity == "error" and "leaked" in p.path and "outside" in p.message for p in index.problems)


def test_links_inside_the_root_and_odd_files(tmp_path: Path) -> None:
    root = plain_folders(tmp_path / "d", real=1, fake=1)
    os.symlink(root / "real/r0.png", root / "real/again.png")  # a file link inside the root: read
    os.symlink(root / "fake", root / "real/loop")  # a folder link: not followed
    os.mkfifo(root / "fake/pipe.png")  # a FIFO: skipped, reported
    os.symlink(root / "gone.png", root / "fake/dangling.png")
    ds = load_dataset(root)
    assert counts(ds) == {"d": (2, 1)}
    messages = {p.path: p.message for p in ds.problems}
    assert "not followed" in messages["real/loop"]
    assert "not a regular file" in messages["fake/pipe.png"]
    assert "broken symbolic link" in messages["fake/dangling.png"]


def test_in_training_from_a_manifest(tmp_path: Path) -> None:
    root = genimage(tmp_path / "g")
    (root / "manifest.json").write_text(json.dumps(
        {"evaluation_sets": [{"name": "sdv14", "in_training": True}, {"name": "midjourney", "in_training": False}]}))
    ds = load_dataset(root)
    assert ds.in_training == {"sdv14": True, "midjourney": False} and ds.in_training_source == "manifest.json"
