"""Type and range checks of config dataclasses: the one place that decides whether a config value is usable.

A config value comes from TOML, a `key=value` override or a JSON file, so it can be anything. Each config
dataclass calls `check_fields` from `__post_init__` with its ranges: a value of the wrong type, a NaN or an
infinity, or one out of range is a `ConfigValueError` naming the key, the value and what is expected, one
line, before any work starts (a string learning rate would otherwise surface as a traceback deep inside
torch, an infinite one as a NaN model).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from fakereasoning.errors import FakeReasoningError


class ConfigValueError(FakeReasoningError, ValueError):
    """A config value of the wrong type or out of range. `str()`: `KEY = VALUE: expected WHAT`."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        super().__init__(f"{key} = {show(value)}: expected {expected}")
        self.key, self.value, self.expected = key, value, expected

    def within(self, prefix: str) -> ConfigValueError:
        """The same error with the key named in its section (`lr` -> `optim.lr`)."""
        return type(self)(f"{prefix}{self.key}", self.value, self.expected)


def show(value: Any, limit: int = 60) -> str:
    """A short repr for messages: a long integer by its size (Python cannot even print one of over 4300
    digits), long text cut."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return f"<an integer of {_digits(abs(value))} digits>"
    try:
        text = repr(list(value) if isinstance(value, tuple) else value)
    except ValueError:  # such an integer nested in a list
        text = f"<a {type(value).__name__} holding a huge integer>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digits(n: int) -> int:
    d = max(1, int(n.bit_length() * 0.30103))
    while 10**d <= n:
        d += 1
    while d > 1 and 10 ** (d - 1) > n:
        d -= 1
    return d


@dataclass(frozen=True)
class Limit:
    """A range or choice a value must meet, and how to say it after the type (`a number > 0`); a
    `standalone` text replaces the type (`one of 'no', 'bf16'`)."""

    ok: Callable[[Any], bool]
    text: str
    standalone: bool = False
    ordered: bool = False  # on a pair: (low, high), low <= high


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def ordered(limit: Limit) -> Limit:
    """LIMIT on each item of a (low, high) pair that must also be in order."""
    return Limit(limit.ok, limit.text, limit.standalone, ordered=True)


def above(low: float) -> Limit:
    return Limit(lambda v: v > low, f"> {_num(low)}")


def at_least(low: float) -> Limit:
    return Limit(lambda v: v >= low, f">= {_num(low)}")


def between(low: float, high: float, *, high_open: bool = False) -> Limit:
    end = ")" if high_open else "]"
    return Limit(lambda v: low <= v < high if high_open else low <= v <= high, f"in [{_num(low)}, {_num(high)}{end}")


def one_of(*choices: Any) -> Limit:
    return Limit(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices), standalone=True)


def multiple_of(n: int) -> Limit:
    return Limit(lambda v: v % n == 0, f"that is a multiple of {n}")


def containing(*parts: str) -> Limit:
    return Limit(lambda v: all(p in v for p in parts), "containing " + " and ".join(parts))


class _Mismatch(Exception):
    """The value does not have the expected type (internal)."""


def _type_name(hint: Any) -> str:
    if hint is bool:
        return "true or false"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a finite number"
    if hint is str:
        return "text"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is tuple and args and args[-1] is not Ellipsis:
        inner = {_type_name(a) for a in args}
        return f"a list of {len(args)} {_plural(inner.pop()) if len(inner) == 1 else 'values'}"
    if origin in (tuple, list):
        return f"a list of {_plural(_type_name(args[0]))}" if args else "a list"
    if origin is dict:
        return "a table"
    return getattr(hint, "__name__", str(hint))


def _plural(name: str) -> str:
    return {"a whole number": "whole numbers", "a finite number": "finite numbers", "text": "texts"}.get(name, name)


def conform(value: Any, hint: Any) -> Any:
    """VALUE as type HINT (int -> float, list -> tuple), or `_Mismatch`. Floats must be finite."""
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return conform(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            return tuple(conform(v, a) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        items = [conform(v, item) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return value
    raise TypeError(f"checks.conform: unsupported type hint {hint!r}")  # a programming error, not user input


def _is_pair(hint: Any) -> bool:
    args = typing.get_args(hint)
    return typing.get_origin(hint) is tuple and len(args) == 2 and args[-1] is not Ellipsis


def _meets(value: Any, hint: Any, limit: Limit) -> bool:
    """A limit on a scalar; on a list or pair, on each item (an `ordered` pair also low <= high)."""
    if isinstance(value, tuple | list):
        in_order = not (limit.ordered and _is_pair(hint)) or value[0] <= value[1]
        return in_order and all(limit.ok(v) for v in value)
    return limit.ok(value)


def expected(hint: Any, limit: Limit | None) -> str:
    """What a key takes, in words: `a whole number >= 1`, `a list of 2 numbers in [0, 1], low <= high`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]  # an optional key: None means "not set", which TOML cannot write anyway
    base = _type_name(hint)
    if limit is None:
        return base
    if limit.standalone:
        return limit.text
    return f"{base} {limit.text}" + (", low <= high" if limit.ordered and _is_pair(hint) else "")


def check_fields(obj: Any, limits: Mapping[str, Limit] | None = None,
                 error: type[ConfigValueError] = ConfigValueError) -> None:
    """Check (and normalise in place: int -> float, list -> tuple) every field of the dataclass OBJ
    against its type hint and LIMITS. Raises ERROR (a `ConfigValueError`) for the first bad field."""
    hints = typing.get_type_hints(type(obj))
    limits = limits or {}
    for f in fields(obj):
        value, hint, limit = getattr(obj, f.name), hints[f.name], limits.get(f.name)
        try:
            value = conform(value, hint)
        except _Mismatch:
            raise error(f.name, value, expected(hint, limit)) from None
        if limit is not None and value is not None and not _meets(value, hint, limit):
            raise error(f.name, value, expected(hint, limit))
        object.__setattr__(obj, f.name, value)
