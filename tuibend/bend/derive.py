"""What a block derives from a bend's parameters for its transform, frame by frame, in numpy: an oscillator's
phase, a sample-and-hold's refresh frames, a smoother's coefficient. The controller computes these rows
for the TensorFlow graph, and the native kernel's ``tb_control_block`` the same for its own blocks (in
float32, as numpy computes them here; the tests hold the two together); so this module imports neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Derive = Callable[[np.ndarray, float, float], tuple[np.ndarray, float]]
"""``derive(source, memory, frame_rate)``: a block's per-frame source parameter -> its derived row, and what it
carries to the next block (one number)."""


def oscillator_phase(freq: np.ndarray, phase: float, frame_rate: float) -> tuple[np.ndarray, float]:
    """Phase accumulated frame by frame from the (possibly moving) rate: never reset."""
    phases = phase + np.cumsum(2 * np.pi * freq / frame_rate)
    return phases, float(np.mod(phases[-1], 2 * np.pi))


def refresh_frames(rate: np.ndarray, position: float, frame_rate: float) -> tuple[np.ndarray, float]:
    """1.0 on the frames where the sample-and-hold takes a new value (``rate`` per second; 0 holds for good);
    ``position``: the way to the next refresh (NaN before the first frame, which always refreshes)."""
    refresh = np.zeros(len(rate), np.float32)
    for index, step in enumerate(rate / frame_rate):
        if math.isnan(position):
            refresh[index], position = 1.0, 0.0
            continue
        position = np.float32(position) + step  # float32 throughout, as the kernel counts
        if position >= 1.0:
            refresh[index], position = 1.0, position - math.floor(position)
    return refresh, float(position)


def smoothing_coefficient(seconds: np.ndarray, memory: float, frame_rate: float) -> tuple[np.ndarray, float]:
    """The one-pole smoother's coefficient per frame for a time constant of ``seconds`` (nothing carried)."""
    return 1.0 - np.exp(-1.0 / (np.maximum(seconds, 1e-3) * frame_rate)), memory


@dataclass(frozen=True)
class Derivation:
    """A transform's derived row: the parameter it reads, the row it fills, its memory at the start."""

    source: str
    row: str
    start: float
    derive: Derive


# The transforms with a derived row (named in :data:`tuibend.bend.registry.SPECS`' ``derived``), in the order of
# the kernel's derivation kinds.
DERIVATIONS: dict[str, Derivation] = {
    "oscillate": Derivation("freq", "phase", 0.0, oscillator_phase),
    "freeze": Derivation("rate", "refresh", math.nan, refresh_frames),
    "smooth": Derivation("seconds", "alpha", 0.0, smoothing_coefficient),
}
