"""The official `openai` client against a live uvicorn server on 127.0.0.1 (the compatibility promise)."""

from __future__ import annotations

import base64

import openai
import pytest

from fakereasoning.schema import ATTRIBUTES_OF_LABEL, PROMPT_FULL, clean_finding, parse_cot


@pytest.fixture(scope="module")
def oai(live_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def image_message(png_bytes: bytes, text: str = PROMPT_FULL) -> list[dict]:
    url = "data:image/png;base64," + base64.b64encode(png_bytes).decode()
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def test_models_list(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["stub-detector"]


def test_chat_completion_with_a_data_url(oai: openai.OpenAI, png) -> None:
    completion = oai.chat.completions.create(model="stub-detector", messages=image_message(png((220, 30, 30))))
    content = completion.choices[0].message.content
    parsed = parse_cot(content)
    assert parsed.ok and parsed.label == "fake"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > completion.usage.prompt_tokens > 0
    # the release format: findings are plain sentences in <REASONING>; the extension's Verdict keeps which
    # attribute each one states (the model's own mapping, which free-text findings cannot be parsed back to)
    extension = completion.model_extra["fakereasoning"]
    assert extension["label"] == "fake" and len(extension["attributes"]) == 3
    assert set(extension["attributes"]) <= set(ATTRIBUTES_OF_LABEL["fake"])
    for name, finding in extension["attributes"].items():
        assert clean_finding(finding) in (parsed.reasoning or "") and f"{name}:" not in content


def test_fast_mode_through_extra_body(oai: openai.OpenAI, png) -> None:
    completion = oai.chat.completions.create(
        model="stub-detector", messages=image_message(png((10, 30, 200))), extra_body={"mode": "fast"}
    )
    assert completion.choices[0].message.content == "<CONCLUSION> This image is real. </CONCLUSION>"


def test_streaming_gives_the_same_answer(oai: openai.OpenAI, png) -> None:
    messages = image_message(png((220, 30, 30)))
    whole = oai.chat.completions.create(model="stub-detector", messages=messages).choices[0].message.content
    stream = oai.chat.completions.create(model="stub-detector", messages=messages, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == whole


def test_remote_urls_are_refused(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="stub-detector", messages=messages)
    assert "remote image URLs are refused" in str(caught.value)


def test_unknown_model_and_bad_image_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="gpt-4o", messages=image_message(b"x"))
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="stub-detector", messages=image_message(b"not a png"))
    assert "not a recognised image" in str(caught.value)
