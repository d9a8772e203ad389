"""Checks of the arguments of public functions: each names the argument, what it
expected and what it got, before a wrong type fails deep inside with Python's own
message (``'<' not supported between instances of 'str' and 'int'``)."""

from __future__ import annotations

from typing import TypeGuard

import numpy as np


def is_real(value: object) -> TypeGuard[float]:
    """A real number, not a bool (nor a string, which compares only by error)."""
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def is_integer(value: object) -> TypeGuard[int]:
    """An integer, numpy's included, not a bool."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def described(value: object) -> str:
    """``value`` for an error message: short values as written, others by their type."""
    if value is None or isinstance(value, str | bool | int | float):
        return repr(value) if len(repr(value)) <= 40 else type(value).__name__
    return type(value).__name__


def check_flag(value: object, name: str) -> None:
    """Refuse a switch that is not ``True`` or ``False``: any object has a truth value,
    so ``accelerate="False"`` would otherwise switch acceleration on.

    Raises
    ------
    TypeError
        ``{name}: expected True or False, got ...``.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {described(value)}")


def check_count(value: object, name: str, minimum: int = 1) -> None:
    """Refuse a count that is not an integer of at least ``minimum`` (``True`` and
    ``2.5`` included)."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def check_number(
    value: object, name: str, *, zero: bool = False, finite: bool = True, unit: str = ""
) -> None:
    """Refuse a setting that is not a real number > 0 (>= 0 with ``zero``), a string or
    ``None`` included; with ``finite``, infinity too (a tolerance, a prior's weight or
    count: arithmetic on it gives NaN or stops at once; a timeout may wait for ever)."""
    bound = ">= 0" if zero else "> 0"
    if not is_real(value) or not (value >= 0 if zero else value > 0):
        raise ValueError(f"{name}: expected a number {bound}{unit}, got {value!r}")
    if finite and not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number {bound}{unit}, got {value!r}")
