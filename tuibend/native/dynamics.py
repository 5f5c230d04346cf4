"""The noise gate, the level match and the ceiling in the native kernel: one call before the step, one after.

:class:`tuibend.dynamics.Dynamics` in Python and numpy is the reference they are tested against (equal within
float32 rounding) and what runs where the kernel cannot load. On the model thread a block's frames decided in the
interpreter and some thirty numpy calls, each paying for caches gone cold while the thread waited, cost 115-170 us
of a 256-sample block paced at real time; ``tb_dynamics_hear`` and ``tb_dynamics_shape`` compute the same from a
state the kernel keeps, about 120 us less (measured in the running engine, docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from tuibend.dynamics import (
    ATTACK_SAMPLES,
    FLOOR_CHUNKS,
    INITIAL_FLOOR_DB,
    MAX_FLOOR_DB,
    Dynamics,
    GateSettings,
    LevelMatch,
    NoiseGate,
)
from tuibend.native import FLOOR_CHUNK_FRAMES, HEARD_FRAMES, DynamicsState, NativeUnavailable, library


class NativeGate(NoiseGate):
    """A :class:`NoiseGate` whose state is the kernel's ``tb_dynamics`` (shared with :class:`NativeDynamics`): its
    settings, floor and threshold read as the reference's, and ``tb_dynamics_hear`` decides its frames."""

    def __init__(self, state: DynamicsState, settings: GateSettings, frame_rate: float, silence_db: float):
        self._state = state
        self._pointer = ctypes.byref(state)
        self._lib = library()
        super().__init__(settings, frame_rate, silence_db)
        if self.chunk_frames > FLOOR_CHUNK_FRAMES or len(state.minima) != FLOOR_CHUNKS:
            raise NativeUnavailable(f"the kernel's gate holds {FLOOR_CHUNK_FRAMES} frames a chunk, "
                                    f"{len(state.minima)} chunks: {self.chunk_frames} and {FLOOR_CHUNKS} asked")
        state.chunk_frames, state.learning_frames, state.rise_per_frame = (
            self.chunk_frames, self.learning_frames, self.rise_per_frame)
        state.silence_db, state.initial_floor_db, state.max_floor_db = silence_db, INITIAL_FLOOR_DB, MAX_FLOOR_DB

    def configure(self, settings: GateSettings) -> None:
        super().configure(settings)
        state = self._state
        state.gate_enabled = settings.enabled
        state.threshold_db = math.nan if settings.threshold_db is None else settings.threshold_db
        state.margin_db, state.hysteresis_db = settings.margin_db, settings.hysteresis_db
        state.hold_frames = min(self.hold_frames, 2**31 - 1)  # a hold past 99 days holds as long
        state.release_db_per_frame = self.release_db_per_frame

    def reset(self) -> None:
        state = self._state
        state.floor_db, state.quietest, state.gain_db = math.nan, math.inf, -math.inf
        state.chunk_len = state.minima_len = state.minima_next = state.frames = 0
        state.is_open = state.below = 0

    @property
    def offset_db(self) -> float:
        return self._state.offset_db

    @offset_db.setter
    def offset_db(self, value: float) -> None:
        self._state.offset_db = value

    @property
    def is_open(self) -> bool:
        return bool(self._state.is_open)

    @property
    def floor_db(self) -> float | None:
        floor = self._state.floor_db
        return None if math.isnan(floor) else floor

    def hear(self, loudness_db: np.ndarray, levels_db: np.ndarray | None = None) -> np.ndarray:
        """What the model hears of ``loudness_db``; the frames' output gains stay in the kernel for the shape."""
        loudness = np.ascontiguousarray(loudness_db, np.float32).reshape(-1)
        levels = None if levels_db is None else np.ascontiguousarray(levels_db, np.float32).reshape(-1)
        if levels is not None and len(levels) != len(loudness):
            raise ValueError(f"the gate hears {len(loudness)} frames of loudness and {len(levels)} of level")
        model_db = np.empty_like(loudness)
        if self._lib.tb_dynamics_hear(self._pointer, loudness.ctypes.data, None if levels is None else
                                      levels.ctypes.data, len(loudness), model_db.ctypes.data):
            raise ValueError(f"the kernel's gate decides at most {HEARD_FRAMES} frames at once, {len(loudness)} given")
        return model_db

    def frames(self, loudness_db: np.ndarray, levels_db: np.ndarray | None = None
               ) -> tuple[np.ndarray, list[float], list[bool]]:
        model_db = self.hear(loudness_db, levels_db)
        count = len(model_db)
        return model_db, self._state.gains[:count], [bool(played) for played in self._state.played[:count]]


class NativeLevel:
    """A :class:`LevelMatch`'s settings and the gain the kernel moves."""

    def __init__(self, state: DynamicsState, reference: LevelMatch):
        self._state = state
        self.enabled, self.initial_db = reference.enabled, reference.initial_db
        state.level_enabled, state.sample_rate = reference.enabled, reference.sample_rate
        state.time_constant_s, state.limit_db = reference.time_constant_s, reference.limit_db

    def reset(self) -> None:
        state = self._state
        state.level_db = self.initial_db if self.enabled else 0.0
        state.heard_s = 0.0
        state.level_applied = 10.0 ** (state.level_db / 20.0)

    @property
    def gain_db(self) -> float:
        return self._state.level_db


class NativeDynamics:
    """:class:`~tuibend.dynamics.Dynamics`' interface and maths, configured as ``reference`` and from its start, with
    the state in the kernel: :meth:`hear` before the model's step, :meth:`shape` after it."""

    def __init__(self, reference: Dynamics):
        self._state = state = DynamicsState()
        self._pointer = ctypes.byref(state)
        self._lib = library()
        gate, ceiling = reference.gate, reference.ceiling
        self.gate = NativeGate(state, gate.settings, gate.frame_rate, gate.silence_db)
        self.gate.offset_db = gate.offset_db
        self.level = NativeLevel(state, reference.level)
        state.headroom_db, state.recovery_db_per_s = ceiling.headroom_db, ceiling.recovery_db_per_s
        state.attack_samples = ATTACK_SAMPLES
        self.hop = state.hop = reference.hop
        self.reset()

    def reset(self) -> None:
        self.gate.reset()
        self.level.reset()
        state = self._state
        state.reduction_db, state.ceiling_applied, state.last_gain = 0.0, 1.0, 0.0
        state.heard = state.shaped = state.last_played = 0

    def hear(self, loudness_db: np.ndarray, levels_db: np.ndarray | None = None) -> np.ndarray:
        """What the model hears of ``loudness_db``; the gate listens to ``levels_db`` where given."""
        return self.gate.hear(loudness_db, levels_db)

    def shape(self, audio: np.ndarray, dry: np.ndarray, drone: bool = False) -> np.ndarray:
        """The output of the frames heard last, or of their next ``len(audio)`` samples."""
        audio = np.ascontiguousarray(audio, np.float32)
        dry = np.ascontiguousarray(dry, np.float32)
        out = np.empty_like(audio)
        self._lib.tb_dynamics_shape(self._pointer, audio.ctypes.data, len(audio), dry.ctypes.data, len(dry), drone,
                                    out.ctypes.data)
        return out


def dynamics_for(reference: Dynamics, native: bool) -> NativeDynamics | Dynamics:
    """The engine's gate and level match: in the kernel where it runs the blocks (and holds the gate's chunks),
    else ``reference`` itself."""
    if native:
        try:
            return NativeDynamics(reference)
        except NativeUnavailable:
            pass
    return reference
