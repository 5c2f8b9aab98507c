"""The side-by-side benchmark at convergence: FakeReasoning (full and fast), its ablations and the baselines,
each trained on the same training data for the same number of epochs with its own recipe (learning rate,
augmentation), training time reported as a column; evaluated on MMFR-Public's held-out generator sets and
its calibration set (reported apart), native and with every image re-encoded at JPEG quality 95, with the
95% bootstrap intervals of `evaluate`; optionally on MMFR-Local too.

    .venv/bin/python bench/run.py --data /work/data/public [--reuse-default RUN_DIR] [--threads 2] [--jobs 1]
        [--local MMFR_LOCAL_ROOT] [--epochs E] [--only a,b] [--retrain] [--notes FILE]
    .venv/bin/python bench/run.py --data DATA --quick --threads 1     # minutes: a smoke run, not a result
    .venv/bin/python bench/run.py --protocol lofo --data ALL_BUILD ...  # leave-family-out (bench/lofo.py)

Two protocols: `heldout` (the default, this file: MMFR-Public built with `--splits heldout`, whole families held
out as evaluation sets, every entry trained through the CLI) and `lofo` (bench/lofo.py: a build with
`--splits all`, every modern family held out in turn, entries fitted on cached frozen features, trained
baselines per fold).

Entries (rows): fakereasoning-full / -fast (one trained model, `configs/tiny-public.toml`, scored in both
modes), the ablations -no-facl, -no-cpm, -no-stats-prior, -with-forensic (each its own training run, the
recipe with one `model.*` override), and the baselines univfd, npr, cnnspot (`fakereasoning baseline
train|evaluate`, each with its kind's learning rate and augmentation).

Caching (so the whole run fits about 2 hours on 2 cores): a trained entry is reused when a finished run
folder under --work has the same config hash (the effective training config, run-only keys left out) and
the same data fingerprint; an unfinished one is resumed from its last checkpoint; `--reuse-default DIR` lets
a finished `fakereasoning train` output folder (e.g. the shipped default's) stand in for the FakeReasoning
entry when its train_config.json and data match. An evaluation is skipped when one with the same model
weights (sha256), data and options already exists.

Writes OUT/results.json and OUT/RESULTS.md (OUT: bench/, or WORK/out with --quick so a smoke run never
replaces the committed results) and copies each training run's log, config and summary to
OUT/results/convergence/ENTRY/. Every command it runs is a `fakereasoning` CLI call, printed and logged,
so any number can be reproduced.
"""

# no `from __future__ import annotations`: tests load this file by path, unregistered in sys.modules,
# where dataclasses cannot resolve string annotations
import argparse
import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convergence_report as report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FR = [sys.executable, "-m", "fakereasoning"]
CONFIG = ROOT / "configs" / "tiny-public.toml"
VIEWS: dict[str, list[str]] = {"native": [], "jpeg95": ["--perturb", "jpeg:95"]}
RUN_ONLY_KEYS = {"run": ("output", "threads", "save_every", "keep_last", "log_every"), "data": ("root",)}
BENCH_KEY = "bench_key.json"
_print_lock = threading.Lock()


@dataclass
class Entry:
    name: str
    family: str  # "fakereasoning" | "baseline"
    rows: list[tuple[str, str]]  # (row name, evaluation mode)
    overrides: list[str] = field(default_factory=list)  # FakeReasoning: config overrides
    kind: str | None = None  # baseline kind
    about: dict[str, str] = field(default_factory=dict)  # row -> what the row is


NO_CPM_NOTE = (
    "With model.use_cpm=false the CPM loss is still computed but left out of the training loss "
    "(models/model.py `forward`), so the verdict is learned only as one token of the answer under the LM "
    "loss. Fast mode still reads p(fake) from the two verdict-token logits at the verdict slot "
    "(`fast_probabilities`: softmax of [real, fake] / scale, with the temperature fitted after training), "
    "so this row's p(fake) is the language model's own relative probability of 'fake' against 'real' at "
    "that position. The statistics prior is added to those two logits only, and its only gradient comes "
    "through the CPM loss: without it the prior stays at its zero initialisation (the check below reads its "
    "weights), so no-CPM also switches the prior off; the statistics still reach the LM as visual tokens."
)

ENTRIES = [
    Entry("fakereasoning", "fakereasoning", [("fakereasoning-full", "full"), ("fakereasoning-fast", "fast")], about={
        "fakereasoning-full": "FakeReasoning as shipped (configs/tiny-public.toml: tiny backbone, frozen "
        "EfficientNet-Lite0 statistics of native crops as visual tokens plus a linear prior on the verdict "
        "logit, CPM, FACL, no forensic CNN branch; lr and augmentation from the config), full mode: CPM decides "
        "the verdict from one forward pass, then the reasoning is written from the image's measurements, so "
        "its p(fake) is the fast row's (checked below) and only its speed and reasoning differ.",
        "fakereasoning-fast": "The same trained model in fast mode: one forward pass of the direct-answer "
        "prompt, p(fake) from the CPM verdict logits; no reasoning.",
    }),
    Entry("fakereasoning-no-facl", "fakereasoning", [("fakereasoning-no-facl", "fast")], ["model.use_facl=false"], about={
        "fakereasoning-no-facl": "Ablation, its own training run: the recipe with model.use_facl=false (no "
        "forgery-aware contrastive alignment of image and reasoning embeddings), fast mode."}),
    Entry("fakereasoning-no-cpm", "fakereasoning", [("fakereasoning-no-cpm", "fast")], ["model.use_cpm=false"], about={
        "fakereasoning-no-cpm": "Ablation, its own training run: the recipe with model.use_cpm=false, fast mode. "
        + NO_CPM_NOTE}),
    Entry("fakereasoning-no-stats-prior", "fakereasoning", [("fakereasoning-no-stats-prior", "fast")],
          ["model.stats_prior=false"], about={
              "fakereasoning-no-stats-prior": "Ablation, its own training run: the recipe with model.stats_prior=false "
              "(the statistics reach the model as visual tokens only; no linear read-out added to the verdict "
              "logit), fast mode."}),
    Entry("fakereasoning-with-forensic", "fakereasoning", [("fakereasoning-with-forensic", "fast")],
          ["model.use_forensic=true"], about={
              "fakereasoning-with-forensic": "Ablation, its own training run: the recipe with model.use_forensic=true, "
              "adding the trained NPR-residual CNN branch (one more visual token from native crops). The shipped "
              "recipe leaves it out because it learns the training generators' upsamplers, so the ablation the "
              "issue calls no-forensic is the shipped model itself and this row is its complement."}),
    Entry("univfd", "baseline", [("univfd", "fast")], kind="univfd"),
    Entry("npr", "baseline", [("npr", "fast")], kind="npr"),
    Entry("cnnspot", "baseline", [("cnnspot", "fast")], kind="cnnspot"),
]


# --- small helpers -------------------------------------------------------------------------------------------
def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_fingerprints: dict[Path, str] = {}


def data_fingerprint(root: Path) -> str:
    """Every file's path and size under ROOT, plus the content of its JSON files (manifest, annotations):
    cheap, and it changes whenever an image is added, removed or replaced by one of another size, or an
    annotation changes."""
    root = root.resolve()
    if root not in _fingerprints:
        h = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            h.update(f"{rel}\0{path.stat().st_size}\n".encode())
            if path.suffix == ".json":
                h.update(file_sha256(path).encode())
        _fingerprints[root] = h.hexdigest()
    return _fingerprints[root]


def run(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run CMD with its output appended to LOG; (wall seconds, peak RSS of the process in MB). Raises on failure."""
    shown = " ".join(shlex.quote(c) for c in cmd[2:])
    say(f"$ {shown}")
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(shlex.quote(c) for c in cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"exit {code}: {shown}\n(log {log}; last lines:)\n{tail}")
    return seconds, usage.ru_maxrss / 1024.0


def dataset_sets(root: Path, heldout_opt: str | None, calibration_opt: str | None) -> dict[str, Any]:
    """The evaluation sets of ROOT split into held-out generator sets and calibration sets: from the
    MMFR-Public manifest's roles, else the options, else sets named calib* are calibration sets."""
    names = sorted(p.name for p in (root / "evaluation_sets").iterdir() if p.is_dir())
    manifest = root / "manifest.json"
    roles: dict[str, str] = {}
    if manifest.is_file():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        sets = m.get("evaluation_sets")
        if isinstance(sets, list):
            roles = {s["name"]: s.get("role", "held_out") for s in sets if isinstance(s, dict) and "name" in s}
    if calibration_opt is not None:
        calibration = [s for s in calibration_opt.split(",") if s]
    elif roles:
        calibration = [s for s in names if roles.get(s) == "calibration"]
    else:
        calibration = [s for s in names if s.startswith("calib")]
    heldout = ([s for s in heldout_opt.split(",") if s] if heldout_opt is not None
               else [s for s in names if s not in calibration])
    unknown = sorted(set(heldout + calibration) - set(names))
    if unknown:
        raise SystemExit(f"{root}: no evaluation set(s) {unknown}; sets: {names}")
    return {"root": str(root), "heldout": heldout, "calibration": calibration,
            "roles_from": str(manifest) if roles else "options / set names"}


def summarise(metrics_path: Path, seen: list[str], unseen: list[str]) -> dict[str, Any]:
    """Seen / unseen mean accuracy and per-set acc / AP of one metrics.json (kept for older callers)."""
    m = json.loads(Path(metrics_path).read_text())

    def mean(names: list[str]) -> float | None:
        vals = [m["sets"][n]["acc"] for n in names if n in m["sets"] and m["sets"][n]["acc"] is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    return {"seen_mean_acc": mean(seen), "unseen_mean_acc": mean(unseen),
            "per_set": {k: {"acc": v["acc"], "ap": v["ap"]} for k, v in m["sets"].items()}}


# --- training ---------------------------------------------------------------------------------------------
def normalised_config(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """A training config without the keys that do not change what is learned (paths, threads, logging)."""
    out = json.loads(json.dumps(cfg_dict))
    for section, keys in RUN_ONLY_KEYS.items():
        for k in keys:
            out.get(section, {}).pop(k, None)
    return out


def fr_config(overrides: list[str], data: Path, max_steps: int | None) -> dict[str, Any]:
    """The effective config `fakereasoning train --config CONFIG --data DATA [--max-steps N] OVERRIDES` uses."""
    from fakereasoning.train.config import load_config

    cfg = load_config(CONFIG, overrides)
    cfg.data.root = str(data)
    if max_steps is not None:
        cfg.optim.max_steps = max_steps
    return cfg.to_dict()


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} != {vb!r}")
    return out


def finished(run_dir: Path) -> bool:
    return (run_dir / "model" / "model.safetensors").is_file() and (run_dir / "train_summary.json").is_file() \
        and (run_dir / "model" / "config.json").is_file()


def check_default(default: Path, want_cfg: dict[str, Any], fingerprint: str) -> str | None:
    """None when DEFAULT (a finished `train --output` folder) can stand in for the FakeReasoning entry,
    else why not."""
    if not finished(default):
        return f"{default}: not a finished training run (needs model/ and train_summary.json)"
    try:
        have = json.loads((default / "train_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{default}/train_config.json: unreadable ({exc})"
    diff = config_diff(normalised_config(have), normalised_config(want_cfg))
    if diff:
        return f"{default}: training config differs from this bench's: " + "; ".join(diff[:6])
    root = (have.get("data") or {}).get("root")
    if not root or not Path(root).is_dir():
        return f"{default}: its data root {root!r} is not here to fingerprint"
    if data_fingerprint(Path(root)) != fingerprint:
        return f"{default}: trained on {root}, whose data fingerprint differs from the bench data's"
    summary = json.loads((default / "train_summary.json").read_text(encoding="utf-8"))
    if summary.get("resumed_from"):
        return f"{default}: resumed from step {summary['resumed_from']}: its training time is incomplete"
    return None


@dataclass
class Ctx:
    args: argparse.Namespace
    data: Path
    work: Path
    fingerprint: str
    env: dict[str, str]
    datasets: dict[str, dict[str, Any]]
    counts: dict[str, int] = field(default_factory=lambda: {"trained": 0, "train_reused": 0, "evaluated": 0,
                                                            "eval_reused": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1


def train_entry(ctx: Ctx, entry: Entry) -> dict[str, Any]:
    """Train ENTRY (or reuse / resume a matching run); returns its `train` block with the model folder."""
    args = ctx.args
    out = ctx.work / entry.name
    log = out.parent / f"{entry.name}.train.log"
    if entry.family == "fakereasoning":
        budget = [] if args.max_steps else [f"optim.epochs={args.epochs}"]
        calibration = ctx.datasets["public"]["calibration"]
        if calibration:  # the CPM temperature is fitted on the bench data's calibration set (as the recipe does)
            budget.append(f"data.calibration_set={calibration[0]}")
        cfg = fr_config([*entry.overrides, *budget], ctx.data, args.max_steps)
        key = {"config": normalised_config(cfg), "data": ctx.fingerprint}
        recipe = {"config": str(CONFIG.relative_to(ROOT)), "overrides": entry.overrides, "lr": cfg["optim"]["lr"],
                  "augmentation": {k: v for k, v in cfg["data"].items() if k.split("_")[0] in ("jpeg", "blur",
                                   "resize", "real")}, "batch_size": cfg["optim"]["batch_size"]}
        cmd = [*FR, "train", "--config", str(CONFIG), "--data", str(ctx.data), "--output", str(out),
               *(["--max-steps", str(args.max_steps)] if args.max_steps else []), *entry.overrides, *budget,
               *([f"run.threads={args.threads}"] if args.threads else [])]
        if entry.name == "fakereasoning" and args.reuse_default and not args.retrain:
            why = check_default(args.reuse_default.resolve(), cfg, ctx.fingerprint)
            if why is None:
                say(f"[{entry.name}] reusing {args.reuse_default} (config and data match)")
                ctx.count("train_reused")
                return train_block(args.reuse_default.resolve(), recipe, None, reused=str(args.reuse_default))
            say(f"[{entry.name}] not reusing --reuse-default: {why}")
    else:
        from fakereasoning.baselines.registry import detector_class

        klass = detector_class(str(entry.kind))
        lr = args.baseline_lr.get(str(entry.kind), klass.DEFAULT_LR)
        budget = ["--max-steps", str(args.max_steps)] if args.max_steps else ["--epochs", str(args.epochs)]
        key = {"kind": entry.kind, "budget": budget, "batch_size": args.batch_size, "lr": lr, "seed": 0,
               "data": ctx.fingerprint}
        recipe = {"lr": lr, "augmentation": asdict(klass.AUGMENT), "options": dict(klass.DEFAULTS),
                  "batch_size": args.batch_size}
        cmd = [*FR, "baseline", "train", "--kind", str(entry.kind), "--data", str(ctx.data), "--output", str(out),
               *budget, "--batch-size", str(args.batch_size), "--lr", repr(lr), "--seed", "0"]
    key_path = out / BENCH_KEY
    same = key_path.is_file() and json.loads(key_path.read_text(encoding="utf-8")) == key
    if same and finished(out) and not args.retrain:
        say(f"[{entry.name}] reusing {out} (config hash and data fingerprint match)")
        ctx.count("train_reused")
        return train_block(out, recipe, None, reused=str(out))
    if out.exists() and not (same and not args.retrain):
        shutil.rmtree(out)  # another config, data or --retrain: start afresh
    resume = same and out.exists() and (out / "checkpoints").is_dir()
    out.mkdir(parents=True, exist_ok=True)
    key_path.write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
    if resume:
        cmd.append("--resume")
    load = os.getloadavg()[0]
    wall, rss = run(cmd, log, ctx.env)
    ctx.count("trained")
    block = train_block(out, recipe, rss, wall=wall, command=" ".join(shlex.quote(c) for c in cmd[2:]))
    block["load_average_at_start"] = round(load, 2)
    return block


def train_block(out: Path, recipe: dict[str, Any], rss: float | None, reused: str | None = None,
                wall: float | None = None, command: str | None = None) -> dict[str, Any]:
    summary = json.loads((out / "train_summary.json").read_text(encoding="utf-8"))
    steps = int(summary["steps"])
    per_epoch = per_epoch_steps(int(summary["train_images"]), int(recipe["batch_size"]))
    block: dict[str, Any] = {
        "run_dir": str(out), "model_dir": str(out / "model"), "steps": steps,
        "epochs": round(steps / per_epoch, 3), "train_images": summary["train_images"],
        "seconds": summary.get("seconds_this_run"), "wall_seconds": round(wall, 1) if wall else None,
        "peak_rss_mb": round(rss, 1) if rss else None, "recipe": recipe, "reused_from": reused,
        "command": command, "heldout": summary.get("heldout"), "resumed_from": summary.get("resumed_from"),
        "log": str(out / "metrics.jsonl"),
    }
    if summary.get("resumed_from"):
        block["note"] = (f"resumed from step {summary['resumed_from']}: the time is that of the last part only")
    if rss is None:
        block["peak_rss_note"] = "reused run: its training process was not measured by this bench"
    return block


def per_epoch_steps(n_train: int, batch: int) -> int:
    from fakereasoning.train.data import Schedule

    return Schedule(n_train, batch, 1, 0).per_epoch


# --- evaluation -------------------------------------------------------------------------------------------
def evaluate_row(ctx: Ctx, entry: Entry, row: str, mode: str, model_dir: Path, dataset: str, view: str
                 ) -> tuple[Path, float | None]:
    """Evaluate one row on one dataset and view (skipped when an identical evaluation exists); returns the
    output folder and the evaluate process's peak RSS (None when reused)."""
    args, info = ctx.args, ctx.datasets[dataset]
    out = ctx.work / "eval" / row / f"{dataset}-{view}"
    per_class = args.full_per_class if mode == "full" and args.full_per_class else args.max_per_class
    opts = [*(["--max-per-class", str(per_class)] if per_class else []), *VIEWS[view],
            "--bootstrap", str(args.bootstrap), "--seed", str(args.seed)]
    if info["calibration"]:
        opts += ["--calibrate", info["calibration"][0]]
    if entry.family == "fakereasoning":
        cmd = [*FR, "evaluate", "--model", str(model_dir), "--mode", mode]
    else:
        cmd = [*FR, "baseline", "evaluate", "--kind", str(entry.kind), "--model", str(model_dir)]
    key = {"cmd": cmd[2:], "options": opts, "data_root": info["root"],
           "data": data_fingerprint(Path(info["root"])), "weights": file_sha256(model_dir / "model.safetensors")}
    cmd += ["--data", info["root"], "--out", str(out), *opts]
    key_path = out.parent / f"{out.name}.{BENCH_KEY}"
    if key_path.is_file() and (out / "metrics.json").is_file() and (out / "predictions.jsonl").is_file() \
            and json.loads(key_path.read_text(encoding="utf-8")) == key:
        say(f"[{row}] {dataset}/{view}: reusing {out}")
        ctx.count("eval_reused")
        rss_path = out.parent / f"{out.name}.rss"
        return out, float(rss_path.read_text()) if rss_path.is_file() else None
    key_path.unlink(missing_ok=True)
    _, rss = run(cmd, out.parent / f"{out.name}.log", ctx.env)
    key_path.write_text(json.dumps(key, indent=1) + "\n")
    (out.parent / f"{out.name}.rss").write_text(f"{rss:.1f}\n")
    ctx.count("evaluated")
    return out, rss


def stats_prior_weight(model_dir: Path) -> float | None:
    """max |w| of the statistics prior's read-out in a saved model (None: the model has none)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        keys = [k for k in f.keys() if "stats_prior" in k]
        if not keys:
            return None
        return max(float(f.get_tensor(k).abs().max()) for k in keys)


def bench_entry(ctx: Ctx, entry: Entry) -> dict[str, dict[str, Any]]:
    """Train and evaluate one entry; its rows, each with numbers or an explicit reason."""
    args = ctx.args
    rows: dict[str, dict[str, Any]] = {}
    about = dict(entry.about)
    if entry.family == "baseline":
        about[entry.name] = BASELINE_ABOUT[str(entry.kind)]
    for row, mode in entry.rows:
        rows[row] = {"entry": entry.name, "family": entry.family, "mode": mode, "about": about[row], "eval": {},
                     "missing": {}, "checks": []}
    try:
        train = train_entry(ctx, entry)
    except Exception as exc:  # one failed entry must not lose the others: its rows say why
        for r in rows.values():
            r["error"] = f"training failed: {str(exc).splitlines()[0]}"
            r["error_detail"] = str(exc)
            r["missing"] = {f"{d}:{v}": "training failed (see results.json)" for d in ctx.datasets for v in VIEWS}
        say(f"[{entry.name}] training FAILED: {exc}")
        return rows
    model_dir = Path(train["model_dir"])
    if entry.family == "fakereasoning":
        w = stats_prior_weight(model_dir)
        check = ("statistics prior: none in this model" if w is None else
                 f"statistics prior read-out after training: max |w| = {w:.3g}"
                 + (" (still zero: it received no gradient)" if w == 0 else ""))
        for r in rows.values():
            r["checks"].append(check.capitalize() + ".")
    for row, mode in entry.rows:
        rows[row]["train"] = train
        for dataset in ctx.datasets:
            for view in VIEWS:
                if mode == "full" and view not in args.full_views:
                    rows[row]["missing"][f"{dataset}:{view}"] = (
                        "full mode not run in this view (--full-views): its verdicts and p(fake) are those of "
                        "fakereasoning-fast by construction (checked on the native view)")
                    continue
                try:
                    out, rss = evaluate_row(ctx, entry, row, mode, model_dir, dataset, view)
                except Exception as exc:
                    rows[row]["missing"][f"{dataset}:{view}"] = f"evaluation failed: {str(exc).splitlines()[0]}"
                    say(f"[{row}] {dataset}/{view} FAILED: {exc}")
                    continue
                info = ctx.datasets[dataset]
                rows[row]["eval"].setdefault(dataset, {})[view] = report.summarise_eval(
                    out, info["heldout"], info["calibration"], args.bootstrap, args.seed)
                rows[row]["eval"][dataset][view]["out"] = str(out)
                if dataset == "public" and view == "native":
                    rows[row]["images_per_s"] = report.throughput(out / "predictions.jsonl")
                    rows[row]["eval_peak_rss_mb"] = round(rss, 1) if rss else None
    return rows


BASELINE_ABOUT = {
    "univfd": "UnivFD-style baseline (docs/baselines.md): a linear probe on frozen ImageNet EfficientNet-Lite0 "
    "features of the whole image resized to 224 (the original probes CLIP ViT-L/14, not available offline); its "
    "own recipe: lr 1e-3, no augmentation (as the original), so each training image's features are computed "
    "once and cached.",
    "npr": "NPR-style baseline: a small residual CNN trained from scratch on neighbouring-pixel residuals (and a "
    "Laplacian) of native 128-pixel crops; its own recipe: lr 1e-3, random crops and flips.",
    "cnnspot": "CNNSpot-style baseline: ImageNet EfficientNet-Lite0 fine-tuned end to end on native 224-pixel "
    "crops; its own recipe: lr 1e-4, Blur+JPEG (0.5) augmentation, random crops and flips.",
}


# --- main ---------------------------------------------------------------------------------------------------
def parse_lr(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--baseline-lr {item!r}: use KIND=LR, e.g. npr=5e-4")
        out[kind] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--protocol" in argv:  # `--protocol lofo ...`: the leave-family-out protocol (bench/lofo.py), its options
        i = argv.index("--protocol")
        protocol = argv[i + 1] if i + 1 < len(argv) else ""
        if protocol == "lofo":
            import lofo

            return lofo.main(argv[:i] + argv[i + 2 :])
        if protocol != "heldout":
            raise SystemExit(f"bench/run.py: --protocol must be heldout or lofo, got {protocol!r}")
        argv = argv[:i] + argv[i + 2 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="MMFR-Public root (training data and held-out sets)")
    ap.add_argument("--local", type=Path, default=None, help="also evaluate on this MMFR-Local root's sets")
    ap.add_argument("--work", type=Path, default=None, help="runs and evaluations (default runs/bench[-quick])")
    ap.add_argument("--out", type=Path, default=None, help="results.json / RESULTS.md (default bench/, "
                    "or WORK/out with --quick)")
    ap.add_argument("--epochs", type=float, default=None, help="epochs for every entry (default: the "
                    "recipe's optim.epochs)")
    ap.add_argument("--quick", action="store_true", help="minutes: --max-steps 3, 6 images per class, "
                    "200 resamples; a smoke test, not a result")
    ap.add_argument("--max-steps", type=int, default=None, help="fixed steps instead of epochs (for --quick)")
    ap.add_argument("--max-per-class", type=int, default=None, help="evaluation images per class per set")
    ap.add_argument("--full-per-class", type=int, default=None, help="images per class per set in full mode")
    ap.add_argument("--full-views", default=",".join(VIEWS), help="views evaluated in full mode (comma-separated; "
                    "default all; full mode's p(fake) is fast mode's, checked per view)")
    ap.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="evaluation sampling and bootstrap seed")
    ap.add_argument("--reuse-default", type=Path, default=None, metavar="RUN_DIR",
                    help="a finished `fakereasoning train` output to use as the FakeReasoning entry if its "
                    "train_config.json and data match")
    ap.add_argument("--baseline-lr", action="append", default=[], metavar="KIND=LR", help="a baseline's "
                    "learning rate (default: its kind's)")
    ap.add_argument("--heldout", default=None, help="held-out sets (default: from the manifest's roles)")
    ap.add_argument("--calibration", default=None, help="calibration sets (default: from the manifest's roles)")
    ap.add_argument("--only", default=None, help="comma-separated entries to run (default: all)")
    ap.add_argument("--retrain", action="store_true", help="train every entry afresh (no reuse)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per job (default: the recipe's)")
    ap.add_argument("--jobs", type=int, default=1, help="entries trained and evaluated at once")
    ap.add_argument("--notes", type=Path, default=None, help="Markdown appended to RESULTS.md as its notes")
    args = ap.parse_args(argv)

    from fakereasoning.train.config import load_config

    recipe = load_config(CONFIG)
    if args.quick:
        args.max_steps = args.max_steps or 3
        args.max_per_class = args.max_per_class or 6
        args.full_per_class = args.full_per_class or 3
        args.bootstrap = 200 if args.bootstrap is None else args.bootstrap
    args.bootstrap = 1000 if args.bootstrap is None else args.bootstrap
    args.epochs = float(args.epochs or recipe.optim.epochs)
    args.batch_size = recipe.optim.batch_size  # every entry, baselines too
    args.baseline_lr = parse_lr(args.baseline_lr)
    args.full_views = [v for v in args.full_views.split(",") if v]
    unknown_views = sorted(set(args.full_views) - set(VIEWS))
    if unknown_views:
        raise SystemExit(f"--full-views: unknown view(s) {unknown_views}; views: {', '.join(VIEWS)}")
    work = (args.work or ROOT / "runs" / ("bench-quick" if args.quick else "bench")).resolve()
    out_dir = (args.out or (work / "out" if args.quick else ROOT / "bench")).resolve()
    data = args.data.resolve()
    entries = ENTRIES
    if args.only:
        wanted = [s for s in args.only.split(",") if s]
        names = [e.name for e in ENTRIES]
        bad = sorted(set(wanted) - set(names))
        if bad:
            raise SystemExit(f"--only: unknown entries {bad}; entries: {', '.join(names)}")
        entries = [e for e in ENTRIES if e.name in wanted]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    datasets = {"public": dataset_sets(data, args.heldout, args.calibration)}
    if args.local:
        local = args.local.resolve()
        datasets["local"] = {**dataset_sets(local, None, ""), "note": "no generator of MMFR-Local is in "
                             "MMFR-Public's training data: every set is a cross-dataset set here"}
    started, load_start = time.time(), os.getloadavg()
    say(f"fingerprinting {data} ...")
    fingerprint = data_fingerprint(data)
    datasets["public"]["fingerprint"] = fingerprint
    if args.local:
        datasets["local"]["fingerprint"] = data_fingerprint(Path(datasets["local"]["root"]))
    ctx = Ctx(args, data, work, fingerprint, env, datasets)
    work.mkdir(parents=True, exist_ok=True)

    rows: dict[str, dict[str, Any]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {e.name: pool.submit(bench_entry, ctx, e) for e in entries}
        results_by_entry = {name: f.result() for name, f in futures.items()}
    for e in entries:  # table order = ENTRIES order, whatever finished first
        rows.update(results_by_entry[e.name])

    full, fast = rows.get("fakereasoning-full"), rows.get("fakereasoning-fast")
    reasoning = None
    if full and fast:
        full["full_vs_fast"] = {}
        for view in VIEWS:
            a = (full["eval"].get("public") or {}).get(view)
            b = (fast["eval"].get("public") or {}).get(view)
            if a and b:
                d = report.prob_difference(Path(a["out"]) / "predictions.jsonl", Path(b["out"]) / "predictions.jsonl")
                full["full_vs_fast"][view] = d
                full["checks"].append(
                    f"Full vs fast mode, {view}, on the {d['images']} images both scored: largest |p(fake) "
                    f"difference| {report._f(d['max_abs_diff'], 6)}, {d['verdicts_differing']} verdicts differing.")
        reasoning = {v: e.get("reasoning") for v, e in (full["eval"].get("public") or {}).items()}
    for r in rows.values():
        if r.get("train"):
            dest = out_dir / "results" / "convergence" / r["entry"]
            dest.mkdir(parents=True, exist_ok=True)
            run_dir = Path(r["train"]["run_dir"])
            for name in ("metrics.jsonl", "train_config.json", "train_summary.json", "calibration.json"):
                if (run_dir / name).is_file():
                    shutil.copy2(run_dir / name, dest / name)
            r["train"]["logs"] = str(dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "src", "configs"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    trained = [r["train"] for r in rows.values() if r.get("train")]
    datasets["public"]["train_images"] = trained[0]["train_images"] if trained else None
    import torch

    import fakereasoning

    results = {
        "command": "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "commit": commit.stdout.strip() or None,
        "dirty": bool(dirty),
        "version": getattr(fakereasoning, "__version__", None),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} / {platform.processor() or platform.machine()} / {os.cpu_count()} CPUs / "
                   f"Python {platform.python_version()} / torch {torch.__version__}",
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "wall_seconds": round(time.time() - started, 1),
        "recipe": {"quick": args.quick, "epochs": None if args.max_steps else args.epochs, "max_steps": args.max_steps,
                   "batch_size": args.batch_size, "threads": args.threads, "jobs": args.jobs,
                   "max_per_class": args.max_per_class, "full_per_class": args.full_per_class,
                   "full_views": args.full_views, "bootstrap": args.bootstrap, "seed": args.seed,
                   "fakereasoning_config": str(CONFIG.relative_to(ROOT))},
        "views": {"native": "native pixels", "jpeg95": "every image re-encoded as JPEG quality 95 (--perturb jpeg:95)"},
        "datasets": datasets,
        "cache": ctx.counts,
        "reasoning": reasoning,
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    notes = args.notes.read_text(encoding="utf-8") if args.notes else None
    (out_dir / "RESULTS.md").write_text(report.markdown(results, notes))
    say(f"wrote {out_dir / 'results.json'} and {out_dir / 'RESULTS.md'} ({results['wall_seconds'] / 60:.1f} min)")
    failed = [n for n, r in rows.items()
              if r.get("error") or any("failed" in v for v in r["missing"].values())]
    if failed:
        say(f"entries with failures: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
