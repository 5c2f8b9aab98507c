"""Training configuration: a TOML file mapped onto dataclasses; `section.key=value` overrides from the CLI.

```toml
[model]      # any FakeReasoningConfig field, plus backbone / init_from
[data]       # root, val_fraction, augmentation
[optim]      # lr, weight_decay, warmup_ratio, epochs or max_steps, batch sizes, clipping
[run]        # output, seed, save_every, keep_last, log_every, mixed_precision
```
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from fakereasoning.checks import (
    ConfigValueError,
    Limit,
    above,
    at_least,
    between,
    check_fields,
    one_of,
    ordered,
)
from fakereasoning.data.account import DEFAULT_ALLOWED_SKIPPED
from fakereasoning.data.layouts import LAYOUTS
from fakereasoning.errors import FakeReasoningError


class TrainConfigError(FakeReasoningError):
    """A training config that cannot be used (unknown key, bad value, unreadable file)."""


PROBABILITY = between(0, 1)
FRACTION = between(0, 1, high_open=True)
POSITIVE, COUNT, NON_NEGATIVE = above(0), at_least(1), at_least(0)


@dataclass
class DataConfig:
    root: str | None = None
    layout: str | None = None  # dataset layout (data.layouts; None: detected)
    allow_absolute_paths: bool = False  # list layout: accept absolute image paths
    allow_skipped: float = DEFAULT_ALLOWED_SKIPPED  # refuse to train when a larger share of the dataset would be skipped
    val_fraction: float = 0.05  # of the training images, held out to fit the CPM temperature
    max_val_images: int = 512
    jpeg_prob: float = 0.1  # augmentation applied alike to both classes (GENERALIZATION.md)
    jpeg_quality: tuple[int, int] = (65, 100)
    blur_prob: float = 0.05
    blur_sigma: tuple[float, float] = (0.2, 1.2)
    resize_prob: float = 0.0
    resize_scale: tuple[float, float] = (0.5, 1.5)
    # Debiasing: blur some REAL images only, so that softness cannot serve as the "fake" signal when the
    # local generators' reconstructions are softer than the photos (see MMFR-Local's sharpness statistic).
    real_blur_prob: float = 0.0
    real_blur_sigma: tuple[float, float] = (0.3, 1.5)
    # For datasets annotated by the evidence annotator (MMFR-Local, MMFR-Public): rewrite each full-mode
    # target from the measurements of the image as augmented, so the reasoning taught states the values
    # of the pixels the model sees (a JPEG or blur changes them).
    evidence_targets: bool = False
    # fit the CPM temperature on this evaluation set of the training root (a held-out generator) instead
    # of the held-out share of the training images
    calibration_set: str | None = None
    calibrate_bias: bool = False  # fit a margin shift with the temperature (Platt scaling), not T alone
    # models with a detection head (model.verdict_head): views of each training image its fit reads, and
    # the leave-family-out folds that choose its strength and give the out-of-fold logits it is calibrated on
    head_views: int = 2
    head_folds: int = 6
    head_fold_parts: list[str] | None = None  # training parts whose families make the folds (None: all)
    head_cache: str | None = None  # the features' .npz (default OUT/head_features.npz; bench/lofo.py's is reusable)
    head_balance: str = "rows"  # "rows": every row alike; "groups": every fake family and real source alike
    num_workers: int = 0

    LIMITS: ClassVar[dict[str, Limit]] = {
        "layout": one_of(*LAYOUTS), "allow_skipped": PROBABILITY, "val_fraction": FRACTION, "max_val_images": NON_NEGATIVE,
        "jpeg_prob": PROBABILITY, "jpeg_quality": ordered(between(0, 100)), "blur_prob": PROBABILITY,
        "blur_sigma": ordered(NON_NEGATIVE), "resize_prob": PROBABILITY, "resize_scale": ordered(POSITIVE),
        "real_blur_prob": PROBABILITY, "real_blur_sigma": ordered(NON_NEGATIVE), "num_workers": NON_NEGATIVE,
        "head_views": COUNT, "head_folds": NON_NEGATIVE, "head_balance": one_of("rows", "groups"),
    }

    def __post_init__(self) -> None:
        check_fields(self, self.LIMITS)


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 8  # per process, per micro-batch
    grad_accum: int = 1
    max_grad_norm: float = 1.0  # 0: no clipping

    LIMITS: ClassVar[dict[str, Limit]] = {
        "lr": POSITIVE, "weight_decay": NON_NEGATIVE, "betas": FRACTION, "warmup_ratio": FRACTION,
        "epochs": POSITIVE, "max_steps": COUNT, "batch_size": COUNT, "grad_accum": COUNT,
        "max_grad_norm": NON_NEGATIVE,
    }

    def __post_init__(self) -> None:
        check_fields(self, self.LIMITS)


@dataclass
class RunConfig:
    output: str = "runs/train"
    seed: int = 0
    save_every: int = 200  # optimizer steps between checkpoints
    keep_last: int = 2
    log_every: int = 10
    mixed_precision: str = "no"  # no | bf16 | fp16 (GPU)
    deepspeed_config: str | None = None  # a DeepSpeed JSON (configs/deepspeed/zero2.json, zero3.json)
    threads: int | None = None  # torch CPU threads (None: torch's default)

    LIMITS: ClassVar[dict[str, Limit]] = {
        "seed": between(0, 2**32 - 1),  # numpy's legacy seeding (accelerate's set_seed) takes 32 bits
        "save_every": COUNT, "keep_last": COUNT, "log_every": COUNT,
        "mixed_precision": one_of("no", "bf16", "fp16"), "threads": COUNT,
    }

    def __post_init__(self) -> None:
        check_fields(self, self.LIMITS)


@dataclass
class TrainConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"backbone": "tiny"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


_SECTIONS = {"data": DataConfig, "optim": OptimConfig, "run": RunConfig}
TRAIN_ONLY_MODEL_KEYS = {"init_from": str}  # [model] keys that are not FakeReasoningConfig fields


def _check_keys(cls: type, section: dict[str, Any], source: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise TrainConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _check_model(model: dict[str, Any], source: str) -> None:
    """The [model] table: FakeReasoningConfig's own checks (types, ranges) on its keys, before any work."""
    from fakereasoning.models.config import FakeReasoningConfig

    values = {k: v for k, v in model.items() if k not in TRAIN_ONLY_MODEL_KEYS}
    _check_keys(FakeReasoningConfig, values, f"{source} [model]")
    for key, kind in TRAIN_ONLY_MODEL_KEYS.items():
        if key in model and not isinstance(model[key], kind):
            raise TrainConfigError(f"{source}: {ConfigValueError(f'model.{key}', model[key], 'text')}")
    try:
        FakeReasoningConfig(**values)
    except ConfigValueError as exc:
        raise TrainConfigError(f"{source}: {exc.within('model.')}") from None
    except FakeReasoningError as exc:  # a check across keys (e.g. the prompt template's placeholders)
        raise TrainConfigError(f"{source}: [model]: {exc}") from None


def from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from parsed TOML (and overrides). Every value is checked by its dataclass (types,
    ranges, finite numbers): a bad one is a `TrainConfigError` naming SOURCE, the key and the value."""
    unknown = sorted(set(data) - {"model", *_SECTIONS})
    if unknown:
        raise TrainConfigError(f"{source}: unknown section(s) {unknown}")
    cfg = TrainConfig()
    if "model" in data:
        if not isinstance(data["model"], dict):
            raise TrainConfigError(f"{source}: [model] must be a table")
        cfg.model = {**cfg.model, **data["model"]}
        _check_model(cfg.model, source)
    for name, cls in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise TrainConfigError(f"{source}: [{name}] must be a table")
        _check_keys(cls, section, f"{source} [{name}]")
        try:
            setattr(cfg, name, cls(**{**asdict(getattr(cfg, name)), **section}))
        except ConfigValueError as exc:
            raise TrainConfigError(f"{source}: {exc.within(name + '.')}") from None
    return cfg


def _parse_value(text: str) -> Any:
    """A CLI override value as TOML would read it (numbers, booleans, strings, lists)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except ValueError:  # TOMLDecodeError, or a number Python refuses (over 4300 digits)
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings (e.g. `optim.lr=1e-4`, `model.use_facl=false`)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise TrainConfigError(f"override {item!r}: use section.key=value, e.g. optim.lr=1e-4")
        out.setdefault(section, {})[name] = _parse_value(value.strip())
    return out


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:  # type: ignore[assignment]
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TrainConfigError(f"{path}: config file not found") from None
        except ValueError as exc:  # TOMLDecodeError, not UTF-8, or a number of over 4300 digits
            raise TrainConfigError(f"{path}: malformed TOML ({str(exc).split(': value has')[0]})") from None
    return from_dict(apply_overrides(data, list(overrides)), source)
