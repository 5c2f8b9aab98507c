"""CPU smoke training of the `tiny` FakeReasoning model (issue 4, done-check e).

Trains a fresh tiny model for a few hundred steps (LM + CPM + FACL, full and fast prompts mixed) on an
MMFR-layout dataset (e.g. `fakereasoning data build-local OUT --preset tiny`) or, without --root, on
synthetic 256x256 images made here (reals: smooth scenes with sensor noise; fakes: rendered at half
resolution and upsampled 2x, the trace NPR-style residuals see). Reports CPM accuracy on the training
data (fast mode and teacher-forced full answers), on a held-out split, timings and parameter counts, as
JSON. Semantic (frozen EfficientNet) features are computed once per image and cached.

    OMP_NUM_THREADS=2 .venv/bin/python bench/model_smoke.py [--root MMFR_ROOT] --steps 300 \\
        --out bench/results/model_smoke.json [--save DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from fakereasoning import schema

FINDINGS = {
    "Inconsistent Lighting and Shadows": "the light falls from two directions at once",
    "Irregular Image Edges": "edges show a faint regular stair pattern",
    "Anomalous Image Texture": "fine texture repeats in a regular grid",
    "Low Image Quality": "surfaces look overly smooth and plastic",
    "Semantic Irrationality": "the shapes do not form a plausible scene",
    "Consistent Lighting and Shadows": "one light source lights the whole scene",
    "Smooth and Natural Image Edges": "edges are soft and irregular as in optics",
    "Natural and Consistent Image Texture": "sensor noise is even across the frame",
    "High Image Quality": "detail and noise look like a camera capture",
    "Semantic Rationality": "the scene is plausible",
}


def synthetic_image(label: str, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """A smooth random scene; fakes are drawn at half resolution and upsampled (generator trace)."""
    side = size // 2 if label == "fake" else size
    yy, xx = np.mgrid[0:side, 0:side] / side
    arr = np.zeros((side, side, 3))
    for c in range(3):
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 6.3)
            arr[..., c] += rng.uniform(20, 60) * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
        arr[..., c] += rng.uniform(60, 190)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0))
    if label == "fake":
        resample = [Image.Resampling.NEAREST, Image.Resampling.BILINEAR][int(rng.integers(0, 2))]
        img = img.resize((size, size), resample)
        noise = rng.normal(0, 1.0, (size, size, 3))
    else:
        noise = rng.normal(0, 3.0, (size, size, 3))
    out = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def synthetic_records(n: int, seed: int) -> list[tuple[Image.Image, str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = "fake" if i % 2 else "real"
        names = [a for a in schema.ATTRIBUTES_OF_LABEL[label] if rng.random() < 0.6] or [
            schema.ATTRIBUTES_OF_LABEL[label][0]
        ]
        attrs = {a: FINDINGS[a] for a in names}
        caption = f"an abstract scene of soft coloured waves number {i}"
        out.append((synthetic_image(label, rng), label, schema.format_cot(label, attrs, caption)))
    return out


def mmfr_records(root: str, split: str) -> list[tuple[Image.Image, str, str | None]]:
    from fakereasoning.data import mmfr
    from fakereasoning.imageio import load_image

    index = mmfr.scan(root)
    records = index.train if split == "train" else [r for rs in index.evaluation_sets.values() for r in rs]
    out = []
    for r in records:
        answer = None
        if r.attributes and any(r.attributes.values()):
            answer = schema.format_cot(r.label, r.attributes, r.caption or "an image")
        out.append((load_image(r.path), r.label, answer))
    return out


def cached_semantic(model, images: list[Image.Image], batch: int = 16) -> list[torch.Tensor]:
    feats = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            px = model.processor.images(images[s : s + batch])["pixel_values"]
            feats.extend(model.backbone.semantic_features(px))
    return [f.clone() for f in feats]


def cpm_accuracy(model, records, feats, batch: int = 16, full_eval: int = 32) -> dict[str, float]:
    """Fast-mode accuracy, full-mode accuracy with generated reasoning (first `full_eval` images), and
    teacher-forced CPM accuracy on the reference answers (which state the label: an upper bound only)."""
    fast_ok, full_ok, full_n = 0, 0, 0
    probs, labels = [], []
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(records), batch):
            chunk = records[s : s + batch]
            p = model.fast_probabilities([r[0] for r in chunk])
            for pi, r in zip(p, chunk, strict=True):
                fast_ok += (pi >= 0.5) == (r[1] == "fake")
                probs.append(pi)
                labels.append(int(r[1] == "fake"))
            full = [(r[0], r[1], r[2], "full") for r in chunk if r[2]]
            if full:
                b = model.collate(full)
                b["semantic_features"] = torch.stack([feats[s + i] for i, r in enumerate(chunk) if r[2]])
                out = model(b)
                ok = ((out.prob_fake >= 0.5).long() == b["cpm_labels"]) & out.cpm_valid
                full_ok += int(ok.sum())
                full_n += int(out.cpm_valid.sum())
    from fakereasoning.models.cpm import expected_calibration_error

    subset = records[:full_eval]
    verdicts = model.detect_many([r[0] for r in subset], mode="full", batch_size=8, max_new_tokens=320)
    gen_ok = sum(v.label == r[1] for v, r in zip(verdicts, subset, strict=True))
    parsed_ok = sum(schema.parse_cot(v.raw_text).ok for v in verdicts)
    return {
        "fast_acc": fast_ok / max(1, len(records)),
        "full_generated_acc": gen_ok / max(1, len(subset)),
        "full_generated_n": len(subset),
        "full_generated_parse_ok": parsed_ok / max(1, len(subset)),
        "full_teacher_forced_acc_label_in_reference": full_ok / max(1, full_n),
        "fast_ece": expected_calibration_error(probs, labels),
        "n": len(records),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="MMFR-layout dataset (training parts used); default: synthetic images")
    ap.add_argument("--synthetic", type=int, default=64, help="synthetic training images when no --root")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/model_smoke.json")
    ap.add_argument("--save", help="save the trained model here")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override, VALUE as JSON (e.g. --set forensic_crop=64 for 64px data)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    from tqdm import tqdm

    from fakereasoning.models import FakeReasoning, train_tokenizer
    from fakereasoning.models.model import describe

    t_start = time.perf_counter()
    if args.root:
        train = mmfr_records(args.root, "train")
        held = mmfr_records(args.root, "eval")
        data_desc = f"MMFR layout at {args.root}"
    else:
        train = synthetic_records(args.synthetic, args.seed)
        held = synthetic_records(max(16, args.synthetic // 4), args.seed + 1000)
        data_desc = f"synthetic ({args.synthetic} train, {len(held)} held-out), 256x256"
    texts = [r[2] for r in train if r[2]]
    tokenizer = train_tokenizer(texts)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    model = FakeReasoning.build("tiny", tokenizer=tokenizer, model_id="tiny-smoke", **overrides)
    feats = cached_semantic(model, [r[0] for r in train])
    held_feats = cached_semantic(model, [r[0] for r in held])
    prep_s = time.perf_counter() - t_start

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    rng = random.Random(args.seed)
    order: list[int] = []
    log = []
    model.train()
    t_train = time.perf_counter()
    bar = tqdm(range(args.steps), desc="smoke train", file=sys.stderr)
    for step in bar:
        if len(order) < args.batch_size:
            perm = list(range(len(train)))
            rng.shuffle(perm)
            order.extend(perm)
        idx, order = order[: args.batch_size], order[args.batch_size :]
        samples = [(train[i][0], train[i][1], train[i][2], "mix" if train[i][2] else "fast") for i in idx]
        batch = model.collate(samples, train=True, seed=args.seed * 100003 + step)
        batch["semantic_features"] = torch.stack([feats[i] for i in idx])
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        row = {
            "step": step,
            "loss": out.loss.item(),
            "lm": out.lm_loss.item(),
            "cpm": out.cpm_loss.item(),
            "facl": out.facl_loss.item(),
        }
        log.append(row)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{row['loss']:.3f}", cpm=f"{row['cpm']:.3f}")
    train_s = time.perf_counter() - t_train
    train_acc = cpm_accuracy(model, train, feats)
    held_acc = cpm_accuracy(model, held, held_feats)
    sample_text = model.generate([train[1][0]], mode="full", max_new_tokens=200, temperature=0.0)[0]
    result = {
        "data": data_desc,
        "overrides": overrides,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": args.threads,
        "prep_s": round(prep_s, 1),
        "train_s": round(train_s, 1),
        "s_per_step": round(train_s / args.steps, 3),
        "train": train_acc,
        "held_out": held_acc,
        "first_losses": log[0],
        "last_losses": {k: float(np.mean([r[k] for r in log[-20:]])) for k in ("loss", "lm", "cpm", "facl")},
        "params": describe(model) | {"config": None},
        "sample_full_answer": sample_text,
        "sample_parsed_ok": schema.parse_cot(sample_text).ok,
        "loadavg_end": os.getloadavg(),
    }
    if args.save:
        model.save_pretrained(args.save)
        result["saved"] = args.save
    from fakereasoning.fsio import atomic_write_json

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    json.dump({k: v for k, v in result.items() if k != "params"}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
