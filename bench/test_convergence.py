"""Unit tests of the convergence bench's own logic (no training): `pytest bench/test_convergence.py`.

The end-to-end check is `bench/run.py --quick`; these pin the pieces a quick run cannot show wrong: cache
keys, reuse of a default run, set roles, the held-out mean (calibration set excluded) and the report.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


run = _load("run")
report = _load("convergence_report")


def _tree(root: Path) -> Path:
    for s in ("gemini", "flux_dits", "calib_mixed"):
        for c in ("0_real", "1_fake"):
            (root / "evaluation_sets" / s / c).mkdir(parents=True)
            (root / "evaluation_sets" / s / c / "a.png").write_bytes(b"x" * 10)
    (root / "manifest.json").write_text(json.dumps({"evaluation_sets": [
        {"name": "gemini", "role": "held_out"}, {"name": "flux_dits", "role": "held_out"},
        {"name": "calib_mixed", "role": "calibration"}]}))
    return root


def test_fingerprint_changes_with_files_and_json(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d")
    a = run.data_fingerprint(root)
    run._fingerprints.clear()
    assert run.data_fingerprint(root) == a
    (root / "evaluation_sets/gemini/1_fake/b.png").write_bytes(b"y")
    run._fingerprints.clear()
    b = run.data_fingerprint(root)
    assert b != a
    (root / "manifest.json").write_text((root / "manifest.json").read_text() + " ")
    run._fingerprints.clear()
    assert run.data_fingerprint(root) != b


def test_set_roles_from_manifest_and_options(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d")
    sets = run.dataset_sets(root, None, None)
    assert sets["heldout"] == ["flux_dits", "gemini"] and sets["calibration"] == ["calib_mixed"]
    (root / "manifest.json").unlink()
    assert run.dataset_sets(root, None, None)["calibration"] == ["calib_mixed"]  # calib* by name
    assert run.dataset_sets(root, "gemini", "")["heldout"] == ["gemini"]


def test_config_hash_ignores_run_only_keys() -> None:
    a = run.fr_config(["optim.epochs=3"], Path("/data/a"), None)
    b = run.fr_config(["optim.epochs=3", "run.threads=1", "run.save_every=7"], Path("/data/b"), None)
    assert run.normalised_config(a) == run.normalised_config(b)
    c = run.fr_config(["optim.epochs=3", "model.use_facl=false"], Path("/data/a"), None)
    assert run.config_diff(run.normalised_config(a), run.normalised_config(c)) == ["model.use_facl: True != False"]


def test_reuse_default_only_when_config_and_data_match(tmp_path: Path) -> None:
    data = _tree(tmp_path / "d")
    cfg = run.fr_config(["optim.epochs=3"], data, None)
    default = tmp_path / "default"
    (default / "model").mkdir(parents=True)
    (default / "model/model.safetensors").write_bytes(b"w")
    (default / "model/config.json").write_text("{}")
    (default / "train_summary.json").write_text(json.dumps({"steps": 5, "train_images": 80, "resumed_from": 0}))
    (default / "train_config.json").write_text(json.dumps({**cfg, "run": {**cfg["run"], "threads": 2}}))
    run._fingerprints.clear()
    fp = run.data_fingerprint(data)
    assert run.check_default(default, cfg, fp) is None
    assert "data fingerprint differs" in run.check_default(default, cfg, "0" * 64)
    other = run.fr_config(["optim.epochs=2"], data, None)
    assert "optim.epochs: 3.0 != 2.0" in run.check_default(default, other, fp)


def _eval_dir(out: Path, probs: dict[str, tuple[list[int], list[float]]]) -> Path:
    from fakereasoning.evaluate.stats import bootstrap_intervals

    out.mkdir(parents=True)
    rows, sets = [], {}
    for name, (y, p) in probs.items():
        for i, (yi, pi) in enumerate(zip(y, p, strict=True)):
            rows.append({"set": name, "image": f"{name}/{i}", "truth": "fake" if yi else "real", "prob_fake": pi,
                         "label": "fake" if pi >= 0.5 else "real", "failed": False, "elapsed_ms": 10.0})
        ya, pa = np.array(y), np.array(p)
        pred = pa >= 0.5
        sets[name] = {"bal_acc": float(((pred[ya == 1]).mean() + (~pred[ya == 0]).mean()) / 2), "auc": 0.5,
                      "acc": float((pred == ya).mean()), "ece": 0.1, "ap": 0.5, "n_real": int((ya == 0).sum()),
                      "n_fake": int((ya == 1).sum())}
    by_set = {n: (np.array(y), np.array(p)) for n, (y, p) in probs.items()}
    iv = bootstrap_intervals(by_set, {"mean": list(probs)}, None, 100, 0)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "metrics.json").write_text(json.dumps({"mode": "fast", "sets": sets, "intervals": iv, "threshold": None}))
    return out


def test_heldout_mean_excludes_calibration_set(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = [0] * 20 + [1] * 20
    probs = {"gemini": (y, list(rng.uniform(0, 1, 40))), "flux_dits": (y, [0.9] * 40),
             "calib_mixed": (y, [0.1] * 20 + [0.9] * 20)}
    out = _eval_dir(tmp_path / "e", probs)
    s = report.summarise_eval(out, ["gemini", "flux_dits"], ["calib_mixed"], 100, 0)
    m = s["heldout_mean"]
    assert m["sets"] == ["gemini", "flux_dits"]
    assert m["bal_acc"] == (s["sets"]["gemini"]["bal_acc"] + 0.5) / 2  # calib_mixed's 1.0 left out
    assert m["bal_acc_ci"][0] <= m["bal_acc"] <= m["bal_acc_ci"][1]
    assert set(s["calibration"]) == {"calib_mixed"} and s["calibration"]["calib_mixed"]["bal_acc"] == 1.0
    assert s["sets"]["gemini"]["bal_acc_ci"] is not None
    assert report.throughput(out / "predictions.jsonl") == 100.0
    d = report.prob_difference(out / "predictions.jsonl", out / "predictions.jsonl")
    assert d == {"images": 120, "max_abs_diff": 0.0, "verdicts_differing": 0}


def test_markdown_gives_every_row_numbers_or_a_reason(tmp_path: Path) -> None:
    y = [0] * 5 + [1] * 5
    out = _eval_dir(tmp_path / "e", {"gemini": (y, [0.2] * 5 + [0.8] * 5), "calib_mixed": (y, [0.4] * 10)})
    e = report.summarise_eval(out, ["gemini"], ["calib_mixed"], 50, 0)
    train = {"steps": 10, "epochs": 3.0, "seconds": 300.0, "peak_rss_mb": 900.0, "logs": "bench/results/x"}
    rows = {
        "fakereasoning-fast": {"family": "fakereasoning", "about": "FR fast.", "train": train,
                               "eval": {"public": {"native": e, "jpeg95": e}}, "missing": {}, "checks": []},
        "npr": {"family": "baseline", "about": "NPR.", "train": None, "eval": {},
                "missing": {"public:native": "training failed (see results.json)",
                            "public:jpeg95": "training failed (see results.json)"}, "checks": []},
    }
    results = {"command": "python bench/run.py --data D", "date": "d", "commit": "c", "dirty": False, "version": "0",
               "machine": "m", "load_average": {"start": [0], "end": [0]}, "wall_seconds": 60.0,
               "recipe": {"quick": False, "epochs": 3.0, "max_steps": None, "batch_size": 16, "threads": 2, "jobs": 1,
                          "max_per_class": None, "full_per_class": None, "bootstrap": 50, "seed": 0},
               "views": {"native": "", "jpeg95": ""}, "cache": {"trained": 1, "train_reused": 0, "evaluated": 2,
                                                                 "eval_reused": 0},
               "datasets": {"public": {"root": "D", "fingerprint": "f" * 64, "heldout": ["gemini"],
                                       "calibration": ["calib_mixed"], "train_images": 80}},
               "reasoning": None, "rows": rows}
    md = report.markdown(results, "A note.")
    assert "| fakereasoning-fast | 1.000 [1.000, 1.000]" in md
    assert "| npr | training failed (see results.json) |" in md
    assert "5.0 min" in md and "A note." in md
    assert "Target check (native): not enough entries" in md
