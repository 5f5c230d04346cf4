"""Pitch trackers behind one interface: estimates at a fixed hop from fixed-size frames.

An estimate k is centred on sample ``k * hop`` and reads the window
``[k*hop - window//2, k*hop + window - window//2)`` (zeros before the signal starts), so
offline and streaming analysis feed a tracker exactly the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from tuibend.pitch.names import TRACKERS
from tuibend.pitch.yin import Yin

if TYPE_CHECKING:
    from tuibend.pitch.crepe import Crepe


@dataclass
class Tracker:
    """A named pitch tracker at a hop, with the confidence above which a frame counts as voiced."""

    name: str
    hop: int
    window: int
    voiced_threshold: float
    estimator: object  # anything with estimate(frames [n, window]) -> (f0 Hz [n], confidence [n])

    @property
    def lookahead(self) -> int:
        """Samples an estimate needs after its centre."""
        return self.window - self.window // 2

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f0 (Hz) and confidence for frames [n, window]."""
        if len(frames) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return self.estimator.estimate(frames)


@cache
def _crepe(capacity: str, precision: str) -> Crepe:
    from tuibend.pitch.crepe import Crepe  # TensorFlow loads with it, only when a file needs analysing

    return Crepe(capacity, precision=precision)


def make_tracker(name: str = "crepe-tiny", crepe_hop: int = 160, sample_rate: int = 16000,
                 frame_hop: int = 64, precision: str = "float32", network: object | None = None) -> Tracker:
    """``crepe-tiny`` / ``crepe-full`` (at ``crepe_hop`` samples, 100 estimates/s by default) or ``yin``
    (every model frame). CREPE runs in TensorFlow, its weights loaded once per process and precision,
    unless ``network`` gives another CREPE of that capacity (the native kernel's, for live input)."""
    if name.startswith("crepe-"):
        if sample_rate != 16000:
            raise ValueError("CREPE runs at 16 kHz")
        capacity = name.removeprefix("crepe-")
        return Tracker(name, crepe_hop, 1024, 0.5, network or _crepe(capacity, precision))
    if name == "yin":
        yin = Yin(sample_rate)
        return Tracker(name, frame_hop, yin.window, 0.8, yin)
    raise ValueError(f"unknown pitch tracker {name!r}: use one of {', '.join(TRACKERS)}")
