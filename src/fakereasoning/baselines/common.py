"""What every baseline detector shares: the detector interface the evaluator calls (`detect_many`), weights
in safetensors + a JSON config (never pickle), and one small training loop (AdamW, cosine schedule, seeded
order, JSONL log, progress bar, atomic checkpoints with exact resume, held-out temperature).

A detector is split in two: `features(x)`, the part that never trains (a frozen backbone, or the identity),
and `head(f)`, the trained part. When `features` is frozen and no augmentation is asked for, the loop
computes each training image's features once and reuses them (UnivFD's linear probe trains in seconds).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fakereasoning import schema
from fakereasoning.data.account import DEFAULT_ALLOWED_SKIPPED
from fakereasoning.errors import FakeReasoningError
from fakereasoning.fsio import atomic_write_bytes, atomic_write_json, atomic_write_text

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_SCHEMA = "fakereasoning.baseline/v1"
METRICS_FILE = "metrics.jsonl"
FINAL_MODEL = "model"
CHECKPOINTS = "checkpoints"
MIN_HELDOUT_PER_CLASS = 8  # fewer makes a fitted temperature noise (as for FakeReasoning's CPM)


class BaselineError(FakeReasoningError):
    """A baseline that cannot be built, loaded or run as asked."""


@dataclass
class Augment:
    """Training-time post-processing, applied alike to both classes (the `train.data.augment` knobs)."""

    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    resize_prob: float = 0.0
    resize_scale: tuple[float, float] = (0.5, 1.5)

    @property
    def active(self) -> bool:
        return bool(self.jpeg_prob or self.blur_prob or self.resize_prob)

    def data_config(self) -> Any:
        from fakereasoning.train.config import DataConfig

        return DataConfig(**asdict(self))


class BaselineDetector(nn.Module):
    """Base class. Subclasses set `kind`, `DEFAULTS` (their options), `AUGMENT`, `DEFAULT_LR`, and implement
    `prepare` (PIL images -> a CPU tensor batch), `features` and `head`."""

    kind: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    AUGMENT: ClassVar[Augment] = Augment()
    DEFAULT_LR: ClassVar[float] = 1e-3
    FROZEN_FEATURES: ClassVar[bool] = False  # True: `features` has no trainable parameter (cacheable)

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        unknown = sorted(set(options or {}) - set(self.DEFAULTS))
        if unknown:
            raise BaselineError(f"{self.kind}: unknown option(s) {unknown}; known: {sorted(self.DEFAULTS)}")
        self.options: dict[str, Any] = {**self.DEFAULTS, **(options or {})}
        self.temperature = 1.0  # fitted on held-out images after training; only calibrates prob_fake
        self.info: dict[str, Any] = {}  # training facts saved with the config (steps, data, held-out)

    # --- the model ---------------------------------------------------------------------------------
    def prepare(self, images: Sequence[Image.Image], rng: random.Random | None = None) -> torch.Tensor:
        """A CPU tensor batch; `rng` given = training (random crops / flips), None = deterministic."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Features -> one fake-vs-real logit per image, shape (B,)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def model_id(self) -> str:
        return f"baseline-{self.kind}"

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What `save_pretrained` writes: by default everything (a fine-tuned backbone included)."""
        return dict(self.state_dict())

    # --- inference -----------------------------------------------------------------------------------
    def logits(self, images: Sequence[Image.Image], batch_size: int = 16) -> np.ndarray:
        was_training = self.training
        self.eval()
        out: list[torch.Tensor] = []
        try:
            with torch.inference_mode():
                for start in range(0, len(images), max(1, batch_size)):
                    x = self.prepare(images[start : start + batch_size], None).to(self.device)
                    out.append(self(x).float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def probabilities(self, images: Sequence[Image.Image], batch_size: int = 16) -> np.ndarray:
        """Calibrated p(fake) = sigmoid(logit / temperature)."""
        z = self.logits(images, batch_size) / self.temperature
        return 1.0 / (1.0 + np.exp(-z))

    def detect_many(self, images: Sequence[Any], mode: str = "fast", batch_size: int = 16,
                    **_generation: Any) -> list[schema.Verdict]:
        """Verdicts in fast form (label, prob_fake, the direct answer; no reasoning: baselines give none).

        Takes PIL images or paths/bytes (read with `imageio.load_image`); generation options are ignored.
        """
        from fakereasoning.models.processor import as_image

        if mode != "fast":
            raise BaselineError(f"{self.kind}: baselines answer in fast mode only (they give no reasoning)")
        verdicts: list[schema.Verdict] = []
        for start in range(0, len(images), max(1, batch_size)):
            chunk = images[start : start + batch_size]
            pil = [as_image(im) for im in chunk]
            t0 = time.perf_counter()
            probs = self.probabilities(pil, batch_size)
            per_ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(chunk))
            for i, (item, p) in enumerate(zip(chunk, probs, strict=True)):
                name = str(item) if isinstance(item, str | Path) else f"image-{start + i}"
                label: schema.Label = "fake" if p >= 0.5 else "real"
                verdicts.append(schema.Verdict(image=name, label=label, prob_fake=float(min(1.0, max(0.0, p))),
                                               raw_text=schema.fast_answer(label), model_id=self.model_id,
                                               elapsed_ms=per_ms))
        return verdicts

    # --- persistence ---------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {"schema": CONFIG_SCHEMA, "kind": self.kind, "options": dict(self.options),
                "temperature": self.temperature, "info": dict(self.info)}

    def save_pretrained(self, directory: str | Path) -> Path:
        """Weights first, config last (a folder with config.json is complete); both written atomically."""
        from safetensors.torch import save

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state().items()}
        atomic_write_bytes(out / WEIGHTS_FILE, save(tensors))
        atomic_write_json(out / CONFIG_FILE, self.config_dict())
        return out

    def load_weights(self, directory: str | Path) -> None:
        """Load `model.safetensors` from DIR into this detector (exactly the tensors it saves)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(directory) / WEIGHTS_FILE
        try:
            state = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise BaselineError(f"{path}: unreadable weights ({exc})") from None
        expected = set(self.trainable_state())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise BaselineError(f"{path}: weights do not match a {self.kind} detector "
                                f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatch
            raise BaselineError(f"{path}: weights do not match the config ({str(exc).splitlines()[0]})") from None

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> BaselineDetector:
        """Any saved baseline (the config names its kind); DIR or DIR/model (a `baseline train` output)."""
        from fakereasoning.baselines.registry import detector_class

        path = Path(directory)
        if not (path / CONFIG_FILE).is_file() and (path / FINAL_MODEL / CONFIG_FILE).is_file():
            path = path / FINAL_MODEL
        try:
            config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BaselineError(f"{path}: not a baseline model directory (no {CONFIG_FILE})") from None
        except (OSError, ValueError) as exc:
            raise BaselineError(f"{path / CONFIG_FILE}: unreadable config ({exc})") from None
        if not isinstance(config, dict) or config.get("schema") != CONFIG_SCHEMA:
            raise BaselineError(f"{path / CONFIG_FILE}: not a {CONFIG_SCHEMA} config")
        klass = detector_class(str(config.get("kind")))
        if cls is not BaselineDetector and klass is not cls:
            raise BaselineError(f"{path}: holds a {klass.kind} baseline, not {cls.kind}")
        detector = klass.build(config.get("options") or {}, pretrained=False)
        detector.load_weights(path)
        detector.temperature = float(config.get("temperature", 1.0))
        detector.info = dict(config.get("info") or {})
        if device is not None:
            detector.to(device)
        return detector.eval()

    @classmethod
    def build(cls, options: dict[str, Any] | None = None, pretrained: bool = True) -> BaselineDetector:
        """A fresh detector; `pretrained=False` skips loading pretrained weights that a checkpoint replaces."""
        return cls(options)


# --- training ------------------------------------------------------------------------------------------
@dataclass
class TrainOptions:
    max_steps: int | None = None  # the fixed budget; overrides epochs when set
    epochs: float = 1.0
    batch_size: int = 16
    lr: float | None = None  # None: the detector's DEFAULT_LR
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    seed: int = 0
    val_fraction: float = 0.05
    max_val_images: int = 512
    augment: Augment | None = None  # None: the detector's AUGMENT
    save_every: int = 200
    keep_last: int = 1
    log_every: int = 10
    device: str | None = None
    layout: str | None = None  # dataset layout (None: detected)
    allow_absolute_paths: bool = False  # list layout: accept absolute paths
    allow_skipped: float = DEFAULT_ALLOWED_SKIPPED  # refuse when a larger share of the dataset would be skipped


@dataclass
class TrainSummary:
    model_dir: Path
    steps: int
    seconds: float
    images_seen: int
    heldout: dict[str, Any] = field(default_factory=dict)


def _truncate_log(path: Path, last_step: int) -> None:
    if path.is_file():
        kept = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= last_step]
        atomic_write_text(path, "".join(ln + "\n" for ln in kept))


def heldout_report(detector: BaselineDetector, held: Sequence[Any], max_images: int, batch_size: int
                   ) -> dict[str, Any]:
    """Accuracy on held-out training images; fits the temperature when each class has enough images."""
    from fakereasoning.imageio import load_image
    from fakereasoning.models.cpm import expected_calibration_error, fit_temperature

    held = list(held)[:max_images]
    images, labels = [], []
    for ex in held:
        try:
            images.append(load_image(ex.path, name=ex.image))
            labels.append(1 if ex.label == "fake" else 0)
        except FakeReasoningError as exc:
            print(f"fakereasoning: warning: skipped held-out image: {exc}", file=sys.stderr)
    y = np.asarray(labels)
    if not images:
        return {"n": 0}
    z = detector.logits(images, batch_size)
    report: dict[str, Any] = {"n": len(images), "acc": float(((z >= 0) == (y == 1)).mean())}
    if min(int((y == 0).sum()), int((y == 1).sum())) < MIN_HELDOUT_PER_CLASS:
        report["note"] = f"fewer than {MIN_HELDOUT_PER_CLASS} held-out images of a class: temperature kept at 1.0"
        return report
    t = fit_temperature(z, y)
    report.update({"ece_before": expected_calibration_error(1 / (1 + np.exp(-z)), y),
                   "ece_after": expected_calibration_error(1 / (1 + np.exp(-z / t)), y), "temperature": t})
    detector.temperature = float(t)
    return report


def train_baseline(detector: BaselineDetector, root: str | Path, output: str | Path, opts: TrainOptions,
                   resume: bool = False, progress: bool = True) -> TrainSummary:
    """Train DETECTOR on ROOT's training parts; writes OUTPUT/model/, metrics.jsonl, train_summary.json and
    checkpoints/ (resume continues from the latest one and replays the exact same batches)."""
    from transformers import get_cosine_schedule_with_warmup

    from fakereasoning.progress import Progress
    from fakereasoning.train.checkpoint import (
        MODEL_SUBDIR,
        list_checkpoints,
        load_trainer_state,
        prune_checkpoints,
        save_checkpoint,
    )
    from fakereasoning.train.data import Schedule, load_sample, load_training_data, seen_sets

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    detector.to(device)
    augment = opts.augment if opts.augment is not None else detector.AUGMENT
    data_cfg = augment.data_config()
    data = load_training_data(root, opts.val_fraction, opts.layout, opts.allow_absolute_paths,
                              allowed_skipped=opts.allow_skipped)
    train_ex, held = data.train, data.held
    labels = torch.tensor([1.0 if e.label == "fake" else 0.0 for e in train_ex])
    schedule = Schedule(len(train_ex), opts.batch_size, 1, opts.seed)
    total = opts.max_steps or max(1, math.ceil(opts.epochs * schedule.per_epoch))
    params = [p for p in detector.parameters() if p.requires_grad]
    lr = opts.lr if opts.lr is not None else detector.DEFAULT_LR
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=opts.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(opts.warmup_ratio * total), total)
    ckpt_dir = out / CHECKPOINTS
    checkpoints = list_checkpoints(ckpt_dir) if resume else []
    start = 0
    if checkpoints:
        detector.load_weights(checkpoints[-1] / MODEL_SUBDIR)
        start = int(load_trainer_state(checkpoints[-1], optimizer, scheduler)["step"])
    elif resume:
        print(f"fakereasoning: no checkpoint in {ckpt_dir}: starting from scratch", file=sys.stderr)
    log_path = out / METRICS_FILE
    if start:
        _truncate_log(log_path, start)
    elif log_path.exists():
        log_path.unlink()
    atomic_write_json(out / "train_config.json", {
        "kind": detector.kind, "options": detector.options, "data": str(root), "lr": lr,
        **{k: v for k, v in asdict(opts).items() if k not in ("augment", "lr")}, "augment": asdict(augment)})

    cache: dict[int, torch.Tensor] | None = {} if detector.FROZEN_FEATURES and not augment.active else None
    detector.train()
    bar = Progress(total, f"train {detector.kind}", "step", initial=start, enabled=progress)
    t0 = time.time()
    running = {"loss": 0.0, "correct": 0.0, "n": 0.0, "steps": 0.0}
    images_seen = 0
    for step in range(start, total):
        rng = random.Random(f"{opts.seed}:{step}")
        torch.manual_seed(opts.seed * 1_000_003 + step)  # stochastic layers: the same draws on resume
        idx = schedule.micro_batch(step, 0)
        feats, kept = _batch_features(detector, train_ex, idx, data_cfg, rng, cache, load_sample)
        if not kept:
            continue  # every image of this batch was unreadable (each one was reported)
        y = labels[kept].to(device)
        logits = detector.head(feats.to(device))
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opts.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, opts.max_grad_norm)
        optimizer.step()
        scheduler.step()
        done = step + 1
        images_seen += len(kept)
        running["loss"] += float(loss.detach())
        running["correct"] += float(((logits.detach() >= 0).float() == y).sum())
        running["n"] += len(kept)
        running["steps"] += 1
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.update(1)
        if done % opts.log_every == 0 or done == total:
            record = {"step": done, "lr": scheduler.get_last_lr()[0], "loss": running["loss"] / running["steps"],
                      "acc": running["correct"] / running["n"], "elapsed_s": round(time.time() - t0, 2)}
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            running = {"loss": 0.0, "correct": 0.0, "n": 0.0, "steps": 0.0}
        if done % opts.save_every == 0 and done < total:
            save_checkpoint(ckpt_dir, done, detector, optimizer, scheduler, {"total_steps": total, "seed": opts.seed})
            prune_checkpoints(ckpt_dir, opts.keep_last)
    bar.close()
    heldout = heldout_report(detector, held, opts.max_val_images, opts.batch_size)
    seconds = time.time() - t0
    detector.info = {"steps": total, "batch_size": opts.batch_size, "lr": lr, "seed": opts.seed,
                     "train_images": len(train_ex), "data": str(root), "heldout": heldout}
    model_dir = detector.save_pretrained(out / FINAL_MODEL)
    save_checkpoint(ckpt_dir, total, detector, optimizer, scheduler, {"total_steps": total, "seed": opts.seed})
    prune_checkpoints(ckpt_dir, opts.keep_last)
    summary = TrainSummary(model_dir, total, seconds, images_seen, heldout)
    atomic_write_json(out / "train_summary.json", {
        "kind": detector.kind, "steps": total, "resumed_from": start, "seconds_this_run": round(seconds, 2),
        "images_seen_this_run": images_seen, "train_images": len(train_ex), "heldout_images": len(held),
        "heldout": heldout, "device": str(device), "model_dir": str(model_dir),
        "data_root": str(root), "seen_sets": seen_sets(root, train_ex + held), "data": data.account.to_dict()})
    return summary


def _batch_features(detector: BaselineDetector, examples: Sequence[Any], idx: Sequence[int], data_cfg: Any,
                    rng: random.Random, cache: dict[int, torch.Tensor] | None, load_sample: Any
                    ) -> tuple[torch.Tensor, list[int]]:
    """Features of one training batch (from the cache where possible) and the example indices kept."""
    todo = [i for i in idx if cache is None or i not in cache]
    images, loaded = [], []
    for i in todo:
        img = load_sample(examples[i], data_cfg, rng)
        if img is not None:
            images.append(img)
            loaded.append(i)
    if cache is None:
        if not images:
            return torch.zeros(0), []
        return detector.features(detector.prepare(images, rng).to(detector.device)), loaded
    if images:
        with torch.no_grad():
            f = detector.features(detector.prepare(images, rng).to(detector.device)).cpu()
        cache.update(zip(loaded, f, strict=True))
    kept = [i for i in idx if i in cache]
    if not kept:
        return torch.zeros(0), []
    return torch.stack([cache[i] for i in kept]), kept


class CropDetector(BaselineDetector):
    """A detector that reads native-pixel crops (never resampled): `train_crops` random 8-aligned crops per
    image while training (each with a random horizontal flip), a fixed grid of `eval_crops` otherwise; the
    image's logit is the mean of its crops' logits. Subclasses implement `crop_logits`."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"crop": 128, "train_crops": 1, "eval_crops": 4}

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        crop = self.options["crop"]
        if not isinstance(crop, int) or crop < 8 or crop % 8:
            raise BaselineError(f"{self.kind}: crop must be a positive multiple of 8, got {crop!r}")
        for key in ("train_crops", "eval_crops"):
            if not isinstance(self.options[key], int) or self.options[key] < 1:
                raise BaselineError(f"{self.kind}: {key} must be a whole number >= 1, got {self.options[key]!r}")

    def prepare(self, images: Sequence[Image.Image], rng: random.Random | None = None) -> torch.Tensor:
        from fakereasoning.models.processor import forensic_crops

        crop = int(self.options["crop"])
        count = int(self.options["train_crops" if rng is not None else "eval_crops"])
        batch = []
        for im in images:
            crops = forensic_crops(im, crop, count, rng)
            if rng is not None:
                flip = torch.tensor([rng.random() < 0.5 for _ in range(count)])
                crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
            batch.append(crops)
        return torch.stack(batch)  # (B, K, 3, crop, crop) in [0, 1]

    def crop_logits(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, C, C) -> (N,)."""
        raise NotImplementedError

    def head(self, f: torch.Tensor) -> torch.Tensor:
        b, k = f.shape[:2]
        return self.crop_logits(f.flatten(0, 1)).reshape(b, k).mean(dim=1)
