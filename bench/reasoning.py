"""Reasoning a person can check (issue 11): faithfulness, reference agreement and determinism, full mode.

For each dataset given (the demo set, MMFR-Local's evaluation sets, MMFR-Public's held-out sets), runs
`fakereasoning evaluate --mode full` on a model (default: the shipped one) and collects, per dataset:
- faithfulness: stated numbers equal to the image's measurement, findings consistent with their
  measurement, garbled findings, captions present (measured by the evaluator, independently of the model);
- reference agreement: the protocol's BLEU-1 / ROUGE-L / CSS (whole <REASONING> text against the attribute
  texts joined), the same over correctly detected images (`*_correct`), and the like-for-like findings view
  (`findings_*`: the answer's attribute texts joined as the reference is);
- the reference ceiling: the same protocol metrics for the reference itself written as a <REASONING> with
  the true verdict (`schema.format_reasoning`): what a model that states exactly the reference's findings
  and is never wrong would score, since the frame ("From low-level perspective: ...", attribute names,
  "Therefore ...") is part of every reasoning and of no reference;
- determinism: the share of images whose full-mode text is identical at batch size 1 and 16.
Writes JSON (and a Markdown table beside it); never asserts.

    .venv/bin/python bench/reasoning.py --data demo=examples/mmfr-local-demo --data local=MMFR_LOCAL \
        --data public=MMFR_PUBLIC:gemini,midjourney,flux_dits --out bench/results/reasoning.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

def _keys() -> tuple[str, ...]:
    from fakereasoning.evaluate.metrics import REASONING_KEYS

    return ("acc", "bal_acc", *REASONING_KEYS, "failure_rate")


def _dataset_spec(spec: str) -> tuple[str, str, str | None]:
    """NAME=ROOT[:SETS] -> (name, root, sets or None); a ROOT that exists as given keeps any colon in it."""
    name, _, rest = spec.partition("=")
    if Path(rest).exists():
        return name, rest, None
    root, _, sets = rest.partition(":")
    return name, root, sets or None


def _evaluate(model: str | None, root: str, sets: str | None, out: Path, per_class: int | None, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "fakereasoning", "evaluate", "--data", root, "--mode", "full", "--out", str(out)]
    cmd += ["--model", model] if model else []
    cmd += ["--sets", sets] if sets else []
    cmd += ["--max-per-class", str(per_class)] if per_class else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    metrics["wall_s"] = round(time.perf_counter() - t0, 1)
    return metrics


def _ceiling(root: str, sets: str | None, per_class: int | None) -> dict[str, Any]:
    """Protocol metrics of each image's reference written as a reasoning with its true verdict (the same
    images `evaluate` picks: same sets, cap and seed)."""
    from fakereasoning.evaluate.encoders import load_encoder
    from fakereasoning.evaluate.metrics import ReasoningScorer
    from fakereasoning.evaluate.runner import select_records
    from fakereasoning.schema import format_reasoning

    records = [r for r in select_records(root, sets.split(",") if sets else None, per_class) if r.reference()]
    hyps = [format_reasoning(r.attributes or {}, r.label) for r in records]
    refs = [r.reference() for r in records]
    scorer = ReasoningScorer(load_encoder("minilm"))
    css = scorer.css(hyps, refs)
    n = len(records)
    return {"n": n, "bleu1": sum(map(scorer.bleu1, hyps, refs)) / n, "rouge_l": sum(map(scorer.rouge_l, hyps, refs)) / n,
            "css": sum(css) / n}


def _batch_invariance(model: str | None, root: str, sets: str | None, n: int, threads: int) -> dict[str, Any]:
    """Full-mode texts of the same images at batch size 1 and 16: the share that are identical."""
    import torch

    from fakereasoning.evaluate.runner import select_records
    from fakereasoning.imageio import load_image
    from fakereasoning.infer import load_model

    torch.set_num_threads(threads)
    records = select_records(root, sets.split(",") if sets else None, None)[:n]
    images = [load_image(r.path, name=str(r.path)) for r in records]
    detector = load_model(model)
    one = [v.raw_text for v in detector.detect_many(images, mode="full", batch_size=1)]
    many = [v.raw_text for v in detector.detect_many(images, mode="full", batch_size=16)]
    same = sum(a == b for a, b in zip(one, many, strict=True))
    return {"n": len(images), "identical": same, "share": same / len(images) if images else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, metavar="NAME=ROOT[:SETS]",
                    help="a dataset to evaluate (repeatable); SETS: comma-separated evaluation sets")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--max-per-class", type=int, default=None, help="images per class per set")
    ap.add_argument("--invariance-images", type=int, default=32, help="images of the first dataset checked at batch 1 and 16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-reasoning")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reasoning.json")
    args = ap.parse_args(argv)

    from fakereasoning.fsio import atomic_write_json, atomic_write_text

    results: dict[str, Any] = {"command": " ".join(["bench/reasoning.py", *(argv if argv is not None else sys.argv[1:])]),
                               "model": args.model or "shipped default", "datasets": {}}
    keys = _keys()
    specs = [_dataset_spec(spec) for spec in args.data]
    for name, root, sets in specs:
        metrics = _evaluate(args.model, root, sets, args.work / name, args.max_per_class, args.threads)
        results["datasets"][name] = {
            "root": root, "sets": sorted(metrics["sets"]), "n": metrics["mean"]["n"], "wall_s": metrics["wall_s"],
            "mean": {k: metrics["mean"].get(k) for k in keys},
            "per_set": {s: {k: m.get(k) for k in keys} for s, m in metrics["sets"].items()},
            "reference_ceiling": _ceiling(root, sets, args.max_per_class),
        }
        print(f"{name}: {json.dumps(results['datasets'][name]['mean'])}", file=sys.stderr)
    _, root, sets = specs[0]
    results["batch_invariance"] = _batch_invariance(args.model, root, sets, args.invariance_images, args.threads)
    atomic_write_json(args.out, results, indent=2)
    atomic_write_text(args.out.with_suffix(".md"), _markdown(results))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _markdown(results: dict[str, Any]) -> str:
    cols = ("bal_acc", "numbers_matching", "findings_consistent", "findings_garbled", "consistency", "rouge_l",
            "css", "rouge_l_correct", "css_correct", "findings_rouge_l", "findings_css", "caption_rate")
    lines = [f"# Reasoning bench ({results['model']})", "", f"Command: `{results['command']}`", "",
             "| dataset | n | " + " | ".join(cols) + " | ceiling rouge_l / css |", "|---" * (len(cols) + 3) + "|"]
    for name, d in results["datasets"].items():
        ceiling = d["reference_ceiling"]
        lines.append(f"| {name} | {d['n']} | " + " | ".join(_fmt(d["mean"].get(c)) for c in cols)
                     + f" | {_fmt(ceiling.get('rouge_l'))} / {_fmt(ceiling.get('css'))} |")
    inv = results["batch_invariance"]
    lines += ["", f"Batch-size invariance (full mode, batch 1 vs 16): {inv['identical']} of {inv['n']} texts identical.", "",
              "rouge_l / css: the protocol's (whole <REASONING> text vs the attribute texts joined); *_correct: over "
              "correctly detected images; findings_*: the answer's attribute texts joined as the reference is; "
              "ceiling: the reference itself written as a reasoning with the true verdict.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
