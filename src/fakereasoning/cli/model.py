"""`fakereasoning model`: bring the published FakeReasoning checkpoint in, and say what a model needs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fakereasoning.cli._args import positive_int
from fakereasoning.models.config import PRECISIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="import the published FakeReasoning checkpoint; parameters and memory of a model")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    msub.required = True
    imp = msub.add_parser(
        "import-release", help="the authors' published checkpoint -> a `mof` model folder (safetensors + JSON)",
        description="Converts the release's folder (merged weights, or a LoRA folder with adapter_model.*, "
        "non_lora_trainables.bin and --base), the CLIP checkpoint it names and DINOv2's hub weights into one model "
        "folder that detect, evaluate, serve and train read. Pickles are read with weights_only=True; every key is "
        "mapped or dropped with its reason (OUT/import_report.json), or the import stops naming it.")
    imp.add_argument("src", type=Path, help="the release's model folder (config.json + weights or LoRA files)")
    imp.add_argument("--clip", type=Path, required=True, help="local CLIP checkpoint (clip-vit-large-patch14-336)")
    imp.add_argument("--dino", type=Path, required=True,
                     help="DINOv2 ViT-L/14 hub weights (dinov2_vitl14_pretrain.pth) or a Hugging Face DINOv2 folder")
    imp.add_argument("--out", type=Path, required=True, help="the model folder to write")
    imp.add_argument("--base", type=Path, default=None, help="a LoRA release: the base (MoF) model folder")
    imp.add_argument("--precision", choices=PRECISIONS, default="bfloat16",
                     help="how the model loads by default (int8/int4: CUDA + the [gpu] extra)")
    imp.set_defaults(handler=cmd_import)
    inf = msub.add_parser("info", help="parameters per part and the memory each precision needs",
                          description="Read from the files' headers; nothing is loaded. Memory: inference on one "
                          "image with SEQ_LEN tokens (weights + the larger working set of encoders or LM prefill).")
    inf.add_argument("model", type=Path, help="model folder (or a train --output / checkpoint folder)")
    inf.add_argument("--seq-len", type=positive_int, default=None,
                     help="tokens of prompt and answer (default: visual tokens + 64 + 512)")
    inf.add_argument("--json", action="store_true", help="one JSON object")
    inf.set_defaults(handler=cmd_info)


def cmd_import(args: argparse.Namespace) -> int:
    from fakereasoning.models.release import import_release

    report = import_release(args.src, args.clip, args.dino, args.out, base=args.base, precision=args.precision)
    dropped = ", ".join(f"{k} ({v['keys']})" for k, v in report.dropped.items()) or "none"
    print(f"imported the {report.layout} release into {args.out}: "
          + ", ".join(f"{n} {k}" for k, n in report.mapped.items()) + f"; dropped: {dropped}")
    return 0


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.2f} MiB"


def cmd_info(args: argparse.Namespace) -> int:
    from fakereasoning.models.footprint import info

    data = info(args.model, args.seq_len)
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"backbone {data['backbone']}: {data['parameters']:,} parameters")
    for part, n in sorted(data["parts"].items(), key=lambda kv: -kv[1]):
        print(f"  {part:<16} {n:>16,}")
    print(f"memory for one image, {data['seq_len']} tokens (weights + working set):")
    for precision, n in data["memory_bytes"].items():
        print(f"  {precision:<9} {_gib(n):>12}   (weights {_gib(data['weights_bytes'][precision])})")
    return 0
