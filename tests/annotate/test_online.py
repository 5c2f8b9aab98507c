"""`run`: online annotation against a fake OpenAI-compatible server (retries, resume, rate limit, request
files) and the offline evidence backend, all writing the Batch-API output-line format."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from fakereasoning.annotate.batch import AnnotateError, plan_images, prepare
from fakereasoning.annotate.control import R_ERROR, R_UNDETERMINED, collect
from fakereasoning.annotate.online import (
    OnlineSettings,
    _RateLimiter,
    answered_ids,
    plan_requests,
    run_evidence,
    run_online,
)
from fakereasoning.schema import ATTRIBUTES_OF_LABEL

from .conftest import USAGE, FakeVLM, make_set


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _settings(base_url: str, **kw: Any) -> OnlineSettings:
    return OnlineSettings(base_url=base_url, **{"backoff_s": 0.01, "concurrency": 3, **kw})


def test_run_online_retries_writes_batch_format_and_sums_tokens(
    tmp_path: Path, vlm: tuple[str, FakeVLM]
) -> None:
    base_url, state = vlm
    jobs = plan_images(
        [make_set(tmp_path / "evaluation_sets" / "sd", n_real=2, n_fake=3, undetermined=1)[0].parent.parent]
    )
    state.reset(script=[429, 500, 503])
    out = tmp_path / "out.jsonl"
    summary = run_online(jobs, out, _settings(base_url), progress=False)
    assert (summary.total, summary.ok, summary.failed, summary.retries) == (5, 5, 0, 3)
    assert state.requests == 8 and not state.problems
    assert sorted(state.answered) == ["fake", "fake", "fake", "real", "real"]
    assert summary.prompt_tokens == 5 * USAGE["prompt_tokens"]
    assert summary.total_tokens == 5 * USAGE["total_tokens"]
    lines = _lines(out)
    assert sorted(line["custom_id"] for line in lines) == [j.custom_id for j in jobs]
    for line in lines:
        assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
        assert set(line["response"]) == {"status_code", "request_id", "body"}
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["object"] == "chat.completion"
    result = collect([out])
    assert result.kept == 4 and result.skipped == {R_UNDETERMINED: 1}
    real = result.annotations["sd/0_real/r0.png"]
    assert list(real) == list(ATTRIBUTES_OF_LABEL["real"])
    assert real["High Image Quality"].startswith("Fine sensor noise") and real["Semantic Rationality"] is None
    fake = result.annotations["sd/1_fake/f0.png"]
    assert fake["Semantic Irrationality"] == "The object floats without support."  # name variant mapped
    assert "mean green" in fake["Anomalous Image Texture"]
    assert result.dropped_names == {"Colour Bleeding": 2}


def test_run_online_fails_then_resumes(tmp_path: Path, vlm: tuple[str, FakeVLM]) -> None:
    base_url, state = vlm
    jobs = plan_images(make_set(tmp_path / "s", n_real=2, n_fake=2))
    out = tmp_path / "out.jsonl"
    state.reset(script=[500, 500, 500, 500])  # with no retries, the first two images fail (2 tries each)
    summary = run_online(jobs, out, _settings(base_url, max_retries=1, concurrency=1), progress=False)
    assert (summary.ok, summary.failed, summary.retries) == (2, 2, 2)
    assert summary.failures == {"HTTP 500": 2}
    failed = [line for line in _lines(out) if line["response"]["status_code"] == 500]
    assert len(failed) == 2 and failed[0]["response"]["body"] == {"error": {"message": "scripted 500"}}
    assert len(answered_ids(out)) == 2
    with out.open("a") as fh:  # a crash left half a line behind
        fh.write('{"custom_id": "s/0_real/r0.png", "respo')

    state.reset()
    again = run_online(jobs, out, _settings(base_url), progress=False)
    assert (again.total, again.already_done, again.ok, again.failed) == (4, 2, 2, 0)
    assert state.requests == 2  # only the failed images were sent again
    assert answered_ids(out) == {j.custom_id for j in jobs}
    result = collect([out])
    assert result.kept == 4
    assert result.skipped == {"malformed output line": 1}  # the half line; the 500s were superseded

    state.reset()
    assert run_online(jobs, out, _settings(base_url), progress=False).already_done == 4
    assert state.requests == 0


def test_non_retriable_status_is_not_retried(tmp_path: Path, vlm: tuple[str, FakeVLM]) -> None:
    base_url, state = vlm
    jobs = plan_images(make_set(tmp_path / "s", n_real=1, n_fake=0))
    out = tmp_path / "out.jsonl"
    summary = run_online(jobs, out, _settings(base_url, max_tokens=999), progress=False)  # server wants 300
    assert (summary.ok, summary.failed, summary.retries) == (0, 1, 0)
    assert state.requests == 1 and any("max_tokens" in p for p in state.problems)
    assert collect([out]).skipped == {R_ERROR: 1}


def test_auth_errors_stop_the_run_early(tmp_path: Path, vlm: tuple[str, FakeVLM]) -> None:
    base_url, state = vlm
    jobs = plan_images(make_set(tmp_path / "s", n_real=3, n_fake=3))
    state.reset(script=[401] * 10)
    with pytest.raises(AnnotateError, match=r"HTTP 401: scripted 401; stopped after 2 of 6"):
        run_online(jobs, tmp_path / "o.jsonl", _settings(base_url, concurrency=2), progress=False)
    assert state.requests == 2  # the two in flight; nothing more was sent
    assert len(_lines(tmp_path / "o.jsonl")) == 2 and not answered_ids(tmp_path / "o.jsonl")


def test_transport_errors_are_retried_then_written(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    jobs = plan_images(make_set(tmp_path / "s", n_real=1, n_fake=0))
    out = tmp_path / "out.jsonl"
    summary = run_online(jobs, out, _settings(f"http://127.0.0.1:{port}/v1", max_retries=2), progress=False)
    assert (summary.failed, summary.retries) == (1, 2)
    (line,) = _lines(out)
    assert line["response"] is None and line["error"]["code"] == "transport_error"


def test_bad_image_becomes_an_error_line_and_the_batch_goes_on(
    tmp_path: Path, vlm: tuple[str, FakeVLM]
) -> None:
    base_url, _ = vlm
    set_dir = tmp_path / "s"
    make_set(set_dir, n_real=1, n_fake=1)
    (set_dir / "1_fake" / "zz.png").write_bytes(b"garbage")
    summary = run_online(plan_images([set_dir]), tmp_path / "o.jsonl", _settings(base_url), progress=False)
    assert (summary.ok, summary.failed) == (2, 1) and summary.failures == {"image error": 1}
    bad = [line for line in _lines(tmp_path / "o.jsonl") if line["error"]]
    assert bad[0]["custom_id"] == "s/1_fake/zz.png" and "zz.png" in bad[0]["error"]["message"]


def test_rate_limiter_spaces_request_starts() -> None:
    async def starts() -> tuple[float, list[float]]:
        limiter = _RateLimiter(50.0)
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def one() -> None:
            await limiter.wait()
            times.append(loop.time())

        t0 = loop.time()
        await asyncio.gather(*(one() for _ in range(6)))
        return t0, sorted(times)

    t0, times = asyncio.run(starts())
    # the k-th start never comes before k / 50 s (a busy machine may only make it later)
    for k, t in enumerate(times):
        assert t >= t0 + k * 0.02 - 0.003, (k, t - t0)


def test_settings_are_checked(tmp_path: Path) -> None:
    jobs = plan_images(make_set(tmp_path / "s", n_real=1, n_fake=0))
    with pytest.raises(AnnotateError, match="base-url"):
        run_online(jobs, tmp_path / "o.jsonl", OnlineSettings(base_url="localhost:8000"), progress=False)
    with pytest.raises(AnnotateError, match="concurrency"):
        run_online(
            jobs, tmp_path / "o.jsonl", OnlineSettings(base_url="http://x", concurrency=0), progress=False
        )


def test_prepared_request_files_run_online(tmp_path: Path, vlm: tuple[str, FakeVLM]) -> None:
    base_url, state = vlm
    prepared = prepare(
        plan_images(make_set(tmp_path / "s", n_real=2, n_fake=1)),
        tmp_path / "req",
        per_file=2,
        progress=False,
    )
    jobs = plan_requests(prepared.files)
    assert [j.custom_id for j in jobs] == ["s/0_real/r0.png", "s/0_real/r1.png", "s/1_fake/f0.png"]
    summary = run_online(jobs, tmp_path / "o.jsonl", _settings(base_url), progress=False)
    assert summary.ok == 3 and not state.problems
    assert collect([tmp_path / "o.jsonl"]).kept == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a/0_real/x.png", "body": {}}\n{"nope": 1}\n')
    with pytest.raises(AnnotateError, match=r"bad.jsonl:2: request line without a custom_id"):
        plan_requests([bad])


class _StubAnnotator:
    """Stands in for the evidence annotator: attributes from the image's mean colour."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def annotate(self, image: Any, label: str, key: str = "") -> dict[str, str | None]:
        names = ATTRIBUTES_OF_LABEL[label]  # type: ignore[index]
        r, g, b = (int(v) for v in image.resize((1, 1)).getpixel((0, 0)))
        return {names[0]: f"Mean colour {r},{g},{b} of {key}.", **{n: None for n in names[1:]}}


def test_evidence_backend_writes_the_same_format(tmp_path: Path) -> None:
    set_dir = tmp_path / "evaluation_sets" / "ev"
    make_set(set_dir, n_real=1, n_fake=1)
    (set_dir / "0_real" / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "ev.jsonl"
    summary = run_evidence(plan_images([set_dir]), out, progress=False, annotator_factory=_StubAnnotator)
    assert (summary.ok, summary.failed) == (2, 1)
    result = collect([out])
    assert result.kept == 2
    assert result.annotations["ev/1_fake/f0.png"]["Inconsistent Lighting and Shadows"].endswith(
        "of ev/1_fake/f0.png."
    )
    assert (
        run_evidence(
            plan_images([set_dir]), out, progress=False, annotator_factory=_StubAnnotator
        ).already_done
        == 2
    )


def test_evidence_backend_with_the_real_annotator(tmp_path: Path) -> None:
    pytest.importorskip("fakereasoning.evidence.annotator")
    set_dir = tmp_path / "evaluation_sets" / "ev"
    make_set(set_dir, n_real=1, n_fake=1)
    out = tmp_path / "ev.jsonl"
    summary = run_evidence(plan_images([set_dir]), out, progress=False)
    assert summary.ok == 2, summary.failures
    result = collect([out])
    assert result.kept == 2, result.skipped
    for key, attrs in result.annotations.items():
        label = "real" if "/0_real/" in key else "fake"
        assert list(attrs) == list(ATTRIBUTES_OF_LABEL[label])
