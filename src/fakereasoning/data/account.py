"""What a command uses of a dataset, against what the dataset holds.

`train` and `evaluate` build a `DataAccount` before any model work: every image found (per training part or
evaluation set, and class), whether it is usable, and for each one that is not, the file and the reason.
Data that names no image it could be charged to (a conversation for a missing image, a reasoning JSON
that cannot be read and whose folder holds no image) is an item of its own. The account is printed (every
skip on its own line), written into the command's summary JSON, and refuses the command (`DataRefused`,
one line naming the causes) when more than the allowed share would be skipped: a run that silently
trains on 2 of 48 images, or scores a different set than the one asked for, is worse than no run.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from fakereasoning.data.mmfr import EVAL_DIR, REASONING_SUFFIX, ImageRecord, MMFRIndex, Problem, decode_all
from fakereasoning.errors import FakeReasoningError
from fakereasoning.imageio import is_image_path
from fakereasoning.wording import count

DEFAULT_ALLOWED_SKIPPED = 0.01  # `--allow-skipped`: the share of a dataset a command may skip
UNKNOWN_LABEL = "?"  # the class of an image whose folder gives no label


class DataRefused(FakeReasoningError):
    """More of the dataset would be skipped than allowed: nothing was trained or scored."""


@dataclass(frozen=True)
class Skip:
    """One image (or one piece of data naming no image) that the command will not use, and why."""

    item: str  # ROOT-relative image path; or FILE, FILE entry N, FILE key K for data that names no image
    reason: str  # the file it comes from and the problem, in the user's terms
    kind: str  # the reason's category, for the counts (`does not decode`, `no conversation`, ...)
    set: str = ""  # training part or evaluation set
    label: str = UNKNOWN_LABEL


@dataclass
class DataAccount:
    """Usable images and skips of one command's share of a dataset (see the module docstring)."""

    what: str  # "training" or "evaluation"
    root: str
    used: Counter[tuple[str, str]] = field(default_factory=Counter)  # (set, label) -> usable images
    skips: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # dataset errors that do not change what is used
    allowed: float = DEFAULT_ALLOWED_SKIPPED

    def use(self, record: ImageRecord) -> None:
        self.used[(record.set, record.label)] += 1

    def skip(self, item: str, reason: str, kind: str, set_name: str = "", label: str = UNKNOWN_LABEL) -> None:
        self.skips.append(Skip(item, reason, kind, set_name, label))

    @property
    def found(self) -> int:
        return sum(self.used.values()) + len(self.skips)

    @property
    def share(self) -> float:
        return len(self.skips) / self.found if self.found else 0.0

    def rows(self) -> dict[str, dict[str, dict[str, int]]]:
        """{set: {label: {found, usable, skipped}}}, sets and labels in a stable order."""
        counts: dict[tuple[str, str], list[int]] = {}
        for key, n in self.used.items():
            counts.setdefault(key, [0, 0])[0] += n
        for s in self.skips:
            counts.setdefault((s.set, s.label), [0, 0])[1] += 1
        order = {"real": 0, "fake": 1, UNKNOWN_LABEL: 2}
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (set_name, label), (used, skipped) in sorted(counts.items(), key=lambda kv: (kv[0][0],
                                                                                         order.get(kv[0][1], 3))):
            out.setdefault(set_name or "(no image)", {})[label] = {"found": used + skipped, "usable": used,
                                                                    "skipped": skipped}
        return out

    def reasons(self) -> Counter[str]:
        return Counter(s.kind for s in self.skips)

    def lines(self) -> list[str]:
        """The printed account: totals, one line per part or set, every skip, every note."""
        out = [f"{self.what} data: {count(self.found, 'image')} found, {sum(self.used.values())} usable, "
               f"{len(self.skips)} skipped ({self.share:.1%}; allowed {self.allowed:.1%})"]
        for set_name, labels in self.rows().items():
            cells = "; ".join(f"{label} {c['found']} found, {c['usable']} usable, {c['skipped']} skipped"
                              for label, c in labels.items())
            out.append(f"  {set_name}: {cells}")
        if self.skips:
            out.append("  skipped by reason: " + "; ".join(f"{kind}: {n}" for kind, n in self.reasons().most_common()))
        out += [f"skipped: {s.item}: {s.reason}" if s.reason.split(":")[0] != s.item else f"skipped: {s.reason}"
                for s in self.skips]
        out += [f"note: {n}" for n in self.notes]
        return out

    def print(self) -> None:
        for line in self.lines():
            print(f"fakereasoning: {line}", file=sys.stderr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found, "usable": sum(self.used.values()), "skipped": len(self.skips),
            "skipped_share": self.share, "allowed_skipped": self.allowed, "sets": self.rows(),
            "reasons": dict(self.reasons().most_common()), "skips": [asdict(s) for s in self.skips],
            "notes": list(self.notes),
        }

    def check(self, verb: str) -> None:
        """Raise `DataRefused` when more than the allowed share would be skipped, or nothing is usable."""
        usable = sum(self.used.values())
        if usable and self.share <= self.allowed:
            return
        causes = []
        for kind, n in self.reasons().most_common():
            first = next(s for s in self.skips if s.kind == kind)
            example = first.reason if first.reason.startswith(first.item) else f"{first.item}: {first.reason}"
            causes.append(f"{kind}: {n} (e.g. {example})")
        why = "; ".join(causes) or "the dataset holds no usable image"
        more = "" if not usable else f" (more than --allow-skipped {self.allowed:g})"
        raise DataRefused(f"{self.root}: refusing to {verb}: {len(self.skips)} of {count(self.found, 'item')} of the "
                          f"{self.what} data would be skipped ({self.share:.1%}){more}: {why}. Fix the data "
                          "(`fakereasoning data validate` lists every problem) or pass --allow-skipped FRACTION")


# --- charging a dataset's problems to the images they concern --------------------------------------------
def _top(path: str) -> str:
    return PurePosixPath(path).parts[0] if path else ""


def _set_of(path: str) -> str:
    """The training part or evaluation set a ROOT-relative path lies in."""
    parts = PurePosixPath(path).parts
    return parts[1] if parts and parts[0] == EVAL_DIR and len(parts) > 1 else (parts[0] if parts else "")


def is_reasoning_problem(problem: Problem) -> bool:
    """A problem of a `*_reasoning.json` (or of captions.json): it changes the text taught or scored, not
    which images there are or their labels."""
    return problem.path.endswith(REASONING_SUFFIX) or problem.path == "captions.json"


def charge_problems(index: MMFRIndex, problems: Iterable[Problem], records: Sequence[ImageRecord],
                    account: DataAccount, split: str) -> set[str]:
    """Charge each error of PROBLEMS to what it concerns: the image it names (among RECORDS), the images
    of a folder whose label is unknown, the unannotated images of a reasoning JSON that cannot be read;
    an error that concerns no image is a skipped item of its own. Returns the keys of charged records
    (the caller leaves them out); every skip is added to ACCOUNT."""
    by_key = {r.key: r for r in records}
    charged: dict[str, tuple[str, str]] = {}  # key -> (reason, kind)
    wanted_sets = {r.set for r in records}
    unlabelled = [u for u in index.unlabelled if u.split == split and (split == "train" or u.set in wanted_sets)]
    for u in unlabelled:
        account.skip(u.key, f"{u.key}: {u.reason}", "label unknown", u.set)
    covered = {u.key for u in index.unlabelled}
    for p in problems:
        if p.severity != "error":
            continue
        where, kind = f"{p.path}: {p.message}", _kind(p)
        if p.image is not None:
            if p.image in by_key:
                charged.setdefault(p.image, (where, kind))
            continue  # otherwise an image this command does not use
        if p.path in covered or any(k.startswith(p.path + "/") for k in covered):
            continue  # the unlabelled images above carry it (a bad label folder, an image outside one)
        if p.path in by_key:
            charged.setdefault(p.path, (where, kind))
        elif p.path.endswith(REASONING_SUFFIX) and not p.message.startswith("key "):
            folder = p.path.rsplit("/", 1)[0]  # the whole file is unusable: its images have no annotation
            lacking = [r.key for r in records if r.attributes is None and r.key.startswith(folder + "/")]
            for key in lacking:
                charged.setdefault(key, (where, "annotations unreadable"))
            if not lacking:
                account.skip(p.path, where, "annotations unreadable", _set_of(p.path))
        else:
            account.skip(p.path, where, "unusable file" if is_image_path(p.path) else kind, _set_of(p.path))
    for key, (where, kind) in charged.items():
        r = by_key[key]
        account.skip(key, where, kind, r.set, r.label)
    return set(charged)


def _kind(problem: Problem) -> str:
    if problem.path.endswith(REASONING_SUFFIX):
        return "annotation error"
    if problem.path == "captions.json":
        return "caption error"
    return "dataset error"


def decode_failures(records: Sequence[ImageRecord], progress: bool = False) -> dict[str, str]:
    """{key: problem} of RECORDS that do not decode. Under `torch.distributed` each process decodes its
    share and all of them get the whole answer, so every rank skips the same images."""
    from fakereasoning.runtime import distributed_state

    unique = sorted({r.key: r for r in records}.values(), key=lambda r: r.key)
    state = distributed_state()
    if state.num_processes == 1:
        return decode_all(unique, progress=progress)
    from accelerate.utils import gather_object

    mine = decode_all(unique[state.process_index :: state.num_processes], progress=progress)
    merged: dict[str, str] = {}
    for part in gather_object([mine]):
        merged.update(part)
    return merged


def skip_undecodable(records: Sequence[ImageRecord], account: DataAccount, progress: bool = False) -> set[str]:
    """Decode every record (each image once) and add a skip for each record whose image does not (an image
    that several sets share counts in each); returns their keys."""
    failed = decode_failures(records, progress)
    for r in records:
        if r.key in failed:
            account.skip(r.key, f"{r.key}: does not decode: {failed[r.key]}", "does not decode", r.set, r.label)
    return set(failed)


def evaluation_problems(index: MMFRIndex, sets: Iterable[str] | None = None) -> list[Problem]:
    """The errors of `evaluation_sets/`: of the folder itself and of SETS (None: of everything below it,
    including folders that would have been sets, such as a link leading out of the root)."""
    wanted = None if sets is None else set(sets)
    return [p for p in index.problems if p.severity == "error" and _top(p.path) == EVAL_DIR
            and (wanted is None or p.path == EVAL_DIR or _set_of(p.path) in wanted)]


def training_problems(index: MMFRIndex) -> list[Problem]:
    """The errors outside `evaluation_sets/` (training parts, captions, conversations, top-level files)."""
    return [p for p in index.problems if p.severity == "error" and _top(p.path) != EVAL_DIR]
