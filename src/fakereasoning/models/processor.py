"""Turn (image, label, answer, prompt kind) samples into model batches, for both backbones.

Text: `<bos> template(<image> x N, prompt) <answer> <eos>`; only answer tokens are supervised. The
verdict slot (the position that predicts the verdict word after "This image is" in the conclusion) and the
reasoning span (for FACL's text embedding) are found from the tokenizer's character offsets, so any fast
tokenizer works. Images: a semantic view (resized, normalised) and a forensic view (native-pixel crops,
never resampled: GENERALIZATION.md).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from fakereasoning import schema
from fakereasoning.imageio import load_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = -100
PROMPT_KINDS = ("full", "fast", "mix")
LABEL_ID: dict[str, int] = {"real": 0, "fake": 1}

_CONCLUSION_SLOT = re.compile(r"<CONCLUSION>\s*This image is\s+(real|fake)\b")
_REASONING_SPAN = re.compile(r"<REASONING>(.*?)</REASONING>", re.DOTALL)

ImageInput = Image.Image | str | os.PathLike[str] | bytes
Sample = tuple[ImageInput, str | None, str | None, str]


def as_image(image: ImageInput) -> Image.Image:
    """A PIL RGB image; paths and bytes go through `imageio.load_image` (limits, clear errors)."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return load_image(image)


# --- images --------------------------------------------------------------------------------------------
def semantic_tensor(
    image: Image.Image,
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    pad_square: bool = False,
) -> torch.Tensor:
    """The semantic view: (optionally padded to square with the mean colour, as LLaVA does) resized to
    size x size and normalised. Semantics survive resampling; forensic traces do not, hence two views."""
    if pad_square and image.width != image.height:
        side = max(image.width, image.height)
        fill = tuple(int(round(m * 255)) for m in mean)
        canvas = Image.new("RGB", (side, side), fill)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    arr = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 255.0
    return ((arr - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]).contiguous()


def _grid_positions(extent: int, crop: int, n: int) -> list[int]:
    """n crop offsets spread over [0, extent - crop], aligned down to multiples of 8 (keeps the 8x8 JPEG
    and 2x2 upsampling grids in phase across crops)."""
    last = max(0, extent - crop)
    if n == 1:
        return [(last // 2) // 8 * 8]
    return [int(round(i * last / (n - 1))) // 8 * 8 for i in range(n)]


def forensic_crops(
    image: Image.Image, crop: int, count: int, rng: random.Random | None = None, reflect: bool = False
) -> torch.Tensor:
    """`count` native-pixel crops (count, 3, crop, crop) in [0, 1]. Never resamples.

    Deterministic grid when `rng` is None (evaluation), random 8-aligned offsets otherwise (training).
    Images smaller than the crop are padded at the bottom/right: with zeros, or mirrored (`reflect`, for
    statistics that a black border would skew).
    """
    arr = np.asarray(image, dtype=np.uint8)
    h, w = arr.shape[:2]
    if h < crop or w < crop:
        if reflect:
            padded = np.pad(arr, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="symmetric")
        else:
            padded = np.zeros((max(h, crop), max(w, crop), 3), dtype=np.uint8)
            padded[:h, :w] = arr
        arr, h, w = padded, padded.shape[0], padded.shape[1]
    if rng is None:
        side = int(np.ceil(np.sqrt(count)))
        ys, xs = _grid_positions(h, crop, side), _grid_positions(w, crop, side)
        positions = [(y, x) for y in ys for x in xs][:count]
        if len(positions) < count:  # fewer grid cells than crops asked: repeat
            positions = (positions * count)[:count]
    else:
        positions = [
            (rng.randint(0, (h - crop) // 8) * 8, rng.randint(0, (w - crop) // 8) * 8) for _ in range(count)
        ]
    crops = np.stack([arr[y : y + crop, x : x + crop] for y, x in positions])
    return (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0).contiguous()


# --- text ----------------------------------------------------------------------------------------------
@dataclass
class EncodedText:
    input_ids: list[int]
    labels: list[int]
    slot: int  # -1: no verdict slot
    reasoning_mask: list[bool]


class TextEncoder:
    """Tokenizes prompts and answers; knows the verdict token ids and the image placeholder."""

    def __init__(self, tokenizer: Any, template: str, n_image_tokens: int, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.n_image_tokens = n_image_tokens
        self.max_length = max_length
        image_id = tokenizer.convert_tokens_to_ids(schema.IMAGE_TOKEN)
        if image_id is None or image_id == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {schema.IMAGE_TOKEN} token")
        self.image_token_id = int(image_id)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        real = self._encode(" " + schema.fast_answer("real"))[0]
        fake = self._encode(" " + schema.fast_answer("fake"))[0]
        i = next(k for k, (a, b) in enumerate(zip(real, fake, strict=False)) if a != b)
        self.verdict_ids: tuple[int, int] = (real[i], fake[i])
        # fast mode reads p(fake) right after this answer prefix ("<CONCLUSION> This image is")
        self.fast_prefix: list[int] = real[:i]
        # forced tokens after the verdict word, per label, so the conclusion always closes properly
        self.conclusion_tail: dict[str, list[int]] = {"real": real[i + 1 :], "fake": fake[i + 1 :]}
        text = " " + schema.format_cot("real", {}, "x")
        cut = text.index("<CAPTION>") + len("<CAPTION>")
        ids, offsets = self._encode(text)
        # the constant summary is teacher-forced at inference (it never depends on the image)
        self.summary_prefix: list[int] = [t for t, (s, _e) in zip(ids, offsets, strict=True) if s < cut]

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def prompt_ids(self, prompt: str) -> list[int]:
        """`<bos>` + the templated prompt with the image placeholder expanded to n_image_tokens."""
        text = self.template.format(image=schema.IMAGE_TOKEN, prompt=prompt)
        ids, _ = self._encode(text)
        out: list[int] = [] if self.bos_id is None else [self.bos_id]
        for t in ids:
            out.extend([t] * self.n_image_tokens if t == self.image_token_id else [t])
        if out.count(self.image_token_id) != self.n_image_tokens:
            raise ValueError("prompt_template must contain the image placeholder exactly once")
        return out

    def encode(self, prompt: str, answer: str) -> EncodedText:
        prompt_ids = self.prompt_ids(prompt)
        text = " " + answer
        ids, offsets = self._encode(text)
        slot_tok = -1
        matches = list(_CONCLUSION_SLOT.finditer(text))
        match = matches[-1] if matches else None  # the last conclusion is the answer's verdict
        if match is not None:
            start = match.start(1)
            for k, (s, e) in enumerate(offsets):
                if s <= start < e or (s == e == start):
                    if ids[k] in self.verdict_ids:
                        slot_tok = k
                    break
        span = _REASONING_SPAN.search(text)
        in_reasoning = [
            span is not None and s >= span.start(1) and e <= span.end(1) and e > s for s, e in offsets
        ]
        input_ids = prompt_ids + ids + ([self.eos_id] if self.eos_id is not None else [])
        labels = [IGNORE_INDEX] * len(prompt_ids) + ids + ([self.eos_id] if self.eos_id is not None else [])
        mask = (
            [False] * len(prompt_ids) + in_reasoning + [False] * (len(input_ids) - len(prompt_ids) - len(ids))
        )
        slot = len(prompt_ids) + slot_tok - 1 if slot_tok >= 0 else -1
        if len(input_ids) > self.max_length:
            input_ids, labels, mask = (x[: self.max_length] for x in (input_ids, labels, mask))
            if slot + 1 >= self.max_length:
                slot = -1
        return EncodedText(input_ids, labels, slot, mask)


def pad_sequences(seqs: Sequence[Sequence[Any]], value: Any, left: bool = False) -> list[list[Any]]:
    width = max(len(s) for s in seqs)
    return [
        ([value] * (width - len(s)) + list(s)) if left else (list(s) + [value] * (width - len(s)))
        for s in seqs
    ]


def resolve_label(label: str | int | None, answer: str | None) -> str | None:
    """The sample's label: the given one, else the answer's conclusion; None when neither says."""
    if isinstance(label, int | np.integer):
        return "fake" if int(label) == 1 else "real"
    if label in LABEL_ID:
        return label  # type: ignore[return-value]
    return schema.parse_cot(answer).label if answer else None


class FakeReasoningProcessor:
    """Samples -> batch dicts. `image_fn(image, rng)` returns the backbone's per-image tensors."""

    def __init__(
        self,
        text: TextEncoder,
        image_fn: Callable[[Image.Image, random.Random | None], dict[str, torch.Tensor]],
        fast_prompt_ratio: float = 0.3,
        evidence_prompt: bool = False,
    ) -> None:
        self.text = text
        self.image_fn = image_fn
        self.fast_prompt_ratio = fast_prompt_ratio
        self.evidence_prompt = evidence_prompt

    def images(
        self, images: Sequence[ImageInput], rng: random.Random | None = None
    ) -> dict[str, torch.Tensor]:
        per = [self.image_fn(as_image(im), rng) for im in images]
        out: dict[str, torch.Tensor] = {}
        for key in per[0]:
            parts = [p[key] for p in per]
            counts = [len(t) for t in parts]
            if len(set(counts)) > 1:  # images read as different numbers of crops: pad, and say how many
                n = max(counts)
                parts = [torch.cat([t, t.new_zeros((n - len(t), *t.shape[1:]))]) for t in parts]
                out[f"{key}_count"] = torch.tensor(counts, dtype=torch.long)
            out[key] = torch.stack(parts)
        return out

    def __call__(
        self, samples: Sequence[Sample], train: bool = False, seed: int | None = None
    ) -> dict[str, Any]:
        """Batch of (image, label, answer, prompt kind). Kind "mix" picks fast with `fast_prompt_ratio`.

        In fast kind the answer is always `schema.fast_answer(label)`. `train` turns on random crops.
        """
        from fakereasoning.evidence.findings import parse_answer  # lazy: measurement code loads scipy

        if not samples:
            raise ValueError("empty batch")
        rng = random.Random(seed) if (train or seed is not None) else None
        encoded: list[EncodedText] = []
        labels: list[int] = []
        kinds: list[str] = []
        attributes: list[frozenset[str]] = []
        for image, label, answer, kind in samples:
            if kind not in PROMPT_KINDS:
                raise ValueError(f"prompt kind must be one of {PROMPT_KINDS}, got {kind!r}")
            lab = resolve_label(label, answer)
            if kind == "mix":
                kind = "fast" if (rng or random).random() < self.fast_prompt_ratio else "full"
            if kind == "fast" or not answer:
                kind = "fast"
                answer = schema.fast_answer(lab) if lab else ""
                prompt = schema.PROMPT_FAST
            elif self.evidence_prompt:
                from fakereasoning.evidence.findings import evidence_text, measure_view

                prompt = schema.prompt_with_evidence(evidence_text(measure_view(as_image(image))))
            else:
                prompt = schema.PROMPT_FULL
            encoded.append(self.text.encode(prompt, answer))
            labels.append(LABEL_ID.get(lab, -1) if lab else -1)
            kinds.append(kind)
            # FACL's attribute weighting: `Name:` prefixes, or findings of known forms (the release format)
            attributes.append(frozenset(parse_answer(answer).attributes) if kind == "full" else frozenset())
        ids = pad_sequences([e.input_ids for e in encoded], self.text.pad_id)
        batch: dict[str, Any] = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(pad_sequences([[1] * len(e.input_ids) for e in encoded], 0)),
            "labels": torch.tensor(
                pad_sequences([e.labels for e in encoded], IGNORE_INDEX), dtype=torch.long
            ),
            "slots": torch.tensor([e.slot for e in encoded], dtype=torch.long),
            "cpm_labels": torch.tensor(labels, dtype=torch.long),
            "reasoning_mask": torch.tensor(pad_sequences([e.reasoning_mask for e in encoded], False)),
            "attributes": attributes,
            "prompt_kinds": kinds,
        }
        batch.update(self.images([s[0] for s in samples], rng if train else None))
        return batch
