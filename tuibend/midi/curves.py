"""Curves and ranges: a control's position in [0, 1] to a parameter value, and back.

The way back is what soft takeover needs: it compares the control's position with where the
parameter stands, in the control's own travel, so a curved mapping picks up where the hand expects.
"""

from __future__ import annotations

import math

CURVES = ("linear", "exp", "log", "power")
DEFAULT_AMOUNT = {"linear": 1.0, "exp": 4.0, "log": 4.0, "power": 2.0}  # steepness, or power's exponent


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def shape(x: float, curve: str, amount: float | None = None) -> float:
    """[0, 1] onto [0, 1]: exp is slow at first (fine control low down), log the mirror, power ``x**amount``."""
    k = DEFAULT_AMOUNT[curve] if amount is None else amount
    x = _clamp(x)
    if curve == "exp":
        return math.expm1(k * x) / math.expm1(k)
    if curve == "log":
        return math.log1p(x * math.expm1(k)) / k
    if curve == "power":
        return x ** k
    return x


def unshape(y: float, curve: str, amount: float | None = None) -> float:
    """The inverse of :func:`shape`."""
    k = DEFAULT_AMOUNT[curve] if amount is None else amount
    y = _clamp(y)
    if curve == "exp":
        return math.log1p(y * math.expm1(k)) / k
    if curve == "log":
        return math.expm1(k * y) / math.expm1(k)
    if curve == "power":
        return y ** (1.0 / k)
    return y


def to_value(position: float, low: float, high: float, curve: str = "linear", amount: float | None = None) -> float:
    """A control position in [0, 1] as a value between ``low`` and ``high`` (``low > high`` reverses the fader)."""
    return low + (high - low) * shape(position, curve, amount)


def to_position(value: float, low: float, high: float, curve: str = "linear", amount: float | None = None) -> float:
    """Where a control must stand to give ``value`` (clamped to its travel)."""
    if high == low:
        return 0.0
    return unshape((value - low) / (high - low), curve, amount)
