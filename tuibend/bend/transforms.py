"""Transforms on a layer's activations, as graph operations.

Each transform maps activations ``A`` [batch, frames, units] to ``T(A)``; a bend mixes it in
per unit, ``A + w * (T(A) - A)``, where ``w`` in [0, 1] is the unit's selection weight (the
proportion fader, with fractional units fading in). Parameters arrive per frame, [frames],
already smoothed and automated, so moving a fader changes tensor values, never the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tensorflow as tf

from tuibend.bend.derive import DERIVATIONS, Derivation
from tuibend.bend.registry import SPECS
from tuibend.dsp.core import RANDOM_ALGORITHM


@dataclass(frozen=True)
class Transform:
    """A transform's specification (:mod:`tuibend.bend.registry`) with its graph operation.

    ``derive`` turns a block's per-frame parameter into the per-frame row the graph reads
    (an oscillator's phase, a sample-and-hold's refresh frames), keeping its own memory across
    blocks; ``derived`` names that row. ``memory`` transforms keep activations across frames.
    """

    name: str
    params: Mapping[str, tuple[float, float, float]]  # name -> (default, minimum, maximum)
    description: str
    apply: Callable[..., tf.Tensor]
    derive: Derivation | None = None
    derived: tuple[str, ...] = ()
    memory: bool = False


def _frames(value: tf.Tensor) -> tf.Tensor:
    """[frames] -> [1, frames, 1], to broadcast over batch and units."""
    return value[tf.newaxis, :, tf.newaxis]


def oscillate(a, p, state):
    """The network-bending paper's oscillate: ``A + sin(phase) * depth``; the phase (per frame) is accumulated from
    ``freq`` in Hz of real time by the controller, continuous across blocks and parameter changes."""
    return a + tf.sin(_frames(p["phase"])) * _frames(p["depth"])


def threshold(a, p, state):
    """The network-bending paper's threshold: values below ``thresh`` go to the layer's minimum, the others to its
    maximum, minimum and maximum taken over the layer's units at the same frame."""
    low = tf.reduce_min(a, axis=-1, keepdims=True)
    high = tf.reduce_max(a, axis=-1, keepdims=True)
    return tf.where(a < _frames(p["thresh"]), low, high)


def invert(a, p, state):
    """The network-bending paper's invert: ``1 - A``."""
    return 1.0 - a


def ablate(a, p, state):
    """The network-bending paper's ablate: ``A = 0``."""
    return tf.zeros_like(a)


def scale(a, p, state):
    return a * _frames(p["gain"])


def offset(a, p, state):
    return a + _frames(p["amount"])


def clamp(a, p, state):
    return tf.clip_by_value(a, _frames(p["low"]), tf.maximum(_frames(p["low"]), _frames(p["high"])))


def quantise(a, p, state):
    step = tf.maximum(_frames(p["step"]), 1e-3)
    return tf.round(a / step) * step


def noise(a, p, state):
    """Gaussian noise, fresh every frame, seeded by the block counter in ``state``."""
    seed = tf.stack([state["seed"], state["counter"]])
    return a + tf.random.stateless_normal(tf.shape(a), seed=seed, alg=RANDOM_ALGORITHM) * _frames(p["amount"])


def _over_frames(a, rows, state, step):
    """Runs ``step(carried [b, u], frame [b, u], row values) -> new`` over the frames, carrying
    the bend's memory variable from block to block."""
    memory = state["memory"]
    frames = tf.transpose(a, [1, 0, 2])
    sequence = tf.scan(lambda carried, inputs: step(carried, inputs[0], inputs[1:]), (frames, *rows),
                       initializer=memory.read_value())
    with tf.control_dependencies([memory.assign(sequence[-1])]):
        return tf.transpose(sequence, [1, 0, 2])


def freeze(a, p, state):
    """Sample-and-hold: units keep the value taken at the last refresh frame."""
    return _over_frames(a, (p["refresh"],), state,
                        lambda held, frame, rows: tf.where(rows[0] > 0.5, frame, held))


def smooth(a, p, state):
    """A one-pole low-pass over time on the units: their changes lag and blur."""
    return _over_frames(a, (p["alpha"],), state,
                        lambda previous, frame, rows: previous + rows[0] * (frame - previous))


def permute(a, p, state):
    """Each unit takes another's activation (a seeded permutation of the layer)."""
    return tf.gather(a, state["permutation"], axis=-1)


# Each transform's graph operation.
OPERATIONS: dict[str, Callable[..., tf.Tensor]] = {
    "oscillate": oscillate, "threshold": threshold, "invert": invert, "ablate": ablate, "scale": scale,
    "offset": offset, "clamp": clamp, "quantise": quantise, "noise": noise, "freeze": freeze, "smooth": smooth,
    "permute": permute,
}
TRANSFORMS: dict[str, Transform] = {
    name: Transform(spec.name, spec.params, spec.description, OPERATIONS[name], DERIVATIONS.get(name), spec.derived,
                    spec.memory)
    for name, spec in SPECS.items()
}
