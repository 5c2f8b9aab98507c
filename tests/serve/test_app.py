"""API tests through the ASGI test client: the endpoints, the Verdict JSON, and every kind of bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakereasoning.schema import (
    AUTHENTIC_ATTRIBUTES,
    FORGERY_ATTRIBUTES,
    PROMPT_FAST,
    PROMPT_FULL,
    VERDICT_SCHEMA,
    Verdict,
    parse_cot,
)
from fakereasoning.serve import ServeLimits, create_app

RED = (200, 40, 40)  # mean red 200/255: the stub calls it fake
BLUE = (20, 40, 200)  # mean red 20/255: real


@pytest.fixture
def client(stub_detector) -> Iterator[TestClient]:
    with TestClient(create_app(stub_detector())) as c:
        yield c


def limited_client(stub_detector, **limits) -> TestClient:
    return TestClient(create_app(stub_detector(), ServeLimits(**limits)))


def png_header_bomb(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG that claim width x height pixels: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def assert_error(response, status: int, code: str | None = None, contains: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    if contains is not None:
        assert contains in error["message"]
    return error


# --- the happy paths -------------------------------------------------------------------------------------
def test_healthz_and_models(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model_id"] == "stub-detector"
    assert health["queue"]["max"] == ServeLimits().max_queue
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["stub-detector"]


def test_detect_multipart_full_returns_the_verdict_json(client: TestClient, png) -> None:
    r = client.post("/v1/detect", files={"file": ("red.png", png(RED), "image/png")}, data={"mode": "full"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schema"] == VERDICT_SCHEMA
    verdict = Verdict.from_dict(body)  # the one JSON form round-trips
    assert verdict.image == "red.png" and verdict.label == "fake"
    assert verdict.prob_fake == pytest.approx(200 / 255, abs=0.02)
    assert set(verdict.attributes) <= set(FORGERY_ATTRIBUTES) and len(verdict.attributes) == 3
    assert verdict.caption == "a flat test image of 32x24"
    assert parse_cot(verdict.raw_text).label == "fake"
    assert verdict.model_id == "stub-detector" and verdict.elapsed_ms is not None


def test_detect_multipart_fast_gives_only_the_verdict(client: TestClient, png) -> None:
    r = client.post("/v1/detect", files={"file": ("blue.png", png(BLUE), "image/png")}, data={"mode": "fast"})
    body = r.json()
    assert r.status_code == 200 and body["label"] == "real" and body["attributes"] == {}
    assert parse_cot(body["raw_text"]).label == "real"


def test_detect_json_base64_and_data_url_agree_with_multipart(client: TestClient, png) -> None:
    raw = png(BLUE)
    by_file = client.post("/v1/detect", files={"file": ("b.png", raw, "image/png")}).json()
    by_b64 = client.post("/v1/detect", json={"image": base64.b64encode(raw).decode(), "name": "b.png"}).json()
    by_url = client.post("/v1/detect", json={"image": data_url(raw), "mode": "full"}).json()
    assert by_file["prob_fake"] == by_b64["prob_fake"] == by_url["prob_fake"]
    assert by_file["label"] == "real"
    assert set(by_url["attributes"]) <= set(AUTHENTIC_ATTRIBUTES)
    assert by_b64["image"] == "b.png" and by_url["image"] == "upload"


def test_default_mode_is_configurable(stub_detector, png) -> None:
    with limited_client(stub_detector, default_mode="fast") as c:
        body = c.post("/v1/detect", files={"file": ("r.png", png(RED), "image/png")}).json()
    assert body["attributes"] == {} and body["label"] == "fake"


def test_jpeg_and_exif_free_formats_decode(client: TestClient) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), RED).save(buf, format="JPEG", quality=95)
    r = client.post("/v1/detect", files={"file": ("r.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200 and r.json()["label"] == "fake"


# --- bad input: always a 4xx JSON error, never a 500 -----------------------------------------------------
def test_undecodable_and_truncated_images_are_400(client: TestClient, png) -> None:
    err = assert_error(client.post("/v1/detect", files={"file": ("junk.png", b"not an image", "image/png")}),
                       400, "invalid_image")
    assert err["message"].startswith("junk.png:")
    truncated = png(RED)[:60]
    assert_error(client.post("/v1/detect", files={"file": ("cut.png", truncated, "image/png")}), 400, "invalid_image")
    assert_error(client.post("/v1/detect", files={"file": ("empty.png", b"", "image/png")}), 400, "invalid_image")


def test_decompression_bomb_is_refused_before_decoding(client: TestClient, stub_detector) -> None:
    bomb = png_header_bomb(60_000, 60_000)  # 3.6 gigapixels in ~60 bytes
    assert len(bomb) < 200
    err = assert_error(client.post("/v1/detect", files={"file": ("bomb.png", bomb, "image/png")}), 400, "invalid_image")
    limit = ServeLimits().max_pixels
    assert err["message"] == (f"bomb.png: 3600000000 pixels exceeds the limit of {limit} "
                              "(possible decompression bomb)")  # the configured limit, never Pillow's own
    with limited_client(stub_detector, max_pixels=200_000_000) as c:  # above Pillow's 89 MP warning
        err = assert_error(c.post("/v1/detect", files={"file": ("bomb.png", bomb, "image/png")}), 400)
        assert "exceeds the limit of 200000000 " in err["message"]


def test_pixel_limit_is_configurable(stub_detector, png) -> None:
    with limited_client(stub_detector, max_pixels=500) as c:  # 32x24 = 768 pixels
        err = assert_error(c.post("/v1/detect", files={"file": ("r.png", png(RED), "image/png")}), 400)
        assert "768" in err["message"]


def test_image_bytes_over_the_limit_are_413(stub_detector, png) -> None:
    raw = png(RED, size=(64, 64))
    with limited_client(stub_detector, max_upload_bytes=len(raw) - 1) as c:
        assert_error(c.post("/v1/detect", json={"image": base64.b64encode(raw).decode()}), 413, "image_too_large")


def test_body_over_the_limit_is_413_by_header_and_by_stream(stub_detector) -> None:
    limits = ServeLimits(max_upload_bytes=1000)
    with TestClient(create_app(stub_detector(), limits)) as c:
        big = b"x" * (limits.max_body_bytes + 1)
        assert_error(c.post("/v1/detect", content=big, headers={"content-type": "application/json"}),
                     413, "request_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must act while streaming
            for _ in range(200):
                yield b"y" * 1024

        assert_error(c.post("/v1/detect", content=chunks(), headers={"content-type": "application/json"}),
                     413, "request_too_large")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"content": b"hello"}, 415, "unsupported_media_type"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"json": [1, 2]}, 400, "invalid_json"),
        ({"content": b'{"image": Infinity, "mode": NaN}', "headers": {"content-type": "application/json"}}, 400, None),
        ({"json": {"mode": "fast"}}, 400, None),
        ({"json": {"image": 12}}, 400, None),
        ({"json": {"image": "***not base64***"}}, 400, "invalid_image"),
        ({"json": {"image": "data:text/plain;base64,aGVsbG8="}}, 415, None),
        ({"json": {"image": "data:image/png,rawbytes"}}, 400, "invalid_image"),
        ({"json": {"image": "https://example.com/cat.png"}}, 400, "remote_url_refused"),
        ({"json": {"image": "aGVsbG8=", "mode": "slow"}}, 400, None),
        ({"content": b'{"image": ' + b"9" * 5000 + b"}", "headers": {"content-type": "application/json"}},
         400, "invalid_json"),
        ({"files": {"other": ("x.png", b"x", "image/png")}}, 400, None),
        ({"content": b"--zz\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=zz"}}, 400, None),
        ({"content": b"x", "headers": {"content-type": "multipart/form-data"}}, 400, None),
    ],
)
def test_bad_requests_get_json_4xx(client: TestClient, kwargs: dict, status: int, code: str | None) -> None:
    assert_error(client.post("/v1/detect", **kwargs), status, code)


def test_two_files_and_bad_mode_field_are_400(client: TestClient, png) -> None:
    files = [("file", ("a.png", png(RED), "image/png")), ("file", ("b.png", png(BLUE), "image/png"))]
    assert_error(client.post("/v1/detect", files=files), 400)
    assert_error(client.post("/v1/detect", files={"file": ("a.png", png(RED), "image/png")}, data={"mode": "x"}), 400)


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404)
    assert_error(client.get("/v1/detect"), 405)
    assert client.get("/docs").status_code == 404  # the CDN-backed docs page is off


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300), name=st.text(max_size=40))
def test_random_uploads_never_cause_a_500(client: TestClient, payload: bytes, name: str) -> None:
    r = client.post("/v1/detect", files={"file": (name or "f", payload, "application/octet-stream")})
    assert r.status_code in (200, 400, 413), r.text
    assert "error" in r.json() or r.json()["schema"] == VERDICT_SCHEMA


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["image", "mode", "name", "model", "messages", "n", "stream"]),
                            json_values, max_size=5))
def test_random_json_never_causes_a_500(client: TestClient, body: dict) -> None:
    for path in ("/v1/detect", "/v1/chat/completions"):
        r = client.post(path, json=body)
        assert 400 <= r.status_code < 500, (path, r.text)
        assert r.json()["error"]["message"]


# --- the OpenAI-compatible chat endpoint (the official client is tested against a live server) ---------------
def chat_body(url: str, text: str = PROMPT_FULL, **extra) -> dict:
    return {
        "model": "stub-detector",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}],
        **extra,
    }


def test_chat_completion_answers_with_the_tagged_fdr_answer(client: TestClient, png) -> None:
    r = client.post("/v1/chat/completions", json=chat_body(data_url(png(RED))))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "stub-detector"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    parsed = parse_cot(choice["message"]["content"])
    assert parsed.ok and parsed.label == "fake" and parsed.missing == []
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["fakereasoning"]["label"] == "fake"


def test_chat_fast_mode_by_prompt_or_field(client: TestClient, png) -> None:
    for body in (chat_body(data_url(png(BLUE)), PROMPT_FAST), chat_body(data_url(png(BLUE)), mode="fast")):
        content = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        assert content == "<CONCLUSION> This image is real. </CONCLUSION>"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (chat_body("https://example.com/cat.png"), 400, "remote_url_refused"),
        (chat_body("http://127.0.0.1/cat.png"), 400, "remote_url_refused"),
        (chat_body("aGVsbG8="), 400, None),  # plain base64 is not a URL
        (chat_body("data:image/png;base64,AAAA"), 400, "invalid_image"),
        ({**chat_body("data:image/png;base64,AAAA"), "model": "gpt-4o"}, 404, "model_not_found"),
        ({**chat_body("data:image/png;base64,AAAA"), "n": 2}, 400, None),
        ({"model": "stub-detector", "messages": [{"role": "user", "content": "is it fake?"}]}, 400, None),
        ({"model": "stub-detector", "messages": []}, 400, None),
        ({"model": "stub-detector", "messages": [{"role": "system", "content": "hi"}]}, 400, None),
        ({"model": "stub-detector", "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, 400, None),
    ],
)
def test_chat_bad_requests(client: TestClient, body: dict, status: int, code: str | None) -> None:
    assert_error(client.post("/v1/chat/completions", json=body), status, code)


def test_chat_two_images_refused(client: TestClient, png) -> None:
    body = chat_body(data_url(png(RED)))
    body["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": data_url(png(BLUE))}})
    assert_error(client.post("/v1/chat/completions", json=body), 400, contains="exactly one")


def test_chat_stream_is_server_sent_events(client: TestClient, png) -> None:
    body = chat_body(data_url(png(RED)), stream=True, stream_options={"include_usage": True})
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert parse_cot(content).label == "fake"
    assert chunks[-1]["usage"]["total_tokens"] > 0


# --- the page ---------------------------------------------------------------------------------------------
def test_page_is_self_contained_with_a_strict_csp(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "__FAKEREASONING_SCHEMA__" not in html
    schema = json.loads(re.search(r'<script type="application/json" id="fr-schema">(.*?)</script>', html, re.S)[1])
    assert schema["forgery"] == list(FORGERY_ATTRIBUTES) and schema["authentic"] == list(AUTHENTIC_ATTRIBUTES)
    # Offline: no external script, style, image or font.
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "@import" not in html and "url(http" not in html
    csp = r.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", html, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp


def test_model_retrieve(client: TestClient) -> None:
    assert client.get("/v1/models/stub-detector").json()["id"] == "stub-detector"
    assert_error(client.get("/v1/models/gpt-4o"), 404, "model_not_found")


def test_allowed_hosts_block_other_host_names(stub_detector) -> None:
    from fakereasoning.serve.app import LOOPBACK_HOSTS

    app = create_app(stub_detector(), allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/healthz").status_code == 200
        for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
            assert c.get("/healthz", headers={"host": host}).status_code == 200, host
        # A rebinding page's request carries its own domain: refused before anything runs.
        assert_error(c.get("/healthz", headers={"host": "attacker.example:8000"}), 400, "invalid_host")
        assert_error(c.post("/v1/detect", headers={"host": "127.0.0.1.attacker.example"}, json={}), 400, "invalid_host")


def test_model_card_is_served_and_the_page_carries_the_limits(stub_detector) -> None:
    from fakereasoning.schema import LIMITS_NOTE

    with TestClient(create_app(stub_detector())) as plain:
        assert plain.get("/model-card").status_code == 404
        assert json.dumps(LIMITS_NOTE)[1:-1] in plain.get("/").text
    carded = stub_detector()
    carded.model_card = "# Model card\nLimits: many."
    with TestClient(create_app(carded)) as client:
        r = client.get("/model-card")
        assert r.status_code == 200 and r.text.startswith("# Model card")
        assert r.headers["content-type"].startswith("text/plain")
