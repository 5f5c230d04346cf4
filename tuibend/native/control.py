"""A chain's block values in the native kernel: the faders' glides and the derived rows in one C call.

:func:`tuibend.bend.rig.numpy_fill` computes them in a few numpy operations per fader and derived row, each on
four frames: cheap back to back (about 20 us a block), about ten times that paced at real time, where every
call finds its code cold between blocks. ``block.c``'s ``tb_control_block`` computes the same values (the faders
in doubles, the derived rows in float32, as numpy does; the tests hold the two together) from the same
controller state, which it reads and moves on in place.
"""

from __future__ import annotations

import ctypes

import numpy as np

from tuibend.bend.derive import DERIVATIONS
from tuibend.bend.rig import ControlPlan, ControlState
from tuibend.native import Control, library


class KernelFill:
    """:data:`~tuibend.bend.rig.BlockFill` in the kernel, made as a :class:`~tuibend.bend.rig.BendController`'s
    ``fill`` makes it; it keeps the plan's tables and the state's addresses (the state changes in place only)."""

    def __init__(self, plan: ControlPlan, state: ControlState):
        kinds = list(DERIVATIONS.values())
        self._tables = [np.ascontiguousarray(table, np.int32) for table in (
            plan.fader_rows, [kinds.index(derivation) for derivation, _, _ in plan.derivations],
            [source for _, source, _ in plan.derivations], [row for _, _, row in plan.derivations])]
        self._steps = np.ascontiguousarray(plan.decay_steps, np.float64)
        for array, dtype in ((state.targets, np.float64), (state.current, np.float64), (state.driven, np.uint8),
                             (state.memory, np.float64)):
            if array.dtype != dtype or not array.flags.c_contiguous:
                raise ValueError(f"a controller's state array is {array.dtype}, contiguous {dtype.__name__} expected")
        self._state = state  # read and written by address
        self._control = Control(plan.rows, len(self._steps), len(plan.fader_rows), len(plan.derivations),
                                plan.frame_rate, *(table.ctypes.data for table in self._tables),
                                self._steps.ctypes.data, state.targets.ctypes.data, state.current.ctypes.data,
                                state.driven.ctypes.data, state.memory.ctypes.data)
        self._shape = (plan.rows + 1, len(self._steps))
        self._values = ctypes.c_float * (self._shape[0] * self._shape[1])  # refuses a smaller or strided array
        self._block = library().tb_control_block
        self._pointer = ctypes.byref(self._control)

    def __call__(self, values: np.ndarray, block_number: float) -> None:
        if values.shape != self._shape or values.dtype != np.float32:
            raise ValueError(f"block values {values.shape} {values.dtype}, {self._shape} float32 expected")
        self._block(self._pointer, block_number, self._values.from_buffer(values))
