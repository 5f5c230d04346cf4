"""Chains of bends on a model: the graph side (a hook) and the control side (per-frame values).

``BendRig`` is built once per chain structure and block size. Its hook runs inside the
model's compiled step and reads every parameter, per frame, from one variable (the native
kernel reads the same values as an array). The
``BendController`` fills them before each block from faders (smoothed per frame),
automation lanes and morphs, and derives what transforms need (oscillator phase), so changes are heard in the
next block without retracing and without clicks.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tuibend.bend.automation import Lane, Recorder
from tuibend.bend.derive import DERIVERS
from tuibend.bend.registry import SPECS, Bend, check_bend
from tuibend.bend.selection import ranks_from_order, unit_order

if TYPE_CHECKING:
    import tensorflow as tf

SMOOTHING_SECONDS = 0.02  # one-pole time constant of fader moves: no zipper noise, heard within a block
BLOCK_NUMBERS = 1 << 24  # block numbers stay exact in float32 (74 hours of 256-sample blocks, then wrap)


class BendRig:
    """A chain's bends as the model reads them: each bend's plan (units, ranks, permutation) and the
    latest block's per-frame values, which the native kernel reads; with ``graph`` (TensorFlow) also
    the :attr:`hook` to call inside the model's compiled step."""

    def __init__(self, bends: list[Bend], widths: dict[str, int], block_frames: int,
                 unit_statistics: dict[str, np.ndarray] | None = None, batch: int = 1, graph: bool = True):
        for index, bend in enumerate(bends, start=1):
            check_bend(bend, widths, f"bend {index}")
        self.bends = list(bends)
        self.block_frames = block_frames
        self.rows: dict[tuple[int, str], int] = {}
        for index, bend in enumerate(self.bends):
            for name in bend.parameter_names() + list(SPECS[bend.transform].derived):
                self.rows[(index, name)] = len(self.rows)
        self.blocks = 0  # blocks since the last reset (model thread only), wraps at BLOCK_NUMBERS
        # What each bend acts on, as plain arrays: the graph's constants and the native kernel's input.
        self.units = [widths[bend.point] for bend in self.bends]
        self.ranks = [ranks_from_order(unit_order(bend.select, units, bend.seed, unit_statistics, bend.point),
                                       units).astype(np.float32)
                      for bend, units in zip(self.bends, self.units, strict=True)]
        self.eligible = [float(np.count_nonzero(ranks < units))
                         for ranks, units in zip(self.ranks, self.units, strict=True)]
        self.permutations = [np.random.default_rng([bend.seed, 1]).permutation(units).astype(np.int32)
                             for bend, units in zip(self.bends, self.units, strict=True)]
        # The latest block's every per-frame value, and in its last row the block's number (which
        # seeds the noise transform). A graph rig (``graph=True``) mirrors it in one variable its hook
        # reads: one write per block; a rig for the native kernel keeps only the array.
        self.latest = np.zeros((len(self.rows) + 1, block_frames), np.float32)
        self.values = None
        self._state = []
        if graph:
            import tensorflow as tf  # only a graph rig: the native kernel's renders run without TensorFlow

            self.values = tf.Variable(self.latest, trainable=False, name="bend_values")
            for bend, units, permutation in zip(self.bends, self.units, self.permutations, strict=True):
                state = {"seed": tf.constant(bend.seed, tf.int64), "permutation": tf.constant(permutation)}
                if SPECS[bend.transform].memory:
                    state["memory"] = tf.Variable(tf.zeros([batch, units]), trainable=False)
                self._state.append(state)

    def reset(self) -> None:
        """Clears what the transforms carry across blocks (held and smoothed activations), as a
        model stream's reset clears its own state (a native stream holds its bends' memory itself)."""
        for state in self._state:
            if "memory" in state:
                state["memory"].assign(np.zeros(tuple(state["memory"].shape), np.float32))
        self.blocks = 0

    def write(self, values: np.ndarray) -> None:
        """The next block's values (call before each model step)."""
        self.latest = values
        if self.values is not None:
            self.values.assign(values)

    def hook(self, point: str, activations: tf.Tensor) -> tf.Tensor:
        """Applies this point's bends in chain order."""
        import tensorflow as tf

        from tuibend.bend.transforms import TRANSFORMS

        for index, bend in enumerate(self.bends):
            if bend.point != point:
                continue
            params = {name: self.values[row] for (i, name), row in self.rows.items() if i == index}
            weights = tf.clip_by_value(params["proportion"][:, tf.newaxis] * self.eligible[index]
                                       - tf.constant(self.ranks[index])[tf.newaxis, :], 0.0, 1.0)
            state = {**self._state[index], "counter": tf.cast(self.values[-1, 0], tf.int64)}  # read per block
            transformed = TRANSFORMS[bend.transform].apply(activations, params, state)
            activations = activations + weights[tf.newaxis] * (transformed - activations)
        return activations


# Requests from control threads, applied by the model thread at the start of its next block.
@dataclass(frozen=True)
class Morph:
    targets: dict[tuple[int, str], float]
    seconds: float


@dataclass(frozen=True)
class CancelMorph:
    key: tuple[int, str]


@dataclass(frozen=True)
class Restart:
    pass


ControlRequest = Morph | CancelMorph | Restart


class BendController:
    """The control side: targets, smoothing, automation, morphs and derived rows, per frame.

    ``set``, ``morph``, ``record``, ``stop_recording`` and ``restart`` may be called from any
    thread (the interface, MIDI): they only swap small dictionaries or leave a request under a
    lock held for a few instructions. ``advance`` runs on the model thread before each block,
    takes one snapshot of them, and owns everything that changes while a block is computed.
    """

    def __init__(self, rig: BendRig, frame_rate: float, lanes: dict[tuple[int, str], Lane] | None = None,
                 smoothing_seconds: float = SMOOTHING_SECONDS):
        self.rig = rig
        self.frame_rate = frame_rate
        self.lanes = dict(lanes or {})  # replaced, never mutated: a block reads a consistent snapshot
        self.decay = math.exp(-1.0 / (smoothing_seconds * frame_rate)) if smoothing_seconds > 0 else 0.0
        self._decay_steps = self.decay ** np.arange(1, rig.block_frames + 1)
        self._derived = {(i, name) for i, bend in enumerate(rig.bends) for name in SPECS[bend.transform].derived}
        # Looked up once: the rows a block fills from faders, lanes and morphs, and each deriving bend's rows.
        self._free_rows = [(key, row) for key, row in rig.rows.items() if key not in self._derived]
        self._derivations = [(index, derive, {name: rig.rows[(index, name)] for name in SPECS[bend.transform].params},
                              {name: rig.rows[(index, name)] for name in SPECS[bend.transform].derived})
                             for index, bend in enumerate(rig.bends)
                             if (derive := DERIVERS.get(bend.transform)) is not None]
        self._frame_steps = np.arange(rig.block_frames)
        self._targets = {key: rig.bends[key[0]].value(key[1]) for key in rig.rows if key not in self._derived}
        self._current = dict(self._targets)  # model thread only
        self._morphs: dict[tuple[int, str], tuple[float, float, int, int]] = {}  # model thread only
        self._memory: dict[int, dict] = {i: {} for i in range(len(rig.bends))}  # model thread only
        self._recorders: dict[tuple[int, str], Recorder] = {}
        self._requests: list[ControlRequest] = []  # morphs and restarts for the model thread to apply
        self.frame = 0
        self._lock = threading.Lock()  # held only to swap dictionaries, never across a block

    def _check(self, bend: int, name: str) -> tuple[int, str]:
        if (bend, name) not in self.rig.rows or (bend, name) in self._derived:
            raise KeyError(f"bend {bend + 1} has no parameter {name!r}")
        return bend, name

    def set(self, bend: int, name: str, value: float) -> None:
        """Moves a fader (bend index from 0); the next block glides to it."""
        key = self._check(bend, name)
        with self._lock:
            self._targets = {**self._targets, key: float(value)}
            self._requests = [*self._requests, CancelMorph(key)]
            recorder = self._recorders.get(key)
        if recorder is not None:
            recorder.record(max(recorder.times[-1], self.frame / self.frame_rate), float(value))

    def record(self, bend: int, name: str) -> None:
        """Starts recording live moves of a parameter; its lane, if any, stops and the value holds."""
        key = self._check(bend, name)
        recorder = Recorder()
        recorder.record(self.frame / self.frame_rate, self._current[key])
        with self._lock:
            self.lanes = {k: lane for k, lane in self.lanes.items() if k != key}
            self._targets = {**self._targets, key: self._current[key]}
            self._recorders = {**self._recorders, key: recorder}

    def stop_recording(self, bend: int, name: str, curve: str = "linear", loop: bool = False) -> Lane:
        """Ends a recording; the moves become the parameter's lane (played from the scene's start)."""
        key = self._check(bend, name)
        with self._lock:
            recorder = self._recorders[key]
            self._recorders = {k: r for k, r in self._recorders.items() if k != key}
            lane = recorder.lane(curve, loop)
            self.lanes = {**self.lanes, key: lane}
        return lane

    def restart(self) -> None:
        """Back to the scene's start (from the next block): lanes play from their beginning, running
        morphs land on their end values, oscillators and sample-and-holds start again, recordings in
        progress are dropped."""
        with self._lock:
            self._requests = [*self._requests, Restart()]
            self._recorders = {}

    def morph(self, targets: dict[tuple[int, str], float], seconds: float) -> None:
        """Glides linearly to new values over ``seconds`` (a scene recall with the same chain)."""
        for key in targets:
            self._check(*key)
        with self._lock:
            self._requests = [*self._requests, Morph(dict(targets), seconds)]
            self._targets = {**self._targets, **targets}

    def value(self, bend: int, name: str) -> float:
        """The value the last block ended on."""
        return self._current[(bend, name)]

    def target(self, bend: int, name: str) -> float:
        """Where the fader stands (the value a glide or morph is heading for)."""
        return self._targets[self._check(bend, name)]

    def jump(self, values: dict[tuple[int, str], float]) -> None:
        """Sets parameters at once, without a glide (before the first block: where a fade-in starts)."""
        for key in values:
            self._check(*key)
        with self._lock:
            self._targets = {**self._targets, **values}
        self._current.update(values)

    def _apply_requests(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
        for request in requests:
            match request:
                case Morph(targets, seconds):
                    frames = max(1, round(seconds * self.frame_rate))
                    self._morphs.update({key: (self._current[key], value, self.frame, frames)
                                         for key, value in targets.items()})
                case CancelMorph(key):
                    self._morphs.pop(key, None)
                case Restart():  # the scene clock goes back to zero, derived rows start afresh
                    for key, (_, end, _, _) in self._morphs.items():
                        self._current[key] = end
                    self._morphs = {}
                    self._memory = {index: {} for index in self._memory}
                    self.frame = 0

    def block_values(self) -> np.ndarray:
        """Per-frame values [rows, frames] for the next block, advancing time."""
        self._apply_requests()
        frames = self.rig.block_frames
        targets, lanes, morphs, current = self._targets, self.lanes, self._morphs, self._current
        times = (self.frame + self._frame_steps) / self.frame_rate if lanes else None
        values = np.zeros((len(self.rig.rows) + 1, frames), np.float32)
        for key, row in self._free_rows:
            if key in lanes:
                values[row] = lanes[key].at(times)
                current[key] = float(values[row, -1])
            elif key in morphs:
                start, end, begun, length = morphs[key]
                progress = np.clip((self.frame + 1 + self._frame_steps - begun) / length, 0.0, 1.0)
                values[row] = start + (end - start) * progress
                current[key] = float(values[row, -1])
                if progress[-1] >= 1.0:
                    del morphs[key]  # landed: the fader target (the same value) takes over
            else:
                values[row] = self._glide(key, targets[key])
        for index, derive, param_rows, derived_rows in self._derivations:
            params = {name: values[row] for name, row in param_rows.items()}
            for name, derived in derive(params, self._memory[index], self.frame_rate).items():
                values[derived_rows[name]] = derived
        self.frame += frames
        return values

    def _glide(self, key, target: float) -> np.ndarray | float:
        """One-pole glide from the current value toward the target, frame by frame (a fader at rest,
        as all but the moving ones are: its value, spared the arithmetic)."""
        start = self._current[key]
        if abs(start - target) <= 1e-7 * (1.0 + abs(target)):  # arrived, to float32 precision
            self._current[key] = target
            return target
        glide = target + (start - target) * self._decay_steps
        self._current[key] = float(glide[-1])
        return glide

    def advance(self) -> None:
        """Writes the next block's values into the rig (call before each model step)."""
        values = self.block_values()
        values[-1] = self.rig.blocks
        self.rig.write(values)
        self.rig.blocks = (self.rig.blocks + 1) % BLOCK_NUMBERS


def control_scene(bends: list[Bend], lanes: dict[tuple[int, str], Lane], widths: dict[str, int], block_frames: int,
                  frame_rate: float, unit_statistics: dict[str, np.ndarray] | None = None,
                  graph: bool = True) -> BendController:
    """A rig for these bends and block size, with its controller (``graph``: for TensorFlow's hook; without,
    for the native kernel)."""
    return BendController(BendRig(bends, widths, block_frames, unit_statistics, graph=graph), frame_rate, lanes)
