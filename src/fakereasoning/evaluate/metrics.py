"""Detection and reasoning metrics of the evaluation protocol (spec section 6), per set and averaged.

A prediction row is a dict with at least: `set`, `truth` ("real"/"fake"), `prob_fake`, `failed` (bool),
and for reasoning metrics `reasoning` (the <REASONING> text), `reference` (the reference reasoning),
`attributes` (the answer's attribute name -> text, or just the names it used), `reference_attributes` and `consistent` (bool or None).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fakereasoning.models.cpm import expected_calibration_error
from fakereasoning.schema import reference_text

DETECTION_KEYS = ("n", "n_real", "n_fake", "real_acc", "fake_acc", "acc", "bal_acc", "acc_cal", "bal_acc_cal",
                  "ap", "auc", "ece", "failure_rate")
COUNT_KEYS = ("n", "n_real", "n_fake")  # summed, not averaged, in the mean rows
REASONING_KEYS = ("bleu1", "rouge_l", "css", "rouge_l_correct", "css_correct", "findings_rouge_l", "findings_css",
                  "consistency", "attr_f1", "numbers_matching", "findings_consistent", "findings_garbled",
                  "caption_rate")
METRIC_KEYS = DETECTION_KEYS + REASONING_KEYS
ECE_BINS = 15


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def labels_and_probs(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(y: 1 = fake, p(fake)) over the non-failed rows: what every detection metric is computed on."""
    ok = [r for r in rows if not r.get("failed")]
    y = np.array([1 if r["truth"] == "fake" else 0 for r in ok], dtype=np.int64)
    p = np.array([float(r["prob_fake"]) for r in ok], dtype=np.float64)
    return y, p


def detection_metrics(rows: Sequence[Mapping[str, Any]], threshold: float | None = None
                      ) -> dict[str, float | int | None]:
    """Detection metrics of one set; `acc_cal` / `bal_acc_cal` at THRESHOLD (None when not given)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from fakereasoning.evaluate.stats import balanced_accuracy

    n = len(rows)
    y, p = labels_and_probs(rows)
    pred = (p >= 0.5).astype(np.int64)
    both = y.size > 0 and 0 < y.sum() < y.size
    cal = threshold is not None and y.size > 0
    return {
        "n": n,
        "n_real": int(sum(r["truth"] == "real" for r in rows)),
        "n_fake": int(sum(r["truth"] == "fake" for r in rows)),
        "real_acc": float((pred[y == 0] == 0).mean()) if (y == 0).any() else None,
        "fake_acc": float((pred[y == 1] == 1).mean()) if (y == 1).any() else None,
        "acc": float((pred == y).mean()) if y.size else None,
        "bal_acc": balanced_accuracy(y, p),
        "acc_cal": float(((p >= threshold).astype(np.int64) == y).mean()) if cal else None,
        "bal_acc_cal": balanced_accuracy(y, p, threshold) if cal else None,
        "ap": float(average_precision_score(y, p)) if both else None,
        "auc": float(roc_auc_score(y, p)) if both else None,
        "ece": expected_calibration_error(p, y, bins=ECE_BINS) if y.size else None,
        "failure_rate": (n - int(y.size)) / n if n else None,
    }


def attribute_f1(used: Iterable[str], reference: Iterable[str]) -> float:
    """F1 between the attribute names an answer uses and the reference's non-null ones (1.0 if both empty)."""
    a, b = set(used), set(reference)
    if not a and not b:
        return 1.0
    tp = len(a & b)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(a), tp / len(b)
    return 2 * precision * recall / (precision + recall)


class ReasoningScorer:
    """BLEU-1 (nltk), ROUGE-L F (rouge-score, stemming) and CSS (sentence-embedding cosine)."""

    def __init__(self, encoder: Any | None = None) -> None:
        from rouge_score import rouge_scorer

        self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        self.encoder = encoder

    @staticmethod
    def bleu1(hypothesis: str, reference: str) -> float:
        from nltk.translate.bleu_score import sentence_bleu

        hyp, ref = hypothesis.split(), reference.split()
        if not hyp or not ref:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(sentence_bleu([ref], hyp, weights=(1, 0, 0, 0)))

    def rouge_l(self, hypothesis: str, reference: str) -> float:
        return float(self._rouge.score(reference, hypothesis)["rougeL"].fmeasure)

    def css(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
        if self.encoder is None or not hypotheses:
            return []
        h = self.encoder.encode(list(hypotheses))
        r = self.encoder.encode(list(references))
        return [float(x) for x in (h * r).sum(axis=1)]

    def score(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
        """Reasoning metrics over non-failed rows that have a reference.

        bleu1 / rouge_l / css are the protocol's: the whole <REASONING> text (with its "From low-level
        perspective" frame, attribute names and "Therefore" sentence) against the attribute texts joined.
        `*_correct` are the same over the images whose verdict is right, so reasoning quality is not read
        through detection errors (a wrong verdict states the other kind's attributes). `findings_*` compare
        like with like: the answer's own attribute texts joined as the reference is (sorted attribute
        names), so the frame, which no reference has, costs nothing.
        """
        ok = [r for r in rows if not r.get("failed")]
        scored = [r for r in ok if r.get("reference")]
        hyps = [r.get("reasoning") or "" for r in scored]
        refs = [r["reference"] for r in scored]
        texts = [r.get("attributes") for r in scored]  # name -> text (predictions.jsonl); a bare name list has none
        stated = [reference_text(a) for a in texts if isinstance(a, Mapping)]
        stated_refs = [ref for a, ref in zip(texts, refs, strict=True) if isinstance(a, Mapping)]
        right = [r.get("label") == r.get("truth") for r in scored]
        with_reasoning = [r for r in ok if r.get("reasoning")]
        rouge = [self.rouge_l(h, ref) for h, ref in zip(hyps, refs, strict=True)]
        css = self.css(hyps, refs)
        findings_css = self.css(stated, stated_refs)
        return {
            "bleu1": _mean(self.bleu1(h, ref) for h, ref in zip(hyps, refs, strict=True)),
            "rouge_l": _mean(rouge),
            "css": _mean(css) if css else None,
            "rouge_l_correct": _mean(v for v, ok_ in zip(rouge, right, strict=True) if ok_),
            "css_correct": _mean(v for v, ok_ in zip(css, right, strict=True) if ok_) if css else None,
            "findings_rouge_l": _mean(self.rouge_l(h, ref) for h, ref in zip(stated, stated_refs, strict=True)),
            "findings_css": _mean(findings_css) if findings_css else None,
            "consistency": _mean(1.0 if r.get("consistent") else 0.0 for r in with_reasoning),
            "attr_f1": _mean(
                attribute_f1(r.get("attributes") or [], r.get("reference_attributes") or []) for r in scored
            ),
            **faithfulness_metrics([r["faithfulness"] for r in ok if r.get("faithfulness")]),
        }


def faithfulness_metrics(checks: Sequence[Mapping[str, int]]) -> dict[str, float | None]:
    """Shares over all stated findings of a set: numbers equal to the image's measurement (within rounding),
    findings whose condition holds for the image, findings that fit no known form; and the share of
    answers with a caption."""
    def share(part: str, whole: str) -> float | None:
        total = sum(c[whole] for c in checks)
        return sum(c[part] for c in checks) / total if total else None

    return {
        "numbers_matching": share("numbers_matching", "numbers"),
        "findings_consistent": share("consistent", "findings"),
        "findings_garbled": share("garbled", "findings"),
        "caption_rate": _mean(float(c["caption"]) for c in checks) if checks else None,
    }


def mean_row(sets: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> dict[str, Any]:
    """The unweighted mean over the sets NAMES of every metric; image counts are summed (integers)."""
    chosen = [sets[n] for n in names if n in sets]
    row: dict[str, Any] = {k: _mean(s[k] for s in chosen) for k in METRIC_KEYS}
    row.update({k: int(sum(s[k] or 0 for s in chosen)) for k in COUNT_KEYS})
    return row


def compute_metrics(
    rows: Sequence[Mapping[str, Any]], mode: str, scorer: ReasoningScorer | None = None,
    threshold: float | None = None, groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """`{"mode", "sets": {set: metrics}, "mean": metrics[, "groups": {name: metrics}]}`; reasoning metrics
    are None in fast mode. GROUPS (e.g. seen / unseen sets) get mean rows of their own."""
    by_set: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_set.setdefault(str(r["set"]), []).append(r)
    sets: dict[str, dict[str, Any]] = {}
    for name in sorted(by_set):
        m: dict[str, Any] = dict(detection_metrics(by_set[name], threshold))
        if mode == "full" and scorer is not None:
            m.update(scorer.score(by_set[name]))
        else:
            m.update({k: None for k in REASONING_KEYS})
        sets[name] = m
    out: dict[str, Any] = {"mode": mode, "sets": sets, "mean": mean_row(sets, sets)}
    if groups:
        out["groups"] = {g: {"sets": [n for n in names if n in sets], **mean_row(sets, names)}
                         for g, names in groups.items()}
    return out
