"""Automation lanes: a parameter's value as a function of time since the scene started.

Breakpoint lanes (with linear, step, smooth or exponential curves; ramps are two points),
LFOs (sine, triangle, square, random sample-and-hold; rate in Hz or in beats at a tempo)
scaled between ``minimum`` and ``maximum`` whatever their sign, and lanes recorded from
live moves. A lane loops or runs once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuibend.errors import TuibendError

CURVES = ("linear", "step", "smooth", "exponential")
SHAPES = ("sine", "triangle", "square", "random")


class AutomationError(TuibendError, ValueError):
    """A lane that cannot be evaluated as written."""


@dataclass
class Breakpoints:
    """Values at times (seconds), joined by ``curve``; before the first and after the last, held."""

    times: list[float]
    values: list[float]
    curve: str = "linear"
    loop: bool = False

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values) or not self.times:
            raise AutomationError("breakpoints need as many times as values, at least one")
        if any(b < a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise AutomationError("breakpoint times must not decrease")
        if self.curve not in CURVES:
            raise AutomationError(f"curve {self.curve!r}: use one of {', '.join(CURVES)}")

    def at(self, seconds: np.ndarray) -> np.ndarray:
        times, values = np.asarray(self.times, float), np.asarray(self.values, float)
        seconds = np.asarray(seconds, float)
        if self.loop and times[-1] > times[0]:
            seconds = times[0] + np.mod(seconds - times[0], times[-1] - times[0])
        index = np.clip(np.searchsorted(times, seconds, side="right") - 1, 0, len(times) - 1)
        following = np.minimum(index + 1, len(times) - 1)
        span = times[following] - times[index]
        position = np.where(span > 0, (seconds - times[index]) / np.where(span > 0, span, 1), 0.0)
        position = np.clip(position, 0.0, 1.0)
        start, end = values[index], values[following]
        if self.curve == "step":
            return start
        if self.curve == "smooth":
            position = position * position * (3 - 2 * position)
        if self.curve == "exponential" and np.all(values > 0):
            return start * (end / start) ** position
        return start + (end - start) * position


@dataclass
class Lfo:
    """A periodic lane between ``minimum`` and ``maximum`` (any range, not only one from 0)."""

    shape: str = "sine"
    rate_hz: float | None = 1.0
    beats: float | None = None  # period in beats, with ``bpm``
    bpm: float = 120.0
    minimum: float = 0.0
    maximum: float = 1.0
    phase: float = 0.0  # in cycles
    seed: int = 0

    def __post_init__(self) -> None:
        if self.beats:
            self.rate_hz = None  # a tempo-synced lane has no free rate
        if self.shape not in SHAPES:
            raise AutomationError(f"lfo shape {self.shape!r}: use one of {', '.join(SHAPES)}")
        if self.frequency <= 0:
            raise AutomationError("an lfo needs a positive rate_hz, or beats and bpm")

    @property
    def frequency(self) -> float:
        return self.bpm / 60.0 / self.beats if self.beats else float(self.rate_hz or 0.0)

    def at(self, seconds: np.ndarray) -> np.ndarray:
        cycles = np.asarray(seconds, float) * self.frequency + self.phase
        fraction = np.mod(cycles, 1.0)
        if self.shape == "sine":
            unit = 0.5 - 0.5 * np.cos(2 * np.pi * fraction)
        elif self.shape == "triangle":
            unit = 1.0 - np.abs(2.0 * fraction - 1.0)
        elif self.shape == "square":
            unit = (fraction < 0.5).astype(float)
        else:  # random sample-and-hold: a fresh value each cycle, the same for the same seed and cycle
            cycle = np.floor(cycles).astype(np.int64)
            unit = np.array([np.random.default_rng([self.seed, int(c) & 0x7FFFFFFF]).random() for c in
                             np.atleast_1d(cycle)]).reshape(np.shape(cycle))
        return self.minimum + (self.maximum - self.minimum) * unit


Lane = Breakpoints | Lfo


@dataclass
class Recorder:
    """Captures live moves of a parameter into a breakpoint lane (one point per change)."""

    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def record(self, seconds: float, value: float) -> None:
        if self.times and seconds < self.times[-1]:
            raise AutomationError("recorded moves must come in time order")
        if self.values and self.values[-1] == value:
            return
        self.times.append(float(seconds))
        self.values.append(float(value))

    def lane(self, curve: str = "linear", loop: bool = False) -> Breakpoints:
        if not self.times:
            raise AutomationError("nothing was recorded")
        return Breakpoints(list(self.times), list(self.values), curve, loop)
