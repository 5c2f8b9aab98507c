"""Counts in words: "1 error", "2 errors". One helper, so no message says "1 errors"."""

from __future__ import annotations

IRREGULAR = {"entry": "entries", "summary": "summaries"}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """N and NOUN in the number N asks for: `count(1, "error")` -> "1 error", `count(0, "set")` -> "0 sets"."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {plural or IRREGULAR.get(noun) or noun + 's'}"
