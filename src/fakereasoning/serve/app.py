"""The web server: a REST detection API, an OpenAI-compatible chat endpoint and one offline web page.

Endpoints (every error is JSON `{"error": {"message", "type", "code", "param"}}`, the OpenAI shape, so the
official client and the page can show it; bad input is always a 4xx, never a 500):

- `POST /v1/detect`: multipart (`file`, optional `mode`) or JSON `{"image": base64 | data URL, "mode"}`
  -> the `fakereasoning.verdict/v2` JSON.
- `POST /v1/chat/completions`: OpenAI chat format; one `image_url` part holding a data URL (the server
  fetches nothing, so remote URLs are refused); the answer is the tagged FDR answer.
- `GET /v1/models`, `GET /healthz`, `GET /` (the page).

Every image is decoded by `imageio.load_image` with byte and pixel limits, in a thread; the model runs in
the `MicroBatcher`'s worker thread, so the event loop only ever waits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fakereasoning import __version__
from fakereasoning.errors import ImageLoadError
from fakereasoning.fsio import JSONError, parse_json
from fakereasoning.imageio import image_pixels, load_image
from fakereasoning.schema import (
    AUTHENTIC_ATTRIBUTES,
    DEFAULT_MODE,
    FORGERY_ATTRIBUTES,
    HIGH_LEVEL_ATTRIBUTES,
    LIMITS_NOTE,
    PROB_WORDS,
    PROMPT_FAST,
    PROMPT_FULL,
    Verdict,
    fast_answer,
    format_cot,
)
from fakereasoning.serve.batching import DetectorFailed, MicroBatcher, QueueFull, ShuttingDown
from fakereasoning.serve.budget import PixelBudget, trim_memory
from fakereasoning.serve.detector import MODES, Detector

log = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """What one request and the whole server may use. Defaults suit a CPU box serving a handful of users."""

    max_upload_bytes: int = 20 * MiB  # encoded image bytes
    max_pixels: int = 36_000_000  # decoded width * height (decompression bombs)
    max_queue: int = 64  # requests waiting for the model; beyond: 503
    max_batch_fast: int = 8  # fast-mode requests run together (8 beat 16 for the tiny model on CPU)
    max_batch_full: int = 1  # full mode generates text: one at a time by default
    batch_wait_ms: float = 5.0  # how long a fast batch waits for company
    request_timeout_s: float = 300.0  # queue wait + model time; beyond: 504
    max_concurrent_decodes: int = 4  # bounds the CPU used by decoding at once
    # decoded pixels held at once (decoding, queued, in the model): bounds memory, which the queue length
    # alone does not (a 6000x6000 PNG is 0.1 MB uploaded, 108 MB decoded); at least one max_pixels image
    max_pixels_in_flight: int = 72_000_000
    default_mode: str = DEFAULT_MODE

    def __post_init__(self) -> None:
        if self.default_mode not in MODES:
            raise ValueError(f"default_mode must be one of {MODES}, got {self.default_mode!r}")
        for name in ("max_upload_bytes", "max_pixels", "max_queue", "max_batch_fast", "max_batch_full",
                     "max_pixels_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.request_timeout_s <= 0 or self.batch_wait_ms < 0 or self.max_concurrent_decodes < 1:
            raise ValueError("request_timeout_s must be positive, batch_wait_ms >= 0, decodes >= 1")

    @property
    def max_body_bytes(self) -> int:
        """The whole request body: the image as base64 (4/3 larger) plus JSON or multipart overhead."""
        return self.max_upload_bytes * 4 // 3 + 64 * 1024


class ApiError(Exception):
    """An answer other than 200, rendered as the OpenAI-shaped JSON error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - the OpenAI field name
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body exceeds the limit of {limit} bytes", code="request_too_large")


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` while they stream in, so a huge upload is never buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await ApiError(400, "invalid Content-Length header").response()(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await _too_large(self.max_bytes).response()(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


def _host_name(value: str) -> str:
    """The host of a Host header, without the port (IPv6 literals keep no brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostCheckMiddleware:
    """Answer only requests addressed to an allowed host name.

    With a loopback bind this blocks DNS rebinding: a web page whose domain is re-pointed at 127.0.0.1 would
    otherwise talk to this server as if it were its own origin.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = {_host_name(h) for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if _host_name(host) not in self.allowed:
                error = ApiError(400, f"host {host!r} is not served here (allowed: {', '.join(sorted(self.allowed))})",
                                 code="invalid_host")
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- request parsing ------------------------------------------------------------------------------------
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*?);base64,(?P<data>.*)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = parse_json(body)
    except JSONError as exc:
        raise ApiError(400, f"the JSON body: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ApiError(400, f"the JSON body must be an object, got {type(payload).__name__}", code="invalid_json")
    return payload


def _b64decode(text: str, param: str) -> bytes:
    cleaned = re.sub(r"\s+", "", text)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        try:  # URL-safe alphabet, as some clients send
            return base64.b64decode(cleaned, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"'{param}' is not valid base64", param=param, code="invalid_image") from None


def decode_image_field(value: Any, param: str, *, allow_plain_base64: bool = True) -> bytes:
    """Bytes of an image given as a data URL (or plain base64); remote URLs are refused, never fetched."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"'{param}' must be a non-empty string (a data URL or base64)", param=param)
    text = value.strip()
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://", "ftp://", "file:")):
        raise ApiError(
            400,
            f"'{param}': remote image URLs are refused (this server fetches nothing); send the image itself "
            "as a data URL, e.g. data:image/png;base64,...",
            param=param,
            code="remote_url_refused",
        )
    if lowered.startswith("data:"):
        match = _DATA_URL.fullmatch(text)
        if match is None:
            raise ApiError(400, f"'{param}': only base64 data URLs are accepted", param=param, code="invalid_image")
        mime = match.group("mime").strip().lower()
        if mime and not (mime.startswith("image/") or mime == "application/octet-stream"):
            raise ApiError(415, f"'{param}': data URL of type {mime!r} is not an image", param=param)
        return _b64decode(match.group("data"), param)
    if not allow_plain_base64:
        raise ApiError(400, f"'{param}' must be a data URL (data:image/...;base64,...)", param=param)
    return _b64decode(text, param)


def _clean_name(name: Any, default: str) -> str:
    if not isinstance(name, str) or not name.strip():
        return default
    return _CONTROL.sub("", name.strip())[:200] or default


def _mode(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if value not in MODES:
        raise ApiError(400, f"'mode' must be one of {', '.join(MODES)}, got {value!r}", param="mode")
    return str(value)


def approx_tokens(text: str) -> int:
    """A tokenizer-free token estimate (words and punctuation) for `usage` when the model has no tokenizer."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def answer_text(verdict: Verdict, mode: str) -> str:
    """The chat answer: the model's tagged FDR answer, or one built from the verdict when it gave none."""
    if mode == "fast":
        return fast_answer(verdict.label)
    if verdict.raw_text:
        return verdict.raw_text
    return format_cot(verdict.label, verdict.attributes, verdict.caption or "")


# --- the page -------------------------------------------------------------------------------------------
_SCHEMA_PLACEHOLDER = "__FAKEREASONING_SCHEMA__"


def _load_page() -> tuple[str, str]:
    """The page with the attribute lists filled in, and a CSP that allows exactly its inline script/style."""
    html = resources.files("fakereasoning.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    schema = {
        "forgery": list(FORGERY_ATTRIBUTES),
        "authentic": list(AUTHENTIC_ATTRIBUTES),
        "high_level": sorted(HIGH_LEVEL_ATTRIBUTES),
        "modes": list(MODES),
        "version": __version__,
        "prob_words": [list(band) for band in PROB_WORDS],
        "limits_note": LIMITS_NOTE,
    }
    html = html.replace(_SCHEMA_PLACEHOLDER, json.dumps(schema).replace("<", "\\u003c"))

    def hashes(pattern: str) -> str:
        found = re.findall(pattern, html, flags=re.DOTALL)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'" for block in found
        )

    csp = (
        "default-src 'none'; "
        f"script-src {hashes(r'<script>(.*?)</script>')}; "
        f"style-src {hashes(r'<style>(.*?)</style>')}; "
        "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html, csp


# --- the app --------------------------------------------------------------------------------------------
def create_app(
    detector: Detector, limits: ServeLimits | None = None, *, allowed_hosts: Sequence[str] | None = None
) -> FastAPI:
    """A FastAPI app serving `detector` under `limits` (see the module docstring for the endpoints).

    `allowed_hosts`: the Host names requests may address (None: any); the CLI passes the loopback names
    when it binds a loopback address.
    """
    limits = limits or ServeLimits()
    batcher = MicroBatcher(
        detector,
        max_queue=limits.max_queue,
        max_batch_fast=limits.max_batch_fast,
        max_batch_full=limits.max_batch_full,
        batch_wait_s=limits.batch_wait_ms / 1000.0,
    )
    decode_slots = threading.BoundedSemaphore(limits.max_concurrent_decodes)

    def _return_memory() -> None:  # after a burst: the heap glibc keeps would otherwise stay resident
        asyncio.get_running_loop().run_in_executor(None, trim_memory)

    pixels = PixelBudget(max(limits.max_pixels_in_flight, limits.max_pixels), on_idle=_return_memory)
    page_html, page_csp = _load_page()
    count_tokens = getattr(detector, "count_tokens", None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(batcher.close)

    # /docs and /redoc load their assets from a CDN: off, the server works offline. /openapi.json stays.
    app = FastAPI(
        title="fakereasoning",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.detector = detector
    app.state.batcher = batcher
    app.state.limits = limits
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    if allowed_hosts is not None:
        app.add_middleware(HostCheckMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return ApiError(exc.status_code, str(exc.detail), type=kind, headers=exc.headers).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return ApiError(400, f"invalid request: {exc.errors()}").response()

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _: ClientDisconnect) -> Response:
        # One line, not "unhandled error" with two tracebacks: a client going away is not a server fault.
        log.info("%s %s: client disconnected before the request was answered", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def _server_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return ApiError(500, "internal server error", type="server_error").response()

    def _decode(data: bytes, name: str) -> Any:
        with decode_slots:
            return load_image(data, name=name, max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels)

    async def _decode_and_detect(data: bytes, name: str, mode: str, need: int) -> Verdict:
        async with pixels.hold(min(need, limits.max_pixels)):
            try:
                image = await run_in_threadpool(_decode, data, name)
            except ImageLoadError as exc:
                raise ApiError(400, str(exc), code="invalid_image") from None
            return await batcher.submit(image, mode)

    async def detect_bytes(request: Request, data: bytes, name: str, mode: str) -> Verdict:
        if not data:
            raise ApiError(400, f"{name}: empty image", code="invalid_image")
        if len(data) > limits.max_upload_bytes:
            raise ApiError(
                413, f"{name}: {len(data)} bytes exceeds the limit of {limits.max_upload_bytes} bytes",
                code="image_too_large",
            )
        try:
            need = image_pixels(data, name)
        except ImageLoadError:
            need = limits.max_pixels  # no readable header: decoding below says what is wrong
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limits.request_timeout_s):
                verdict = await unless_disconnected(request, _decode_and_detect(data, name, mode, need))
        except QueueFull as exc:
            raise ApiError(503, str(exc), type="overloaded_error", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        except ShuttingDown as exc:
            raise ApiError(503, str(exc), type="overloaded_error", code="shutting_down") from None
        except TimeoutError:
            raise ApiError(504, f"no answer within {limits.request_timeout_s:g} s", type="timeout_error",
                           code="timeout") from None
        except DetectorFailed as exc:
            raise ApiError(500, f"{name}: {exc}", type="server_error", code="model_error") from None
        elapsed = (time.perf_counter() - started) * 1e3  # this request's own time: decode, queue, model
        return dataclasses.replace(verdict, image=name, model_id=verdict.model_id or detector.model_id,
                                   elapsed_ms=elapsed)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        headers = {
            "Content-Security-Policy": page_csp,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(page_html, headers=headers)

    @app.get("/model-card", include_in_schema=False)
    async def model_card_page() -> Response:
        text = getattr(detector, "model_card", None)
        if not text:
            raise ApiError(404, f"model {detector.model_id!r} has no model card", type="not_found_error")
        return Response(text, media_type="text/plain; charset=utf-8",  # shown, not downloaded
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model_id": detector.model_id,
            "version": __version__,
            "queue": {"waiting": batcher.queued, "max": limits.max_queue, "busy": batcher.busy},
            "pixels": {"in_flight": pixels.used, "max": pixels.total, "waiting": pixels.waiting},
            "stats": batcher.stats.to_dict(),
            "limits": dataclasses.asdict(limits),
        }

    model_card = {"id": detector.model_id, "object": "model", "created": 0, "owned_by": "fakereasoning"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != detector.model_id:
            raise ApiError(404, f"model {model_id!r} not found; this server serves {detector.model_id!r}",
                           type="not_found_error", code="model_not_found")
        return model_card

    @app.post("/v1/detect")
    async def detect(request: Request) -> JSONResponse:
        media = _media_type(request)
        if media == "application/json":
            payload = _parse_json(await request.body())
            if "image" not in payload:
                raise ApiError(400, "missing 'image': a base64 string or a data URL", param="image")
            data = decode_image_field(payload["image"], "image")
            mode = _mode(payload.get("mode"), limits.default_mode)
            name = _clean_name(payload.get("name"), "upload")
        elif media == "multipart/form-data":
            async with request.form(max_files=1, max_fields=8, max_part_size=64 * 1024) as form:
                upload = form.get("file")
                if upload is None:
                    upload = form.get("image")
                if not isinstance(upload, UploadFile):
                    raise ApiError(400, "missing the file part 'file' (multipart/form-data)", param="file")
                data = await upload.read()
                field = form.get("mode")
                mode = _mode(field if isinstance(field, str) else None, limits.default_mode)
                if field is not None and not isinstance(field, str):
                    raise ApiError(400, "'mode' must be a text field", param="mode")
                name = _clean_name(upload.filename, "upload")
        else:
            raise ApiError(
                415,
                f"unsupported content type {media or '(none)'!r}: send multipart/form-data with a 'file' part "
                "or application/json with an 'image' field",
                code="unsupported_media_type",
            )
        verdict = await detect_bytes(request, data, name, mode)
        return JSONResponse(verdict.to_dict())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        if _media_type(request) != "application/json":
            raise ApiError(415, "the chat endpoint takes application/json", code="unsupported_media_type")
        payload = _parse_json(await request.body())
        model = payload.get("model")
        if model is not None and model != detector.model_id:
            raise ApiError(404, f"model {model!r} not found; this server serves {detector.model_id!r}",
                           type="not_found_error", param="model", code="model_not_found")
        if payload.get("n") not in (None, 1):
            raise ApiError(400, "only n=1 is supported", param="n")
        image_url, texts = _image_and_texts(payload.get("messages"))
        requested = payload.get("mode")
        if requested is None:
            requested = "fast" if any(t.strip() == PROMPT_FAST for t in texts) else "full"
        mode = _mode(requested, "full")
        data = decode_image_field(image_url, "messages", allow_plain_base64=False)
        verdict = await detect_bytes(request, data, "image_url", mode)
        content = answer_text(verdict, mode)
        prompt = PROMPT_FAST if mode == "fast" else PROMPT_FULL

        def tokens(text: str) -> int:
            counted = count_tokens(text) if count_tokens is not None else None
            return int(counted) if counted is not None else approx_tokens(text)

        usage = {"prompt_tokens": tokens(prompt), "completion_tokens": tokens(content)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        model_id = verdict.model_id or detector.model_id
        if payload.get("stream"):
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            chunks = _stream_chunks(completion_id, created, model_id, content, usage if include_usage else None)
            return StreamingResponse(chunks, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return JSONResponse({
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model_id,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": usage,
            "system_fingerprint": f"fakereasoning-{__version__}",
            # Our extension: the structured verdict, so callers need not parse the text.
            "fakereasoning": verdict.to_dict(),
        })

    return app


CLIENT_CLOSED = 499  # the status access logs use for "the client closed the connection first"


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (after the body, the next ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await WORK, cancelling it when the client disconnects first: a queued request is then dropped
    unrun (a live request waited 6.5 s behind 46 dead ones). Raises `ClientDisconnect` in that case."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise ClientDisconnect()


def _image_and_texts(messages: Any) -> tuple[Any, list[str]]:
    """The one image (`image_url` part) and the text parts of the last user message."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not user:
        raise ApiError(400, "'messages' has no user message", param="messages")
    content = user[-1].get("content")
    if isinstance(content, str):
        raise ApiError(400, "the user message has no image: add an image_url content part with a data URL",
                       param="messages")
    if not isinstance(content, list):
        raise ApiError(400, "the user message content must be a string or a list of parts", param="messages")
    images: list[Any] = []
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise ApiError(400, "each content part must be an object", param="messages")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind == "image_url":
            ref = part.get("image_url")
            images.append(ref.get("url") if isinstance(ref, dict) else ref)
        else:
            raise ApiError(400, f"unsupported content part type {kind!r} (use text and image_url)",
                           param="messages")
    if len(images) != 1:
        raise ApiError(400, f"send exactly one image_url part (got {len(images)})", param="messages")
    return images[0], texts


def _stream_chunks(
    completion_id: str, created: int, model: str, content: str, usage: dict[str, int] | None
) -> Iterator[str]:
    """Server-sent events in the OpenAI streaming shape: the whole answer in one delta, then [DONE]."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                  "logprobs": None, "finish_reason": None}]}
    last = {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    yield f"data: {json.dumps(first)}\n\n"
    yield f"data: {json.dumps(last)}\n\n"
    if usage is not None:
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"
