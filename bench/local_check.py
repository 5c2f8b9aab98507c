"""Is MMFR-Local neither trivial nor impossible? Train simple detectors on its training set, test per set.

Detectors (both see only pixels):
- `spectrum`: logistic regression on the log amplitude spectrum of the noise residual (grey, 3x3 high-pass),
  pooled to 16 x 16 bins of the centred 2-D FFT.
- `cnn`: a tiny NPR-style residual CNN (neighbouring-pixel residuals -> 3 conv layers -> pooled logit)
  trained for a fixed time budget on random 64 x 64 crops.
Writes JSON: per evaluation set accuracy, real / fake accuracy and ROC-AUC, plus which sets are seen.

    .venv/bin/python bench/local_check.py DATASET --out bench/results/local_check.json [--cnn-seconds 180]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fakereasoning.data.mmfr import scan  # noqa: E402
from fakereasoning.fsio import atomic_write_json  # noqa: E402
from fakereasoning.imageio import load_image_array  # noqa: E402


def _load(records: list) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([load_image_array(r.path) for r in records])
    labels = np.array([1 if r.label == "fake" else 0 for r in records])
    return images, labels


def spectrum_features(images: np.ndarray, bins: int = 16) -> np.ndarray:
    from scipy import ndimage

    feats = []
    for img in images:
        g = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        r = g - ndimage.uniform_filter(g, 3)
        spec = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(r))))
        h, w = spec.shape
        pooled = spec[: h // bins * bins, : w // bins * bins].reshape(bins, h // bins, bins, w // bins).mean((1, 3))
        feats.append(pooled.ravel())
    return np.asarray(feats)


def _metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    pred = scores >= 0.5
    out = {
        "acc": float((pred == labels).mean()),
        "real_acc": float((~pred[labels == 0]).mean()),
        "fake_acc": float(pred[labels == 1].mean()),
    }
    out["auc"] = float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")
    return out


def run_spectrum(train: tuple, sets: dict[str, tuple]) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(spectrum_features(train[0]), train[1])
    result = {"train": _metrics(clf.predict_proba(spectrum_features(train[0]))[:, 1], train[1])}
    for name, (x, y) in sets.items():
        result[name] = _metrics(clf.predict_proba(spectrum_features(x))[:, 1], y)
    return result


def run_cnn(train: tuple, sets: dict[str, tuple], seconds: float, seed: int = 0) -> dict[str, dict[str, float]]:
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class NPR(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(64, 1, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # NPR: the image minus its own nearest-neighbour x2 down-up copy (upsampling traces)
            down = F.interpolate(x, scale_factor=0.5, mode="nearest")
            npr = x - F.interpolate(down, scale_factor=2.0, mode="nearest")
            return self.net(npr * 10.0).mean(dim=(1, 2, 3))

    def tensor(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float() / 255.0

    x_train, y_train = tensor(train[0]), torch.from_numpy(train[1]).float()
    model = NPR()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crop = 64
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        idx = torch.from_numpy(rng.integers(0, len(x_train), 32))
        oy, ox = (int(v) // 2 * 2 for v in rng.integers(0, x_train.shape[2] - crop + 1, 2))
        batch = x_train[idx, :, oy : oy + crop, ox : ox + crop]
        loss = F.binary_cross_entropy_with_logits(model(batch), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()

    def scores(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([torch.sigmoid(model(tensor(images[i : i + 64]))) for i in range(0, len(images), 64)]).numpy()

    result: dict[str, dict[str, float]] = {"train": _metrics(scores(train[0]), train[1])}
    for name, (x, y) in sets.items():
        result[name] = _metrics(scores(x), y)
    result["_steps"] = {"steps": float(steps), "seconds": float(seconds)}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench/results/local_check.json"))
    ap.add_argument("--cnn-seconds", type=float, default=180.0, help="training budget of the CNN (0 = skip)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    index = scan(args.dataset)
    manifest = json.loads((args.dataset / "manifest.json").read_text())
    seen = {g["name"] for g in manifest["generators"] if g["in_training"]}
    t0 = time.perf_counter()
    train = _load(index.train)
    sets = {name: _load(records) for name, records in sorted(index.evaluation_sets.items())}
    report: dict = {
        "dataset": str(args.dataset),
        "preset": manifest.get("preset"),
        "seen_families": sorted(seen),
        "unseen_families": sorted(set(sets) - seen),
        "train_images": int(len(train[1])),
        "eval_images": {k: int(len(v[1])) for k, v in sets.items()},
        "psnr": {g["name"]: g["psnr_mean"] for g in manifest["generators"]},
        "note": "timings on a shared 2-core machine (contended)",
    }
    t1 = time.perf_counter()
    report["spectrum_logreg"] = run_spectrum(train, sets)
    report["spectrum_logreg_seconds"] = round(time.perf_counter() - t1, 1)
    if args.cnn_seconds > 0:
        report["npr_cnn"] = run_cnn(train, sets, args.cnn_seconds)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(args.out, report)
    for det in ("spectrum_logreg", "npr_cnn"):
        if det in report:
            print(det)
            for name, m in report[det].items():
                if not name.startswith("_"):
                    tag = "seen" if name in seen else ("train" if name == "train" else "UNSEEN")
                    print(f"  {name:16s} {tag:6s} acc {m['acc']:.3f} real {m['real_acc']:.3f} fake {m['fake_acc']:.3f} auc {m['auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
