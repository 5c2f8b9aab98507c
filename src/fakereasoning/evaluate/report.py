"""Evaluation outputs: predictions.jsonl, metrics.json, metrics.csv, report.md and PNG plots."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fakereasoning.evaluate.metrics import ECE_BINS, METRIC_KEYS
from fakereasoning.fsio import atomic_write_bytes, atomic_write_json, atomic_write_text


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _with_interval(value: Any, interval: Sequence[float] | None) -> str:
    if value is None:
        return "–"
    if not interval:
        return _fmt(value)
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _yes_no(name: str, in_training: Mapping[str, Any] | None) -> str:
    if not in_training:
        return "?"
    return "yes" if name in in_training.get("seen", []) else "no" if name in in_training.get("unseen", []) else "?"


def run_markdown(run: Mapping[str, Any]) -> list[str]:
    """The run block as a two-column table: enough to reproduce the evaluation."""
    weights = ", ".join(f"`{f}` `{h}`" for f, h in (run.get("weights_sha256") or {}).items()) or "–"
    commit = run.get("git_commit")
    package = f"fakereasoning {run.get('package_version')}" + (
        f", git {commit}" + (" (with uncommitted changes)" if run.get("git_dirty") else "") if commit else
        " (not a git checkout)")
    seen = run.get("in_training")
    seen_text = (f"seen: {', '.join(seen['seen']) or 'none'}; unseen: {', '.join(seen['unseen']) or 'none'} "
                 f"(from {seen['source']})") if seen else "unknown (no manifest with in_training, no training summary)"
    options = " ".join(f"`{k}={json.dumps(v, ensure_ascii=False)}`" for k, v in (run.get("options") or {}).items())
    how = "detected" if run.get("layout_detected") else "forced"
    rows = [
        ("command", f"`fakereasoning {run.get('command')}`"),
        ("model", f"`{run.get('model_id')}`" + (f" at `{run['model_path']}`" if run.get("model_path") else "")),
        ("weights sha256", weights),
        ("data", f"`{run.get('data_root')}` ({run.get('layout')} layout, {how})"),
        ("sets", f"{', '.join(run.get('sets') or [])} ({run.get('images')} images)"),
        ("sets in training", seen_text),
        ("package", package),
        ("python / torch", f"{run.get('python')} / {run.get('torch')}"),
        ("date (UTC)", str(run.get("date_utc"))),
        ("seed", str(run.get("seed"))),
        ("CSS encoder", f"`{run.get('css_encoder')}`: {run.get('css_model', '')}"),
        ("options", options or "–"),
    ]
    return ["## Run", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]


def interval_markdown(metrics: Mapping[str, Any]) -> list[str]:
    """Accuracy, balanced accuracy and AUC with their intervals, per set and for the means."""
    iv = metrics.get("intervals") or {}
    threshold = metrics.get("threshold")
    in_training = (metrics.get("run") or {}).get("in_training")
    keys = [("acc", "acc"), ("bal_acc", "bal. acc"), ("auc", "AUC")]
    if threshold:
        t = threshold["value"]
        keys += [("acc_cal", f"acc @ {t:.3f}"), ("bal_acc_cal", f"bal. acc @ {t:.3f}")]
    level = iv.get("level", 0.95)
    lines = [f"## Detection ({level:.0%} intervals)" if iv else "## Detection", ""]
    if threshold:
        lines.append(f"Threshold: 0.5, and **{threshold['value']:.4f}** chosen on {threshold['source']} "
                     f"({threshold['n_real']} real, {threshold['n_fake']} fake images; {threshold['rule']}).")
    else:
        lines.append("Threshold: 0.5 (pass `--calibrate SET` or `--calibrate split:train` for a threshold chosen on "
                     "a stated calibration set).")
    lines += ["", "| set | seen | real | fake | " + " | ".join(label for _, label in keys) + " |",
              "|---|---|---|---|" + "---|" * len(keys)]
    for name, m in metrics["sets"].items():
        cells = [_with_interval(m.get(k), (iv.get("sets") or {}).get(name, {}).get(k)) for k, _ in keys]
        lines.append(f"| {name} | {_yes_no(name, in_training)} | {m.get('n_real', '–')} | {m.get('n_fake', '–')} | "
                     + " | ".join(cells) + " |")
    means = [("mean", metrics["mean"], len(metrics["sets"]))]
    for g, m in (metrics.get("groups") or {}).items():
        means.append((f"{g} mean", m, len(m.get("sets", []))))
    for label, m, count in means:
        key = "mean" if label == "mean" else label.split()[0]
        cells = [_with_interval(m.get(k), iv.get(key, {}).get(k)) for k, _ in keys]
        sets_word = "set" if count == 1 else "sets"
        lines.append(f"| **{label}** ({count} {sets_word}) | | {m.get('n_real', '–')} | {m.get('n_fake', '–')} | "
                     + " | ".join(cells) + " |")
    if iv:
        lines += ["", f"Intervals: {iv['method']}; {iv['resamples']} resamples, seed {iv['seed']}. A mean's interval "
                  "averages its sets resample by resample."]
    return [*lines, ""]


def metrics_markdown(metrics: Mapping[str, Any], title: str = "Evaluation report", notes: Sequence[str] = ()) -> str:
    keys = [k for k in METRIC_KEYS if any(s.get(k) is not None for s in metrics["sets"].values())] or ["n"]
    lines = [f"# {title}", "", f"Mode: `{metrics['mode']}`", *[f"{n}" for n in notes], ""]
    if metrics.get("run"):
        lines += run_markdown(metrics["run"])
    lines += interval_markdown(metrics)
    if metrics.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in metrics["warnings"]], ""]
    lines += ["## All metrics", ""]
    lines.append("| set | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for name, m in metrics["sets"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |")
    lines.append("| **mean** | " + " | ".join(_fmt(metrics["mean"].get(k)) for k in keys) + " |")
    for g, m in (metrics.get("groups") or {}).items():
        lines.append(f"| **{g} mean** | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |")
    lines += [
        "",
        "Accuracies are over non-failed images, label = fake iff prob_fake >= 0.5 (`acc_cal`, `bal_acc_cal`: at the "
        "calibrated threshold); `bal_acc` is the mean of real and fake accuracy (what accuracy would be on a "
        "balanced test set); AP and AUC from prob_fake;",
        f"ECE with {ECE_BINS} equal-width confidence bins; a mean row is the unweighted mean over its sets, and its "
        "`n`, `n_real`, `n_fake` are the total images of those sets.",
        "",
        "Plots: `roc.png` (ROC per set, AUC in the legend), `reliability.png` (reliability diagram over all images, "
        "with per-bin counts and the ECE).",
        "",
    ]
    return "\n".join(lines)


CSV_INTERVAL_KEYS = ("acc", "bal_acc", "auc", "acc_cal", "bal_acc_cal")


def metrics_csv(metrics: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    iv = metrics.get("intervals") or {}
    in_training = (metrics.get("run") or {}).get("in_training")
    ci_cols = [f"{k}_{end}" for k in CSV_INTERVAL_KEYS for end in ("lo", "hi")]
    writer.writerow(["set", "in_training", *METRIC_KEYS, *ci_cols])
    rows: list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]] = [
        (name, _yes_no(name, in_training), m, (iv.get("sets") or {}).get(name, {})) for name, m in metrics["sets"].items()]
    rows.append(("mean", "", metrics["mean"], iv.get("mean", {})))
    rows += [(f"{g}_mean", "", m, iv.get(g, {})) for g, m in (metrics.get("groups") or {}).items()]
    for name, seen, m, ci in rows:
        bounds = [(ci.get(k) or ["", ""])[i] for k in CSV_INTERVAL_KEYS for i in (0, 1)]
        writer.writerow([name, seen, *("" if m.get(k) is None else m.get(k) for k in METRIC_KEYS), *bounds])
    return buf.getvalue()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


LINE_STYLES = ("-", "--", "-.", ":")


def roc_figure(rows: Sequence[Mapping[str, Any]], intervals: Mapping[str, Any] | None = None) -> Any:
    """ROC per set. Every curve stays visible: best AUC drawn first and thickest, each later one thinner and
    on top, colours and line styles both vary, and the axes leave a margin so curves along the edges
    (AUC 1.0) are not hidden by the frame. The legend gives each AUC (and its interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    curves = []
    for name in sorted({r["set"] for r in rows}):
        ok = [r for r in rows if r["set"] == name and not r.get("failed")]
        y = np.array([r["truth"] == "fake" for r in ok], dtype=int)
        if y.size == 0 or y.min() == y.max():
            continue
        p = np.array([r["prob_fake"] for r in ok])
        fpr, tpr, _ = roc_curve(y, p)
        curves.append((float(roc_auc_score(y, p)), name, fpr, tpr))
    curves.sort(key=lambda c: (-c[0], c[1]))
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    colors = plt.get_cmap("tab10").colors
    n = max(1, len(curves))
    for i, (auc, name, fpr, tpr) in enumerate(curves):
        ci = ((intervals or {}).get("sets") or {}).get(name, {}).get("auc")
        label = f"{name} (AUC {auc:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}])" if ci else ")")
        ax.plot(fpr, tpr, color=colors[i % len(colors)], linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                lw=3.2 - 2.0 * i / n, zorder=2 + i, label=label)
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls=(0, (1, 3)), zorder=1, label="chance")
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="false positive rate", ylabel="true positive rate",
           title="ROC per set")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_roc(rows: Sequence[Mapping[str, Any]], intervals: Mapping[str, Any] | None = None) -> bytes:
    import matplotlib.pyplot as plt

    fig = roc_figure(rows, intervals)
    data = _png(fig)
    plt.close(fig)
    return data


def reliability_figure(rows: Sequence[Mapping[str, Any]], bins: int = ECE_BINS) -> Any:
    """Reliability diagram: accuracy per confidence bin as bars, each labelled with its image count, the
    bin's mean confidence marked, and the ECE (the count-weighted gap) in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fakereasoning.evaluate.stats import calibration_bins, ece_from_bins

    ok = [r for r in rows if not r.get("failed")]
    p = np.array([r["prob_fake"] for r in ok], dtype=float)
    y = np.array([r["truth"] == "fake" for r in ok], dtype=int)
    table = calibration_bins(p, y, bins)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0.5, 1], [0.5, 1], "k--", lw=0.8, label="perfect calibration")
    if table:
        width = 1.0 / bins
        centers = [(b["lo"] + b["hi"]) / 2 for b in table]
        ax.bar(centers, [b["accuracy"] for b in table], width=width * 0.9, color="tab:blue", alpha=0.6,
               edgecolor="tab:blue", label="accuracy per bin")
        ax.scatter([b["confidence"] for b in table], [b["accuracy"] for b in table], color="tab:red", s=14, zorder=3,
                   label="mean confidence")
        for c, b in zip(centers, table, strict=True):
            ax.annotate(f"n={b['count']}", (c, min(float(b["accuracy"]), 0.93) + 0.02), ha="center", fontsize=7)
    ece = ece_from_bins(table)
    ax.set(xlim=(0.45, 1.02), ylim=(0, 1.05), xlabel="confidence (probability of the predicted label)",
           ylabel="accuracy", title=f"Reliability diagram: ECE {ece:.3f} over {len(ok)} images ({bins} bins)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def plot_reliability(rows: Sequence[Mapping[str, Any]], bins: int = ECE_BINS) -> bytes:
    import matplotlib.pyplot as plt

    fig = reliability_figure(rows, bins)
    data = _png(fig)
    plt.close(fig)
    return data


def write_predictions(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_report(
    out_dir: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    title: str = "Evaluation report",
    notes: Sequence[str] = (),
) -> Path:
    """Write every output into OUT_DIR (atomically, file by file); returns the path of report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.jsonl", rows)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "metrics.csv", metrics_csv(metrics))
    atomic_write_bytes(out / "roc.png", plot_roc(rows, metrics.get("intervals")))
    atomic_write_bytes(out / "reliability.png", plot_reliability(rows))
    atomic_write_text(out / "report.md", metrics_markdown(metrics, title, notes))
    return out / "report.md"
