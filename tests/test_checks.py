"""checks.py: the type and range check every config dataclass runs on itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from fakereasoning.checks import ConfigValueError, Limit, at_least, between, check_fields, ordered, show


@dataclass
class Example:
    rate: float = 0.5
    pair: tuple[int, int] = (1, 2)
    loose: tuple[float, float] = (0.9, 0.1)  # no order asked
    names: list[str] | None = None

    LIMITS: ClassVar[dict[str, Limit]] = {"rate": between(0, 1), "pair": ordered(at_least(0)),
                                          "loose": between(0, 1)}

    def __post_init__(self) -> None:
        check_fields(self, self.LIMITS)


def test_values_are_normalised_to_their_type() -> None:
    e = Example(rate=1, pair=[3, 4], names=["a"])  # type: ignore[arg-type]
    assert e.rate == 1.0 and isinstance(e.rate, float) and e.pair == (3, 4) and e.names == ["a"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rate": True}, "rate = True: expected a finite number in [0, 1]"),
    ({"rate": float("nan")}, "rate = nan: expected a finite number in [0, 1]"),
    ({"rate": 2}, "rate = 2.0: expected a finite number in [0, 1]"),
    ({"pair": (4, 3)}, "pair = [4, 3]: expected a list of 2 whole numbers >= 0, low <= high"),
    ({"pair": (1, 2, 3)}, "pair = [1, 2, 3]: expected a list of 2 whole numbers >= 0, low <= high"),
    ({"names": ["a", 1]}, "names = ['a', 1]: expected a list of texts"),
])
def test_a_bad_value_names_key_value_and_expectation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigValueError) as excinfo:
        Example(**kwargs)  # type: ignore[arg-type]
    assert str(excinfo.value) == message
    assert str(excinfo.value.within("sec.")) == "sec." + message


def test_an_unordered_pair_is_fine_where_no_order_is_asked() -> None:
    assert Example(loose=(0.999, 0.9)).loose == (0.999, 0.9)


def test_show_never_fails_on_huge_integers() -> None:
    assert show(10**5000) == "<an integer of 5001 digits>"
    assert show([10**5000]).startswith("<a list")
    assert show("x" * 100).endswith("...") and len(show("x" * 100)) == 60
