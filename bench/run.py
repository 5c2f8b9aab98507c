"""The side-by-side benchmark: FakeReasoning (full and fast), its ablations and the baselines, trained with
the same budget on one dataset and evaluated on every generator set, native and perturbed, in ONE run.

    .venv/bin/python bench/run.py --data DATA [--quick] [--steps N] [--shipped MODEL_DIR]

DATA is an MMFR-layout dataset; with MMFR-Local (`fakereasoning data build-local DATA --preset standard`) the
seen / unseen split of the generator sets is read from DATA/manifest.json, otherwise pass --seen a,b.
Writes bench/results.json and bench/RESULTS.md (and keeps every model and report under --work).
Every command it runs is a `fakereasoning` CLI call, printed as it goes, so any row can be reproduced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FR = [sys.executable, "-m", "fakereasoning"]
PERTURBATIONS = ("jpeg:75", "resize:0.5", "blur:1.0")
ABLATIONS = {
    "fakereasoning-no-facl": ["model.use_facl=false"],
    "fakereasoning-no-cpm": ["model.use_cpm=false"],
    "fakereasoning-no-forensic": ["model.use_forensic=false"],
}
BASELINES = ("univfd", "npr", "cnnspot")


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a command, append its output to LOG; returns (wall seconds, peak RSS of the process in MB)."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd[2:] if c), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"command failed with exit {code}: {' '.join(cmd)} (see {log})")
    return seconds, usage.ru_maxrss / 1024.0


def seen_sets(data: Path, explicit: str | None) -> tuple[list[str], list[str]]:
    sets = sorted(p.name for p in (data / "evaluation_sets").iterdir() if p.is_dir())
    if explicit is not None:
        seen = [s for s in explicit.split(",") if s]
    else:
        manifest = data / "manifest.json"
        if not manifest.is_file():
            raise SystemExit(f"{data}: no manifest.json; pass --seen with the generator sets seen in training")
        gens = json.loads(manifest.read_text())["generators"]
        seen = [g["name"] for g in gens if g.get("in_training")]
    return [s for s in sets if s in seen], [s for s in sets if s not in seen]


def summarise(metrics_path: Path, seen: list[str], unseen: list[str]) -> dict[str, Any]:
    m = json.loads(metrics_path.read_text())

    def mean(names: list[str]) -> float | None:
        vals = [m["sets"][n]["acc"] for n in names if n in m["sets"] and m["sets"][n]["acc"] is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    return {
        "seen_mean_acc": mean(seen),
        "unseen_mean_acc": mean(unseen),
        "per_set": {k: {"acc": v["acc"], "ap": v["ap"]} for k, v in m["sets"].items()},
    }


def throughput(pred_path: Path) -> float | None:
    rows = [json.loads(line) for line in pred_path.read_text().splitlines() if line.strip()]
    total_ms = sum(r.get("elapsed_ms") or 0.0 for r in rows)
    return round(len(rows) / (total_ms / 1000.0), 2) if total_ms else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--steps", type=int, default=None, help="training budget per entry (optimizer steps)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="a few minutes: tiny budget, few images")
    ap.add_argument("--seen", default=None, help="comma-separated seen sets (default: from manifest.json)")
    ap.add_argument("--max-per-class", type=int, default=None, help="evaluation images per class per set")
    ap.add_argument("--full-per-class", type=int, default=None, help="images per class per set in full mode")
    ap.add_argument("--robust-per-class", type=int, default=None, help="images per class per set, perturbed")
    ap.add_argument("--shipped", type=Path, default=None, help="also report this model (e.g. the shipped one)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per job (default: the config's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench")
    args = ap.parse_args(argv)

    steps = args.steps or (6 if args.quick else 300)
    per_class = args.max_per_class or (8 if args.quick else None)
    full_per_class = args.full_per_class or (2 if args.quick else 20)
    robust_per_class = args.robust_per_class or (8 if args.quick else 60)
    data, work = args.data.resolve(), args.work.resolve()
    seen, unseen = seen_sets(data, args.seen)
    log = work / "bench.log"
    started = time.time()
    limit = ["--max-per-class", str(per_class)] if per_class else []
    budget = ["--max-steps", str(steps)]
    config = ["--config", str(ROOT / "configs" / "tiny-local.toml")]
    batch = [f"optim.batch_size={args.batch_size}", "run.save_every=1000000"]
    if args.threads:
        batch.append(f"run.threads={args.threads}")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    results: dict[str, Any] = {"models": {}, "robustness": {p: {} for p in PERTURBATIONS}}
    eval_dirs: dict[str, tuple[list[str], Path]] = {}  # name -> (evaluate command prefix, model dir)

    # --- train -----------------------------------------------------------------------------------
    train_seconds: dict[str, float] = {}
    for name, extra in {"fakereasoning": [], **ABLATIONS}.items():
        out = work / name
        train_seconds[name], _ = run([*FR, "train", *config, "--data", str(data), "--output", str(out), *budget,
                                      *batch, *extra], log)
        eval_dirs[name] = ([*FR, "evaluate", "--model", str(out / "model")], out / "model")
    for kind in BASELINES:
        out = work / kind
        train_seconds[kind], _ = run([*FR, "baseline", "train", "--kind", kind, "--data", str(data), "--output",
                                      str(out), *budget, "--batch-size", str(args.batch_size)], log)
        eval_dirs[kind] = ([*FR, "baseline", "evaluate", "--kind", kind, "--model", str(out)], out)
    if args.shipped:
        eval_dirs["fakereasoning-shipped"] = ([*FR, "evaluate", "--model", str(args.shipped)], args.shipped)

    # --- evaluate (fast mode for every entry; full mode for FakeReasoning) -------------------------------
    def evaluate(name: str, out: Path, extra: list[str]) -> tuple[dict[str, Any], float]:
        prefix, _ = eval_dirs[name]
        _, rss = run([*prefix, "--data", str(data), "--out", str(out), *extra], log)
        return summarise(out / "metrics.json", seen, unseen), rss

    for name in eval_dirs:
        label = "fakereasoning-fast" if name == "fakereasoning" else name
        out = work / "eval" / label
        summary, rss = evaluate(name, out, [*limit])
        summary["images_per_s"] = throughput(out / "predictions.jsonl")
        summary["peak_rss_mb"] = round(rss, 1)
        summary["train_seconds"] = round(train_seconds.get(name, 0.0), 1) or None
        results["models"][label] = summary
    out = work / "eval" / "fakereasoning-full"
    summary, rss = evaluate("fakereasoning", out, ["--mode", "full", "--max-per-class", str(full_per_class)])
    summary["images_per_s"] = throughput(out / "predictions.jsonl")
    summary["peak_rss_mb"] = round(rss, 1)
    summary["train_seconds"] = results["models"]["fakereasoning-fast"]["train_seconds"]
    results["models"]["fakereasoning-full"] = summary
    full = json.loads((out / "metrics.json").read_text())["mean"]
    results["reasoning"] = {k: full[k] for k in ("bleu1", "rouge_l", "css", "consistency", "attr_f1")}

    # --- robustness (unseen sets) ----------------------------------------------------------------------
    for pert in PERTURBATIONS:
        for name in eval_dirs:
            label = "fakereasoning-fast" if name == "fakereasoning" else name
            out = work / "robust" / pert.replace(":", "-") / label
            summary, _ = evaluate(name, out, ["--perturb", pert, "--max-per-class", str(robust_per_class),
                                              "--sets", ",".join(unseen)])
            results["robustness"][pert][label] = summary["unseen_mean_acc"]

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    results = {
        "machine": f"{platform.node()} / {platform.processor() or platform.machine()} / {os.cpu_count()} CPUs",
        "commit": commit.stdout.strip() or None,
        "date": dt.date.today().isoformat(),
        "command": "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "budget": {"optimizer_steps": steps, "batch_size": args.batch_size,
                   "images_seen": steps * args.batch_size, "threads_per_job": args.threads},
        "data": {"root": str(data), "seen_sets": seen, "unseen_sets": unseen,
                 "eval_max_per_class": per_class, "full_mode_per_class": full_per_class,
                 "robustness_per_class": robust_per_class},
        "wall_seconds": round(time.time() - started, 1),
        **results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return 0


def _f(v: Any) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"- Command: `{r['command']}`",
        f"- Date: {r['date']}; commit {r['commit']}; machine: {r['machine']}",
        f"- Budget per trained entry: {r['budget']['optimizer_steps']} optimizer steps x batch "
        f"{r['budget']['batch_size']} ({r['budget']['images_seen']} training images seen)",
        f"- Seen sets: {', '.join(r['data']['seen_sets'])}; unseen sets: {', '.join(r['data']['unseen_sets'])}",
        f"- Wall time of the whole run: {r['wall_seconds'] / 60:.1f} min",
        "",
        "| model | seen mean acc | unseen mean acc | images/s | peak RSS MB | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in r["models"].items():
        lines.append(f"| {name} | {_f(m['seen_mean_acc'])} | {_f(m['unseen_mean_acc'])} | {_f(m['images_per_s'])} | "
                     f"{_f(m['peak_rss_mb'])} | {_f(m.get('train_seconds'))} |")
    sets = sorted({s for m in r["models"].values() for s in m["per_set"]})
    lines += ["", "Accuracy / AP per set:", "", "| model | " + " | ".join(sets) + " |",
              "|---|" + "---|" * len(sets)]
    for name, m in r["models"].items():
        cells = [f"{_f(m['per_set'].get(s, {}).get('acc'))} / {_f(m['per_set'].get(s, {}).get('ap'))}" for s in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Reasoning (FakeReasoning, full mode, mean over sets): "
              + ", ".join(f"{k} {_f(v)}" for k, v in r["reasoning"].items()), "",
              "Robustness (unseen mean accuracy under perturbation):", "",
              "| model | " + " | ".join(r["robustness"]) + " |", "|---|" + "---|" * len(r["robustness"])]
    for name in r["models"]:
        lines.append(f"| {name} | " + " | ".join(_f(r["robustness"][p].get(name)) for p in r["robustness"]) + " |")
    lines += ["", "images/s = images / model time per image (decoding excluded), from predictions.jsonl; "
              "peak RSS of the evaluate process. Full-mode and robustness rows use fewer images per class "
              "(see data in results.json).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
