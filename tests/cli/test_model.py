"""`fakereasoning model import-release` / `model info`, and the `mof` models end to end on CPU: detect,
evaluate (CPM p(fake), reasoning metrics, CSS through a tiny CLIP text tower), serve and train --resume, on
the imported replica of the released checkpoint and on a tiny random `mof` model."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import mof_factory as mf
import pytest
import torch
from mmfr_factory import separable_dataset

from fakereasoning import schema
from fakereasoning.cli import main
from fakereasoning.models import FakeReasoning
from fakereasoning.models.footprint import describe_files, estimate_bytes, measure_peak_bytes


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"imported": the replica imported by the CLI, "fresh": a tiny random mof model, "clip": a tiny CLIP}."""
    root = tmp_path_factory.mktemp("mof-cli")
    rel = mf.make_release(root / "release")
    imported = root / "imported"
    assert main(["model", "import-release", str(rel["src"]), "--clip", str(rel["clip"]), "--dino", str(rel["dino"]),
                 "--base", str(rel["base"]), "--out", str(imported), "--precision", "float32"]) == 0
    torch.manual_seed(0)
    fresh = root / "fresh"
    FakeReasoning.build("mof", **mf.make_mof_parts(root / "parts"), **mf.MOF_KW).save_pretrained(fresh)
    return {"imported": imported, "fresh": fresh, "clip": rel["clip"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return separable_dataset(tmp_path_factory.mktemp("mof-data") / "data", n_train=8, n_eval=2, sets=("a",))


@pytest.mark.parametrize("which", ["imported", "fresh"])
def test_model_info_estimate_is_within_10_percent_of_the_measured_peak(models, which, capsys) -> None:
    assert main(["model", "info", str(models[which]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backbone"] == "mof" and set(info["parts"]) >= {"lm", "clip", "dino", "fusion", "clip_projector"}
    assert {"float32", "bfloat16", "int8", "int4"} <= set(info["memory_bytes"])
    assert info["memory_bytes"]["int4"] < info["memory_bytes"]["bfloat16"] < info["memory_bytes"]["float32"]
    footprint = describe_files(models[which])
    image = __import__("models.conftest", fromlist=["make_images"]).make_images(1)
    for precision in ("float32", "bfloat16"):
        model = FakeReasoning.from_pretrained(models[which]).to(getattr(torch, precision))
        assert model.num_parameters() <= footprint.total <= model.num_parameters() + sum(b.numel() for b in model.buffers())
        seq = len(model.text.prompt_ids(schema.PROMPT_FAST)) + len(model.text.fast_prefix)
        with torch.no_grad():
            peak = measure_peak_bytes(model, lambda m=model: m.fast_probabilities(image))
        estimate = estimate_bytes(footprint, precision, seq)
        assert abs(estimate - peak) <= 0.10 * peak, f"{which} {precision}: estimate {estimate:.0f} vs peak {peak}"
    assert main(["model", "info", str(models[which])]) == 0
    assert "parameters" in capsys.readouterr().out


def test_model_info_names_a_broken_config(models, tmp_path, capsys) -> None:
    import shutil

    copy = tmp_path / "imported"
    shutil.copytree(models["imported"], copy)  # its checkpoints are relative to the folder: the copy reads its own
    (copy / "dino" / "config.json").write_text("{not json", encoding="utf-8")
    assert main(["model", "info", str(copy)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(copy / "dino" / "config.json") in err


@pytest.mark.parametrize("which", ["imported", "fresh"])
def test_detect_evaluate_and_serve(models, data, which, tmp_path, capsys) -> None:
    model_dir = models[which]
    image = next((data / "evaluation_sets" / "a" / "1_fake").iterdir())
    assert main(["detect", str(image), "--model", str(model_dir), "--json", "--mode", "full",
                 "--max-new-tokens", "6"]) == 0
    verdict = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert verdict["schema"] == schema.VERDICT_SCHEMA and 0.0 <= verdict["prob_fake"] <= 1.0
    assert schema.parse_cot(verdict["raw_text"]).label == verdict["label"]  # the conclusion follows CPM's p(fake)
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--mode", "full",
                 "--max-new-tokens", "6", "--css-encoder", str(models["clip"]), "--bootstrap", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["css_model"].startswith("CLIP text features")
    assert "CLIP text features" in (out / "report.md").read_text()
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(0.0 <= r["prob_fake"] <= 1.0 for r in rows)
    mean = metrics["mean"]
    assert mean["failure_rate"] is not None
    if which == "fresh":  # grounded answers always parse; the random replica's free text mostly does not
        assert mean["failure_rate"] == 0.0 and mean["auc"] is not None
        assert mean["rouge_l"] is not None and mean["css"] is not None and mean["bleu1"] is not None
    fast = tmp_path / "fast"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data), "--out", str(fast), "--bootstrap", "0"]) == 0
    fast_mean = json.loads((fast / "metrics.json").read_text())["mean"]
    assert fast_mean["auc"] is not None and fast_mean["ece"] is not None  # from CPM's p(fake)
    from fastapi.testclient import TestClient

    from fakereasoning.serve import ServeLimits, create_app, load_detector

    raw = image.read_bytes()
    with TestClient(create_app(load_detector(model_dir), ServeLimits(batch_wait_ms=5))) as client:
        r = client.post("/v1/detect", files={"file": ("x.png", raw, "image/png")}, data={"mode": "fast"})
        assert r.status_code == 200 and 0.0 <= r.json()["prob_fake"] <= 1.0
        url = "data:image/png;base64," + base64.b64encode(raw).decode()
        model_id = client.get("/v1/models").json()["data"][0]["id"]
        chat = client.post("/v1/chat/completions", json={"model": model_id, "messages": [{"role": "user", "content": [
            {"type": "text", "text": schema.PROMPT_FULL}, {"type": "image_url", "image_url": {"url": url}}]}]})
        assert chat.status_code == 200, chat.text
        answer = chat.json()["choices"][0]["message"]["content"]
        assert schema.parse_cot(answer).label in ("real", "fake")


def test_css_through_a_tiny_clip_text_tower_ranks_like_texts_higher(models) -> None:
    from fakereasoning.evaluate.encoders import load_encoder
    from fakereasoning.evaluate.metrics import ReasoningScorer

    scorer = ReasoningScorer(load_encoder(str(models["clip"])))
    same, other = scorer.css(["a b c", "a b c"], ["a b c", "x y z w v"])
    assert same == pytest.approx(1.0, abs=1e-5) and other < same


@pytest.mark.parametrize("which", ["imported", "fresh"])
def test_train_and_resume(models, data, which, tmp_path) -> None:
    out = tmp_path / "run"
    model = ["model.backbone=mof", f"model.init_from={models[which]!s}"]
    common = ["train", "--data", str(data), "--output", str(out), "optim.batch_size=2", "run.save_every=1",
              "data.val_fraction=0.25", "run.log_every=1", *model]
    assert main([*common, "--max-steps", "1"]) == 0
    assert main([*common, "--max-steps", "2", "--resume"]) == 0
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] == r["loss"] for r in log)
    trained = FakeReasoning.from_pretrained(out / "model")
    assert trained.config.backbone == "mof"
    before, after = FakeReasoning.from_pretrained(models[which]), trained
    key = "backbone.fusion.q.weight"
    assert not torch.equal(dict(before.named_parameters())[key], dict(after.named_parameters())[key])  # it learned
    buf = io.BytesIO()
    __import__("PIL.Image", fromlist=["Image"]).new("RGB", (30, 20), (90, 120, 30)).save(buf, "PNG")
    assert 0.0 <= after.detect(buf.getvalue(), mode="fast").prob_fake <= 1.0
