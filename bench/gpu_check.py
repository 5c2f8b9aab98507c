"""A GPU check you can run in minutes: the `mof` backbone end to end on one CUDA device.

Builds a random `mof` model of about 1B parameters (Llama-style LM 2048 wide x 16 layers, CLIP and DINOv2
ViT-B-sized encoders at 224 px, the release's fusion), trains 20 steps in bf16 with the DeepSpeed ZeRO-3
config (when deepspeed is installed), evaluates fast and full mode, serves one request, and writes
throughput and peak memory to JSON beside the `model info` estimate. Without CUDA it exits 1 saying so;
`--cpu-tiny` runs the same steps on CPU with tiny dimensions (what the test suite runs).

    .venv/bin/python bench/gpu_check.py --out bench/results/gpu_check.json
    .venv/bin/python bench/gpu_check.py --cpu-tiny --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny-checkpoint and dataset factories the tests use

ONE_B = {"lm": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16),
         "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        image_size=224, patch_size=14),
         "fusion_heads": 16}


def _one_b_parts(root: Path) -> dict[str, str]:
    """Random checkpoints of about 1B parameters in total (bf16 on disk)."""
    import mof_factory as mf
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model, LlamaForCausalLM

    tok = mf.lm_tokenizer()
    cfg = mf.llama_config(len(tok), tok)
    for key, value in ONE_B["lm"].items():
        setattr(cfg, key, value)
    cfg.num_key_value_heads = ONE_B["lm"]["num_attention_heads"]
    cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(root / "lm")
    tok.save_pretrained(root / "lm")
    CLIPVisionModel(CLIPVisionConfig(**ONE_B["vision"])).to(torch.bfloat16).save_pretrained(root / "clip")
    (root / "clip" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    Dinov2Model(Dinov2Config(**ONE_B["vision"])).to(torch.bfloat16).save_pretrained(root / "dino")
    return {"base_model": str(root / "lm"), "clip_model": str(root / "clip"), "dino_model": str(root / "dino")}


def run(work: Path, tiny: bool, steps: int, deepspeed_config: str | None) -> dict[str, Any]:
    import mof_factory as mf
    import torch
    from fastapi.testclient import TestClient
    from mmfr_factory import separable_dataset

    from fakereasoning.cli import main as cli
    from fakereasoning.models import FakeReasoning
    from fakereasoning.models.footprint import describe_files, estimate_bytes, measure_peak_bytes
    from fakereasoning.serve import ServeLimits, create_app, load_detector
    from fakereasoning.train.config import from_dict
    from fakereasoning.train.trainer import train

    cuda = torch.cuda.is_available() and not tiny
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or 'unknown'})",
                              "mode": "cuda" if cuda else "cpu-tiny", "torch": torch.__version__}
    t0 = time.perf_counter()
    if tiny:
        parts = mf.make_mof_parts(work / "parts")
        model_kw = {**mf.MOF_KW, "precision": "float32"}
    else:
        parts = _one_b_parts(work / "parts")
        model_kw = {"fusion_heads": ONE_B["fusion_heads"], "lora_r": 64, "lora_alpha": 128, "precision": "bfloat16",
                    "lora_targets": mf.TARGETS, "max_length": 1024}
    result["build_s"] = round(time.perf_counter() - t0, 1)
    data = separable_dataset(work / "data", n_train=16, n_eval=4, sets=("a",))
    ds = None
    if cuda and deepspeed_config:
        try:
            import deepspeed  # noqa: F401

            ds = deepspeed_config
            for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "RANK": "0", "WORLD_SIZE": "1",
                               "LOCAL_RANK": "0"}.items():
                os.environ.setdefault(key, value)
        except ImportError:
            result["deepspeed"] = "not installed: trained without it (pip install deepspeed)"
    result.setdefault("deepspeed", ds or "not used (CPU)" if not cuda else ds)
    cfg = from_dict({"model": {"backbone": "mof", **parts, **model_kw},
                     "data": {"root": str(data), "val_fraction": 0.25},
                     "optim": {"max_steps": steps, "batch_size": 2, "lr": 2e-5},
                     "run": {"output": str(work / "run"), "save_every": steps, "log_every": 1,
                             "mixed_precision": "bf16" if cuda else "no", "deepspeed_config": ds}}, "gpu_check")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trained = train(cfg, progress=False)
    seconds = time.perf_counter() - t0
    result["train"] = {"steps": steps, "seconds": round(seconds, 2), "steps_per_s": round(steps / seconds, 3),
                       "samples_per_s": round(steps * 2 / seconds, 3)}
    if cuda:
        result["train"]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    model_dir = trained.model_dir if trained is not None else work / "run" / "model"
    for mode in ("fast", "full"):
        t0 = time.perf_counter()
        code = cli(["evaluate", "--model", str(model_dir), "--data", str(data), "--out", str(work / f"eval-{mode}"),
                    "--mode", mode, "--max-new-tokens", "16", "--bootstrap", "0"]
                   + (["--device", "cuda"] if cuda else []))
        metrics = json.loads((work / f"eval-{mode}" / "metrics.json").read_text())
        n = metrics["mean"]["n"]
        result[f"evaluate_{mode}"] = {"exit": code, "images": n, "images_per_s": round(n / (time.perf_counter() - t0), 3),
                                      "auc": metrics["mean"]["auc"], "failure_rate": metrics["mean"]["failure_rate"]}
    image = next((data / "evaluation_sets" / "a" / "1_fake").iterdir()).read_bytes()
    detector = load_detector(model_dir, device="cuda" if cuda else None)
    with TestClient(create_app(detector, ServeLimits(batch_wait_ms=5))) as client:
        t0 = time.perf_counter()
        response = client.post("/v1/detect", files={"file": ("x.png", image, "image/png")}, data={"mode": "fast"})
        result["serve"] = {"status": response.status_code, "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}
    model = FakeReasoning.from_pretrained(model_dir, device="cuda" if cuda else None)
    precision = model.config.precision
    seq = len(model.text.prompt_ids("Is this image real or fake? Answer directly.")) + len(model.text.fast_prefix)
    from PIL import Image

    from fakereasoning.imageio import load_image

    pil: Image.Image = load_image(image)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            model.fast_probabilities([pil])
        peak = torch.cuda.max_memory_allocated()
    else:
        with torch.no_grad():
            peak = measure_peak_bytes(model, lambda: model.fast_probabilities([pil]))
    estimate = estimate_bytes(describe_files(model_dir), precision, seq)
    result["parameters"] = model.num_parameters()
    result["inference_peak"] = {"precision": precision, "seq_len": seq, "measured_bytes": int(peak),
                                "estimated_bytes": int(estimate), "ratio": round(estimate / peak, 3)}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cpu-tiny", action="store_true", help="no GPU: tiny dimensions on CPU (the test suite's run)")
    ap.add_argument("--deepspeed", default=str(ROOT / "configs" / "deepspeed" / "zero3.json"))
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    import torch

    if not args.cpu_tiny and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine, or with --cpu-tiny for the CPU fallback",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = args.work or Path(scratch)
        result = run(work, args.cpu_tiny, args.steps, args.deepspeed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
