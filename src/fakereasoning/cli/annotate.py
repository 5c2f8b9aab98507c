"""`fakereasoning annotate prepare|run|collect`: the MMFR annotation pipeline (spec section 4)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

LABEL_CHOICES = ("real", "fake")


def _add_image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGES",
        help="image files and/or folders (searched recursively)",
    )
    p.add_argument(
        "--label",
        choices=LABEL_CHOICES,
        help="true label of all images (default: from each image's 0_real/ or 1_fake/ folder)",
    )
    p.add_argument(
        "--root",
        type=Path,
        help="make each custom_id the image path relative to ROOT (default: relative to the folder above "
        "the set folder, e.g. evaluation_sets/, so keys look like <set>/0_real/x.png)",
    )
    p.add_argument(
        "--max-image-bytes", type=int, default=None, help="JPEG byte cap per image (default 1000000)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def register(sub: argparse._SubParsersAction) -> None:
    from fakereasoning.annotate.prompts import DEFAULT_MODEL

    annotate = sub.add_parser(
        "annotate",
        help="annotate images with forgery reasoning through a VLM (Batch API or online) or offline evidence",
        description="The MMFR annotation pipeline: prepare -> (Batch API | run) -> collect. See docs/annotate.md.",
    )
    a_sub = annotate.add_subparsers(dest="annotate_command", metavar="ANNOTATE_COMMAND")
    a_sub.required = True

    p = a_sub.add_parser(
        "prepare",
        help="write OpenAI Batch-API request files (JSONL) for images",
        description="Write requests_NNNN.jsonl files of /v1/chat/completions requests (image as a JPEG data URL).",
    )
    _add_image_args(p)
    p.add_argument("--out", type=Path, required=True, help="output folder for the request files")
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name in each request (default {DEFAULT_MODEL})"
    )
    p.add_argument("--per-file", type=int, default=50, help="requests per file (default 50)")
    p.set_defaults(handler=cmd_prepare)

    p = a_sub.add_parser(
        "run",
        help="annotate online through an OpenAI-compatible endpoint, or offline with --backend evidence",
        description="Write Batch-API-format output lines to OUTPUT.jsonl; rerun the same command to resume. "
        "IMAGES may instead be request files written by `annotate prepare` (*.jsonl), sent as they are.",
    )
    _add_image_args(p)
    p.add_argument(
        "--out", type=Path, required=True, help="output JSONL (appended to; answered images are skipped)"
    )
    p.add_argument(
        "--backend",
        choices=("openai", "evidence"),
        default="openai",
        help="VLM endpoint or offline evidence annotator",
    )
    p.add_argument(
        "--base-url",
        default=None,
        help="endpoint base URL including /v1 (default: $OPENAI_BASE_URL or https://api.openai.com/v1)",
    )
    p.add_argument(
        "--model", default=None, help=f"model name (default {DEFAULT_MODEL}; request files: their own model)"
    )
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument(
        "--max-rps", type=float, default=0.0, help="at most this many request starts per second (0: no limit)"
    )
    p.add_argument(
        "--max-retries", type=int, default=5, help="retries on 429/5xx/transport errors (default 5)"
    )
    p.add_argument(
        "--backoff", type=float, default=1.0, help="first retry delay in seconds, doubled each retry"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the evidence annotator")
    p.set_defaults(handler=cmd_run)

    p = a_sub.add_parser(
        "collect",
        help="output control: turn Batch-API output files into an MMFR *_reasoning.json",
        description="Parse answers safely (JSON, else Python literals; never eval), keep those that agree "
        "with the label, and write the reasoning JSON keyed by custom_id.",
    )
    p.add_argument(
        "outputs",
        nargs="+",
        type=Path,
        metavar="OUTPUT.jsonl",
        help="Batch API or `annotate run` output files",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="reasoning JSON to write (e.g. evaluation_sets/<set>/<set>_reasoning.json)",
    )
    p.add_argument(
        "--label",
        choices=LABEL_CHOICES,
        help="true label of all images (default: from the custom_id's folder)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(handler=cmd_collect)


def _jobs(args: argparse.Namespace) -> list:
    from fakereasoning.annotate.batch import plan_images

    return plan_images(args.images, label=args.label, root=args.root)


def _image_bytes(args: argparse.Namespace) -> int:
    from fakereasoning.annotate.batch import DEFAULT_MAX_IMAGE_BYTES

    return DEFAULT_MAX_IMAGE_BYTES if args.max_image_bytes is None else args.max_image_bytes


def cmd_prepare(args: argparse.Namespace) -> int:
    from fakereasoning.annotate.batch import prepare

    result = prepare(
        _jobs(args),
        args.out,
        model=args.model,
        per_file=args.per_file,
        max_image_bytes=_image_bytes(args),
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        for image, reason in result.skipped:
            print(f"skipped {image}: {reason}", file=sys.stderr)
        print(
            f"{result.requests} requests in {len(result.files)} files under {args.out} ({len(result.skipped)} images skipped)"
        )
    return 0 if result.requests else 1


def cmd_run(args: argparse.Namespace) -> int:
    from fakereasoning.annotate.batch import AnnotateError
    from fakereasoning.annotate.online import OnlineSettings, plan_requests, run_evidence, run_online

    request_files = [p for p in args.images if p.suffix == ".jsonl"]
    if request_files and len(request_files) != len(args.images):
        raise AnnotateError("give either images/folders or prepared request files (*.jsonl), not both")
    if request_files and args.backend == "evidence":
        raise AnnotateError("--backend evidence reads images, not request files")
    jobs = plan_requests(request_files) if request_files else _jobs(args)
    if args.backend == "evidence":
        summary = run_evidence(jobs, args.out, seed=args.seed, progress=not args.json)
    else:
        settings = OnlineSettings(
            base_url=args.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            model=args.model,
            api_key=os.environ.get(args.api_key_env) or None,
            concurrency=args.concurrency,
            max_rps=args.max_rps,
            max_retries=args.max_retries,
            backoff_s=args.backoff,
            timeout_s=args.timeout,
            max_image_bytes=_image_bytes(args),
        )
        summary = run_online(jobs, args.out, settings, progress=not args.json)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        print(summary.text())
    if summary.failed:
        print(f"{summary.failed} images failed; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from fakereasoning.annotate.batch import AnnotateError
    from fakereasoning.annotate.control import collect, write_annotations

    result = collect(args.outputs, label=args.label)
    if args.json:
        print(
            json.dumps(
                {**result.to_dict(), "out": str(args.out) if result.kept else None}, ensure_ascii=False
            )
        )
    else:
        print(result.text())
    if not result.kept:
        raise AnnotateError(
            f"{', '.join(map(str, args.outputs))}: no answer passed the output control; nothing written"
        )
    write_annotations(args.out, result.annotations)
    if not args.json:
        print(f"wrote {result.kept} annotations to {args.out}")
    return 0
