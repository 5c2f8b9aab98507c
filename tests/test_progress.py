"""Progress off a terminal: a line every N seconds with rate and ETA; nothing for a job shorter than that."""

from __future__ import annotations

import io

from fakereasoning.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_eta_and_a_last_line() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(100, "train", "step", stream=out, every_s=30, clock=clock)
    for _ in range(10):
        clock.now += 2.0
        bar.update()
    assert out.getvalue() == ""  # 20 s: not yet
    bar.set_postfix(loss="0.512")
    for _ in range(10):
        clock.now += 2.0
        bar.update()
    lines = out.getvalue().splitlines()
    assert lines == ["train: 15/100 step (15%), 0.5 step/s, elapsed 0:30, ETA 2:50, loss=0.512"]
    clock.now += 1.0
    bar.update(80)
    bar.close()
    assert out.getvalue().splitlines()[-1].startswith("train: 100/100 step (100%)")
    assert "ETA" not in out.getvalue().splitlines()[-1]


def test_a_short_job_prints_nothing_and_disabled_prints_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(3, "detect", "img", stream=out, clock=clock)
    bar.update(3)
    bar.close()
    quiet = Progress(3, "detect", "img", stream=out, clock=clock, enabled=False)
    clock.now += 100
    quiet.update(3)
    quiet.close()
    assert out.getvalue() == ""


def test_resumed_jobs_count_the_rate_from_where_they_started() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress(100, "train", "step", initial=50, stream=out, every_s=10, clock=clock)
    clock.now = 10.0
    bar.update(10)
    assert "60/100 step (60%), 1 step/s" in out.getvalue() and "ETA 0:40" in out.getvalue()
