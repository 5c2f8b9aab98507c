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


def metrics_markdown(metrics: Mapping[str, Any], title: str = "Evaluation report", notes: Sequence[str] = ()) -> str:
    keys = [k for k in METRIC_KEYS if any(s.get(k) is not None for s in metrics["sets"].values())] or ["n"]
    lines = [f"# {title}", "", f"Mode: `{metrics['mode']}`", *[f"{n}" for n in notes], ""]
    lines.append("| set | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for name, m in metrics["sets"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |")
    lines.append("| **mean** | " + " | ".join(_fmt(metrics["mean"].get(k)) for k in keys) + " |")
    lines += [
        "",
        "Accuracies are over non-failed images, label = fake iff prob_fake >= 0.5; AP and AUC from prob_fake;",
        f"ECE with {ECE_BINS} equal-width confidence bins; the mean row is the unweighted mean over sets.",
        "",
        "Plots: `roc.png` (ROC per set), `reliability.png` (reliability diagram over all images).",
        "",
    ]
    return "\n".join(lines)


def metrics_csv(metrics: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["set", *METRIC_KEYS])
    for name, m in [*metrics["sets"].items(), ("mean", metrics["mean"])]:
        writer.writerow([name, *("" if m.get(k) is None else m.get(k) for k in METRIC_KEYS)])
    return buf.getvalue()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plot_roc(rows: Sequence[Mapping[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for name in sorted({r["set"] for r in rows}):
        ok = [r for r in rows if r["set"] == name and not r.get("failed")]
        y = np.array([r["truth"] == "fake" for r in ok], dtype=int)
        if y.size == 0 or y.min() == y.max():
            continue
        p = np.array([r["prob_fake"] for r in ok])
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per set")
    ax.legend(fontsize=7, loc="lower right")
    data = _png(fig)
    plt.close(fig)
    return data


def plot_reliability(rows: Sequence[Mapping[str, Any]], bins: int = ECE_BINS) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("failed")]
    p = np.array([r["prob_fake"] for r in ok], dtype=float)
    y = np.array([r["truth"] == "fake" for r in ok], dtype=int)
    pred = (p >= 0.5).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    correct = (pred == y).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1) if conf.size else conf
    centers, accs, counts = [], [], []
    for b in range(bins):
        sel = idx == b
        if conf.size and sel.any():
            centers.append(conf[sel].mean())
            accs.append(correct[sel].mean())
            counts.append(int(sel.sum()))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0.5, 1], [0.5, 1], "k--", lw=0.8, label="perfect calibration")
    if centers:
        ax.scatter(centers, accs, s=[max(10, 200 * c / max(counts)) for c in counts], label="bins (size = count)")
        ax.plot(centers, accs)
    ax.set(xlim=(0.45, 1.02), ylim=(0, 1.02), xlabel="confidence", ylabel="accuracy", title="Reliability diagram")
    ax.legend(fontsize=7, loc="lower right")
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
    atomic_write_bytes(out / "roc.png", plot_roc(rows))
    atomic_write_bytes(out / "reliability.png", plot_reliability(rows))
    atomic_write_text(out / "report.md", metrics_markdown(metrics, title, notes))
    return out / "report.md"
