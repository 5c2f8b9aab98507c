"""Run a detector over the evaluation sets of an MMFR-layout dataset and write the report.

Data-parallel under `accelerate launch`: each process takes every N-th image, results are gathered and the
main process computes the metrics, so 1 and N processes give the same numbers.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fakereasoning.data.mmfr import ImageRecord, scan
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.evaluate.metrics import ReasoningScorer, compute_metrics
from fakereasoning.evaluate.perturb import Perturbation, compose
from fakereasoning.evaluate.report import write_report
from fakereasoning.fsio import staged_dir
from fakereasoning.imageio import load_image
from fakereasoning.progress import Progress
from fakereasoning.schema import parse_cot

OUTPUT_SIGNATURE = "metrics.json"  # every evaluation output set holds it


@dataclass
class EvalOptions:
    sets: Sequence[str] | None = None
    mode: str = "fast"
    max_per_class: int | None = None
    perturbations: Sequence[Perturbation] = ()
    batch_size: int = 16
    css_encoder: str = "minilm"
    max_new_tokens: int = 512  # decoding as released: temperature 0.2, 1 beam, up to 512 new tokens, seed 0
    seed: int = 0
    title: str = "Evaluation report"
    notes: list[str] = field(default_factory=list)


def select_records(root: str | os.PathLike[str], sets: Sequence[str] | None, max_per_class: int | None,
                   seed: int = 0) -> list[ImageRecord]:
    """The evaluation images to score, in a stable order; at most N per class per set (seeded sample)."""
    index = scan(root)
    available = sorted(index.evaluation_sets)
    if not available:
        raise FakeReasoningError(f"{root}: no evaluation sets (expected evaluation_sets/<set>/0_real|1_fake)")
    chosen = list(sets) if sets else available
    unknown = [s for s in chosen if s not in index.evaluation_sets]
    if unknown:
        raise FakeReasoningError(f"{root}: unknown evaluation set(s) {unknown}; available: {available}")
    out: list[ImageRecord] = []
    for name in chosen:
        for label in ("real", "fake"):
            recs = [r for r in index.evaluation_sets[name] if r.label == label]
            if max_per_class is not None and len(recs) > max_per_class:
                picked = set(random.Random(f"{seed}:{name}:{label}").sample(range(len(recs)), max_per_class))
                recs = [r for i, r in enumerate(recs) if i in picked]
            out.extend(recs)
    return out


def prediction_row(record: ImageRecord, verdict: Any, mode: str) -> dict[str, Any]:
    """The predictions.jsonl line: Verdict fields plus set, image, truth, reference, failed."""
    row = verdict.to_dict()
    parsed = parse_cot(verdict.raw_text) if mode == "full" else None
    row.update(
        {
            "set": record.set,
            "image": record.key,
            "truth": record.label,
            "reference": record.reference(),
            "failed": bool(parsed is not None and not parsed.ok),
            "reference_attributes": sorted(k for k, v in (record.attributes or {}).items() if v),
            "consistent": parsed.consistent if parsed is not None else None,
        }
    )
    row["attributes"] = dict(verdict.attributes)
    return row


def _load(record: ImageRecord, perturb: Callable[[Image.Image, str], Image.Image]) -> Image.Image:
    return perturb(load_image(record.path, name=record.key), record.key)


def run_predictions(model: Any, records: Sequence[ImageRecord], options: EvalOptions, rank: int = 0,
                    world: int = 1, progress: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Predict this process's shard; returns (rows with their global index in `_index`, errors)."""
    perturb = compose(list(options.perturbations))
    mine = list(range(rank, len(records), world))
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    bar = Progress(len(mine), f"evaluate ({options.mode})", "img", enabled=progress)
    for start in range(0, len(mine), options.batch_size):
        chunk = mine[start : start + options.batch_size]
        images, kept = [], []
        for i in chunk:
            try:
                images.append(_load(records[i], perturb))
                kept.append(i)
            except ImageLoadError as exc:
                errors.append(str(exc))
        if images:
            kwargs = {"max_new_tokens": options.max_new_tokens} if options.mode == "full" else {}
            verdicts = model.detect_many(images, mode=options.mode, batch_size=options.batch_size, **kwargs)
            for i, verdict in zip(kept, verdicts, strict=True):
                row = prediction_row(records[i], verdict, options.mode)
                row["_index"] = i
                rows.append(row)
        bar.update(len(chunk))
    bar.close()
    return rows, errors


def evaluate(model: Any, root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
             options: EvalOptions, progress: bool = False) -> dict[str, Any] | None:
    """Evaluate and write predictions.jsonl, metrics.json, metrics.csv, report.md and plots into OUT_DIR.

    Returns the metrics on the main process (None on the others). Every rank ends the process group
    after the main one has written the report (runtime.distributed_job).
    """
    from fakereasoning.runtime import distributed_job

    with distributed_job():
        return _evaluate(model, root, out_dir, options, progress)


def _evaluate(model: Any, root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
              options: EvalOptions, progress: bool) -> dict[str, Any] | None:
    from accelerate.utils import gather_object

    from fakereasoning.runtime import distributed_state

    state = distributed_state()
    if state.is_main_process:
        check_output_dir(out_dir)
    records = select_records(root, options.sets, options.max_per_class, options.seed)
    rows, errors = run_predictions(model, records, options, state.process_index, state.num_processes,
                                   progress and state.is_main_process)
    if state.num_processes > 1:
        rows = gather_object(rows)
        errors = gather_object(errors)
    if not state.is_main_process:
        return None
    rows = sorted(rows, key=lambda r: r["_index"])
    for r in rows:
        del r["_index"]
    for e in errors:
        print(f"fakereasoning: warning: skipped unreadable image: {e}", file=sys.stderr)
    if not rows:
        raise FakeReasoningError(f"{root}: no image could be evaluated")
    scorer = None
    if options.mode == "full":
        from fakereasoning.evaluate.encoders import load_encoder

        scorer = ReasoningScorer(load_encoder(options.css_encoder))
    metrics = compute_metrics(rows, options.mode, scorer)
    notes = list(options.notes)
    if options.perturbations:
        notes.append("Perturbations: " + ", ".join(p.name for p in options.perturbations))
    if errors:
        notes.append(f"Skipped {len(errors)} unreadable images.")
    with staged_dir(out_dir) as staged:  # the whole set or the old one: never new metrics beside an old report
        write_report(staged, rows, metrics, options.title, notes)
    return metrics


def check_output_dir(out_dir: str | os.PathLike[str]) -> None:
    """Refuse an OUT that evaluate must not replace whole: a file, or a folder holding something other
    than an earlier evaluation (one has metrics.json). Checked before any image is scored."""
    out = Path(out_dir)
    if not out.exists():
        return
    if not out.is_dir():
        raise FakeReasoningError(f"{out}: exists and is not a folder")
    if any(out.iterdir()) and not (out / OUTPUT_SIGNATURE).is_file():
        raise FakeReasoningError(f"{out}: a non-empty folder that holds no earlier evaluation ({OUTPUT_SIGNATURE}); "
                                 "evaluate replaces its output folder whole, so pass a new or empty one")
