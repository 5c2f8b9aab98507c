"""`FakeReasoning`: vision branch(es) -> fusion -> projector -> causal LM, with CPM, FACL and fast mode.

The backbone (a registry entry) supplies: `image_inputs(image, rng)`, `visual_tokens(batch)`,
`embed(ids)`, `run_lm(embeds, mask, positions, cache)`, `n_visual_tokens`, `hidden_size`,
`save_state()` / `load_state()`. Everything else (losses, generation with the CPM-chosen verdict, fast
mode, saving) lives here once for all backbones.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fakereasoning import schema
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.fsio import atomic_write_json, staged_dir
from fakereasoning.models import cpm
from fakereasoning.models.config import CONFIG_NAME, WEIGHTS_NAME, FakeReasoningConfig, ModelConfigError
from fakereasoning.models.facl import FACL
from fakereasoning.models.processor import (
    IGNORE_INDEX,
    FakeReasoningProcessor,
    ImageInput,
    Sample,
    TextEncoder,
    as_image,
)
from fakereasoning.models.registry import get_builder
from fakereasoning.paths import resolve_model_dir


@dataclass
class FakeReasoningOutput:
    loss: torch.Tensor
    lm_loss: torch.Tensor
    cpm_loss: torch.Tensor
    facl_loss: torch.Tensor
    facl_terms: dict[str, torch.Tensor] = field(default_factory=dict)
    cpm_logits: torch.Tensor | None = None  # z = [real, fake] / scale, (B, 2); zeros where no slot
    prob_fake: torch.Tensor | None = None  # softmax(z / T)[:, 1]; meaningless where cpm_valid is False
    cpm_valid: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    logits: torch.Tensor | None = None


@dataclass
class _Generated:
    texts: list[str]
    probs: list[float]
    measurements: list[dict[str, float] | None] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)  # which attribute each finding states


class FakeReasoning(nn.Module):
    """The FakeReasoning model. Build with `build`, load with `from_pretrained`."""

    def __init__(self, config: FakeReasoningConfig, backbone: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        self.tokenizer = tokenizer
        try:
            self.text = TextEncoder(
                tokenizer, config.prompt_template, backbone.n_visual_tokens, config.max_length
            )
        except ValueError as exc:
            raise ModelConfigError(f"{config.backbone} tokenizer: {exc}") from None
        self.processor = FakeReasoningProcessor(self.text, backbone.image_inputs, config.fast_prompt_ratio,
                                                config.evidence_prompt)
        self.facl: FACL | None = None
        if config.use_facl:
            self.facl = FACL(
                backbone.hidden_size,
                backbone.hidden_size,
                dim=config.facl_dim,
                init_temperature=config.facl_init_temperature,
                cross_weight=config.facl_cross_weight,
                image_weight=config.facl_image_weight,
                text_weight=config.facl_text_weight,
                supcon_temperature=config.supcon_temperature,
                attribute_weighting=config.facl_attribute_weighting,
            )

    @property
    def config(self) -> FakeReasoningConfig:
        return self._config

    @config.setter
    def config(self, value: FakeReasoningConfig) -> None:
        """One config for the model and its backbone: a replaced config (fitted temperature, another crop
        count) reaches the backbone's image inputs too."""
        self.__dict__["_config"] = value
        if hasattr(self.backbone, "config"):
            self.backbone.config = value

    # --- construction / persistence -----------------------------------------------------------------
    @classmethod
    def build(
        cls, backbone: str = "tiny", tokenizer: Any = None, texts: Iterable[str] = (), **overrides: Any
    ) -> FakeReasoning:
        """A fresh model. tiny: pass a tokenizer (`train_tokenizer(texts)`) or `texts` to train one
        (default: the schema texts alone). llava: `base_model=<local LLaVA dir>`. mof: `base_model=<LM dir>`,
        `clip_model=<CLIP dir>`, `dino_model=<DINOv2 dir>`."""
        config = FakeReasoningConfig(backbone=backbone).replace(**overrides)
        module, tokenizer, config = get_builder(backbone)(config, tokenizer, texts, None)
        return cls(config, module, tokenizer)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str] | None = None, device: str | torch.device | None = None
    ) -> FakeReasoning:
        """Load a saved model: JSON config, tokenizer files and safetensors. Nothing is unpickled.

        DIR: a model folder, or a `train --output` / checkpoint folder holding model/; None: the shipped
        default model (`paths.resolve_model_dir`)."""
        from safetensors.torch import load_file

        try:
            path = resolve_model_dir(directory)
        except FakeReasoningError as exc:
            raise ModelConfigError(str(exc)) from None
        config = FakeReasoningConfig.load(path)
        module, tokenizer, config = get_builder(config.backbone)(config, None, (), path)
        model = cls(config, module, tokenizer)
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise ModelConfigError(f"{weights}: file not found")
        state = load_file(str(weights))
        model._load_state(state, str(weights))
        model.eval()
        if device is not None and not config.device_map and config.precision not in ("int8", "int4"):
            model.to(device)  # a model placed by device_map (or quantized) stays where it was put
        return model

    def _save_state(self) -> dict[str, torch.Tensor]:
        state = {f"backbone.{k}": v for k, v in self.backbone.save_state().items()}
        if self.facl is not None:
            state.update({f"facl.{k}": v for k, v in self.facl.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def _load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        self.backbone.load_state(backbone, source)
        if self.facl is not None:
            facl = {k[len("facl.") :]: v for k, v in state.items() if k.startswith("facl.")}
            try:
                self.facl.load_state_dict(facl, strict=True)
            except RuntimeError as exc:
                raise ModelConfigError(f"{source}: FACL weights do not match the config ({exc})") from None

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write config.json, model.safetensors and the tokenizer into a temp dir, then rename it into
        place, so a crash never leaves a half-written model directory."""
        from safetensors.torch import save_file

        target = Path(directory)
        inside = [p for p in (self.config.base_model, self.config.clip_model, self.config.dino_model)
                  if p and self.config.backbone == "mof" and target.resolve() in Path(p).resolve().parents]
        if inside:
            raise ModelConfigError(f"{target}: holds the checkpoints this model reads ({inside[0]}); saving would "
                                   "replace the folder: save to another folder")
        with staged_dir(target) as tmp:
            save_file(self._save_state(), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            self.tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / CONFIG_NAME, self.config.to_dict())
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        return target

    @property
    def device(self) -> torch.device:
        return next(p.device for p in self.parameters())

    @property
    def model_id(self) -> str:
        return self.config.model_id or f"fakereasoning-{self.config.backbone}"

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # --- batches / forward ---------------------------------------------------------------------------
    def collate(
        self, samples: Sequence[Sample], train: bool = False, seed: int | None = None
    ) -> dict[str, Any]:
        """(image, label, answer, prompt kind "full"|"fast"|"mix") samples -> batch for `forward`."""
        return self.processor(samples, train=train, seed=seed)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        dev = self.device
        return {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Visual tokens, and the backbone's prior on the fake verdict logit in CPM units (or None)."""
        encode = getattr(self.backbone, "encode", None)
        if encode is None:
            return self.backbone.visual_tokens(batch), None
        return encode(batch)

    def _with_prior(self, pair: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """[real, fake] verdict logits with the prior added to "fake" (scaled so it moves z by `prior`)."""
        if prior is None:
            return pair
        shift = torch.stack([torch.zeros_like(prior), prior * self.config.cpm_scale], dim=-1)
        if self.config.verdict_head:  # the head alone decides: its logit is the verdict slot's margin
            return shift.to(pair.dtype)
        return pair + shift.to(pair.dtype)

    def _inputs_embeds(self, input_ids: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        embeds = self.backbone.embed(input_ids)
        mask = (input_ids == self.text.image_token_id).unsqueeze(-1)
        return embeds.masked_scatter(mask, visual.to(embeds.dtype))

    def forward(self, batch: dict[str, Any]) -> FakeReasoningOutput:  # type: ignore[override]
        """Teacher-forced pass: LM loss, CPM logits/probability/loss, FACL embeddings and terms."""
        batch = self._to_device(batch)
        cfg = self.config
        ids, attn = batch["input_ids"], batch["attention_mask"]
        visual, prior = self._encode(batch)
        embeds = self._inputs_embeds(ids, visual)
        positions = (attn.long().cumsum(-1) - 1).clamp(min=0)
        logits, hidden, _ = self.backbone.run_lm(embeds, attn, positions)
        labels = batch["labels"]
        lm_loss = (
            F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
            )
            if bool((labels[:, 1:] != IGNORE_INDEX).any())
            else logits.sum() * 0.0
        )
        slots, cpm_labels = batch["slots"], batch["cpm_labels"]
        pair = self._with_prior(cpm.verdict_logits(logits, slots, self.text.verdict_ids), prior)
        valid = (slots >= 0) & (cpm_labels >= 0)
        z = cpm.cpm_z(pair.float(), cfg.cpm_scale)
        prob = cpm.cpm_probability(pair, cfg.cpm_scale, cfg.temperature, cfg.cpm_bias)
        cpm_loss = cpm.cpm_loss(pair, cpm_labels, valid, cfg.cpm_scale)
        zero = logits.sum() * 0.0
        facl_loss, terms = zero, {}
        image_embeds = text_embeds = None
        if self.facl is not None:
            image_embeds, text_embeds, has_text = self.facl.embed(visual, hidden, batch["reasoning_mask"])
            facl_loss, terms = self.facl(
                image_embeds, text_embeds, has_text, cpm_labels, batch.get("attributes")
            )
        loss = cfg.lm_weight * lm_loss
        if cfg.use_cpm:
            loss = loss + cfg.cpm_weight * cpm_loss
        if self.facl is not None:
            loss = loss + facl_loss
        return FakeReasoningOutput(
            loss=loss,
            lm_loss=lm_loss,
            cpm_loss=cpm_loss,
            facl_loss=facl_loss,
            facl_terms=terms,
            cpm_logits=z,
            prob_fake=prob,
            cpm_valid=valid,
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            logits=logits,
        )

    # --- inference -----------------------------------------------------------------------------------
    def _prefill(
        self, images: Sequence[ImageInput], prompt: str, answer_prefix: list[int]
    ) -> tuple[torch.Tensor, Any, int, torch.Tensor | None]:
        """Run prompt + teacher-forced answer prefix for a batch (same length for all: no padding).
        Returns the last logits, the cache, the length and the verdict prior."""
        from transformers import DynamicCache

        pix = self._to_device(self.processor.images(images))
        ids = self.text.prompt_ids(prompt) + answer_prefix
        input_ids = torch.tensor([ids] * len(images), device=self.device)
        visual, prior = self._encode(pix)
        embeds = self._inputs_embeds(input_ids, visual)
        positions = torch.arange(len(ids), device=self.device).expand(len(images), -1)
        cache = DynamicCache()
        logits, _, cache = self.backbone.run_lm(embeds, None, positions, cache=cache, logits_to_keep=1)
        return logits[:, -1].float(), cache, len(ids), prior

    @torch.no_grad()
    def fast_probabilities(self, images: Sequence[ImageInput]) -> list[float]:
        """p(fake) from one forward pass of the direct-answer prompt (no reasoning generated)."""
        if not images:
            return []
        last, _, _, prior = self._prefill(images, schema.PROMPT_FAST, self.text.fast_prefix)
        pair = self._with_prior(last[:, list(self.text.verdict_ids)], prior)
        return cpm.cpm_probability(pair, self.config.cpm_scale, self.config.temperature, self.config.cpm_bias).tolist()

    # --- grounded full mode ----------------------------------------------------------------------------
    def _extend(self, cache: Any, ids: list[int], pos: int) -> tuple[torch.Tensor, Any, int]:
        """Feed `ids` after a batch-1 cache; returns (logits of every fed position, cache, new position)."""
        step = torch.tensor([ids], device=self.device)
        positions = torch.arange(pos, pos + len(ids), device=self.device)[None]
        logits, _, cache = self.backbone.run_lm(self.backbone.embed(step), None, positions, cache=cache)
        return logits[0].float(), cache, pos + len(ids)

    def _score(self, cache: Any, last: torch.Tensor, pos: int, options: list[list[int]]) -> torch.Tensor:
        """Mean log-probability of each token sequence in `options` as the continuation of a batch-1 cache
        whose last logits are `last` (one batched pass; the cache itself is left as it was)."""
        import copy

        k, width = len(options), max(len(o) for o in options)
        pad = self.text.pad_id
        ids = torch.tensor([o + [pad] * (width - len(o)) for o in options], device=self.device)
        branch = copy.deepcopy(cache)
        branch.batch_repeat_interleave(k)
        mask = torch.ones(k, pos + width, dtype=torch.long, device=self.device)
        for i, o in enumerate(options):
            mask[i, pos + len(o):] = 0
        positions = torch.arange(pos, pos + width, device=self.device).expand(k, -1)
        logits, _, _ = self.backbone.run_lm(self.backbone.embed(ids), mask, positions, cache=branch)
        logp = torch.log_softmax(torch.cat([last.expand(k, 1, -1), logits[:, :-1].float()], dim=1), dim=-1)
        token_logp = logp.gather(-1, ids[..., None])[..., 0]
        lengths = torch.tensor([len(o) for o in options], device=self.device)
        valid = torch.arange(width, device=self.device)[None] < lengths[:, None]
        return (token_logp * valid).sum(1) / lengths

    def _choose(self, scores: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
        if temperature <= 1e-5:
            return int(scores.argmax())
        return int(torch.multinomial(torch.softmax(scores / temperature, dim=-1), 1, generator=generator))

    @torch.no_grad()
    def _grounded_answer(self, image: Any, label: str, measured: Any, caption: str | None, temperature: float,
                         generator: torch.Generator | None) -> tuple[str, dict[str, str]]:
        """The tagged answer for a decided verdict. The model reads the measurements (<EVIDENCE> block) and
        chooses, attribute by attribute, which of the findings they support it states (each in its canonical
        wording, scored by its own likelihood); it cannot state anything else, so every number is the image's own
        and every finding agrees with its measurement. The caption comes from what can see (see `caption`).
        A model trained on answers that named each finding's attribute (`finding_prefix`) reads and scores
        the findings in that form; the answer is always written in the release format. Returns the answer
        and {attribute: finding} of what it states."""
        from fakereasoning.evidence import findings

        prompt = (schema.prompt_with_evidence(findings.evidence_text(measured)) if self.config.evidence_prompt
                  else schema.PROMPT_FULL)
        head = schema.format_cot(label, {}, caption or "").split(schema.LOW_LEVEL_LEAD)[0] + schema.LOW_LEVEL_LEAD
        head_ids = self.text._encode(" " + head)[0]
        last, cache, pos, _ = self._prefill([image], prompt, head_ids)
        chosen: dict[str, str] = {}
        # in the order the answer writes them (schema.format_reasoning), so the model reads what it wrote
        for attribute, cands in sorted(findings.candidates(measured, label).items()):  # type: ignore[arg-type]
            texts = [schema.clean_finding(c.text) for c in cands]
            worded = [schema.prefixed_finding(attribute, t) if self.config.finding_prefix else t for t in texts]
            options = [self.text._encode(f" {w}")[0] for w in worded]
            pick = self._choose(self._score(cache, last[0], pos, options), temperature, generator) if len(options) > 1 else 0
            chosen[attribute] = cands[pick].text
            logits, cache, pos = self._extend(cache, options[pick], pos)
            last = logits[-1:]
        return schema.format_cot(label, chosen, caption or ""), chosen

    @torch.no_grad()
    def _generated_answer(self, image: Any, prompt: str, max_new_tokens: int, temperature: float,
                          generator: torch.Generator | None) -> tuple[str, float]:
        """The release's way (`reasoning_mode = "generate"`): the model writes caption and reasoning itself
        (the constant summary teacher-forced), up to </REASONING>; then p(fake) is read by CPM at the slot
        after "<CONCLUSION> This image is", where the release trained it, and the conclusion follows it."""
        last, cache, pos, prior = self._prefill([image], prompt, self.text.summary_prefix)
        close = "</REASONING>"
        generated: list[int] = []
        for _ in range(max(0, max_new_tokens)):
            token = self._choose(torch.log_softmax(last[0].float(), -1), temperature, generator)
            if token == self.text.eos_id:
                break
            generated.append(token)
            logits, cache, pos = self._extend(cache, [token], pos)
            last = logits[-1:]
            if close in self.tokenizer.decode(generated[-8:]) and close in self.tokenizer.decode(generated):
                break
        body = self.tokenizer.decode(self.text.summary_prefix + generated, skip_special_tokens=True).strip()
        tail = self.text.fast_prefix
        if close not in body:  # the budget ran out or the model stopped: close the reasoning ourselves
            body = f"{body} {close}"
            tail = self.text._encode(f" {close}")[0] + tail
        logits, cache, pos = self._extend(cache, tail, pos)
        pair = self._with_prior(logits[-1:, list(self.text.verdict_ids)], prior)
        p = float(cpm.cpm_probability(pair, self.config.cpm_scale, self.config.temperature, self.config.cpm_bias)[0])
        label = "fake" if p >= 0.5 else "real"
        return f"{body} {schema.fast_answer(label)}", p

    def caption(self, images: Sequence[ImageInput]) -> list[str | None]:
        """What each image shows, from a part that can see it (the tiny backbone: the ImageNet classifier
        of its frozen EfficientNet; None when it is unsure), or None when the backbone has no such part."""
        describe = getattr(self.backbone, "describe", None)
        if describe is None or not images:
            return [None] * len(images)
        return describe(self._to_device(self.processor.images(images)))

    @torch.no_grad()
    def _generate_full(
        self,
        images: Sequence[ImageInput],
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> _Generated:
        """Full mode: CPM decides first (one forward pass of the direct-answer prompt), then the reasoning
        is written for that verdict from the image's measurements (`_grounded_answer`), so text, verdict
        and p(fake) agree. Greedy unless a temperature is given; each image is answered on its own, so the
        text never depends on the batch. `max_new_tokens` is kept for API compatibility (answers are
        bounded by the findings, far below any budget)."""
        from fakereasoning.evidence import findings

        pil = [as_image(im) for im in images]
        generate = self.config.reasoning_mode == "generate"
        probs = [0.0] * len(pil) if generate else self.fast_probabilities(pil)
        captions = [None] * len(pil) if generate else self.caption(pil)
        texts, measured, stated = [], [], []
        for i, (img, p) in enumerate(zip(pil, probs, strict=True)):
            generator = None
            if temperature > 1e-5 and seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(int(seed) + i)
            m = findings.measure_view(img)
            if generate:
                prompt = (schema.prompt_with_evidence(findings.evidence_text(m)) if self.config.evidence_prompt
                          else schema.PROMPT_FULL)
                text, probs[i] = self._generated_answer(img, prompt, max_new_tokens, temperature, generator)
                chosen = findings.parse_answer(text).attributes
            else:
                text, chosen = self._grounded_answer(img, "fake" if p >= 0.5 else "real", m, captions[i],
                                                     temperature, generator)
            texts.append(text)
            stated.append(chosen)
            measured.append(findings.measured_values(m))
        return _Generated(texts, probs, measured, stated)

    def generate(
        self,
        images: Sequence[ImageInput],
        mode: str = "full",
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> list[str]:
        """Tagged answers. Fast mode answers only the conclusion, decided by CPM from one forward pass."""
        if not images:
            return []
        if mode == "fast":
            return [
                schema.fast_answer("fake" if p >= 0.5 else "real") for p in self.fast_probabilities(images)
            ]
        if mode != "full":
            raise ValueError(f"mode must be 'full' or 'fast', got {mode!r}")
        return self._generate_full(images, max_new_tokens, temperature, seed).texts

    # --- detection -----------------------------------------------------------------------------------
    def detect(self, image: ImageInput, mode: str = schema.DEFAULT_MODE, **kwargs: Any) -> schema.Verdict:
        """One image (PIL image, path or bytes) -> `Verdict`. Mode as the CLI's: full (with reasoning)."""
        return self.detect_many([image], mode=mode, batch_size=1, **kwargs)[0]  # type: ignore[return-value]

    def detect_many(
        self,
        images: Sequence[ImageInput],
        mode: str = schema.DEFAULT_MODE,
        batch_size: int = 16,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = 0,
        on_error: str = "raise",
        progress: bool = False,
    ) -> list[schema.Verdict | None]:
        """Verdicts for many images, batched. Paths are read with `imageio.load_image`.

        on_error="raise": an unreadable image raises `ImageLoadError` naming it; "none": its place holds
        None and the rest of the batch goes on.
        """
        if mode not in ("fast", "full"):
            raise ValueError(f"mode must be 'full' or 'fast', got {mode!r}")
        was_training = self.training
        self.eval()
        results: list[schema.Verdict | None] = [None] * len(images)
        loaded: list[tuple[int, str, Any]] = []
        for i, item in enumerate(images):
            name = _image_name(item, i)
            try:
                loaded.append((i, name, as_image(item)))
            except ImageLoadError:
                if on_error == "raise":
                    raise
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(loaded), desc=f"detect ({mode})", unit="img")
        try:
            for start in range(0, len(loaded), max(1, batch_size)):
                chunk = loaded[start : start + batch_size]
                pil = [c[2] for c in chunk]
                t0 = time.perf_counter()
                measured: list[dict[str, float] | None] = [None] * len(chunk)
                stated: list[dict[str, str] | None] = [None] * len(chunk)
                if mode == "fast":
                    probs = self.fast_probabilities(pil)
                    texts = [schema.fast_answer("fake" if p >= 0.5 else "real") for p in probs]
                else:
                    out = self._generate_full(pil, max_new_tokens, temperature, seed)
                    probs, texts, measured, stated = out.probs, out.texts, out.measurements, out.attributes
                per_ms = (time.perf_counter() - t0) * 1000.0 / len(chunk)
                crops_read = getattr(self.backbone, "crops_read", None)
                for (i, name, img), p, text, m, a in zip(chunk, probs, texts, measured, stated, strict=True):
                    results[i] = schema.Verdict.from_answer(
                        name, min(1.0, max(0.0, p)), text, model_id=self.model_id, elapsed_ms=per_ms,
                        measurements=m, attributes=a, crops=crops_read(img) if crops_read is not None else None,
                    )
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
            self.train(was_training)
        return results


def _image_name(item: Any, index: int) -> str:
    if isinstance(item, str | os.PathLike):
        return str(item)
    filename = getattr(item, "filename", None)
    return str(filename) if filename else f"<image {index}>"


def describe(model: FakeReasoning) -> dict[str, Any]:
    """Parameter counts per part (for reports and `bench/`)."""
    parts: dict[str, int] = {}
    for name, module in model.backbone.named_children():
        parts[name] = sum(p.numel() for p in module.parameters())
    if model.facl is not None:
        parts["facl"] = sum(p.numel() for p in model.facl.parameters())
    return {
        "backbone": model.config.backbone,
        "total": model.num_parameters(),
        "trainable": model.num_parameters(trainable_only=True),
        "parts": parts,
        "visual_tokens": model.backbone.n_visual_tokens,
        "config": json.loads(json.dumps(model.config.to_dict())),
    }
