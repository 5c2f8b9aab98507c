"""Summaries and the Markdown report of the convergence bench (`bench/run.py`).

Reads what `fakereasoning evaluate` / `baseline evaluate` wrote (metrics.json, predictions.jsonl) and turns
it into the bench's per-entry numbers: per evaluation set and view the balanced accuracy and AUC with their
95% bootstrap intervals (taken from metrics.json), accuracy and ECE, and the mean over the held-out sets
with an interval of its own (the same seeded bootstrap as `evaluate`, `evaluate.stats.bootstrap_intervals`,
over the held-out sets only: the calibration set is reported apart and never enters the mean).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fakereasoning.evaluate import metrics

SET_KEYS = ("bal_acc", "auc", "acc", "ece", "ap", "real_acc", "fake_acc", "bal_acc_cal", "n_real", "n_fake")
CI_KEYS = ("bal_acc", "auc", "acc", "bal_acc_cal")
REASONING_KEYS = (*metrics.REASONING_KEYS, "failure_rate")


def read_rows(pred_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in pred_path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarise_eval(out: Path, heldout: Sequence[str], calibration: Sequence[str], resamples: int, seed: int
                   ) -> dict[str, Any]:
    """One evaluation folder -> {"sets": {set: metrics + intervals}, "heldout_mean": ..., "calibration": ...}."""
    from fakereasoning.evaluate.metrics import labels_and_probs
    from fakereasoning.evaluate.stats import bootstrap_intervals

    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    intervals = (m.get("intervals") or {}).get("sets") or {}
    threshold = m.get("threshold") or None
    sets: dict[str, Any] = {}
    for name, s in m["sets"].items():
        entry = {k: s.get(k) for k in SET_KEYS}
        for k in CI_KEYS:
            entry[f"{k}_ci"] = (intervals.get(name) or {}).get(k)
        sets[name] = entry
    present = [s for s in heldout if s in sets]
    rows = read_rows(out / "predictions.jsonl")
    by_set = {name: labels_and_probs([r for r in rows if r["set"] == name]) for name in present}
    t = threshold["value"] if threshold else None
    mean: dict[str, Any] = {"sets": present}
    for k in ("bal_acc", "auc", "acc", "ece", "bal_acc_cal"):
        mean[k] = _mean([sets[s][k] for s in present])
    if present and resamples > 0:
        iv = bootstrap_intervals(by_set, {"heldout": present}, t, resamples, seed)["heldout"]
        for k in CI_KEYS:
            mean[f"{k}_ci"] = iv.get(k)
    mean["n_real"] = sum(int(sets[s]["n_real"] or 0) for s in present)
    mean["n_fake"] = sum(int(sets[s]["n_fake"] or 0) for s in present)
    summary = {
        "sets": sets,
        "heldout_mean": mean,
        "calibration": {s: sets[s] for s in calibration if s in sets},
        "threshold": ({"value": threshold["value"], "source": threshold.get("source")} if threshold else None),
        "warnings": m.get("warnings") or [],
        "metrics": str(out / "metrics.json"),
    }
    if m.get("mode") == "full":
        summary["reasoning"] = {k: (m.get("mean") or {}).get(k) for k in REASONING_KEYS
                                if (m.get("mean") or {}).get(k) is not None}
    return summary


def throughput(pred_path: Path) -> float | None:
    """Images per second of model time (decoding excluded), from predictions.jsonl's elapsed_ms."""
    rows = read_rows(pred_path)
    total_ms = sum(r.get("elapsed_ms") or 0.0 for r in rows)
    return round(len(rows) / (total_ms / 1000.0), 2) if total_ms else None


def prob_difference(a: Path, b: Path) -> dict[str, Any]:
    """Largest |p_a - p_b| over the images both prediction files hold, and how many verdicts differ."""
    pa = {(r["set"], r["image"]): r for r in read_rows(a)}
    pb = {(r["set"], r["image"]): r for r in read_rows(b)}
    common = sorted(set(pa) & set(pb))
    diffs = [abs(float(pa[k]["prob_fake"]) - float(pb[k]["prob_fake"])) for k in common]
    flips = sum(pa[k]["label"] != pb[k]["label"] for k in common)
    return {"images": len(common), "max_abs_diff": max(diffs) if diffs else None, "verdicts_differing": flips}


# --- Markdown ----------------------------------------------------------------------------------------------
def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ci(value: float | None, interval: Sequence[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.3f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def view_table(results: Mapping[str, Any], dataset: str, view: str) -> list[str]:
    rows = results["rows"]
    heldout, calibration = results["datasets"][dataset]["heldout"], results["datasets"][dataset]["calibration"]
    mean = "held-out mean" if dataset == "public" else "mean"
    lines = [
        f"| entry | {mean} bal. acc [95% CI] | {mean} AUC [95% CI] | acc | ECE "
        f"| bal. acc at {'/'.join(calibration) or 'calibrated'} threshold | train time | steps | epochs "
        "| img/s | peak RSS MB (train / eval) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        e = (row.get("eval") or {}).get(dataset, {}).get(view)
        train = row.get("train") or {}
        if not e:
            reason = (row.get("missing") or {}).get(f"{dataset}:{view}", "not evaluated")
            lines.append(f"| {name} | {reason} | | | | | | | | | |")
            continue
        h = e["heldout_mean"]
        rss = f"{_f(train.get('peak_rss_mb'), 0)} / {_f(row.get('eval_peak_rss_mb'), 0)}"
        lines.append(
            f"| {name} | {_ci(h.get('bal_acc'), h.get('bal_acc_ci'))} | {_ci(h.get('auc'), h.get('auc_ci'))} "
            f"| {_f(h.get('acc'))} | {_f(h.get('ece'))} | {_f(h.get('bal_acc_cal'))} "
            f"| {_duration(train.get('seconds'))} | {_f(train.get('steps'))} | {_f(train.get('epochs'), 2)} "
            f"| {_f(row.get('images_per_s'), 1)} | {rss} |")
    sets = [*heldout, *calibration]
    lines += ["", "Per set: balanced accuracy [95% CI] / AUC [95% CI]"
              + (f" ({', '.join(calibration)}: calibration set, not in the held-out mean)" if calibration else ""),
              "", "| entry | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for name, row in rows.items():
        e = (row.get("eval") or {}).get(dataset, {}).get(view)
        if not e:
            continue
        cells = []
        for s in sets:
            m = e["sets"].get(s)
            cells.append("–" if m is None else f"{_ci(m['bal_acc'], m.get('bal_acc_ci'))} / "
                         f"{_ci(m['auc'], m.get('auc_ci'))}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def target_check(results: Mapping[str, Any], dataset: str, view: str) -> str:
    """The issue's target, stated from the numbers: FakeReasoning (fast or full) ahead of every baseline on
    the held-out mean balanced accuracy?"""
    def score(name: str) -> tuple[float | None, Sequence[float] | None]:
        e = (results["rows"][name].get("eval") or {}).get(dataset, {}).get(view)
        if not e:
            return None, None
        return e["heldout_mean"].get("bal_acc"), e["heldout_mean"].get("bal_acc_ci")

    fr = [(n, *score(n)) for n in ("fakereasoning-full", "fakereasoning-fast") if n in results["rows"]]
    base = [(n, *score(n)) for n, r in results["rows"].items() if r["family"] == "baseline"]
    fr = [x for x in fr if x[1] is not None]
    base = [x for x in base if x[1] is not None]
    if not fr or not base:
        return f"Target check ({view}): not enough entries evaluated in this view."
    best_fr = max(fr, key=lambda x: x[1])
    best_b = max(base, key=lambda x: x[1])
    d = best_fr[1] - best_b[1]
    overlap = bool(best_fr[2] and best_b[2] and best_fr[2][0] <= best_b[2][1] and best_b[2][0] <= best_fr[2][1])
    verdict = "ahead of" if d > 0 else ("level with" if d == 0 else "behind")
    return (f"Target check ({view}): {best_fr[0]} ({best_fr[1]:.3f}) is {verdict} the best baseline "
            f"{best_b[0]} ({best_b[1]:.3f}) on the held-out mean balanced accuracy by {abs(d):.3f}; their 95% "
            f"intervals {'overlap, so the order is not established at this sample size' if overlap else 'do not overlap'}.")


def markdown(r: Mapping[str, Any], notes: str | None = None) -> str:
    b = r["recipe"]
    lines = [
        "# Benchmark at convergence" + (" (--quick smoke run: not a result)" if b["quick"] else ""),
        "",
        f"- Command: `{r['command']}`",
        f"- Date: {r['date']}; commit {r['commit']}{' (with uncommitted changes under src/ or configs/)' if r.get('dirty') else ''}; "
        f"package {r.get('version')}",
        f"- Machine: {r['machine']}; {b['threads'] or 'default'} torch thread(s) per job, {b['jobs']} job(s) at "
        f"once; load average {r['load_average']['start']} at start, {r['load_average']['end']} at end",
        f"- Training data: `{r['datasets']['public']['root']}` (fingerprint {r['datasets']['public']['fingerprint'][:12]}, "
        f"{r['datasets']['public'].get('train_images', '?')} training images); every entry trains "
        + (f"{b['max_steps']} optimizer steps (--quick)" if b["max_steps"] else f"{_f(b['epochs'], 2)} epochs")
        + f" of batch {b['batch_size']}, each with its own recipe (below)",
        f"- Held-out generator sets: {', '.join(r['datasets']['public']['heldout'])}; calibration set (reported apart, "
        f"not in the mean): {', '.join(r['datasets']['public']['calibration']) or 'none'}",
        f"- Views: native pixels, and every image (real and fake alike) re-encoded as JPEG quality 95 "
        f"(`--perturb jpeg:95`); evaluation images per class per set: {b['max_per_class'] or 'all'}"
        + (f" (full mode: {b['full_per_class']})" if b.get("full_per_class") else ""),
        f"- 95% intervals: percentile bootstrap ({b['bootstrap']} resamples, seed {b['seed']}, each class "
        "resampled to its own size); the held-out mean's interval averages the sets' resamples",
        f"- Wall time of this run: {r['wall_seconds'] / 60:.1f} min ({r['cache']['trained']} entries trained, "
        f"{r['cache']['train_reused']} reused; {r['cache']['evaluated']} evaluations run, "
        f"{r['cache']['eval_reused']} reused)",
        "",
    ]
    for dataset, info in r["datasets"].items():
        for view in r["views"]:
            title = "MMFR-Public" if dataset == "public" else f"MMFR-Local (`{info['root']}`)"
            lines += [f"## {title}, {view}", ""]
            if info.get("note"):
                lines += [info["note"][0].upper() + info["note"][1:] + "; the mean is over all its sets.", ""]
            lines += view_table(r, dataset, view)
            if dataset == "public":
                lines += ["", target_check(r, dataset, view)]
            lines.append("")
    lines += [
        "Columns: balanced accuracy and accuracy at p(fake) >= 0.5; the calibrated column uses the threshold "
        "chosen (maximum balanced accuracy) on the calibration set and applied to the held-out sets; ECE over "
        "15 bins, mean of the sets'; train time = the training run's own time (its train_summary.json); "
        "img/s = images per second of model time in fast mode (decoding excluded), native view; peak RSS of "
        "the training process and of the fast-mode evaluate process. p(fake) is calibrated by a temperature "
        "fitted after training (FakeReasoning: on the calibration set, as its recipe does, so that set's ECE is "
        "in-sample for it; baselines: on 5% of the training images held out); a temperature never changes a "
        "verdict, balanced accuracy or AUC.",
        "",
    ]
    reasoning = r.get("reasoning")
    for view, values in (reasoning or {}).items():
        if values:
            lines += [f"Reasoning (fakereasoning-full, {view}, mean over every evaluated set): "
                      + ", ".join(f"{k} {_f(v)}" for k, v in values.items()), ""]
    lines += ["## The rows", ""]
    for name, row in r["rows"].items():
        lines += [f"**{name}.** {row['about']} {row_numbers(r, name)}", ""]
    lines += ["## Training logs", "",
              "Every trained entry is a training run of its own; copies of each run's log (metrics.jsonl), "
              "config and summary are under the folder named (the full runs stay under the work folder).", ""]
    for name, row in r["rows"].items():
        t = row.get("train") or {}
        if t.get("logs"):
            lines.append(f"- {name}: `{t['logs']}`" + (f" (reused run {t['reused_from']})" if t.get("reused_from") else ""))
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    lines.append("")
    return "\n".join(lines)


def row_numbers(r: Mapping[str, Any], name: str) -> str:
    row = r["rows"][name]
    bits = []
    t = row.get("train") or {}
    if t:
        bits.append(f"Trained {t.get('steps')} steps ({_f(t.get('epochs'), 2)} epochs) in {_duration(t.get('seconds'))}"
                    + (f", reused from {t['reused_from']}" if t.get("reused_from") else "")
                    + (f"; {t['note']}" if t.get("note") else "") + ".")
    for view in r["views"]:
        e = (row.get("eval") or {}).get("public", {}).get(view)
        if e:
            h = e["heldout_mean"]
            bits.append(f"{view}: held-out mean balanced accuracy {_ci(h.get('bal_acc'), h.get('bal_acc_ci'))}, "
                        f"AUC {_ci(h.get('auc'), h.get('auc_ci'))}.")
        else:
            bits.append(f"{view}: {(row.get('missing') or {}).get('public:' + view, 'not evaluated')}.")
    for check in row.get("checks") or []:
        bits.append(check)
    return " ".join(bits)
