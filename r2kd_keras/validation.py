"""The argument checks every module shares, so that each error names the
argument and the value received in the same words."""

import math


def check_choice(name, value, choices):
    """Raises a ValueError naming `name` unless `value` is one of `choices`.

    Args:
        name: the argument's name, as the user wrote it.
        value: what was received.
        choices: the accepted values.

    Example:
    >>> check_choice("quantize", "int4", ("none", "dynamic", "int8"))
    Traceback (most recent call last):
    ValueError: `quantize` must be one of ('none', 'dynamic', 'int8'), received: 'int4'
    """
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, received: {value!r}")


def check_range(name, value, low, high=math.inf, high_inclusive=True):
    """Raises a ValueError naming `name` unless `value` is a number with
    `low <= value <= high` (`< high` when not `high_inclusive`).

    Args:
        name: the argument's name.
        value: what was received.
        low: the smallest accepted value.
        high: the largest (or, not `high_inclusive`, the bound).
        high_inclusive: whether `high` itself is accepted.

    Example:
    >>> check_range("teacher_weight", 1.5, 0.0, 1.0)
    Traceback (most recent call last):
    ValueError: `teacher_weight` must be a number in [0.0, 1.0], received: 1.5
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value and (
        value <= high if high_inclusive else value < high
    )
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"`{name}` must be a number in [{low}, {high}{bracket}, received: {value!r}"
        )


def check_positive(name, value):
    """Raises a ValueError naming `name` unless `value` is a number > 0.

    Example:
    >>> check_positive("temperature", 0)
    Traceback (most recent call last):
    ValueError: `temperature` must be a positive number, received: 0
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number, received: {value!r}")
