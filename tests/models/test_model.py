from __future__ import annotations

import pickle

import pytest
import torch

from fakereasoning import schema
from fakereasoning.errors import ImageLoadError
from fakereasoning.models import FakeReasoning
from fakereasoning.models.config import FakeReasoningConfig, ModelConfigError

from .conftest import LLAVA_KW, TINY_KW, make_samples


def _bias_fake(model: FakeReasoning, delta: float):
    """Shift the fake-verdict logit everywhere (a forward hook on the LM head) to steer p(fake)."""
    _, fake_id = model.text.verdict_ids

    def hook(_module, _inputs, output):
        output = output.clone()
        output[..., fake_id] += delta
        return output

    return model.backbone.lm.lm_head.register_forward_hook(hook)


def test_forward_outputs(tiny_model, images):
    batch = tiny_model.collate(make_samples(images[:4]))
    out = tiny_model(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    expected = out.lm_loss + out.cpm_loss + out.facl_loss
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.cpm_logits.shape == (4, 2) and out.prob_fake.shape == (4,)
    assert out.image_embeds.shape == out.text_embeds.shape == (4, tiny_model.config.facl_dim)
    out.loss.backward()
    assert all(p.grad is None for p in tiny_model.backbone.semantic.parameters())  # frozen
    assert tiny_model.backbone.forensic.stem[0].weight.grad is not None  # trained
    no_cpm = FakeReasoning.build(
        "tiny", tokenizer=tiny_model.tokenizer, **{**TINY_KW, "use_cpm": False, "use_facl": False}
    )
    out = no_cpm(no_cpm.collate(make_samples(images[:2])))
    assert out.loss.item() == pytest.approx(out.lm_loss.item())


@pytest.mark.parametrize("delta", [60.0, -60.0])
def test_full_and_fast_modes_agree_with_cpm(tiny_model, images, delta):
    tiny_model.eval()
    handle = _bias_fake(tiny_model, delta)
    try:
        fast_p = tiny_model.fast_probabilities(images[:3])
        fast_txt = tiny_model.generate(images[:3], mode="fast")
        full = tiny_model._generate_full(images[:3], max_new_tokens=40, temperature=0.7, seed=1)
    finally:
        handle.remove()
    want = "fake" if delta > 0 else "real"
    for p, text in zip(fast_p, fast_txt, strict=True):
        assert 0.0 <= p <= 1.0 and (p >= 0.5) == (want == "fake")
        assert text == schema.fast_answer(want)
    for p, text in zip(full.probs, full.texts, strict=True):
        parsed = schema.parse_cot(text)
        assert parsed.label == ("fake" if p >= 0.5 else "real") == want
        assert text.startswith("<SUMMARY> " + schema.SUMMARY_TEXT)


def test_full_mode_conclusion_follows_cpm_unbiased(tiny_model, images):
    tiny_model.eval()
    verdicts = tiny_model.detect_many(
        images[:4], mode="full", max_new_tokens=30, temperature=1.0, batch_size=2
    )
    for v in verdicts:
        parsed = schema.parse_cot(v.raw_text)
        assert parsed.label == v.label == ("fake" if v.prob_fake >= 0.5 else "real")
        assert v.raw_text.endswith(schema.fast_answer(v.label))
        assert v.model_id == tiny_model.model_id and v.elapsed_ms > 0


def test_detect_paths_bytes_and_errors(tiny_model, images, tmp_path):
    path = tmp_path / "a.png"
    images[0].save(path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    v = tiny_model.detect(path, mode="fast")
    assert v.image == str(path) and v.raw_text == schema.fast_answer(v.label)
    assert v.to_dict()["schema"] == schema.VERDICT_SCHEMA
    assert tiny_model.detect(path.read_bytes(), mode="fast").prob_fake == pytest.approx(v.prob_fake, abs=1e-6)
    with pytest.raises(ImageLoadError, match="bad.png"):
        tiny_model.detect_many([path, bad], mode="fast")
    out = tiny_model.detect_many([path, bad, images[1]], mode="fast", on_error="none", batch_size=2)
    assert out[1] is None and out[0].prob_fake == pytest.approx(v.prob_fake, abs=1e-6) and out[2] is not None


def _no_unpickling(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("loading must never unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_tiny_save_load_identical(tiny_model, images, tmp_path, monkeypatch):
    tiny_model.eval()
    tiny_model.config.temperature = 1.7
    target = tmp_path / "model"
    tiny_model.save_pretrained(target)
    tiny_model.save_pretrained(target)  # overwriting in place is atomic and leaves no temp dirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in target.iterdir()}
    with monkeypatch.context() as m:
        _no_unpickling(m)
        loaded = FakeReasoning.from_pretrained(target)
    assert loaded.config == tiny_model.config
    batch = tiny_model.collate(make_samples(images[:3]))
    with torch.no_grad():
        a, b = tiny_model(batch), loaded(batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.image_embeds, b.image_embeds)
    assert tiny_model.fast_probabilities(images[:2]) == loaded.fast_probabilities(images[:2])
    assert tiny_model.generate(images[:2], max_new_tokens=20, temperature=0) == loaded.generate(
        images[:2], max_new_tokens=20, temperature=0
    )


def test_llava_build_train_step_and_save_load(tiny_llava_dir, images, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = FakeReasoning.build("llava", base_model=str(tiny_llava_dir), **LLAVA_KW)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("multi_modal_projector" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)
    assert not any("language_model" in n and "lora_" not in n for n in trainable)
    batch = model.collate(make_samples(images[:4]))
    out = model(batch)
    out.loss.backward()
    assert set(out.facl_terms) == {"cross", "image", "text"} and torch.isfinite(out.loss)
    with torch.no_grad():  # make the adapters non-trivial so the round trip is a real check
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    model.eval()
    target = tmp_path / "llava-fr"
    model.save_pretrained(target)
    from safetensors.torch import load_file

    keys = set(load_file(str(target / "model.safetensors")))
    assert not any("vision_tower" in k or "embed_tokens" in k for k in keys)  # base weights are not copied
    with monkeypatch.context() as m:
        _no_unpickling(m)
        loaded = FakeReasoning.from_pretrained(target)
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.prob_fake, b.prob_fake)
    assert model.fast_probabilities(images[:2]) == loaded.fast_probabilities(images[:2])
    full = loaded._generate_full(images[:2], max_new_tokens=24)
    for p, text in zip(full.probs, full.texts, strict=True):
        assert schema.parse_cot(text).label == ("fake" if p >= 0.5 else "real")


def test_load_errors(tmp_path, tiny_model):
    with pytest.raises(ModelConfigError, match="config.json"):
        FakeReasoning.from_pretrained(tmp_path)
    with pytest.raises(ModelConfigError, match="base_model"):
        FakeReasoning.build("llava")
    with pytest.raises(ModelConfigError, match="unknown backbone"):
        FakeReasoning.build("resnet")
    target = tmp_path / "m"
    tiny_model.save_pretrained(target)
    (target / "model.safetensors").unlink()
    with pytest.raises(ModelConfigError, match="model.safetensors"):
        FakeReasoning.from_pretrained(target)


def test_config_round_trip_and_validation():
    cfg = FakeReasoningConfig(backbone="tiny", use_facl=False, cpm_scale=5.0, lora_targets=["q_proj"])
    assert FakeReasoningConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelConfigError, match="unknown config keys"):
        FakeReasoningConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ModelConfigError):
        FakeReasoningConfig(temperature=0)
    with pytest.raises(ModelConfigError):
        FakeReasoningConfig(forensic_crop=30)


def test_tokenizer_encodes_verdicts_compactly(tiny_tokenizer):
    for word in (" real", " fake"):
        assert len(tiny_tokenizer(word, add_special_tokens=False)["input_ids"]) == 1
    text = schema.format_cot("fake", {"Low Image Quality": "ünïcode 😀 blur"}, "a cat")
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text  # byte-level: any text round-trips


def test_cached_semantic_features_give_same_output(tiny_model, images):
    tiny_model.eval()
    batch = tiny_model.collate(make_samples(images[:3]))
    with torch.no_grad():
        plain = tiny_model(batch)
        batch["semantic_features"] = tiny_model.backbone.semantic_features(batch["pixel_values"])
        batch["pixel_values"] = torch.zeros_like(batch["pixel_values"])  # proves the cache is what is used
        cached = tiny_model(batch)
    assert torch.allclose(plain.logits, cached.logits, atol=1e-6)


def test_empty_inputs(tiny_model):
    assert tiny_model.generate([], mode="full") == []
    assert tiny_model.fast_probabilities([]) == []
    assert tiny_model.detect_many([]) == []
    with pytest.raises(ValueError, match="mode"):
        tiny_model.generate([object()], mode="slow")


def test_a_huge_integer_in_config_json_is_one_error_naming_the_file(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"d_model": ' + "9" * 5000 + "}")
    with pytest.raises(ModelConfigError, match=r"config\.json: unreadable config"):
        FakeReasoningConfig.load(tmp_path)
