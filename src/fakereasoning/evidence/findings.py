"""Findings: the sentences a reasoning may state about an image, each tied to the measurement it rests on.

One place for (a) the thresholds that make a measurement evidence of forgery or of authenticity, (b) the
finding templates per attribute, with the condition under which each is true, and (c) reading a stated
finding back: which template it is, which numbers it states, and whether they are the image's own.

The annotator (references), the model (grounded generation: it may only choose among findings whose
condition holds, with the numbers filled from `measure`) and the evaluator (faithfulness metrics) all use
this module, so what is written, what is generated and what is checked can never drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from string import Formatter
from typing import Any

import numpy as np
from PIL import Image

from fakereasoning.evidence.measure import Measurements, measure
from fakereasoning.schema import ATTRIBUTES_OF_LABEL, Label, ParsedAnswer, parse_cot

# Thresholds (0-255 intensities), set from MMFR-Local standard (seed 0): real crops have period-2 peak
# ratios ~1.00 and |NPR - 1| <= 0.02 (75th percentile), fakes of x2 decoders 0.05-0.23; reals have MORE
# uneven noise than fakes (tile variation median 0.50 vs 0.31-0.45) and colour casts of 10-50 levels, so
# neither uneven noise nor a moderate cast is stated as evidence of forgery.
PEAK_STRONG = 2.0
PEAK_WEAK = 1.25
NPR_OFF = 0.04  # |npr_ratio - 1| beyond this = a 2x2 grid
SHARP_LOW = 60.0
SHARP_HIGH = 150.0
NOISE_CV_UNIFORM = 0.25  # below: noise too even across regions for a sensor
COHERENCE_HIGH = 0.6
CAST_EXTREME = 70.0
CAST_NEUTRAL = 12.0
CLIP_STRONG = 0.02
MEASURE_SIDE = 1024  # measurements of larger images are taken on their central 1024 x 1024 pixels

_UPSAMPLING = {
    2: "a trace of learned x2 upsampling",
    4: "the grid of a x4 decoder",
    8: "a block grid like that of a x8 latent decoder or JPEG coding",
}


def _cast(m: Measurements) -> tuple[str, float]:
    if abs(m.cast[0]) >= abs(m.cast[1]):
        return "red-green", m.cast[0]
    return "blue-yellow", m.cast[1]


def _light(m: Measurements) -> tuple[str, float]:
    if abs(m.light_dx) >= abs(m.light_dy):
        return "left to right", m.light_dx
    return "top to bottom", m.light_dy


# Every value a finding can state, computed from the measurements.
SLOTS: dict[str, Callable[[Measurements], Any]] = {
    "period": lambda m: m.strongest_period()[0],
    "peak": lambda m: m.strongest_period()[1],
    "peak8": lambda m: m.peak_ratio.get(8, 1.0),
    "upsampling": lambda m: _UPSAMPLING[m.strongest_period()[0]],
    "npr_pct": lambda m: abs(m.npr_ratio - 1.0) * 100.0,
    "npr_word": lambda m: "inside" if m.npr_ratio > 1 else "across",
    "npr_ratio": lambda m: m.npr_ratio,
    "noise_cv": lambda m: m.noise_cv,
    "noise_lo": lambda m: m.noise_tiles[0],
    "noise_hi": lambda m: m.noise_tiles[1],
    "noise_sigma": lambda m: m.noise_level,
    "sharpness": lambda m: m.sharpness,
    "cast_channel": lambda m: _cast(m)[0],
    "cast_value": lambda m: _cast(m)[1],
    "coherence": lambda m: m.edge_coherence,
    "light_dir": lambda m: _light(m)[0],
    "light_change": lambda m: _light(m)[1],
    "balance": lambda m: "neutral colour balance" if max(abs(m.cast[0]), abs(m.cast[1])) < CAST_NEUTRAL
    else "a colour cast shared by the whole frame",
}


def _npr_dev(m: Measurements) -> float:
    return abs(m.npr_ratio - 1.0)


def _max_cast(m: Measurements) -> float:
    return max(abs(m.cast[0]), abs(m.cast[1]))


@dataclass(frozen=True)
class Finding:
    """One kind of finding: its attribute, when it is true, and the ways it may be worded."""

    id: str
    attribute: str
    holds: Callable[[Measurements], bool]
    phrasings: tuple[str, ...]
    hedge: bool = False  # states that nothing measured is decisive (true whenever no other finding is)


FINDINGS: tuple[Finding, ...] = (
    # --- forgery attributes (fake) ---
    Finding("texture.periodic", "Anomalous Image Texture", lambda m: m.strongest_period()[1] >= PEAK_WEAK, (
        "the high-frequency residual repeats every {period} pixels ({peak:.1f}x its spectral neighbourhood), {upsampling}",
        "a periodic peak at a {period}-pixel period stands {peak:.1f}x above the residual spectrum, {upsampling}",
        "the noise residual is not random: its spectrum peaks at period {period} ({peak:.1f}x), {upsampling}",
    )),
    Finding("texture.even_noise", "Anomalous Image Texture", lambda m: m.noise_cv < NOISE_CV_UNIFORM, (
        "the noise is unnaturally even across regions (variation {noise_cv:.2f} between tiles), not following content as sensor noise does",
        "texture noise barely changes from region to region ({noise_lo:.1f} to {noise_hi:.1f}), as if synthesised uniformly",
    )),
    Finding("edges.grid", "Irregular Image Edges", lambda m: _npr_dev(m) >= NPR_OFF, (
        "neighbouring pixels differ {npr_pct:.0f}% more {npr_word} 2x2 cells than elsewhere, a stair-step grid along edges",
        "edges follow a 2-pixel grid: pixel differences {npr_word} 2x2 cells are {npr_pct:.0f}% stronger",
        "contours carry an upsampling grid ({npr_pct:.0f}% imbalance of neighbouring-pixel differences {npr_word} 2x2 cells)",
    )),
    Finding("quality.soft", "Low Image Quality", lambda m: m.sharpness < SHARP_LOW, (
        "fine detail is smoothed away (Laplacian variance {sharpness:.0f})",
        "the image is soft: its Laplacian variance is only {sharpness:.0f}",
    )),
    Finding("quality.blocking", "Low Image Quality", lambda m: m.peak_ratio.get(8, 1.0) >= PEAK_STRONG, (
        "8-pixel blocking is visible in the residual ({peak8:.1f}x)",
        "an 8x8 block pattern ({peak8:.1f}x) degrades flat areas",
    )),
    Finding("lighting.cast", "Inconsistent Lighting and Shadows", lambda m: _max_cast(m) >= CAST_EXTREME, (
        "an extreme {cast_channel} cast of {cast_value:+.0f} levels tints shadows and highlights alike",
        "the colour balance is far off ({cast_channel} offset {cast_value:+.0f}), so light and shadow do not share one plausible source",
    )),
    Finding("texture.undecided_fake", "Anomalous Image Texture", lambda m: True, (
        "no single measurement is decisive here (strongest periodic peak {peak:.2f}x at period {period}, Laplacian variance {sharpness:.0f}); the verdict rests on learned image statistics",
    ), hedge=True),
    # --- authentic attributes (real) ---
    # "varies with content" is only said where the variation is not what the fake side calls too even
    Finding("texture.aperiodic_varied", "Natural and Consistent Image Texture",
            lambda m: m.strongest_period()[1] < PEAK_WEAK and _npr_dev(m) < NPR_OFF and m.noise_cv >= NOISE_CV_UNIFORM, (
        "the noise residual has no periodic peak (largest {peak:.2f}x) and its level follows the content (variation {noise_cv:.2f} between regions)",
        "texture noise is aperiodic (peak {peak:.2f}x) and varies with content as camera noise does ({noise_cv:.2f})",
    )),
    Finding("texture.aperiodic", "Natural and Consistent Image Texture",
            lambda m: m.strongest_period()[1] < PEAK_WEAK and _npr_dev(m) < NPR_OFF, (
        "sensor-like noise (sigma {noise_sigma:.1f}) with no upsampling grid in its spectrum (largest peak {peak:.2f}x)",
    )),
    Finding("edges.clean", "Smooth and Natural Image Edges",
            lambda m: _npr_dev(m) < NPR_OFF and m.edge_coherence >= COHERENCE_HIGH, (
        "edges run continuously (orientation coherence {coherence:.2f}) with no 2-pixel grid",
        "contours are clean and coherent ({coherence:.2f}); neighbouring-pixel differences show no grid (ratio {npr_ratio:.2f})",
    )),
    Finding("quality.crisp", "High Image Quality", lambda m: m.sharpness >= SHARP_HIGH, (
        "fine detail is well resolved (Laplacian variance {sharpness:.0f})",
        "the image is crisp, with a Laplacian variance of {sharpness:.0f}",
    )),
    Finding("lighting.coherent", "Consistent Lighting and Shadows",
            lambda m: m.clipped_high < CLIP_STRONG and _max_cast(m) < CAST_EXTREME, (
        "brightness changes smoothly ({light_change:+.0f} levels from {light_dir}) with {balance} and no blown highlights",
        "one coherent light: a gentle {light_dir} gradient ({light_change:+.0f}) and {balance}",
    )),
    Finding("texture.undecided_real", "Natural and Consistent Image Texture", lambda m: True, (
        "no single measurement is decisive here (strongest periodic peak {peak:.2f}x at period {period}, Laplacian variance {sharpness:.0f}); the verdict rests on learned image statistics",
    ), hedge=True),
)
_BY_ATTRIBUTE: dict[str, tuple[Finding, ...]] = {}
for _f in FINDINGS:
    _BY_ATTRIBUTE[_f.attribute] = (*_BY_ATTRIBUTE.get(_f.attribute, ()), _f)


def measure_view(image: Image.Image | np.ndarray) -> Measurements:
    """The measurements a reasoning states: of the whole image, or of its central MEASURE_SIDE square
    (never resampled) when it is larger, so a 6000 px photo costs what a 1024 px one does."""
    arr = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    h, w = arr.shape[:2]
    if max(h, w) > MEASURE_SIDE:
        y0, x0 = max(0, (h - MEASURE_SIDE) // 2), max(0, (w - MEASURE_SIDE) // 2)
        arr = arr[y0 : y0 + MEASURE_SIDE, x0 : x0 + MEASURE_SIDE]
    return measure(arr)


def render(template: str, m: Measurements) -> str:
    return template.format(**{name: SLOTS[name](m) for name in _fields(template)})


@cache
def _fields(template: str) -> tuple[str, ...]:
    return tuple(f for _, f, _, _ in Formatter().parse(template) if f)


@dataclass(frozen=True)
class Candidate:
    finding: Finding
    phrasing: int
    text: str


def candidates(m: Measurements, label: Label, all_wordings: bool = False) -> dict[str, list[Candidate]]:
    """Every finding the measurements support for a verdict of `label`, per attribute (canonical order),
    each in its canonical wording (its first phrasing), or in all of them with `all_wordings`. When none
    holds, the hedge alone (one attribute), so a reasoning always says something true."""
    def worded(f: Finding) -> list[Candidate]:
        chosen = f.phrasings if all_wordings else f.phrasings[:1]
        return [Candidate(f, k, render(t, m)) for k, t in enumerate(chosen)]

    out: dict[str, list[Candidate]] = {}
    for attribute in ATTRIBUTES_OF_LABEL[label]:
        cands = [c for f in _BY_ATTRIBUTE.get(attribute, ()) if not f.hedge and f.holds(m) for c in worded(f)]
        if cands:
            out[attribute] = cands
    if not out:
        hedge = next(f for f in FINDINGS if f.hedge and f.attribute in ATTRIBUTES_OF_LABEL[label])
        out[hedge.attribute] = worded(hedge)
    return out


def annotate(m: Measurements, label: Label, choose: Callable[[str, int], int] | None = None) -> dict[str, str | None]:
    """Reference attribute texts: per attribute the first finding (in priority order) that holds, in its
    canonical wording, or worded by `choose(attribute, n_phrasings)` when given; the other attributes of
    the label's kind are None."""
    out: dict[str, str | None] = dict.fromkeys(ATTRIBUTES_OF_LABEL[label])
    for attribute, cands in candidates(m, label, all_wordings=choose is not None).items():
        first = cands[0].finding
        wordings = [c for c in cands if c.finding is first]
        out[attribute] = wordings[choose(attribute, len(wordings)) if choose is not None else 0].text
    return out


# --- reading stated findings back ---------------------------------------------------------------------
_NUMBER = r"[-+]?\d+(?:\.\d+)?"


@cache
def _pattern(template: str) -> tuple[re.Pattern[str], tuple[tuple[str, str], ...]]:
    parts, slots = [], []
    for literal, name, spec, _ in Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            numeric = bool(spec) and spec[-1] in "fd"
            parts.append(f"(?P<{name}>{_NUMBER})" if numeric else f"(?P<{name}>.+?)")
            slots.append((name, spec or ""))
    return re.compile("^" + "".join(parts) + r"\.?$"), tuple(slots)


@dataclass
class Check:
    """What a stated finding is worth against the image's own measurements."""

    attribute: str
    finding: str | None  # template id, None when the text fits no known form (garbled)
    numbers: int = 0  # numeric values stated
    numbers_matching: int = 0  # of them, equal to the image's measurement within rounding
    words_matching: bool = True  # stated words derived from measurements (directions, channels) agree
    consistent: bool = False  # the finding's condition holds for the image


def _close(stated: str, value: float, spec: str) -> bool:
    try:
        s = float(stated)
    except ValueError:
        return False
    decimals = int(spec.split(".")[1][0]) if "." in spec else 0
    return abs(s - float(value)) <= 0.5 * 10 ** (-decimals) + 1e-9


def check_finding(attribute: str, text: str, m: Measurements) -> Check:
    """Which template `text` is (for `attribute`), and whether its numbers and condition fit `m`."""
    body = text.strip()
    for finding in _BY_ATTRIBUTE.get(attribute, ()):
        for template in finding.phrasings:
            pattern, slots = _pattern(template)
            match = pattern.match(body)
            if match is None:
                continue
            check = Check(attribute, finding.id)
            for name, spec in slots:
                value = SLOTS[name](m)
                if spec and spec[-1] in "fd":
                    check.numbers += 1
                    check.numbers_matching += _close(match.group(name), value, spec)
                elif match.group(name) != str(value):
                    check.words_matching = False
            holds = _nothing_else_holds(finding, m) if finding.hedge else finding.holds(m)
            check.consistent = holds and check.words_matching
            return check
    return Check(attribute, None)


def _nothing_else_holds(hedge: Finding, m: Measurements) -> bool:
    """A hedge ("no single measurement is decisive") is true when no finding of its kind holds."""
    kind = next(attrs for attrs in ATTRIBUTES_OF_LABEL.values() if hedge.attribute in attrs)
    return not any(f.holds(m) for f in FINDINGS if not f.hedge and f.attribute in kind)


def _known_attribute(sentence: str, label: Label | None) -> str | None:
    """The attribute whose finding templates `sentence` fits (any measurement values), or None; the
    attributes of `label`'s kind first (the hedge is worded alike for both kinds)."""
    body = sentence.strip()
    kind = ATTRIBUTES_OF_LABEL.get(label, ()) if label else ()  # type: ignore[call-overload]
    for finding in sorted(FINDINGS, key=lambda f: f.attribute not in kind):
        if any(_pattern(t)[0].match(body) for t in finding.phrasings):
            return finding.attribute
    return None


def finding_forms(section: str, label: Label | None = None) -> dict[str, str]:
    """{attribute: finding} for the sentences of a perspective's text that fit a known finding form: how
    `schema.parse_cot` maps findings of the release format (no attribute names in the text) back to their
    attributes. Findings end with a full stop followed by a space; numbers inside them never do."""
    out: dict[str, str] = {}
    for sentence in re.split(r"(?<=\.)\s+", section.strip()):
        attribute = _known_attribute(sentence, label) if sentence else None
        if attribute is not None and attribute not in out:
            out[attribute] = sentence.strip()
    return out


def parse_answer(text: Any) -> ParsedAnswer:
    """`schema.parse_cot` that also maps findings of known forms back to their attributes."""
    return parse_cot(text, forms=finding_forms)


def check_reasoning(attributes: Mapping[str, str], m: Measurements) -> list[Check]:
    return [check_finding(a, t, m) for a, t in attributes.items()]


def evidence_text(m: Measurements) -> str:
    """The measurements as the model reads them in its prompt (the <EVIDENCE> block)."""
    period, peak = m.strongest_period()
    return (f"strongest periodic peak {peak:.2f}x at period {period}; neighbouring-pixel ratio {m.npr_ratio:.2f}; "
            f"Laplacian variance {m.sharpness:.0f}; noise sigma {m.noise_level:.1f}, variation {m.noise_cv:.2f}; "
            f"edge coherence {m.edge_coherence:.2f}; colour cast {m.cast[0]:+.0f} / {m.cast[1]:+.0f}; "
            f"brightness change {m.light_dx:+.0f} left to right, {m.light_dy:+.0f} top to bottom")


def measured_values(m: Measurements) -> dict[str, float | int]:
    """The measured values a verdict reports next to its reasoning (Verdict v2 `measurements`)."""
    period, peak = m.strongest_period()
    return {
        "periodic_peak": round(peak, 3), "periodic_peak_period": int(period), "npr_ratio": round(m.npr_ratio, 4),
        "laplacian_variance": round(m.sharpness, 2), "noise_sigma": round(m.noise_level, 3),
        "noise_variation": round(m.noise_cv, 4), "edge_coherence": round(m.edge_coherence, 4),
        "colour_cast_red_green": round(m.cast[0], 2), "colour_cast_blue_yellow": round(m.cast[1], 2),
        "brightness_change_left_right": round(m.light_dx, 2), "brightness_change_top_bottom": round(m.light_dy, 2),
        "clipped_highlights": round(m.clipped_high, 4), "width": m.width, "height": m.height,
    }
