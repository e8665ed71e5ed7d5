"""Constructor arguments checked before anything is built: a size of 0 is one `ArgumentError` naming
the keyword, not a ``ZeroDivisionError`` or an empty layer deep inside."""

from __future__ import annotations

from collections.abc import Sequence


class ArgumentError(ValueError):
    """The keyword argument ``argument`` (as the caller spells it) does not meet ``requirement``."""

    def __init__(self, argument: str, requirement: str, value):
        super().__init__(f"{argument} must be {requirement}, got {value!r}")
        self.argument = argument


def _numbers(value) -> list:
    """The numbers of a value, a sequence of them or a sequence of sequences (layer specifications)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [number for item in value for number in _numbers(item)]
    return [value]


def _require(minimum: float, strict: bool, values: dict) -> None:
    for name, value in values.items():
        if value is None:  # the default applies
            continue
        numbers = _numbers(value)
        if not numbers or any(number < minimum or (strict and number == minimum) for number in numbers):
            requirement = f"{'>' if strict else '>='} {minimum:g}"
            raise ArgumentError(name, requirement if numbers == [value] else f"a non-empty list of numbers {requirement}", value)


def require_positive(**values) -> None:
    """Sizes, dimensions, counts, temperatures: raise `ArgumentError` for the first of ``values``
    (keyword=value) that is not > 0; a sequence must be non-empty with every number > 0; None passes."""
    _require(0, True, values)


def require_at_least(minimum: float, **values) -> None:
    """As `require_positive`, with ``>= minimum`` (e.g. 0 for layer counts that may be zero)."""
    _require(minimum, False, values)
