"""MMFR-Public builder: from a bare git repository made here (as `--mirror` expects) to the MMFR layout.

Covers: exact layout and counts, split by family with a group-safe balance, sha256 mismatch and missing
files reported by name while the rest builds, near-duplicates and reserved images dropped, a killed build
resuming to the same result, the shortcut audit, and the packaged manifest parsing completely.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from taef2_factory import taef2_weights

from fakereasoning.cli import main
from fakereasoning.data.mmfr import scan, validate
from fakereasoning.data.public import build as build_mod
from fakereasoning.data.public.build import build_public
from fakereasoning.data.public.dedup import image_hashes
from fakereasoning.data.public.manifest import (
    DEFAULT_MANIFEST,
    DEFAULT_SOURCES,
    ManifestRow,
    read_manifest,
    read_sources,
    write_manifest,
)
from fakereasoning.errors import DatasetError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to make the test snapshot")

REPO = "example/gallery"


def _image(seed: int, size: tuple[int, int], fmt: str, noise: float = 6.0) -> bytes:
    """A distinct picture per seed: smooth random blobs plus noise (distinct perceptual hashes). Reals get
    more noise than fakes, as camera photos do, so file size alone would tell them apart."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    arr = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A bare repository with fakes of three families and reals of two sources, at a pinned commit."""
    base = tmp_path_factory.mktemp("public")
    work = base / "work"
    work.mkdir()
    files: dict[str, tuple[bytes, str, str, str]] = {}  # path -> bytes, label, family, group
    seed = 0
    for family, n in (("sdxl", 6), ("flux", 4), ("gemini", 4), ("midjourney", 4)):
        for i in range(n):
            seed += 1
            files[f"fakes/{family}/{i}.png"] = (_image(seed, (320, 288), "PNG", noise=1.0 + i), "fake", family, f"{family}-p{i // 2}")
    for source, n in (("train_photos", 8), ("eval_photos", 10)):
        for i in range(n):
            seed += 1
            files[f"{source}/{i}.jpg"] = (_image(seed, (300, 300), "JPEG", noise=4.0 + i), "real", "real", f"{source}-{i}")
    # a grid of two 256 px tiles, and a near-duplicate (re-encoded copy) of one fake
    seed += 1
    files["fakes/sdxl/grid.png"] = (_image(seed, (512, 256), "PNG"), "fake", "sdxl", "grid")
    dup = Image.open(io.BytesIO(files["fakes/flux/0.png"][0]))
    buf = io.BytesIO()
    dup.save(buf, format="JPEG", quality=95)
    files["fakes/flux/0_copy.jpg"] = (buf.getvalue(), "fake", "flux", "flux-copy")
    for path, (data, *_rest) in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "images", cwd=work)
    commit = _git("rev-parse", "HEAD", cwd=work)
    mirror = base / "mirror"
    _git("clone", "-q", "--bare", str(work), str(mirror / REPO.replace("/", "+") / "repo"), cwd=base)
    rows = []
    for path, (data, label, family, group) in files.items():
        w, h = Image.open(io.BytesIO(data)).size
        regions = [(0, 0, 256, 256), (256, 0, 256, 256)] if path.endswith("grid.png") else [None]
        for region in regions:
            rows.append(ManifestRow(REPO, commit, path, hashlib.sha256(data).hexdigest(), len(data), w, h, label,
                                    "camera" if label == "real" else family, family, group,
                                    "photo", f"folder {path.rsplit('/', 1)[0]}", region))
    write_manifest(base / "manifest.tsv", rows)
    (base / "sources.json").write_text(json.dumps([{
        "repo": REPO, "commit": commit, "license": "CC0-1.0", "license_evidence": "test", "kind": "mixed",
        "description": "test gallery"}]))
    (base / "splits.json").write_text(json.dumps({
        "held_out": {"gemini": ["gemini"], "midjourney": ["midjourney"]},
        "calibration": {"calib_flux": ["flux"]},
        "eval_real_sources": [f"{REPO}:eval_photos/"],
        "eval_per_class": 3,
        "train_fake_crops_per_family": 8,
        "max_crops_per_fake": 2,
        "max_crops_per_real": 2,
        "balance_bytes": False,
    }))
    # the reserved list holds one real evaluation photo (by perceptual hash) and one fake (by sha256)
    reserved_img = Image.open(io.BytesIO(files["eval_photos/9.jpg"][0])).convert("RGB")
    h = image_hashes(reserved_img)
    (base / "reserved.tsv").write_text(
        "# test list\nsha256\tphash\tdhash\n"
        f"{'0' * 64}\t{h.phash:016x}\t{h.dhash:016x}\n"
        f"{hashlib.sha256(files['fakes/gemini/3.png'][0]).hexdigest()}\t0000000000000000\tffffffffffffffff\n")
    return {"base": base, "mirror": mirror, "commit": commit, "files": files}


def _build(snapshot: dict, out: Path, **kwargs) -> dict:
    base = snapshot["base"]
    return build_public(out, mirror=snapshot["mirror"], manifest=base / "manifest.tsv", sources=base / "sources.json",
                        splits=base / "splits.json", reserved=base / "reserved.tsv", progress=False,
                        log=kwargs.pop("log", lambda _m: None), **kwargs)


@pytest.fixture(scope="module")
def built(snapshot: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("built") / "mmfr_public"
    return out, _build(snapshot, out)


def test_layout_counts_and_validation(built: tuple[Path, dict]) -> None:
    out, summary = built
    report = validate(out)
    assert report.ok, [str(p) for p in report.problems]
    index = scan(out)
    assert set(index.evaluation_sets) == {"gemini", "midjourney", "calib_flux"}
    # gemini: 4 fakes, one reserved -> 3 (= eval_per_class); midjourney 3 of 4; flux: 4 minus the copy's cluster
    for name in ("gemini", "midjourney"):
        recs = index.evaluation_sets[name]
        assert sum(r.label == "fake" for r in recs) == 3
        assert sum(r.label == "real" for r in recs) == 3
    # training: only sdxl fakes (6 images x 2 crops capped at 8, plus 2 tiles x 1 crop) and train reals
    train = index.train
    fakes = [r for r in train if r.label == "fake"]
    assert {Path(r.key).parts[2] for r in fakes} == {"sdxl"}
    assert len(fakes) == 8
    assert sum(r.label == "real" for r in train) == 8
    for r in index.train + [x for recs in index.evaluation_sets.values() for x in recs]:
        with Image.open(r.path) as img:
            assert img.size == (256, 256) and img.format == "PNG"
            assert not img.info.get("parameters") and "exif" not in img.info
    assert summary["counts"] == {"train": 16, "train_real": 8, "train_fake": 8, "eval": len(
        [x for recs in index.evaluation_sets.values() for x in recs])}


def test_no_picture_on_both_sides_and_reals_disjoint(built: tuple[Path, dict]) -> None:
    out, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    sides: dict[str, set[str]] = {}
    for im in manifest["images"]:
        sides.setdefault(im["source_sha256"], set()).add(im["set"])
        if im["label"] == "real":
            expected = "eval_photos/" if im["split"] == "eval" else "train_photos/"
            assert im["source_path"].startswith(expected)
    assert all(len(s) == 1 for s in sides.values())
    assert {s["name"]: s["in_training"] for s in manifest["evaluation_sets"]} == {
        "gemini": False, "midjourney": False, "calib_flux": False}
    assert {s["name"]: s["role"] for s in manifest["evaluation_sets"]}["calib_flux"] == "calibration"
    assert manifest["sources"][0]["license"] == "CC0-1.0"


def test_reserved_and_duplicates_dropped(built: tuple[Path, dict], snapshot: dict) -> None:
    out, summary = built
    assert summary["dropped"]["reserved"] == 2
    assert summary["dropped"]["duplicate"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    used = {im["source_path"] for im in manifest["images"]}
    assert "eval_photos/9.jpg" not in used and "fakes/gemini/3.png" not in used
    assert not ({"fakes/flux/0.png", "fakes/flux/0_copy.jpg"} <= used)


def test_shortcut_audit_reported(built: tuple[Path, dict]) -> None:
    _, summary = built
    audit = summary["audit"]["all"]
    assert set(audit) >= {"auc", "features", "per_feature_auc", "n"}
    assert audit["n"] == summary["counts"]["train"] + summary["counts"]["eval"]
    assert 0.0 <= audit["auc"] <= 1.0


def test_file_size_balance_equalises_classes(snapshot: dict, built: tuple[Path, dict], tmp_path: Path) -> None:
    base = snapshot["base"]
    splits = json.loads((base / "splits.json").read_text())
    (tmp_path / "splits.json").write_text(json.dumps({**splits, "balance_bytes": True}))
    summary = build_public(tmp_path / "out", mirror=snapshot["mirror"], manifest=base / "manifest.tsv",
                           sources=base / "sources.json", splits=tmp_path / "splits.json",
                           reserved=base / "reserved.tsv", progress=False, log=lambda _m: None)
    unbalanced = built[1]
    assert summary["dropped"]["file-size balance"] > 0
    assert summary["counts"]["train_real"] == summary["counts"]["train_fake"]
    assert (summary["audit"]["all"]["per_feature_auc"]["log_bytes"]
            < unbalanced["audit"]["all"]["per_feature_auc"]["log_bytes"])
    assert validate(tmp_path / "out").ok
    left_out = list((tmp_path / "out" / ".build" / "left_out").rglob("*.png"))
    assert len(left_out) == summary["dropped"]["file-size balance"]
    # a rerun finds everything done: nothing is rewritten and the result is the same
    again = build_public(tmp_path / "out", mirror=snapshot["mirror"], manifest=base / "manifest.tsv",
                         sources=base / "sources.json", splits=tmp_path / "splits.json",
                         reserved=base / "reserved.tsv", progress=False, log=lambda _m: None)
    assert again["counts"] == summary["counts"]


def test_mismatch_and_missing_reported_by_name_rest_built(snapshot: dict, tmp_path: Path) -> None:
    base = snapshot["base"]
    rows = read_manifest(base / "manifest.tsv")
    bad = []
    for r in rows:
        if r.path == "train_photos/0.jpg":
            r = ManifestRow(**{**r.__dict__, "sha256": "f" * 64})
        bad.append(r)
    bad.append(ManifestRow(**{**rows[0].__dict__, "path": "fakes/sdxl/gone.png", "sha256": "e" * 64}))
    write_manifest(tmp_path / "manifest.tsv", bad)
    messages: list[str] = []
    summary = build_public(tmp_path / "out", mirror=snapshot["mirror"], manifest=tmp_path / "manifest.tsv",
                           sources=base / "sources.json", splits=base / "splits.json", reserved=base / "reserved.tsv",
                           progress=False, log=messages.append)
    assert summary["dropped"]["sha256 mismatch"] == 1 and summary["dropped"]["missing"] == 1
    assert any("train_photos/0.jpg" in m and "sha256" in m for m in messages)
    assert any("fakes/sdxl/gone.png" in m for m in messages)
    assert validate(tmp_path / "out").ok
    assert summary["counts"]["train_fake"] == 8


def test_killed_build_resumes_to_the_same_result(snapshot: dict, built: tuple[Path, dict], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    reference, _ = built
    out = tmp_path / "resumed"
    calls = {"n": 0}
    real_render = build_mod.render

    def dying_render(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(build_mod, "render", dying_render)
    with pytest.raises(KeyboardInterrupt):
        _build(snapshot, out)
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(build_mod, "render", real_render)
    _build(snapshot, out)
    ref = json.loads((reference / "manifest.json").read_text())["images"]
    got = json.loads((out / "manifest.json").read_text())["images"]
    assert sorted((i["path"], i["sha256"]) for i in got) == sorted((i["path"], i["sha256"]) for i in ref)


def test_cli_build_public(snapshot: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = snapshot["base"]
    code = main(["data", "build-public", str(tmp_path / "o"), "--mirror", str(snapshot["mirror"]),
                 "--manifest", str(base / "manifest.tsv"), "--sources", str(base / "sources.json"),
                 "--splits", str(base / "splits.json"), "--reserved", str(base / "reserved.tsv"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["counts"]["train"] == 16


def test_bad_manifest_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    header = "repo\tcommit\tpath\tsha256\tbytes\twidth\theight\tlabel\tgenerator\tfamily\tgroup\tcontent\tevidence\tregion"
    path.write_text(header + "\n" + "\t".join(["a/b", "0" * 40, "../x.png", "0" * 64, "1", "1", "1", "fake", "g",
                                                 "sdxl", "g", "art", "e", ""]) + "\n")
    with pytest.raises(DatasetError, match=r"m\.tsv:2: .*escapes"):
        read_manifest(path)
    path.write_text(header + "\n" + "\t".join(["a/b", "0" * 40, "x.png", "0" * 64, "1", "1", "1", "real", "camera",
                                                 "real", "g", "photo", "EXIF Model Canon\x00\x00", ""]) + "\n")
    with pytest.raises(DatasetError, match=r"m\.tsv:2: evidence holds a control character"):
        read_manifest(path)


def test_packaged_manifest_is_complete() -> None:
    rows = read_manifest(DEFAULT_MANIFEST)
    sources = read_sources(DEFAULT_SOURCES)
    assert rows, "the packaged manifest is empty"
    assert {r.repo for r in rows} <= set(sources)
    assert all(r.evidence and r.group and r.family for r in rows)
    assert {r.label for r in rows} == {"real", "fake"}
    assert all(sources[r].license and sources[r].license_evidence and len(sources[r].commit) == 40 for r in sources)
    reserved = Path(__file__).resolve().parents[4] / "shared" / "data" / "reserved_repos.txt"
    if reserved.is_file():  # repositories reserved for independent evaluation are never a source
        names = {ln.strip().lower() for ln in reserved.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
        assert not names & {r.lower() for r in sources}


def test_packaged_reserved_list_matches_the_shared_one() -> None:
    from fakereasoning.data.public.manifest import DEFAULT_RESERVED

    shared = Path(__file__).resolve().parents[4] / "shared" / "data" / "reserved_images.tsv"
    if not shared.is_file():
        pytest.skip("no ../shared checkout next to this repository")
    assert DEFAULT_RESERVED.read_bytes() == shared.read_bytes()


def test_aligned_fakes_are_reconstructions_of_training_reals(snapshot: dict, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    weights = taef2_weights(tmp_path / "w", monkeypatch)
    summary = _build(snapshot, tmp_path / "out", aligned_weights=weights)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    aligned = [im for im in manifest["images"] if im.get("aligned")]
    reals = {im["source_sha256"]: im for im in manifest["images"] if im["split"] == "train" and im["label"] == "real"}
    assert aligned and summary["train_fakes_by_family"]["taef2-aligned"] == len(aligned)
    for im in aligned:
        assert im["label"] == "fake" and im["split"] == "train" and im["generator"] == "taef2"
        assert im["source_sha256"] in reals  # the same photo, the same crop window
        assert im["crop_xy"] == reals[im["source_sha256"]]["crop_xy"]
    assert validate(tmp_path / "out").ok


def test_taef2_weights_with_another_digest_are_refused(tmp_path: Path) -> None:
    import torch

    from fakereasoning.data.local.generators.taef2 import TAEF2
    from fakereasoning.errors import FakeReasoningError

    tmp_path.mkdir(exist_ok=True)
    model = TAEF2()
    torch.save(model.encoder.state_dict(), tmp_path / "taef2_encoder.pth")
    torch.save(model.decoder.state_dict(), tmp_path / "taef2_decoder.pth")
    with pytest.raises(FakeReasoningError, match="taef2_encoder.pth: sha256 .* is not that of"):
        TAEF2.from_dir(tmp_path)


def test_named_split_definitions_parse() -> None:
    from fakereasoning.data.public.build import DEFAULT_SPLITS, NAMED_SPLITS, Splits, splits_path

    assert splits_path("heldout") == DEFAULT_SPLITS
    everything = Splits.read(splits_path("all"))
    assert everything.held_out == {} and everything.calibration == {} and everything.recipe.rescale_prob > 0
    assert set(NAMED_SPLITS) == {"all", "heldout"}
    assert splits_path("x/custom.json") == Path("x/custom.json")


def test_web_size_crops_are_planned_for_both_sizes_and_rendered_exactly() -> None:
    import random

    from fakereasoning.data.public.normalize import Recipe, plan_crops, render

    recipe = Recipe(rescale_prob=1.0)
    big = plan_crops(random.Random(0), 4000, 3000, 6, True, recipe)
    assert len(big) == 6 and all(1024 <= round(4000 * p.scale) <= 1600 for p in big)
    small = plan_crops(random.Random(0), 600, 600, 2, True, recipe)
    assert all(257 / 600 <= p.scale <= 0.9 for p in small)
    assert all(p.scale == 1.0 for p in plan_crops(random.Random(0), 280, 280, 2, True, recipe))  # no room
    native = plan_crops(random.Random(0), 4000, 3000, 6, True, Recipe())
    assert all(p.scale == 1.0 for p in native)
    arr = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    plan = big[0]
    _, pixels = render(img, plan, Recipe(jpeg_prob=0.0))
    w, h = max(1, round(4000 * plan.scale)), max(1, round(3000 * plan.scale))
    whole = np.asarray(img.resize((w, h), Image.Resampling.LANCZOS).crop((plan.x, plan.y, plan.x + 256, plan.y + 256)))
    if plan.jpeg is None:  # the box resample reads the same pixels as resampling the whole image
        assert np.abs(pixels.astype(int) - whole.astype(int)).max() <= 1
    assert pixels.shape == (256, 256, 3)


def test_everything_build_trains_every_family_with_web_size_crops(snapshot: dict, tmp_path: Path) -> None:
    base = snapshot["base"]
    splits = json.loads((base / "splits.json").read_text())
    splits.update({"held_out": {}, "calibration": {}, "eval_real_sources": [], "max_crops_per_fake": 3,
                   "recipe": {"rescale_prob": 0.5}})
    (tmp_path / "all.json").write_text(json.dumps(splits))
    out = tmp_path / "all"
    summary = build_public(out, mirror=snapshot["mirror"], manifest=base / "manifest.tsv", sources=base / "sources.json",
                           splits=tmp_path / "all.json", reserved=base / "reserved.tsv", progress=False, log=lambda _m: None)
    assert summary["counts"]["eval"] == 0 and summary["evaluation_sets"] == []
    assert set(summary["train_fakes_by_family"]) == {"sdxl", "flux", "gemini", "midjourney"}
    images = json.loads((out / "manifest.json").read_text())["images"]
    scales = [im["scale"] for im in images]
    assert any(s != 1.0 for s in scales) and any(s == 1.0 for s in scales)
    assert all(Image.open(out / im["path"]).size == (256, 256) for im in images)
