"""What a block derives from a bend's parameters for its transform, frame by frame, in numpy: an oscillator's
phase, a sample-and-hold's refresh frames, a smoother's coefficient. The controller computes these rows
for the TensorFlow graph and the native kernel alike, so they import neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Derive = Callable[[dict[str, np.ndarray], dict, float], dict[str, np.ndarray]]
"""``derive(params, memory, frame_rate)``: a block's per-frame parameters -> its derived rows, keeping what it
carries to the next block in ``memory``."""


def oscillator_phase(params: dict[str, np.ndarray], memory: dict, frame_rate: float) -> dict[str, np.ndarray]:
    """Phase accumulated frame by frame from the (possibly moving) rate: never reset."""
    phases = memory.get("phase", 0.0) + np.cumsum(2 * np.pi * params["freq"] / frame_rate)
    memory["phase"] = float(np.mod(phases[-1], 2 * np.pi))
    return {"phase": phases}


def refresh_frames(params: dict[str, np.ndarray], memory: dict, frame_rate: float) -> dict[str, np.ndarray]:
    """1.0 on the frames where the sample-and-hold takes a new value (``rate`` per second; 0 holds for good)."""
    position = memory.get("position")
    refresh = np.zeros(len(params["rate"]), np.float32)
    for index, rate in enumerate(params["rate"]):
        if position is None:
            refresh[index], position = 1.0, 0.0
            continue
        position += rate / frame_rate
        if position >= 1.0:
            refresh[index], position = 1.0, position - math.floor(position)
    memory["position"] = position
    return {"refresh": refresh}


def smoothing_coefficient(params: dict[str, np.ndarray], memory: dict, frame_rate: float) -> dict[str, np.ndarray]:
    """The one-pole smoother's coefficient per frame for a time constant of ``seconds``."""
    return {"alpha": 1.0 - np.exp(-1.0 / (np.maximum(params["seconds"], 1e-3) * frame_rate))}


# The transforms with derived rows (their names in :data:`tuibend.bend.registry.SPECS`' ``derived``).
DERIVERS: dict[str, Derive] = {"oscillate": oscillator_phase, "freeze": refresh_frames,
                               "smooth": smoothing_coefficient}
