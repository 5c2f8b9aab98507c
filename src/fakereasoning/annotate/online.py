"""`annotate run`: annotate images online, against any OpenAI-compatible `/v1/chat/completions` endpoint
(OpenAI, vLLM, our own `serve`), or offline with the evidence annotator (`backend="evidence"`).

Both write exactly the line format of the OpenAI Batch API's output files, so `annotate collect` reads
batch results, online results and evidence results alike:

    {"id": ..., "custom_id": ..., "response": {"status_code": 200, "request_id": ..., "body": {...}},
     "error": null}

A request that finally fails is written too (its status code and error body, or `response: null` and an
`error` object for a transport failure or an unusable image), so the output shows what happened. Runs
are resumable: an image that already has a status-200 line in the output file is skipped, so a rerun after
a crash or with failures only sends the rest.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from fakereasoning.annotate.batch import (
    DEFAULT_MAX_IMAGE_BYTES,
    REQUEST_URL,
    AnnotateError,
    ImageJob,
    build_body,
    data_url,
    encode_jpeg,
)
from fakereasoning.annotate.prompts import ANSWER_OF_LABEL, ATTRIBUTES_KEY_OF_LABEL, DEFAULT_MODEL, MAX_TOKENS
from fakereasoning.errors import FakeReasoningError
from fakereasoning.schema import ATTRIBUTES_OF_LABEL

EVIDENCE_MODEL_ID = "fakereasoning-evidence"
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
FATAL_STATUSES = frozenset({401, 403, 404})  # wrong key, URL or model: every request would fail alike
MAX_RETRY_AFTER_S = 120.0
_FSYNC_EVERY = 20


# --- The output-line format ------------------------------------------------------------------------------
def output_line(
    custom_id: str,
    status_code: int | None = None,
    body: Any = None,
    request_id: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Batch-API-style output line; `status_code=None` means no HTTP response (see `error`)."""
    response = None
    if status_code is not None:
        response = {"status_code": status_code, "request_id": request_id or "", "body": body}
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }


def chat_completion(content: str, model: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A minimal `chat.completion` object carrying `content` as the assistant's answer."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def is_answered(line: Any) -> bool:
    """Whether an output line holds a successful response (status 200, no error)."""
    if not isinstance(line, dict) or line.get("error") is not None:
        return False
    response = line.get("response")
    return isinstance(response, dict) and response.get("status_code") == 200


def answered_ids(path: str | os.PathLike[str]) -> set[str]:
    """custom_ids that already have a successful line in an output file (malformed lines are ignored)."""
    done: set[str] = set()
    p = Path(path)
    if not p.exists():
        return done
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if is_answered(line) and isinstance(line.get("custom_id"), str):
                done.add(line["custom_id"])
    return done


class _Writer:
    """Appends output lines; a partial last line left by a crash is closed first so it stays one bad line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = False
        if path.exists() and path.stat().st_size > 0:
            with path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) != b"\n"
        self._fh: TextIO = path.open("a", encoding="utf-8")
        if needs_newline:
            self._fh.write("\n")
        self._pending = 0

    def write(self, line: dict[str, Any]) -> None:
        self._fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._pending += 1
        if self._pending >= _FSYNC_EVERY:
            os.fsync(self._fh.fileno())
            self._pending = 0

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


# --- Prepared request files as input ---------------------------------------------------------------------
@dataclass(frozen=True)
class RequestJob:
    """One line of a request file written by `prepare` (or any Batch-API request file), read lazily:
    request lines carry whole images, so only their offsets are kept in memory."""

    custom_id: str
    file: Path
    offset: int
    line_no: int

    def read_body(self) -> dict[str, Any]:
        with self.file.open("rb") as fh:
            fh.seek(self.offset)
            raw = fh.readline()
        try:
            body = json.loads(raw)["body"]
        except (ValueError, KeyError, TypeError):
            body = None
        if not isinstance(body, dict):
            raise AnnotateError(f"{self.file}:{self.line_no}: request line changed or has no body")
        return body


def plan_requests(files: Sequence[str | os.PathLike[str]]) -> list[RequestJob]:
    """Index Batch-API request files (`requests_NNNN.jsonl`); a malformed line is an error naming it."""
    jobs: dict[str, RequestJob] = {}
    for raw_path in files:
        path = Path(raw_path)
        if not path.is_file():
            raise AnnotateError(f"{path}: no such request file")
        with path.open("rb") as fh:
            line_no = 0
            while True:
                offset = fh.tell()
                raw = fh.readline()
                if not raw:
                    break
                line_no += 1
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise AnnotateError(f"{path}:{line_no}: not a JSON line") from None
                if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                    raise AnnotateError(f"{path}:{line_no}: request line without a custom_id")
                if not isinstance(line.get("body"), dict):
                    raise AnnotateError(f"{path}:{line_no}: request line without a body")
                if line.get("url", REQUEST_URL) != REQUEST_URL:
                    raise AnnotateError(f"{path}:{line_no}: url {line.get('url')!r} is not {REQUEST_URL}")
                custom_id = line["custom_id"]
                if custom_id in jobs:
                    raise AnnotateError(
                        f"{path}:{line_no}: custom_id {custom_id!r} repeats {jobs[custom_id].file}"
                    )
                jobs[custom_id] = RequestJob(custom_id, path, offset, line_no)
    if not jobs:
        raise AnnotateError("no requests in " + ", ".join(str(f) for f in files))
    return [jobs[k] for k in sorted(jobs)]


# --- Summary -----------------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    """What a run did. Token counts are summed from the responses' `usage`."""

    total: int = 0
    already_done: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count
    elapsed_s: float = 0.0
    fatal: str | None = None  # set when the endpoint refuses all requests (401 / 403 / 404)

    def add_usage(self, body: Any) -> None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self, name, getattr(self, name) + value)

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "already_done": self.already_done,
            "ok": self.ok,
            "failed": self.failed,
            "retries": self.retries,
            "failures": dict(sorted(self.failures.items())),
            "tokens": {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
                "total": self.total_tokens,
            },
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def text(self) -> str:
        lines = [
            f"images: {self.total} ({self.already_done} already answered, skipped)",
            f"answered now: {self.ok}, failed: {self.failed}, retries: {self.retries}",
            f"tokens: prompt {self.prompt_tokens}, completion {self.completion_tokens}, total {self.total_tokens}",
        ]
        lines += [f"  failed ({reason}): {n}" for reason, n in sorted(self.failures.items())]
        return "\n".join(lines)


# --- Online (OpenAI-compatible) -------------------------------------------------------------------------------
@dataclass
class OnlineSettings:
    base_url: str
    model: str | None = None  # None: DEFAULT_MODEL for images, the request's own model for request files
    api_key: str | None = None
    concurrency: int = 4
    max_rps: float = 0.0  # requests started per second, 0 = unlimited
    max_retries: int = 5
    backoff_s: float = 1.0  # first retry delay; doubles each retry (with jitter), capped at max_backoff_s
    max_backoff_s: float = 60.0
    timeout_s: float = 120.0
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_tokens: int = MAX_TOKENS

    def endpoint(self) -> str:
        """`{base_url}/chat/completions`; like the OpenAI client, `base_url` includes `/v1`."""
        return self.base_url.rstrip("/") + "/chat/completions"

    def check(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise AnnotateError(f"--base-url must start with http:// or https://, got {self.base_url!r}")
        if self.concurrency < 1:
            raise AnnotateError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0 or self.max_rps < 0 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise AnnotateError("--max-retries, --max-rps and --backoff must be >= 0, --timeout > 0")


class _RateLimiter:
    """Spaces request starts at least `1 / rps` seconds apart across all workers."""

    def __init__(self, rps: float) -> None:
        self._interval = 1.0 / rps if rps > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 else min(seconds, MAX_RETRY_AFTER_S)


def _message(line: dict[str, Any]) -> str:
    """The error message of an output line's body, shortened, for a one-line report."""
    body = (line.get("response") or {}).get("body")
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message or "no message").split())[:200]


def _error_body(resp: Any) -> Any:
    try:
        return resp.json()
    except ValueError:
        return {"error": {"message": resp.text[:2000]}}


Job = ImageJob | RequestJob
JobT = TypeVar("JobT", ImageJob, RequestJob)


def _request_body(job: Job, settings: OnlineSettings) -> dict[str, Any]:
    """The request body of a job: built from the image, or read back from a prepared request file."""
    if isinstance(job, RequestJob):
        body = job.read_body()
        if settings.model:
            body["model"] = settings.model
        return body
    jpeg = encode_jpeg(job.path, settings.max_image_bytes, name=str(job.path))
    return build_body(
        job.label, data_url(jpeg), model=settings.model or DEFAULT_MODEL, max_tokens=settings.max_tokens
    )


async def _annotate_one(
    job: Job,
    client: Any,
    settings: OnlineSettings,
    limiter: _RateLimiter,
    summary: RunSummary,
    headers: dict[str, str],
) -> dict[str, Any]:
    import httpx

    try:
        body = await asyncio.to_thread(_request_body, job, settings)
    except FakeReasoningError as exc:
        kind = "image error" if isinstance(job, ImageJob) else "bad request line"
        summary.fail(kind)
        return output_line(job.custom_id, error={"code": kind.replace(" ", "_"), "message": str(exc)})
    last: dict[str, Any] | None = None
    reason = "unknown"
    for attempt in range(settings.max_retries + 1):
        if attempt:
            summary.retries += 1
        await limiter.wait()
        delay: float | None = None
        try:
            resp = await client.post(settings.endpoint(), json=body, headers=headers)
        except httpx.HTTPError as exc:
            reason = f"transport error ({exc.__class__.__name__})"
            last = output_line(
                job.custom_id,
                error={"code": "transport_error", "message": f"{exc.__class__.__name__}: {exc}"},
            )
        else:
            request_id = resp.headers.get("x-request-id", "")
            if resp.status_code == 200:
                try:
                    answer = resp.json()
                except ValueError:
                    answer = None
                if isinstance(answer, dict):
                    summary.ok += 1
                    summary.add_usage(answer)
                    return output_line(job.custom_id, 200, answer, request_id)
                reason = "HTTP 200 with a non-JSON body"
                last = output_line(job.custom_id, 502, {"error": {"message": reason}}, request_id)
            else:
                reason = f"HTTP {resp.status_code}"
                last = output_line(job.custom_id, resp.status_code, _error_body(resp), request_id)
                if resp.status_code in FATAL_STATUSES:
                    summary.fatal = summary.fatal or f"HTTP {resp.status_code}: {_message(last)}"
                if resp.status_code not in RETRY_STATUSES:
                    break
                delay = _retry_after(resp.headers)
        if attempt < settings.max_retries:
            if delay is None:
                backoff = min(settings.backoff_s * (2**attempt), settings.max_backoff_s)
                delay = backoff * (0.5 + random.random() / 2)  # noqa: S311 (jitter, not security)
            await asyncio.sleep(delay)
    summary.fail(reason)
    assert last is not None
    return last


async def _run_online(
    jobs: Sequence[Job], writer: _Writer, settings: OnlineSettings, summary: RunSummary, progress: bool
) -> None:
    import httpx
    from tqdm import tqdm

    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    limiter = _RateLimiter(settings.max_rps)
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    bar = tqdm(total=len(jobs), desc="annotate", unit="img", file=sys.stderr, disable=not progress)
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )

    async with httpx.AsyncClient(timeout=settings.timeout_s, limits=limits) as client:

        async def worker() -> None:
            while True:
                if summary.fatal:  # the endpoint refuses everyone: sending the rest only writes errors
                    return
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                line = await _annotate_one(job, client, settings, limiter, summary, headers)
                writer.write(line)
                bar.update(1)
                bar.set_postfix(ok=summary.ok, failed=summary.failed, refresh=False)

        await asyncio.gather(*(worker() for _ in range(min(settings.concurrency, max(len(jobs), 1)))))
    bar.close()


def _pending(jobs: Sequence[JobT], out: Path, summary: RunSummary) -> list[JobT]:
    done = answered_ids(out)
    todo = [job for job in jobs if job.custom_id not in done]
    summary.total = len(jobs)
    summary.already_done = len(jobs) - len(todo)
    return todo


def run_online(
    jobs: Sequence[Job], out: str | os.PathLike[str], settings: OnlineSettings, progress: bool = True
) -> RunSummary:
    """Annotate `jobs` (images, or lines of prepared request files) through the endpoint, appending output
    lines to `out`; returns the summary."""
    settings.check()
    out_path = Path(out)
    summary = RunSummary()
    todo = _pending(jobs, out_path, summary)
    start = time.perf_counter()
    if todo:
        writer = _Writer(out_path)
        try:
            asyncio.run(_run_online(todo, writer, settings, summary, progress))
        finally:
            writer.close()
    summary.elapsed_s = time.perf_counter() - start
    if summary.fatal:
        raise AnnotateError(
            f"{settings.endpoint()}: {summary.fatal}; stopped after {summary.ok + summary.failed} of "
            f"{len(todo)} images (check --base-url, --model and the API key; rerun to resume)"
        )
    return summary


# --- Offline (evidence annotator) ------------------------------------------------------------------------------
def evidence_answer(attributes: dict[str, Any], label: str) -> str:
    """The JSON answer the VLM is asked for, filled from the evidence annotator's attributes."""
    names = ATTRIBUTES_OF_LABEL[label]  # type: ignore[index]
    kept = {name: attributes.get(name) for name in names}
    return json.dumps(
        {"Answer": ANSWER_OF_LABEL[label], ATTRIBUTES_KEY_OF_LABEL[label]: kept},  # type: ignore[index]
        ensure_ascii=False,
    )


def run_evidence(
    jobs: Sequence[ImageJob],
    out: str | os.PathLike[str],
    seed: int = 0,
    progress: bool = True,
    annotator_factory: Callable[[int], Any] | None = None,
) -> RunSummary:
    """Annotate `jobs` with the offline evidence annotator, writing the same output lines as `run_online`.

    `annotator_factory(seed)` defaults to `fakereasoning.evidence.annotator.EvidenceAnnotator`.
    """
    from tqdm import tqdm

    from fakereasoning.imageio import load_image

    if annotator_factory is None:
        try:
            from fakereasoning.evidence.annotator import EvidenceAnnotator
        except ImportError as exc:
            raise AnnotateError(f"the evidence annotator is not available ({exc})") from None
        annotator_factory = EvidenceAnnotator
    out_path = Path(out)
    summary = RunSummary()
    todo = _pending(jobs, out_path, summary)
    start = time.perf_counter()
    if todo:
        annotator = annotator_factory(seed)
        writer = _Writer(out_path)
        try:
            for job in tqdm(
                todo, desc="annotate (evidence)", unit="img", file=sys.stderr, disable=not progress
            ):
                try:
                    image = load_image(job.path, name=str(job.path))
                    attributes = annotator.annotate(image, job.label, key=job.custom_id)
                    content = evidence_answer(dict(attributes), job.label)
                except (FakeReasoningError, ValueError) as exc:
                    summary.fail("image error")
                    writer.write(
                        output_line(job.custom_id, error={"code": "image_error", "message": str(exc)})
                    )
                    continue
                body = chat_completion(content, EVIDENCE_MODEL_ID)
                summary.ok += 1
                writer.write(output_line(job.custom_id, 200, body, f"req_{uuid.uuid4().hex}"))
        finally:
            writer.close()
    summary.elapsed_s = time.perf_counter() - start
    return summary
