"""The Done check of issue 8, through the CLI: `annotate prepare -> run -> collect` against an
OpenAI-compatible server on 127.0.0.1, and the annotated dataset passes `data validate` and feeds
`data to-cot`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakereasoning.cli import main
from fakereasoning.schema import ATTRIBUTES_OF_LABEL, clean_finding, parse_cot

from .conftest import FakeVLM, make_set


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_annotate_a_dataset_end_to_end(
    tmp_path: Path, vlm: tuple[str, FakeVLM], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, state = vlm
    root, work = tmp_path / "ROOT", tmp_path / "work"
    make_set(root / "evaluation_sets" / "sd", n_real=2, n_fake=3, undetermined=1)
    make_set(root / "mypart", n_real=2, n_fake=2)

    # evaluation set: Batch-API request files, sent online, collected next to the set
    rc, out, _ = _run(
        capsys,
        "annotate",
        "prepare",
        str(root / "evaluation_sets" / "sd"),
        "--out",
        str(work / "req"),
        "--per-file",
        "2",
    )
    assert rc == 0 and "5 requests in 3 files" in out
    state.reset(script=[429, 500])
    requests = sorted(str(p) for p in (work / "req").glob("requests_*.jsonl"))
    rc, out, _ = _run(
        capsys,
        "annotate",
        "run",
        *requests,
        "--out",
        str(work / "sd.jsonl"),
        "--base-url",
        base_url,
        "--backoff",
        "0.01",
        "--json",
    )
    summary = json.loads(out)
    assert rc == 0 and summary["ok"] == 5 and summary["retries"] == 2 and summary["tokens"]["total"] > 0
    assert not state.problems
    sd_json = root / "evaluation_sets" / "sd" / "sd_reasoning.json"
    rc, out, _ = _run(capsys, "annotate", "collect", str(work / "sd.jsonl"), "--out", str(sd_json))
    assert rc == 0 and "kept: 4 (fake 2, real 2)" in out and "cannot determine: 1" in out
    sd = json.loads(sd_json.read_text())
    assert sorted(sd) == ["sd/0_real/r0.png", "sd/0_real/r1.png", "sd/1_fake/f0.png", "sd/1_fake/f1.png"]

    # training part: images sent directly; its reasoning JSON is keyed relative to ROOT
    rc, out, _ = _run(
        capsys,
        "annotate",
        "run",
        str(root / "mypart"),
        "--out",
        str(work / "part.jsonl"),
        "--base-url",
        base_url,
    )
    assert rc == 0 and "answered now: 4, failed: 0" in out
    part_json = root / "mypart" / "mypart_reasoning.json"
    rc, out, _ = _run(
        capsys, "annotate", "collect", str(work / "part.jsonl"), "--out", str(part_json), "--json"
    )
    assert rc == 0 and json.loads(out)["kept"] == 4
    part = json.loads(part_json.read_text())
    for key, attrs in part.items():
        label = "real" if "/0_real/" in key else "fake"
        assert key.startswith("mypart/") and list(attrs) == list(ATTRIBUTES_OF_LABEL[label])

    rc, out, _ = _run(capsys, "data", "validate", str(root), "--json")
    report = json.loads(out)
    assert rc == 0, report["problems"]
    assert report["evaluation_sets"]["sd"] == {"real": 2, "fake": 3, "annotations": 6}
    assert report["train"]["annotations"] == 6

    cot = root / "forgery_reasoning_cot.json"
    rc, out, _ = _run(capsys, "data", "to-cot", str(root), "--out", str(cot))
    assert rc == 0
    conversations = json.loads(cot.read_text())
    assert sorted(c["image"] for c in conversations) == sorted(part)
    for conv in conversations:
        parsed = parse_cot(conv["conversations"][-1]["value"])
        assert parsed.label == ("real" if "/0_real/" in conv["image"] else "fake")
        # the release format states each finding without its attribute name
        assert all(clean_finding(v) in (parsed.reasoning or "") for v in part[conv["image"]].values() if v)
    rc, out, _ = _run(capsys, "data", "validate", str(root), "--json")
    assert rc == 0 and json.loads(out)["train"]["conversations"] == 4


def test_cli_errors_are_one_line(
    tmp_path: Path, vlm: tuple[str, FakeVLM], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, state = vlm
    files = make_set(tmp_path / "s", n_real=1, n_fake=1, undetermined=1)
    only_undetermined = tmp_path / "u.jsonl"
    rc, _, _ = _run(
        capsys, "annotate", "run", str(files[1]), "--out", str(only_undetermined), "--base-url", base_url
    )
    assert rc == 0
    out_json = tmp_path / "r.json"
    rc, out, err = _run(capsys, "annotate", "collect", str(only_undetermined), "--out", str(out_json))
    assert (
        rc == 1 and "nothing written" in err and len(err.strip().splitlines()) == 1 and not out_json.exists()
    )

    rc, _, err = _run(
        capsys,
        "annotate",
        "run",
        str(files[0]),
        str(tmp_path / "x.jsonl"),
        "--out",
        str(tmp_path / "o.jsonl"),
        "--base-url",
        base_url,
    )
    assert rc == 1 and "not both" in err

    state.reset(script=[500, 500])
    rc, out, err = _run(
        capsys,
        "annotate",
        "run",
        str(files[0]),
        "--out",
        str(tmp_path / "f.jsonl"),
        "--base-url",
        base_url,
        "--max-retries",
        "1",
        "--backoff",
        "0",
    )
    assert rc == 1 and "failed (HTTP 500): 1" in out and "run the same command again" in err

    rc, _, err = _run(
        capsys, "annotate", "prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "req")
    )
    assert rc == 1 and "nowhere: no such file or directory" in err


def test_cli_evidence_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fakereasoning.evidence.annotator")
    root = tmp_path / "ROOT"
    make_set(root / "evaluation_sets" / "ev", n_real=1, n_fake=1)
    out = tmp_path / "ev.jsonl"
    rc, _, _ = _run(
        capsys,
        "annotate",
        "run",
        str(root / "evaluation_sets" / "ev"),
        "--backend",
        "evidence",
        "--out",
        str(out),
    )
    assert rc == 0
    target = root / "evaluation_sets" / "ev" / "ev_reasoning.json"
    rc, _, _ = _run(capsys, "annotate", "collect", str(out), "--out", str(target))
    assert rc == 0
    rc, report, _ = _run(capsys, "data", "validate", str(root), "--json")
    assert rc == 0, report
