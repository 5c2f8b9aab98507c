"""Run a detector over the evaluation sets of a dataset (any layout of `data.layouts`) and write the report.

Data-parallel under `accelerate launch`: each process takes every N-th image, results are gathered and the
main process computes the metrics, so 1 and N processes give the same numbers. An image that several sets
share (Synthbuster's real photos) is scored once.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fakereasoning.data.account import (
    DEFAULT_ALLOWED_SKIPPED,
    DataAccount,
    charge_problems,
    evaluation_problems,
    is_reasoning_problem,
    skip_undecodable,
)
from fakereasoning.data.layouts import Dataset, load_dataset
from fakereasoning.data.mmfr import EVAL_DIR, ImageRecord
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.evaluate.metrics import ReasoningScorer, compute_metrics, labels_and_probs
from fakereasoning.evaluate.perturb import Perturbation, compose
from fakereasoning.evaluate.report import write_report
from fakereasoning.fsio import recover_staged, staged_dir
from fakereasoning.imageio import load_image
from fakereasoning.progress import Progress
from fakereasoning.schema import parse_cot

OUTPUT_SIGNATURE = "metrics.json"  # every evaluation output set holds it
SPLIT_CALIBRATION_CAP = 1000  # images per class scored for `--calibrate split:train` without --max-per-class


@dataclass
class EvalOptions:
    sets: Sequence[str] | None = None
    mode: str = "fast"
    max_per_class: int | None = None
    perturbations: Sequence[Perturbation] = ()
    batch_size: int = 16
    css_encoder: str = "minilm"
    max_new_tokens: int = 512  # full mode decodes greedily (grounded findings; see FakeReasoning._generate_full)
    seed: int = 0
    title: str = "Evaluation report"
    notes: list[str] = field(default_factory=list)
    layout: str | None = None  # None: detect
    allow_absolute_paths: bool = False  # list layout: accept absolute paths
    calibrate: str | None = None  # SET, set:SET, split:train or split:eval: where the second threshold comes from
    bootstrap: int = 1000  # resamples per interval (0: no intervals)
    allow_skipped: float = DEFAULT_ALLOWED_SKIPPED  # refuse when a larger share of the images would be skipped
    model_dir: str | None = None  # for the run block: weights digest and training summary
    command: str = "evaluate"
    cli_options: Mapping[str, Any] | None = None  # every CLI option, for the run block


def pick_records(dataset: Dataset, sets: Sequence[str] | None, max_per_class: int | None,
                 seed: int = 0) -> list[ImageRecord]:
    """The evaluation images to score, in a stable order; at most N per class per set (seeded sample)."""
    index, root = dataset.index, dataset.root
    available = sorted(index.evaluation_sets)
    if not available:
        if dataset.layout == "mmfr":
            why = next((f"{root / p.path}: {p.message}" for p in evaluation_problems(index)), None)
            raise FakeReasoningError(f"{root}: no evaluation sets: {why}" if why else
                                     f"{root}: no evaluation sets (expected {EVAL_DIR}/<set>/0_real|1_fake)")
        raise FakeReasoningError(f"{root}: no evaluation images in this {dataset.layout} layout"
                                 + (" (GenImage: expected <gen>/val/{ai,nature})" if dataset.layout == "genimage" else ""))
    chosen = list(sets) if sets else available
    unknown = [s for s in chosen if s not in index.evaluation_sets]
    if unknown:
        raise FakeReasoningError(f"{root}: unknown evaluation set(s) {unknown}; available: {available}")
    out: list[ImageRecord] = []
    for name in chosen:
        out.extend(_sample(index.evaluation_sets[name], name, max_per_class, seed))
    return out


def _sample(records: Sequence[ImageRecord], name: str, max_per_class: int | None, seed: int) -> list[ImageRecord]:
    out: list[ImageRecord] = []
    for label in ("real", "fake"):
        recs = [r for r in records if r.label == label]
        if max_per_class is not None and len(recs) > max_per_class:
            picked = set(random.Random(f"{seed}:{name}:{label}").sample(range(len(recs)), max_per_class))
            recs = [r for i, r in enumerate(recs) if i in picked]
        out.extend(recs)
    return out


def select_records(root: str | os.PathLike[str], sets: Sequence[str] | None, max_per_class: int | None,
                   seed: int = 0, layout: str | None = None, allow_absolute: bool = False) -> list[ImageRecord]:
    """`pick_records` of the dataset at ROOT."""
    return pick_records(load_dataset(root, layout, allow_absolute), sets, max_per_class, seed)


def record_fields(record: ImageRecord) -> dict[str, Any]:
    """What a predictions.jsonl line says about the image itself (not the verdict)."""
    return {
        "set": record.set,
        "image": record.key,
        "truth": record.label,
        "reference": record.reference(),
        "reference_attributes": sorted(k for k, v in (record.attributes or {}).items() if v),
    }


def prediction_row(record: ImageRecord, verdict: Any, mode: str) -> dict[str, Any]:
    """The predictions.jsonl line: Verdict fields plus set, image, truth, reference, failed."""
    row = verdict.to_dict()
    parsed = parse_cot(verdict.raw_text) if mode == "full" else None
    row.update(record_fields(record))
    row["failed"] = bool(parsed is not None and not parsed.ok)
    row["consistent"] = parsed.consistent if parsed is not None else None
    row["attributes"] = dict(verdict.attributes)
    return row


def faithfulness(verdict: Any, image: Image.Image) -> dict[str, int]:
    """How the verdict's findings fare against the image's own measurements, measured here, independently
    of the model: numbers stated and matching, findings consistent with their measurement, findings that
    fit no known form (garbled), and whether a caption is present."""
    from fakereasoning.evidence.findings import check_reasoning, measure_view

    checks = check_reasoning(verdict.attributes or {}, measure_view(image))
    return {
        "findings": len(checks),
        "numbers": sum(c.numbers for c in checks),
        "numbers_matching": sum(c.numbers_matching for c in checks),
        "consistent": sum(c.consistent for c in checks),
        "garbled": sum(c.finding is None for c in checks),
        "caption": int(bool((verdict.caption or "").strip())),
    }


def _load(record: ImageRecord, perturb: Callable[[Image.Image, str], Image.Image]) -> Image.Image:
    return perturb(load_image(record.path, name=record.key), record.key)


def _unique_images(records: Sequence[ImageRecord]) -> list[int]:
    """Index of the first record of each distinct image file (sets may share images)."""
    first: dict[tuple[str, str], int] = {}
    for i, r in enumerate(records):
        first.setdefault((str(r.path), r.key), i)
    return sorted(first.values())


def run_predictions(model: Any, records: Sequence[ImageRecord], options: EvalOptions, rank: int = 0,
                    world: int = 1, progress: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Predict this process's shard of the distinct images; returns (rows with the global index of their
    record in `_index`, errors). `expand_rows` gives every record its row."""
    perturb = compose(list(options.perturbations))
    unique = _unique_images(records)
    mine = unique[rank::world]
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
            for i, image, verdict in zip(kept, images, verdicts, strict=True):
                row = prediction_row(records[i], verdict, options.mode)
                if options.mode == "full":
                    row["faithfulness"] = faithfulness(verdict, image)
                row["_index"] = i
                rows.append(row)
        bar.update(len(chunk))
    bar.close()
    return rows, errors


def expand_rows(records: Sequence[ImageRecord], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per record, in record order: a shared image's verdict copied with each record's fields."""
    by_image = {(str(records[r["_index"]].path), records[r["_index"]].key): r for r in rows}
    out = []
    for i, record in enumerate(records):
        row = by_image.get((str(record.path), record.key))
        if row is not None:
            out.append({**{k: v for k, v in row.items() if k != "_index"}, **record_fields(record), "_index": i})
    return out


def parse_calibration(spec: str) -> tuple[str, str]:
    """`SET` or `set:SET` -> ("set", SET); `split:train` / `split:eval` -> ("split", NAME)."""
    kind, sep, name = spec.partition(":")
    if not sep:
        kind, name = "set", spec
    if kind not in ("set", "split") or not name.strip():
        raise FakeReasoningError(f"--calibrate {spec!r}: use SET, set:SET, split:train or split:eval")
    if kind == "split" and name not in ("train", "eval"):
        raise FakeReasoningError(f"--calibrate {spec!r}: the splits are train and eval")
    return kind, name.strip()


def calibration_records(dataset: Dataset, spec: str | None, chosen: Sequence[str], max_per_class: int | None,
                        seed: int) -> tuple[list[ImageRecord], str | None]:
    """(extra records to score for the threshold, a description); none when the calibration images are
    among the evaluated ones (an evaluated set, or split:eval)."""
    if spec is None:
        return [], None
    kind, name = parse_calibration(spec)
    if kind == "split" and name == "eval":
        return [], "split eval (every evaluated image: in-sample)"
    if kind == "split":
        train = dataset.index.train
        if not train:
            raise FakeReasoningError(f"{dataset.root}: --calibrate split:train, but this {dataset.layout} dataset "
                                     "has no training split")
        cap = max_per_class or SPLIT_CALIBRATION_CAP
        return _sample(train, "split:train", cap, seed), f"split train (up to {cap} images per class, seed {seed})"
    if name in chosen:
        return [], f"set {name} (also evaluated: its calibrated accuracy is in-sample)"
    if name not in dataset.index.evaluation_sets:
        raise FakeReasoningError(f"--calibrate {spec!r}: no evaluation set {name!r}; available: "
                                 f"{sorted(dataset.index.evaluation_sets)}")
    return _sample(dataset.index.evaluation_sets[name], name, max_per_class, seed), f"set {name} (not evaluated)"


def account_for(dataset: Dataset, records: Sequence[ImageRecord], cal_records: Sequence[ImageRecord],
                options: EvalOptions, progress: bool = False) -> tuple[DataAccount, set[str]]:
    """The account of what will be scored (`data.account`) and the keys of the images it skips: those that
    `data validate` reports errors for (unknown label, broken link; in full mode also a reasoning JSON that
    cannot be read, since the references are scored) and those that do not decode."""
    account = DataAccount("evaluation", str(dataset.root), allowed=options.allow_skipped)
    everything = [*records, *cal_records]
    dropped: set[str] = set()
    if dataset.layout == "mmfr":
        sets = None if options.sets is None else [*options.sets, *{r.set for r in cal_records}]
        problems = evaluation_problems(dataset.index, sets)
        if options.mode != "full":
            account.notes += [f"{p.path}: {p.message} (references are not scored in {options.mode} mode)"
                              for p in problems if is_reasoning_problem(p)]
            problems = [p for p in problems if not is_reasoning_problem(p)]
        dropped = charge_problems(dataset.index, problems, everything, account, "eval")
    dropped |= skip_undecodable([r for r in everything if r.key not in dropped], account, progress)
    for r in everything:
        if r.key not in dropped:
            account.use(r)
    return account, dropped


def choose_calibrated_threshold(spec: str | None, source: str | None, eval_rows: Sequence[Mapping[str, Any]],
                                cal_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The threshold block of metrics.json: value, where it came from, on how many images."""
    from fakereasoning.evaluate.stats import choose_threshold

    if spec is None:
        return None
    kind, name = parse_calibration(spec)
    if kind == "set" and not cal_rows:
        cal_rows = [r for r in eval_rows if r["set"] == name]
    elif kind == "split" and name == "eval":
        cal_rows = eval_rows
    y, p = labels_and_probs(cal_rows)
    try:
        value = choose_threshold(y, p)
    except ValueError:
        raise FakeReasoningError(f"--calibrate {spec}: the calibration images need both classes (got "
                                 f"{int((y == 0).sum())} real, {int((y == 1).sum())} fake)") from None
    return {"value": value, "source": source, "spec": spec, "n_real": int((y == 0).sum()),
            "n_fake": int((y == 1).sum()), "rule": "maximum balanced accuracy on the calibration images "
            "(midpoints between their probabilities; ties: nearest 0.5)"}


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

    from fakereasoning.evaluate import provenance, stats
    from fakereasoning.runtime import distributed_state

    state = distributed_state()
    if state.is_main_process:
        check_output_dir(out_dir)
    dataset = load_dataset(root, options.layout, options.allow_absolute_paths)
    if state.is_main_process:
        print(f"fakereasoning: data: {dataset.describe()}", file=sys.stderr)
    records = pick_records(dataset, options.sets, options.max_per_class, options.seed)
    chosen = list(options.sets) if options.sets else sorted(dataset.index.evaluation_sets)
    cal_records, cal_source = calibration_records(dataset, options.calibrate, chosen, options.max_per_class,
                                                  options.seed)
    account, dropped = account_for(dataset, records, cal_records, options, progress and state.is_main_process)
    records = [r for r in records if r.key not in dropped]
    cal_records = [r for r in cal_records if r.key not in dropped]
    if state.is_main_process:
        account.print()
    account.check("evaluate")
    everything = [*records, *cal_records]
    rows, errors = run_predictions(model, everything, options, state.process_index, state.num_processes,
                                   progress and state.is_main_process)
    if state.num_processes > 1:
        rows = gather_object(rows)
        errors = gather_object(errors)
    if not state.is_main_process:
        return None
    expanded = expand_rows(everything, rows)
    eval_rows = [r for r in expanded if r["_index"] < len(records)]
    cal_rows = [r for r in expanded if r["_index"] >= len(records)]
    for r in expanded:
        del r["_index"]
    for e in errors:  # an image that decoded in the check above and not now (changed during the run)
        print(f"fakereasoning: skipped: {e}", file=sys.stderr)
        account.skip(e.split(": ", 1)[0], e, "unreadable while scoring")
    account.check("evaluate")
    if not eval_rows:
        raise FakeReasoningError(f"{root}: no image could be evaluated")
    scorer = None
    if options.mode == "full":
        from fakereasoning.evaluate.encoders import load_encoder

        scorer = ReasoningScorer(load_encoder(options.css_encoder))
    threshold = choose_calibrated_threshold(options.calibrate, cal_source, eval_rows, cal_rows)
    evaluated = sorted({str(r["set"]) for r in eval_rows})
    in_training = provenance.seen_unseen(evaluated, dataset.in_training, dataset.in_training_source,
                                         options.model_dir)
    groups = {g: in_training[g] for g in ("seen", "unseen") if in_training and in_training[g]}
    t = threshold["value"] if threshold else None
    metrics = compute_metrics(eval_rows, options.mode, scorer, threshold=t, groups=groups)
    by_set: dict[str, Any] = {name: labels_and_probs([r for r in eval_rows if r["set"] == name]) for name in evaluated}
    intervals = (stats.bootstrap_intervals(by_set, {"mean": evaluated, **groups}, t, options.bootstrap, options.seed)
                 if options.bootstrap > 0 else None)
    warnings = stats.small_sample_warnings({n: (m["n_real"], m["n_fake"]) for n, m in metrics["sets"].items()})
    cli = options.cli_options if options.cli_options is not None else _options_dict(options)
    run = provenance.run_block(
        command=options.command, model=model, model_dir=options.model_dir, data_root=dataset.root,
        layout=dataset.layout, layout_detected=dataset.detected, sets=evaluated, images=len(eval_rows),
        options=cli, css_encoder=options.css_encoder, seed=options.seed, in_training=in_training)
    metrics = {"mode": metrics["mode"], "run": run, "threshold": threshold, **{k: v for k, v in metrics.items()
               if k != "mode"}, "intervals": intervals, "warnings": warnings, "data": account.to_dict()}
    notes = list(options.notes)
    if options.perturbations:
        notes.append("Perturbations: " + ", ".join(p.name for p in options.perturbations))
    if account.skips:
        notes.append(f"Skipped {len(account.skips)} of {account.found} images or files of the data, each named "
                     "with its reason in metrics.json (`data`).")
    with staged_dir(out_dir) as staged:  # the whole set or the old one: never new metrics beside an old report
        write_report(staged, eval_rows, metrics, options.title, notes)
    return metrics


def check_output_dir(out_dir: str | os.PathLike[str]) -> None:
    """Refuse an OUT that evaluate must not replace whole: a file, or a folder holding something other
    than an earlier evaluation (one has metrics.json). Checked before any image is scored, after the
    debris of a run killed during its output swap is cleaned up (the old or the new result put in place)."""
    out = Path(out_dir)
    for note in recover_staged(out):
        print(f"fakereasoning: note: {note}", file=sys.stderr)
    if not out.exists():
        return
    if not out.is_dir():
        raise FakeReasoningError(f"{out}: exists and is not a folder")
    if any(out.iterdir()) and not (out / OUTPUT_SIGNATURE).is_file():
        raise FakeReasoningError(f"{out}: a non-empty folder that holds no earlier evaluation ({OUTPUT_SIGNATURE}); "
                                 "evaluate replaces its output folder whole, so pass a new or empty one")


def _options_dict(options: EvalOptions) -> dict[str, Any]:
    """The options of an API call (no CLI), for the run block."""
    skip = {"notes", "title", "cli_options", "command"}
    return {k: getattr(options, k) for k in options.__dataclass_fields__ if k not in skip}
