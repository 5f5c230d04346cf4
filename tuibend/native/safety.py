"""The safety chain in the native kernel: guard, DC blocker and limiter in one call a block.

:class:`tuibend.safety.SafetyChain` in numpy is the reference it is tested against (equal within float32
rounding) and what runs where the kernel cannot load. In the kernel the chain costs the model thread no
interpreter and no temporary arrays: a dozen numpy calls a block, each paying for caches gone cold while
the thread waited for the next block.
"""

from __future__ import annotations

import ctypes

import numpy as np

from tuibend.native import Safety, library
from tuibend.safety import DcBlocker, Limiter, SafetyChain


class NativeSafety:
    """:class:`~tuibend.safety.SafetyChain`'s interface and maths, computed by ``tb_safety_process``."""

    def __init__(self, sample_rate: int):
        self._lib = library()
        limiter = Limiter(sample_rate)  # the constants come from the reference's own defaults
        self._state = Safety(r=DcBlocker(sample_rate).r, ceiling=limiter.ceiling,
                             release_samples=limiter.release_seconds * sample_rate)
        self._pointer = ctypes.byref(self._state)
        self.reset()

    def reset(self) -> None:
        self._state.last_x = self._state.last_y = 0.0
        self._state.gain = 1.0

    @property
    def gain(self) -> float:
        """The limiter's gain where the last block ended (1.0: not limiting)."""
        return self._state.gain

    def process(self, block: np.ndarray, gain: float = 1.0) -> np.ndarray | None:
        """``block * gain`` without DC and under the ceiling; None when the block holds NaN or Inf (nothing
        changed: the caller mutes and resets)."""
        block = np.ascontiguousarray(block, np.float32)
        out = np.empty_like(block)
        if self._lib.tb_safety_process(self._pointer, block.ctypes.data, len(block), gain, out.ctypes.data):
            return None
        return out


def safety_chain(sample_rate: int, native: bool) -> NativeSafety | SafetyChain:
    """The engine's safety chain: in the kernel where it runs the blocks, else in numpy."""
    return NativeSafety(sample_rate) if native else SafetyChain(sample_rate)
