"""The MMFR annotation pipeline (spec section 4): reasoning annotations for any image collection.

`prepare` writes OpenAI Batch-API request files; `run_online` / `run_evidence` produce the same output-line
format online (any OpenAI-compatible endpoint) or offline (the evidence annotator); `collect` applies the
output control (no `eval`) and yields MMFR `*_reasoning.json` annotations.
"""

from fakereasoning.annotate.batch import AnnotateError, ImageJob, plan_images, prepare
from fakereasoning.annotate.control import collect, control_answer, write_annotations
from fakereasoning.annotate.online import OnlineSettings, RunSummary, run_evidence, run_online
from fakereasoning.annotate.prompts import build_prompt

__all__ = [
    "AnnotateError",
    "ImageJob",
    "OnlineSettings",
    "RunSummary",
    "build_prompt",
    "collect",
    "control_answer",
    "plan_images",
    "prepare",
    "run_evidence",
    "run_online",
    "write_annotations",
]
