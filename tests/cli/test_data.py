"""`fakereasoning data ...`: exit codes 0/1/2, one JSON object, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from layout_factory import genimage, image_list, synthbuster
from mmfr_factory import released_layout

from fakereasoning.cli import main


def test_validate_json_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    assert main(["data", "validate", str(root), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one object
    assert out.strip().count("\n") == 0
    assert set(report) == {"layout", "root", "train", "evaluation_sets", "problems"}
    assert report["layout"] == "mmfr" and report["train"]["fake"] == 3


def test_validate_invalid_exit_1_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    (root / "evaluation_sets/gigagan/1_fake/f0.png").write_bytes(b"junk")
    (root / "evaluation_sets/gigagan/0_real/r0.png").write_bytes(b"junk")
    assert main(["data", "validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.count("does not decode") == 2
    assert "INVALID: 2 errors" in out


def test_to_cot_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    out_file = tmp_path / "cot.json"
    assert main(["data", "to-cot", str(root), "--out", str(out_file)]) == 0
    assert len(json.loads(out_file.read_text())) == 5
    assert main(["data", "stats", str(root)]) == 0
    table = capsys.readouterr().out
    assert "stablediffusion" in table and "diffusiondb" in table


def test_user_error_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "validate", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err


def test_usage_error_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "validate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_console_script_debug_shows_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fakereasoning", "data", "validate", str(tmp_path / "missing")]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_to_cot_refuses_to_write_when_annotations_have_errors(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    cot = root / "forgery_reasoning_cot.json"
    good = cot.read_text()
    (root / "diffusiondb/diffusiondb_reasoning.json").write_text("{not json")
    (root / "laion/laion_reasoning.json").write_bytes(b"\xff\xfe not utf-8")
    capsys.readouterr()
    assert main(["data", "to-cot", str(root), "--out", str(cot)]) == 1
    err = capsys.readouterr().err
    assert "diffusiondb/diffusiondb_reasoning.json: malformed JSON at line 1" in err
    assert "laion/laion_reasoning.json: malformed JSON: not UTF-8" in err
    assert "nothing written" in err and "Traceback" not in err
    assert cot.read_text() == good
    # --allow-errors converts what is readable, but never empties a file that holds conversations
    assert main(["data", "to-cot", str(root), "--out", str(cot), "--allow-errors"]) == 1
    assert "not replaced with an empty list" in capsys.readouterr().err
    assert cot.read_text() == good
    (root / "laion/laion_reasoning.json").write_text('{"laion/00000/000000000.jpg": {"High Image Quality": "sharp"}}')
    assert main(["data", "to-cot", str(root), "--out", str(cot), "--allow-errors"]) == 0
    assert [c["image"] for c in json.loads(cot.read_text())] == ["laion/00000/000000000.jpg"]


def test_to_cot_wrong_types_are_errors_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    (root / "diffusiondb/diffusiondb_reasoning.json").write_text("[1, 2]")
    (root / "laion/laion_reasoning.json").write_text('{"laion/00000/000000000.jpg": 12}')
    out = tmp_path / "cot.json"
    assert main(["data", "to-cot", str(root), "--out", str(out)]) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert "expected a JSON object" in err and "expected an object of attribute -> text" in err


def test_validate_and_stats_count_annotations_the_same_way(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    (root / "laion/00000/000000001.jpg").write_bytes(b"broken")  # undecodable, still annotated
    capsys.readouterr()
    main(["data", "validate", str(root), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert main(["data", "stats", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    train = sum(r["annotations"] for r in rows if r["split"] == "train")
    assert train == report["train"]["annotations"] == 7
    for name, counts in report["evaluation_sets"].items():
        assert counts["annotations"] == next(r["annotations"] for r in rows if r["set"] == name)
def test_validate_and_stats_other_layouts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthbuster(tmp_path / "s")
    assert main(["data", "validate", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layout"] == "synthbuster"
    assert report["evaluation_sets"] == {"dalle3": {"real": 3, "fake": 2, "annotations": 0},
                                         "glide": {"real": 3, "fake": 1, "annotations": 0}}
    assert main(["data", "stats", str(genimage(tmp_path / "g"))]) == 0
    out = capsys.readouterr().out
    assert "genimage layout (detected" in out and "sdv14" in out
    (tmp_path / "s/glide/broken.png").write_bytes(b"junk")
    assert main(["data", "validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "synthbuster layout" in out and "glide/broken.png: image does not decode" in out


def test_validate_list_reports_every_bad_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = image_list(tmp_path)
    path.write_text(path.read_text() + "imgs/none.png,real\n/abs/x.png,fake\nimgs/r0.png,perhaps\n")
    assert main(["data", "validate", str(path), "--layout", "list"]) == 1
    out = capsys.readouterr().out
    assert "line 6: 'imgs/none.png': no such file" in out and "line 7: absolute path" in out
    assert "line 8: label 'perhaps'" in out and "INVALID: 3 errors" in out


def test_unknown_layout_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x/y").mkdir(parents=True)
    assert main(["data", "stats", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown dataset layout" in err and "genimage" in err


def test_to_cot_into_an_existing_folder_says_it_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["data", "to-cot", str(root), "--out", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err == (f"fakereasoning: error: {folder}: is a folder; --out names the file to write, e.g. "
                   f"{folder / 'forgery_reasoning_cot.json'}\n")
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["d", "out"]


def test_counts_of_one_are_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = released_layout(tmp_path / "d")
    (root / "evaluation_sets/gigagan/1_fake/f0.png").write_bytes(b"junk")
    assert main(["data", "validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "INVALID: 1 error, 0 warnings" in out
    (root / "laion/laion_reasoning.json").write_text("{")
    assert main(["data", "to-cot", str(root), "--out", str(tmp_path / "c.json")]) == 1
    err = capsys.readouterr().err
    assert f"{root}: 1 error in the training annotations; nothing written" in err
    from fakereasoning.data.layouts import load_dataset

    (tmp_path / "one").mkdir()
    (root / "evaluation_sets/stablediffusion").rename(tmp_path / "one/x")
    described = load_dataset(tmp_path / "one", "forensynths").describe()
    assert described.endswith(": 0 training images, 1 evaluation set, 4 evaluation images")
