"""What stands before the speaker: a NaN/Inf guard, a DC blocker and a peak limiter.

All three run on the model thread, block by block, with their state carried so that block
edges are inaudible. The limiter's ceiling is guaranteed: a gain that glides down within the
block (instant enough for a bend that blows up) and a soft clip for what is still above.
"""

from __future__ import annotations

import math

import numpy as np


class DcBlocker:
    """First-order high-pass ``y[n] = x[n] - x[n-1] + r * y[n-1]`` (about 10 Hz), vectorised per block."""

    def __init__(self, sample_rate: int, cutoff_hz: float = 10.0):
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        self._powers = np.ones(0)  # r^(n+1) for the last block length (the same every block)
        self.reset()

    def reset(self) -> None:
        self._last_x = 0.0
        self._last_y = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        difference = np.diff(x, prepend=self._last_x)
        # y[n] = r^(n+1) y[-1] + sum_k r^(n-k) d[k], computed as a scaled cumulative sum (blocks <= 4096).
        if len(self._powers) != len(x):
            self._powers = self.r ** np.arange(1, len(x) + 1)
        powers = self._powers
        y = powers * (self._last_y + np.cumsum(difference / powers))
        self._last_x, self._last_y = float(x[-1]), float(y[-1])
        return y.astype(np.float32)


class Limiter:
    """Peak limiter: gain falls to what the block's peak needs, recovers with ``release_seconds``,
    and a soft clip holds whatever the glide let through under the ceiling."""

    def __init__(self, sample_rate: int, ceiling: float = 0.89, release_seconds: float = 0.25):
        self.ceiling = ceiling
        self.sample_rate = sample_rate
        self.release_seconds = release_seconds
        self.reset()

    def reset(self) -> None:
        self.gain = 1.0

    def process(self, block: np.ndarray) -> np.ndarray:
        peak = float(np.max(np.abs(block))) if len(block) else 0.0
        needed = min(1.0, self.ceiling / peak) if peak > 0.0 else 1.0
        recovered = 1.0 - (1.0 - self.gain) * math.exp(-len(block) / (self.release_seconds * self.sample_rate))
        target = min(needed, recovered)
        knee = 0.9 * self.ceiling
        if target == self.gain == 1.0 and peak <= knee:
            return block  # nothing to limit: most blocks
        gains = np.linspace(self.gain, target, len(block) + 1, dtype=np.float32)[1:]
        self.gain = target
        limited = block * gains
        over = np.abs(limited) > knee
        if np.any(over):  # a tanh knee over the ceiling's last 10 %: continuous, never past the ceiling
            magnitude = np.abs(limited[over])
            limited[over] = np.sign(limited[over]) * (knee + (self.ceiling - knee)
                                                      * np.tanh((magnitude - knee) / (self.ceiling - knee)))
        return limited


def is_finite(block: np.ndarray) -> bool:
    """False when a block holds NaN or Inf (a bend that blew up)."""
    return bool(np.isfinite(block).all())


class SafetyChain:
    """The three in the engine's order: the output gain, the guard, the DC blocker, the limiter.
    The native kernel's twin (:class:`tuibend.native.safety.NativeSafety`) computes the same in one call."""

    def __init__(self, sample_rate: int):
        self.dc_blocker = DcBlocker(sample_rate)
        self.limiter = Limiter(sample_rate)

    def reset(self) -> None:
        self.dc_blocker.reset()
        self.limiter.reset()

    def process(self, block: np.ndarray, gain: float = 1.0) -> np.ndarray | None:
        """``block * gain`` without DC and under the ceiling; None when the block holds NaN or Inf (nothing
        changed: the caller mutes and resets)."""
        if not is_finite(block):
            return None
        return self.limiter.process(self.dc_blocker.process(block * np.float32(gain)))
