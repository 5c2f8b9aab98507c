"""`fakereasoning detect IMAGE|DIR|GLOB ...`: verdicts with their reasoning, readable or JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fakereasoning.cli._args import add_crops_option, positive_int
from fakereasoning.paths import MODEL_CARD
from fakereasoning.schema import DEFAULT_MODE, FORGERY_ATTRIBUTES, LIMITS_NOTE, prob_words


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="tell whether images are AI-generated, with reasoning",
        description="Detect images, folders (recursive) or glob patterns. Exit 1 if any input failed.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|GLOB")
    p.add_argument("--model", type=Path, default=None,
                   help="model folder, or a `train --output` / checkpoint folder (default: the shipped model)")
    p.add_argument("--mode", choices=("fast", "full"), default=DEFAULT_MODE,
                   help="full: generate the reasoning (default); fast: probability only, one forward pass")
    p.add_argument("--json", action="store_true", help="print one Verdict JSON object per line")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--max-new-tokens", type=positive_int, default=512, help="full mode: generation budget")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="full mode: 0 (default) = greedy, the same text every run and at any batch size; > 0 samples "
                        "which of the findings the measurements support are stated")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    add_crops_option(p)
    p.set_defaults(handler=cmd_detect)


def _readable(record: dict) -> str:
    lines = [f"{record['image']}",
             f"  verdict: {record['label'].upper()}  (p(fake) = {record['prob_fake']:.3f}: {prob_words(record['prob_fake'])})"]
    measured = record.get("measurements")
    if measured:
        shown = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in measured.items() if k not in ("width", "height"))
        lines.append(f"  measured (computed on the image, not written by the model): {shown}")
    if record.get("caption"):
        lines.append(f"  caption: {record['caption']}")
    if record.get("attributes"):
        lines.append("  model-written reasoning (each finding restates a measured value above):")
    for name, text in (record.get("attributes") or {}).items():
        mark = "forgery " if name in FORGERY_ATTRIBUTES else "authentic"
        lines.append(f"  [{mark}] {name}: {text}")
    if record.get("elapsed_ms") is not None:
        lines.append(f"  ({record['elapsed_ms']:.0f} ms, model {record.get('model_id')})")
    return "\n".join(lines)


def cmd_detect(args: argparse.Namespace) -> int:
    from fakereasoning.infer import LazyModel, detect_paths

    model = LazyModel(args.model, device=args.device, crops=args.crops)  # loads only once an input decodes
    failed = 0
    kwargs = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature} if args.mode == "full" else {}
    for result in detect_paths(model, args.inputs, mode=args.mode, batch_size=args.batch_size,
                               progress=True, **kwargs):
        record = result.to_dict()
        failed += result.error is not None
        if args.json:  # the record for programs on stdout, the line for people on stderr
            print(json.dumps(record, ensure_ascii=False), flush=True)
        elif result.error is None:
            print(_readable(record), flush=True)
        if result.error is not None:  # readable mode: once, on stderr
            print(f"fakereasoning: error: {result.error}", file=sys.stderr, flush=True)
    if not args.json and model.loaded:  # what the verdicts above are worth, once
        card = model.path / MODEL_CARD
        where = f"model card: {card}" if card.is_file() else f"this model has no {MODEL_CARD}"
        print(f"note: {LIMITS_NOTE} ({where})")
    return 1 if failed else 0
