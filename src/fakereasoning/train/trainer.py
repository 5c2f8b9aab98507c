"""One trainer on Hugging Face `accelerate`: CPU, one GPU, several GPUs (`accelerate launch`), DeepSpeed.

Loss = LM + CPM + FACL terms (weights in the model config). AdamW, cosine schedule with warmup, gradient
accumulation, mixed precision on GPU, gradient clipping, atomic checkpoints, exact resume, a progress bar,
a JSONL metrics log, and after training a CPM temperature fitted on the held-out split.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakereasoning.errors import FakeReasoningError
from fakereasoning.fsio import atomic_write_json, atomic_write_text
from fakereasoning.progress import Progress
from fakereasoning.runtime import distributed_job, use_cpu
from fakereasoning.train.checkpoint import (
    MODEL_SUBDIR,
    list_checkpoints,
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
)
from fakereasoning.train.config import TrainConfig
from fakereasoning.train.data import (
    Schedule,
    TrainExample,
    load_sample,
    load_training_data,
    seen_sets,
)

METRICS_FILE = "metrics.jsonl"
FINAL_MODEL = "model"
CHECKPOINTS = "checkpoints"
MIN_HELDOUT_PER_CLASS = 8  # fewer makes the fitted temperature noise


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    seconds: float
    temperature: float | None
    heldout: dict[str, Any]


def _accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator, DistributedDataParallelKwargs

    plugin = None
    if cfg.run.deepspeed_config:
        from accelerate import DeepSpeedPlugin

        ds = json.loads(Path(cfg.run.deepspeed_config).read_text(encoding="utf-8"))
        ds["train_micro_batch_size_per_gpu"] = cfg.optim.batch_size
        ds["gradient_accumulation_steps"] = cfg.optim.grad_accum
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = cfg.optim.max_grad_norm
        plugin = DeepSpeedPlugin(hf_ds_config=ds)
    return Accelerator(
        cpu=use_cpu(),
        mixed_precision=cfg.run.mixed_precision,
        deepspeed_plugin=plugin,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _build_model(cfg: TrainConfig, train: list[TrainExample], held: list[TrainExample], out: Path, accelerator: Any,
                 resume_from: Path | None, progress: bool) -> Any:
    """Build (main process) and reload (all processes) so every rank starts from identical weights and
    the same tokenizer. A model with a detection head gets it fitted here, before the LM trains (stage 1,
    train/head.py), so init_model and every checkpoint hold it."""
    from fakereasoning.models import FakeReasoning

    if resume_from is not None:
        return FakeReasoning.from_pretrained(resume_from / MODEL_SUBDIR)
    init_dir = out / "init_model"
    overrides = {k: v for k, v in cfg.model.items() if k not in ("backbone", "init_from")}
    if accelerator.is_main_process:
        init_from = cfg.model.get("init_from")
        if init_from:
            model = FakeReasoning.from_pretrained(init_from)
            if overrides:
                model.config = model.config.replace(**overrides)
        else:
            torch.manual_seed(cfg.run.seed)
            model = FakeReasoning.build(cfg.model.get("backbone", "tiny"), texts=[e.answer for e in train],
                                        **overrides)
        if model.config.verdict_head:
            from fakereasoning.train.head import fit_detection_head

            fit_detection_head(model, train, held, cfg.data, cfg.run.seed, out, progress)
        model.save_pretrained(init_dir)
    accelerator.wait_for_everyone()
    return FakeReasoning.from_pretrained(init_dir)


def _total_steps(cfg: TrainConfig, schedule: Schedule) -> int:
    if cfg.optim.max_steps is not None:
        return cfg.optim.max_steps
    return max(1, math.ceil(cfg.optim.epochs * schedule.per_epoch / cfg.optim.grad_accum))


def _micro_samples(examples: list[TrainExample], idx: list[int], cfg: TrainConfig, k: int, rank: int
                   ) -> list[tuple[Any, str, str, str]]:
    rng = random.Random(f"{cfg.run.seed}:{k}:{rank}")
    samples = []
    for i in idx:
        ex = examples[i]
        img = load_sample(ex, cfg.data, rng)
        if img is not None:
            answer = evidence_answer(ex, img) if cfg.data.evidence_targets and ex.answer else ex.answer
            samples.append((img, ex.label, answer, ex.kind))
    return samples


def evidence_answer(example: TrainExample, image: Any) -> str:
    """The example's answer rewritten by the evidence annotator from `image` as it is now (augmented);
    the caption is kept. Each finding in its canonical wording, as the dataset's references (`data reannotate`)."""
    from fakereasoning.evidence.annotator import EvidenceAnnotator
    from fakereasoning.schema import format_cot, parse_cot

    caption = parse_cot(example.answer).caption or ""
    attributes = EvidenceAnnotator(0).annotate(image, example.label, example.image)
    return format_cot(example.label, attributes, caption)


class NonFiniteTraining(FakeReasoningError):
    """A loss or gradient norm that is NaN or infinite: the step is not taken, training stops."""


def _stop_if_not_finite(accelerator: Any, step: int, stats: dict[str, float], grad_norm: Any,
                        ckpt_dir: Path) -> None:
    """Raise before the optimizer step when this step's loss (on any process) or gradient norm is not
    finite: one more step would write NaN weights into the next checkpoint and the final model. Every
    process takes the same decision (the flags are summed over processes), so none waits for ever."""
    losses = {k: stats[k] for k in ("loss", "lm_loss", "cpm_loss", "facl_loss")}
    norm = None if grad_norm is None else float(grad_norm)
    local = not all(math.isfinite(v) for v in losses.values())
    flags = torch.tensor([float(local), float(norm is not None and not math.isfinite(norm))],
                         device=accelerator.device)
    if accelerator.num_processes > 1:
        flags = accelerator.reduce(flags, reduction="sum")
    bad_loss, bad_norm = bool(flags[0] > 0), bool(flags[1] > 0)
    if not (bad_loss or bad_norm):
        return
    if bad_loss:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        what = f"non-finite loss ({shown}{'' if local else ' here; not finite on another process'})"
    else:
        what = f"non-finite gradient norm ({norm:g})"
    kept = list_checkpoints(ckpt_dir)
    last = (f"the last good checkpoint is {kept[-1]}" if kept
            else "no checkpoint was written yet")
    raise NonFiniteTraining(f"step {step}: {what}: training stopped before the update; {last}; lower "
                            "optim.lr or raise optim.warmup_ratio, or check the data")


def json_line(record: dict[str, Any]) -> str:
    """One metrics.jsonl line, always valid JSON: a non-finite number is written as null, never NaN."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


def _truncate_log(path: Path, last_step: int) -> None:
    """On resume, drop log lines written after the checkpoint we resume from."""
    if not path.is_file():
        return
    kept = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()
            and json.loads(ln).get("step", 0) <= last_step]
    atomic_write_text(path, "".join(ln + "\n" for ln in kept))


@torch.no_grad()
def fit_heldout_temperature(model: Any, held: list[TrainExample], max_images: int, batch_size: int,
                            with_bias: bool = False) -> tuple[float | None, dict[str, Any]]:
    """Fit the CPM temperature (and, `with_bias`, a margin shift: Platt scaling) on held-out images
    (fast-mode margins); report accuracy and ECE before and after."""
    from fakereasoning.imageio import load_image
    from fakereasoning.models.cpm import expected_calibration_error, fit_platt, fit_temperature

    reals = [e for e in held if e.label == "real"]
    fakes = [e for e in held if e.label == "fake"]
    half = max_images // 2
    held = reals[: max(half, max_images - len(fakes))][:max_images] + fakes[: max(half, max_images - len(reals))]
    held = held[:max_images]  # both classes, as evenly as the split allows
    per_class = [sum(e.label == lab for e in held) for lab in ("real", "fake")]
    if min(per_class) < MIN_HELDOUT_PER_CLASS:
        return None, {"n": len(held), "note": f"held-out split has fewer than {MIN_HELDOUT_PER_CLASS} images of a "
                      "class: temperature not fitted (kept at 1.0)"}
    model.eval()
    saved_t = model.config.temperature
    model.config = model.config.replace(temperature=1.0, cpm_bias=0.0)
    probs: list[float] = []
    labels: list[int] = []
    for start in range(0, len(held), batch_size):
        chunk = held[start : start + batch_size]
        imgs = [load_image(e.path, name=e.image) for e in chunk]
        probs.extend(model.fast_probabilities(imgs))
        labels.extend(1 if e.label == "fake" else 0 for e in chunk)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
    margins = np.log(p) - np.log1p(-p)
    y = np.asarray(labels)
    t, bias = fit_platt(margins, y) if with_bias else (fit_temperature(margins, y), 0.0)
    calibrated = 1.0 / (1.0 + np.exp(-(margins / t + bias)))
    model.config = model.config.replace(temperature=t if t else saved_t, cpm_bias=bias)
    report = {
        "n": len(held),
        "acc": float(((p >= 0.5) == (y == 1)).mean()),
        "bal_acc": float(np.mean([((p >= 0.5) == (y == 1))[y == k].mean() for k in (0, 1)])),
        "bal_acc_after": float(np.mean([((calibrated >= 0.5) == (y == 1))[y == k].mean() for k in (0, 1)])),
        "ece_before": expected_calibration_error(p, y),
        "ece_after": expected_calibration_error(calibrated, y),
        "temperature": t,
        "bias": bias,
    }
    return t, report


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult | None:
    """Train, checkpoint, fit the temperature, save OUT/model. Returns the result on the main process.

    Every rank ends the process group after the main one has saved (runtime.distributed_job)."""
    with distributed_job():
        return _train(cfg, resume, progress)


def _train(cfg: TrainConfig, resume: bool, progress: bool) -> TrainResult | None:
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    if not cfg.data.root:
        raise FakeReasoningError("no training data: pass --data ROOT or set data.root in the config")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    accelerator = _accelerator(cfg)
    set_seed(cfg.run.seed)
    out = Path(cfg.run.output)
    ckpt_dir = out / CHECKPOINTS
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "train_config.json", cfg.to_dict())
    latest = list_checkpoints(ckpt_dir)[-1] if resume and list_checkpoints(ckpt_dir) else None
    if resume and latest is None and accelerator.is_main_process:
        print(f"fakereasoning: no checkpoint in {ckpt_dir}: starting from scratch", file=sys.stderr)

    data = load_training_data(cfg.data.root, cfg.data.val_fraction, cfg.data.layout, cfg.data.allow_absolute_paths,
                              verbose=accelerator.is_main_process, allowed_skipped=cfg.data.allow_skipped,
                              calibration_set=cfg.data.calibration_set)  # checked now, before any model work
    train_ex, held, calibration = data.train, data.held, data.calibration
    model = _build_model(cfg, train_ex, held, out, accelerator, latest, progress)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=tuple(cfg.optim.betas))
    schedule = Schedule(len(train_ex), cfg.optim.batch_size, accelerator.num_processes, cfg.run.seed)
    total = _total_steps(cfg, schedule)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(cfg.optim.warmup_ratio * total), total)
    start_step = 0
    if latest is not None:
        start_step = int(load_trainer_state(latest, optimizer, scheduler)["step"])
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)
    log_path = out / METRICS_FILE
    if accelerator.is_main_process:
        if latest is not None:
            _truncate_log(log_path, start_step)
        elif log_path.exists():
            log_path.unlink()
    accum, rank = cfg.optim.grad_accum, accelerator.process_index
    bar = Progress(total, "train", "step", initial=start_step, enabled=progress and accelerator.is_main_process)
    t0 = time.time()
    running: dict[str, float] = {}
    for step in range(start_step, total):
        stats = {"loss": 0.0, "lm_loss": 0.0, "cpm_loss": 0.0, "facl_loss": 0.0, "cpm_correct": 0.0, "cpm_n": 0.0}
        for micro in range(accum):
            k = step * accum + micro
            samples = _micro_samples(train_ex, schedule.micro_batch(k, rank), cfg, k, rank)
            if not samples:
                continue
            batch = core.collate(samples, train=True, seed=cfg.run.seed * 1_000_003 + k * 97 + rank)
            sync = accelerator.no_sync(model) if micro < accum - 1 else contextlib.nullcontext()
            with sync, accelerator.autocast():
                output = model(batch)
                accelerator.backward(output.loss / accum)
            for key in ("loss", "lm_loss", "cpm_loss", "facl_loss"):
                stats[key] += float(getattr(output, key).detach()) / accum
            valid = output.cpm_valid
            if valid is not None and bool(valid.any()):
                pred = (output.prob_fake[valid] >= 0.5).long()
                stats["cpm_correct"] += float((pred == batch["cpm_labels"].to(pred.device)[valid]).sum())
                stats["cpm_n"] += float(valid.sum())
        grad_norm = None
        if accelerator.sync_gradients:  # max_norm inf: the norm is measured (and checked) without clipping
            grad_norm = accelerator.clip_grad_norm_(params, cfg.optim.max_grad_norm or math.inf)
        _stop_if_not_finite(accelerator, step + 1, stats, grad_norm, ckpt_dir)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        for key, value in stats.items():
            running[key] = running.get(key, 0.0) + value
        running["steps"] = running.get("steps", 0.0) + 1
        lr = scheduler.get_last_lr()[0]
        bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{lr:.2e}")
        bar.update(1)
        if accelerator.is_main_process and (done % cfg.run.log_every == 0 or done == total):
            record = {"step": done, "lr": lr, "elapsed_s": round(time.time() - t0, 2)}
            for key in ("loss", "lm_loss", "cpm_loss", "facl_loss"):
                record[key] = running.get(key, 0.0) / running["steps"]
            if running.get("cpm_n"):
                record["cpm_acc"] = running["cpm_correct"] / running["cpm_n"]
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json_line(record))
            running = {}
        if done % cfg.run.save_every == 0 or done == total:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(ckpt_dir, done, core, optimizer, scheduler,
                                {"total_steps": total, "seed": cfg.run.seed})
                prune_checkpoints(ckpt_dir, cfg.run.keep_last)
    bar.close()
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    if core.config.verdict_head:  # calibrated in stage 1, out of fold (train/head.py): kept as fitted
        from fakereasoning.train.head import HEAD_REPORT

        head = json.loads((out / HEAD_REPORT).read_text(encoding="utf-8"))
        temperature = core.config.temperature
        heldout = {k: head[k] for k in ("temperature", "bias", "ece_after", "bal_acc_after", "calibration_rows")
                   if k in head}
        heldout["source"] = f"detection head: {head.get('calibration')}"
    else:
        calibrate_on = calibration if calibration is not None else held  # never counted as "seen" below
        temperature, heldout = fit_heldout_temperature(core, calibrate_on, cfg.data.max_val_images,
                                                       cfg.optim.batch_size, with_bias=cfg.data.calibrate_bias)
        heldout["source"] = (f"evaluation set {cfg.data.calibration_set!r} (a held-out generator)"
                             if cfg.data.calibration_set else f"held-out {cfg.data.val_fraction:.0%} of the training images")
    model_dir = core.save_pretrained(out / FINAL_MODEL)
    seconds = time.time() - t0
    atomic_write_json(out / "calibration.json", heldout)
    atomic_write_json(out / "train_summary.json", {
        "steps": total, "resumed_from": start_step, "seconds_this_run": round(seconds, 1),
        "train_images": len(train_ex), "heldout_images": len(held), "temperature": temperature,
        "heldout": heldout, "processes": accelerator.num_processes, "device": str(accelerator.device),
        "model_dir": str(model_dir), "pid": os.getpid(), "data_root": cfg.data.root,
        "fast_only_images": sum(e.kind == "fast" for e in train_ex),
        "seen_sets": seen_sets(cfg.data.root, train_ex + held),
        "data": data.account.to_dict(),  # what the dataset holds, what was used, every skip and why
    })
    return TrainResult(model_dir, total, seconds, temperature, heldout)
