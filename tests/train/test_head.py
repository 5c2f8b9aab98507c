"""Stage 1 of training a model with a detection head: folds from the layout, out-of-fold calibration, the
head in the saved model, and multi-crop inference with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakereasoning.cli import main
from fakereasoning.train.head import family_and_source

SMALL = ["model.d_model=64", "model.n_layers=1", "model.n_heads=2", "model.ffn_dim=128", "model.facl_dim=32",
         "model.use_forensic=false", "model.use_stats=true", "model.stats_crop=32", "model.stats_crops=1",
         "model.semantic_view=native", "model.stats_prior=false", "model.verdict_head=true",
         "model.infer_crops=4", "optim.batch_size=4", "run.log_every=1", "data.val_fraction=0.1",
         "data.head_views=2", "data.jpeg_prob=0.3"]
MODERN = ("gemini", "flux", "midjourney", "qwen-image")
SOURCES = ("phones", "dslr", "scans")


def _real(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    return np.clip(rng.normal(128, 40, (size, size, 3)), 0, 255).astype(np.uint8)


def _fake(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    small = rng.normal(128, 40, (size // 2, size // 2, 3))
    return np.clip(np.repeat(np.repeat(small, 2, 0), 2, 1), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def family_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MMFR-Public-like: public_train/1_fake/<family>/, public_train/0_real/<source>/ (no CoT: fast answers
    from the reasoning JSON the builder would write)."""
    from fakereasoning.data.cot import write_cot
    from fakereasoning.data.mmfr import write_reasoning_json

    root = tmp_path_factory.mktemp("fam") / "data"
    rng = np.random.default_rng(0)
    notes: dict[str, dict[str, str | None]] = {}
    for fam in (*MODERN, "sd1"):
        for i in range(6):
            rel = f"public_train/1_fake/{fam}/{fam}_{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_fake(rng)).save(root / rel)
            notes[rel] = {"Anomalous Image Texture": "pixels repeat in 2x2 blocks"}
    for src in SOURCES:
        for i in range(10):
            rel = f"public_train/0_real/{src}/{src}_{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_real(rng)).save(root / rel)
            notes[rel] = {"High Image Quality": "fine noise with no periodic structure"}
    write_reasoning_json(root / "public_train/public_train_reasoning.json", notes)
    write_cot(root, root / "forgery_reasoning_cot.json")
    return root


def test_family_and_source_from_the_layout() -> None:
    assert family_and_source("public_train/1_fake/gemini/x.png") == "gemini"
    assert family_and_source("public_train/0_real/dslr/a/b.png") == "dslr"
    assert family_and_source("part/1_fake/x.png") == ""


@pytest.fixture(scope="module")
def trained(family_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--data", str(family_data), "--output", str(out), "--max-steps", "2", *SMALL]) == 0
    return out


def test_head_is_fitted_leave_family_out_and_calibrated_out_of_fold(trained: Path) -> None:
    report = json.loads((trained / "head.json").read_text())
    folds = report["folds"]["folds"]
    families = [f for fold in folds for f in fold["families"]]
    assert sorted(families) == sorted(MODERN)  # each modern family in one fold; sd1 always trains
    sources = [s for fold in folds for s in fold["real_sources"]]
    assert sorted(sources) == sorted(SOURCES)
    assert report["calibration"].startswith("out-of-fold")
    assert report["fold_auc"] and all(a > 0.9 for a in report["fold_auc"])  # a learnable toy trace
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["heldout"]["source"].startswith("detection head")
    from safetensors.torch import load_file

    weights = load_file(str(trained / "model/model.safetensors"))
    assert float(weights["backbone.head.weight"].abs().sum()) > 0  # fitted, saved, not retrained to zero
    init = load_file(str(trained / "init_model/model.safetensors"))
    assert np.allclose(init["backbone.head.weight"].numpy(), weights["backbone.head.weight"].numpy())  # frozen


def test_multi_crop_inference_reports_crops_and_keeps_small_images_as_one(trained: Path, tmp_path: Path) -> None:
    from fakereasoning.models import FakeReasoning

    model = FakeReasoning.from_pretrained(trained / "model")
    rng = np.random.default_rng(5)
    small = Image.fromarray(_fake(rng, 40))
    large = Image.fromarray(_fake(rng, 160))
    four, = model.detect_many([small], mode="fast")
    one = FakeReasoning.from_pretrained(trained / "model")
    one.config = one.config.replace(infer_crops=1)
    assert one.backbone.config.infer_crops == 1 and one.detect_many([large], mode="fast")[0].crops == 1
    single, = one.detect_many([small], mode="fast")
    assert four.crops == single.crops == 1 and four.prob_fake == pytest.approx(single.prob_fake, abs=1e-6)
    batch = model.detect_many([small, large, small], mode="fast")  # images of a batch read different counts
    assert [v.crops for v in batch] == [1, 4, 1]
    assert batch[0].prob_fake == pytest.approx(single.prob_fake, abs=1e-5)
    alone, = model.detect_many([large], mode="fast")
    assert alone.prob_fake == pytest.approx(batch[1].prob_fake, abs=1e-5)  # batch-independent
    assert large.size == (160, 160) and alone.to_dict()["crops"] == 4
