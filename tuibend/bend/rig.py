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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tuibend.bend.automation import Lane, Recorder
from tuibend.bend.derive import DERIVATIONS, Derivation
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


@dataclass(frozen=True)
class ControlPlan:
    """What a chain's block values are made of, looked up once: the row each fader fills, each derived row's
    derivation, the row it reads and the row it fills, and the faders' one-pole factor after 1, 2, ... frames."""

    rows: int  # value rows; the block number follows them
    fader_rows: np.ndarray  # int32 [faders]
    derivations: list[tuple[Derivation, int, int]]
    decay_steps: np.ndarray  # float64 [frames]
    frame_rate: float


@dataclass(frozen=True)
class ControlState:
    """A controller's per-block arrays, changed in place only (a fill may keep their addresses)."""

    targets: np.ndarray  # float64 [faders]: where the faders stand (any thread writes one; a block reads each once)
    current: np.ndarray  # float64 [faders]: the value each fader's last block ended on
    driven: np.ndarray  # uint8 [faders]: 1 where a lane or a morph filled the row this block
    memory: np.ndarray  # float64 [derivations]: what each derivation carries to the next block


BlockFill = Callable[[np.ndarray, float], None]
"""``fill(values, block_number)``: a block's values [rows + 1, frames] from the state, its rows driven by lanes and
morphs already there: every other fader glides, every derived row follows its source, the last row holds the block
number; the state's current values and memories move on."""
FillMaker = Callable[[ControlPlan, ControlState], BlockFill]


def numpy_fill(plan: ControlPlan, state: ControlState) -> BlockFill:
    """The block fill in numpy: the reference the native kernel's (``tuibend.native.control``) is tested against,
    and the fill of TensorFlow's chains."""
    rows = plan.fader_rows.tolist()
    steps = plan.decay_steps

    def fill(values: np.ndarray, block_number: float) -> None:
        current = state.current
        for place, (row, start, target, driven) in enumerate(zip(rows, current.tolist(), state.targets.tolist(),
                                                                  state.driven.tolist(), strict=True)):
            if driven:
                continue
            if abs(start - target) <= 1e-7 * (1.0 + abs(target)):  # arrived, to float32 precision: held
                values[row] = current[place] = target
            else:  # one-pole glide from the current value toward the target, frame by frame
                glide = target + (start - target) * steps
                values[row] = glide
                current[place] = glide[-1]
        for index, (derivation, source, row) in enumerate(plan.derivations):
            values[row], state.memory[index] = derivation.derive(values[source], float(state.memory[index]),
                                                                 plan.frame_rate)
        values[-1] = block_number

    return fill


class BendController:
    """The control side: targets, smoothing, automation, morphs and derived rows, per frame.

    ``set``, ``morph``, ``record``, ``stop_recording`` and ``restart`` may be called from any
    thread (the interface, MIDI): they only write a fader's target or swap small dictionaries, under a
    lock held for a few instructions. ``advance`` runs on the model thread before each block,
    takes one snapshot of them, and owns everything that changes while a block is computed. Lanes and morphs
    are played here; the faders' glides and the derived rows by ``fill`` (:func:`numpy_fill`, or the native
    kernel's, one call a block).
    """

    def __init__(self, rig: BendRig, frame_rate: float, lanes: dict[tuple[int, str], Lane] | None = None,
                 smoothing_seconds: float = SMOOTHING_SECONDS, fill: FillMaker = numpy_fill):
        self.rig = rig
        self.frame_rate = frame_rate
        self.lanes = dict(lanes or {})  # replaced, never mutated: a block reads a consistent snapshot
        decay = math.exp(-1.0 / (smoothing_seconds * frame_rate)) if smoothing_seconds > 0 else 0.0
        derivations = [(DERIVATIONS[bend.transform], index) for index, bend in enumerate(rig.bends)
                       if bend.transform in DERIVATIONS]
        derived = {(index, derivation.row) for derivation, index in derivations}
        faders = [(key, row) for key, row in rig.rows.items() if key not in derived]
        self._place = {key: place for place, (key, _) in enumerate(faders)}  # a fader's index in the arrays
        self._fader_rows = [row for _, row in faders]
        self.plan = ControlPlan(len(rig.rows), np.array(self._fader_rows, np.int32),
                                [(derivation, rig.rows[(index, derivation.source)], rig.rows[(index, derivation.row)])
                                 for derivation, index in derivations],
                                decay ** np.arange(1, rig.block_frames + 1), frame_rate)
        self._memory_start = np.array([derivation.start for derivation, _ in derivations], np.float64)
        self._targets = np.array([rig.bends[bend].value(name) for bend, name in self._place], np.float64)
        self.state = ControlState(self._targets, self._targets.copy(), np.zeros(len(faders), np.uint8),
                                  self._memory_start.copy())
        self._driving = False  # whether a lane or a morph drove a row in the last block (model thread only)
        self._fill = fill(self.plan, self.state)
        self._frame_steps = np.arange(rig.block_frames)
        self._morphs: dict[tuple[int, str], tuple[float, float, int, int]] = {}  # model thread only
        self._recorders: dict[tuple[int, str], Recorder] = {}
        self._requests: list[ControlRequest] = []  # morphs and restarts for the model thread to apply
        self.frame = 0
        self._lock = threading.Lock()  # held only to write targets or swap dictionaries, never across a block

    def _check(self, bend: int, name: str) -> tuple[int, str]:
        if (bend, name) not in self._place:
            raise KeyError(f"bend {bend + 1} has no parameter {name!r}")
        return bend, name

    def set(self, bend: int, name: str, value: float) -> None:
        """Moves a fader (bend index from 0); the next block glides to it."""
        key = self._check(bend, name)
        with self._lock:
            self._targets[self._place[key]] = float(value)
            self._requests = [*self._requests, CancelMorph(key)]
            recorder = self._recorders.get(key)
        if recorder is not None:
            recorder.record(max(recorder.times[-1], self.frame / self.frame_rate), float(value))

    def record(self, bend: int, name: str) -> None:
        """Starts recording live moves of a parameter; its lane, if any, stops and the value holds."""
        key = self._check(bend, name)
        place = self._place[key]
        recorder = Recorder()
        recorder.record(self.frame / self.frame_rate, float(self.state.current[place]))
        with self._lock:
            self.lanes = {k: lane for k, lane in self.lanes.items() if k != key}
            self._targets[place] = self.state.current[place]
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
        places = [self._place[self._check(*key)] for key in targets]
        with self._lock:
            self._requests = [*self._requests, Morph(dict(targets), seconds)]
            self._targets[places] = list(targets.values())

    def value(self, bend: int, name: str) -> float:
        """The value the last block ended on."""
        return float(self.state.current[self._place[(bend, name)]])

    def target(self, bend: int, name: str) -> float:
        """Where the fader stands (the value a glide or morph is heading for)."""
        return float(self._targets[self._place[self._check(bend, name)]])

    def jump(self, values: dict[tuple[int, str], float]) -> None:
        """Sets parameters at once, without a glide (before the first block: where a fade-in starts)."""
        places = [self._place[self._check(*key)] for key in values]
        with self._lock:
            self._targets[places] = list(values.values())
        self.state.current[places] = list(values.values())

    def _apply_requests(self) -> None:
        """Applies the waiting requests (a morph's targets may reach a block before its request: that block glides
        toward them, the next starts the morph from there)."""
        with self._lock:
            requests, self._requests = self._requests, []
        current = self.state.current
        for request in requests:
            match request:
                case Morph(targets, seconds):
                    frames = max(1, round(seconds * self.frame_rate))
                    self._morphs.update({key: (float(current[self._place[key]]), value, self.frame, frames)
                                         for key, value in targets.items()})
                case CancelMorph(key):
                    self._morphs.pop(key, None)
                case Restart():  # the scene clock goes back to zero, derived rows start afresh
                    for key, (_, end, _, _) in self._morphs.items():
                        current[self._place[key]] = end
                    self._morphs = {}
                    np.copyto(self.state.memory, self._memory_start)
                    self.frame = 0

    def block_values(self) -> np.ndarray:
        """Per-frame values [rows, frames] for the next block, the block number in the last row, advancing time."""
        self._apply_requests()
        values = np.zeros((self.plan.rows + 1, self.rig.block_frames), np.float32)
        lanes, morphs = self.lanes, self._morphs
        if lanes or morphs or self._driving:  # a row they drove in the last block glides from this one on
            self._driving = self._drive(values, lanes, morphs)
        self._fill(values, float(self.rig.blocks))
        self.frame += self.rig.block_frames
        return values

    def _drive(self, values: np.ndarray, lanes: dict[tuple[int, str], Lane],
               morphs: dict[tuple[int, str], tuple[float, float, int, int]]) -> bool:
        """Fills the rows lanes play and morphs move (a lane before a morph), marks them driven, and moves their
        current values; whether it drove any (the next block then clears their marks)."""
        times = (self.frame + self._frame_steps) / self.frame_rate
        driven, current, drove = self.state.driven, self.state.current, False
        for key, place in self._place.items():
            row = self._fader_rows[place]
            if key in lanes:
                values[row] = lanes[key].at(times)
            elif key in morphs:
                start, end, begun, length = morphs[key]
                progress = np.clip((self.frame + 1 + self._frame_steps - begun) / length, 0.0, 1.0)
                values[row] = start + (end - start) * progress
                if progress[-1] >= 1.0:
                    del morphs[key]  # landed: the fader target (the same value) takes over
            else:
                driven[place] = 0
                continue
            driven[place] = 1
            current[place] = values[row, -1]
            drove = True
        return drove

    def advance(self) -> None:
        """Writes the next block's values into the rig (call before each model step)."""
        self.rig.write(self.block_values())
        self.rig.blocks = (self.rig.blocks + 1) % BLOCK_NUMBERS


def control_scene(bends: list[Bend], lanes: dict[tuple[int, str], Lane], widths: dict[str, int], block_frames: int,
                  frame_rate: float, unit_statistics: dict[str, np.ndarray] | None = None,
                  graph: bool = True, fill: FillMaker = numpy_fill) -> BendController:
    """A rig for these bends and block size, with its controller (``graph``: for TensorFlow's hook; without,
    for the native kernel, whose block fill ``fill`` may be too)."""
    return BendController(BendRig(bends, widths, block_frames, unit_statistics, graph=graph), frame_rate, lanes,
                          fill=fill)
