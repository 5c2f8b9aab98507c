"""`prepare`: image planning (custom_id, label), JPEG under a byte cap, Batch-API request files."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakereasoning.annotate.batch import (
    REQUEST_URL,
    AnnotateError,
    encode_jpeg,
    label_of_key,
    plan_images,
    prepare,
)
from fakereasoning.annotate.prompts import DEFAULT_MODEL, MAX_TOKENS, build_prompt
from fakereasoning.errors import ImageLoadError
from fakereasoning.imageio import encode_png

from .conftest import make_png, make_set


def test_custom_id_is_relative_to_the_folder_above_the_set(tmp_path: Path) -> None:
    set_dir = tmp_path / "ROOT" / "evaluation_sets" / "sd"
    make_set(set_dir)
    jobs = plan_images([set_dir])
    assert [(j.custom_id, j.label) for j in jobs] == [
        ("sd/0_real/r0.png", "real"),
        ("sd/0_real/r1.png", "real"),
        ("sd/1_fake/f0.png", "fake"),
        ("sd/1_fake/f1.png", "fake"),
    ]
    # a single file or the label folder gives the same key; the same file twice is one job
    assert [j.custom_id for j in plan_images([set_dir / "1_fake", set_dir / "1_fake" / "f0.png"])] == [
        "sd/1_fake/f0.png",
        "sd/1_fake/f1.png",
    ]


def test_root_label_override_and_errors(tmp_path: Path) -> None:
    part = tmp_path / "ROOT" / "mine"
    make_set(part, n_real=1, n_fake=1)
    (part / "1_fake" / "notes.txt").write_text("ignored")
    jobs = plan_images([part], root=tmp_path / "ROOT")
    assert [j.custom_id for j in jobs] == ["mine/0_real/r0.png", "mine/1_fake/f0.png"]
    with pytest.raises(AnnotateError, match="contradicts"):
        plan_images([part], label="fake")
    with pytest.raises(AnnotateError, match="not inside --root"):
        plan_images([part], root=tmp_path / "ROOT" / "mine" / "0_real")
    # a root below the label folder: the label still comes from the image's folder
    assert [(j.custom_id, j.label) for j in plan_images([part / "0_real"], root=part / "0_real")] == [
        ("r0.png", "real")
    ]
    loose = tmp_path / "loose"
    make_png(loose / "a.png", (1, 2, 3))
    with pytest.raises(AnnotateError, match="no label"):
        plan_images([loose])
    assert [(j.custom_id, j.label) for j in plan_images([loose], label="real")] == [("loose/a.png", "real")]
    with pytest.raises(AnnotateError, match="no such file"):
        plan_images([tmp_path / "missing"])
    with pytest.raises(AnnotateError, match="no image files"):
        plan_images([tmp_path / "ROOT" / "mine" / "1_fake" / "notes.txt"], label="fake")


def test_label_of_key() -> None:
    assert label_of_key("sd/0_real/x.png") == "real"
    assert label_of_key("part/1_fake/sub/x.png") == "fake"
    assert label_of_key("1_fake") is None  # a file name is not a folder
    assert label_of_key("x/y.png") is None


def test_encode_jpeg_respects_the_byte_cap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (400, 300, 3), dtype=np.uint8), "RGB")
    path = tmp_path / "noisy.png"
    path.write_bytes(encode_png(noisy))
    for cap in (200_000, 30_000, 8_000):
        data = encode_jpeg(path, max_bytes=cap)
        assert len(data) <= cap
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.mode == "RGB"
    assert Image.open(io.BytesIO(encode_jpeg(path, max_bytes=10**7))).size == (300, 400)  # untouched size
    assert max(Image.open(io.BytesIO(encode_jpeg(path, max_side=100))).size) == 100
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageLoadError, match="bad.png"):
        encode_jpeg(tmp_path / "bad.png")


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prepare_writes_request_files(tmp_path: Path) -> None:
    set_dir = tmp_path / "evaluation_sets" / "gen"
    make_set(set_dir, n_real=3, n_fake=2)
    (set_dir / "1_fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "batches"
    out.mkdir()
    (out / "requests_0007.jsonl").write_text("stale\n")  # from an earlier, larger run
    (out / "keep.txt").write_text("not ours")

    result = prepare(plan_images([set_dir]), out, model="my-vlm", per_file=2, progress=False)

    assert result.requests == 5
    assert [p.name for p in result.files] == [
        "requests_0000.jsonl",
        "requests_0001.jsonl",
        "requests_0002.jsonl",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", *[p.name for p in result.files]]
    assert result.skipped and result.skipped[0][0].endswith("broken.png")
    lines = [line for p in result.files for line in _read_lines(p)]
    assert [len(_read_lines(p)) for p in result.files] == [2, 2, 1]
    assert [line["custom_id"] for line in lines] == [
        "gen/0_real/r0.png", "gen/0_real/r1.png", "gen/0_real/r2.png", "gen/1_fake/f0.png", "gen/1_fake/f1.png",
    ]  # fmt: skip
    for line in lines:
        assert line["method"] == "POST" and line["url"] == REQUEST_URL
        body = line["body"]
        assert body["model"] == "my-vlm" and body["max_tokens"] == MAX_TOKENS
        text, image = body["messages"][0]["content"]
        label = "real" if "/0_real/" in line["custom_id"] else "fake"
        assert text == {"type": "text", "text": build_prompt(label)}
        url = image["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert decoded.format == "JPEG" and decoded.size == (48, 48)
    assert DEFAULT_MODEL == "gpt-4o-2024-08-06"


def test_prepare_refuses_bad_settings(tmp_path: Path) -> None:
    jobs = plan_images(make_set(tmp_path / "s", n_real=1, n_fake=0))
    with pytest.raises(AnnotateError, match="per-file"):
        prepare(jobs, tmp_path / "o", per_file=0, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnnotateError, match="not a directory"):
        prepare(jobs, tmp_path / "file", progress=False)


def test_a_link_out_of_the_folder_is_refused_not_sent(tmp_path: Path) -> None:
    set_dir = tmp_path / "ROOT" / "evaluation_sets" / "sd"
    make_set(set_dir)
    make_png(tmp_path / "private.png", (1, 2, 3))
    (set_dir / "1_fake" / "f9.png").symlink_to(tmp_path / "private.png")
    with pytest.raises(AnnotateError, match="f9.png: symbolic link leads outside"):
        plan_images([set_dir])
