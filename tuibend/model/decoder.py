"""The RnnFcDecoder of magenta-ddsp with named bend points.

Weights are plain ``tf.Variable``s in a ``tf.Module``; the forward pass is a pure
function of them, so it traces into one graph (XLA or not) and a bend hook is just a
function called on a tensor inside that graph: no numpy round trip, no retracing
when the hook's own variables change.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tuibend.model.config import DecoderConfig
from tuibend.model.layout import BendHook, no_bend, weight_shapes

LAYER_NORM_EPSILON = 1e-3  # Keras' default, which ddsp trained with
LEAKY_RELU_ALPHA = 0.2  # tf.nn.leaky_relu's default, ddsp's nonlinearity

def initial_weights(config: DecoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Fresh weights for training: Glorot-uniform kernels, orthogonal recurrence, unit norms."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(config).items():
        leaf = name.rsplit("/", 1)[1]
        if leaf == "kernel":
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            weights[name] = rng.uniform(-limit, limit, shape)
        elif leaf == "recurrent_kernel":
            blocks = [np.linalg.qr(rng.normal(size=(shape[0], shape[0])))[0] for _ in range(3)]
            weights[name] = np.concatenate(blocks, axis=1)
        elif leaf == "gamma":
            weights[name] = np.ones(shape)
        else:
            weights[name] = np.zeros(shape)
    return {name: value.astype(np.float32) for name, value in weights.items()}


def dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, compute: tf.DType = tf.float32) -> tf.Tensor:
    """x @ kernel + bias over the last axis of [b, t, n]; the product in ``compute`` precision (mixed-precision
    training: bfloat16 products, float32 weights and sums), the result in x's."""
    if compute == x.dtype:
        return tf.einsum("bti,io->bto", x, kernel) + bias
    return tf.cast(tf.einsum("bti,io->bto", tf.cast(x, compute), tf.cast(kernel, compute)), x.dtype) + bias


def fc_layer(x: tf.Tensor, kernel, bias, gamma, beta, compute: tf.DType = tf.float32) -> tf.Tensor:
    """ddsp's ``Fc``: dense, layer normalisation (in float32 always), leaky ReLU."""
    x = dense(x, kernel, bias, compute)
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    x = (x - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta
    return tf.nn.leaky_relu(x, LEAKY_RELU_ALPHA)


def gru_cell(h: tf.Tensor, x_proj: tf.Tensor, recurrent_kernel, recurrent_bias) -> tuple[tf.Tensor, ...]:
    """One step of Keras' GRU (reset_after, gates z r h) from the input's projection.

    Returns the new state and the gates (z, r, candidate n, recurrent part of the candidate),
    which the hand-written gradient of :func:`recurrence` reuses.
    """
    h_proj = tf.matmul(h, recurrent_kernel) + recurrent_bias
    x_z, x_r, x_h = tf.split(x_proj, 3, axis=-1)
    h_z, h_r, h_h = tf.split(h_proj, 3, axis=-1)
    z = tf.sigmoid(x_z + h_z)
    r = tf.sigmoid(x_r + h_r)
    n = tf.tanh(x_h + r * h_h)
    return z * h + (1.0 - z) * n, z, r, n, h_h


def gru_sequence(inputs: tf.Tensor, state: tf.Tensor, kernel, recurrent_kernel, bias,
                 unroll: bool, compute: tf.DType = tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """Keras' GRU (reset_after, gates z r h) over [b, t, n] from state [b, units].

    The input projection is one matmul over all frames; only the recurrence loops,
    unrolled for the few frames of a live block, a ``tf.scan`` for whole files. The recurrence stays in
    float32 whatever ``compute`` is: a thousand steps of bfloat16 state would drift.
    """
    projected = dense(inputs, kernel, bias[0], compute)
    if unroll:
        outputs = []
        for frame in range(int(inputs.shape[1])):
            state = gru_cell(state, projected[:, frame], recurrent_kernel, bias[1])[0]
            outputs.append(state)
        return tf.stack(outputs, axis=1), state
    sequence = recurrence(tf.transpose(projected, [1, 0, 2]), state, recurrent_kernel, bias[1])
    return tf.transpose(sequence, [1, 0, 2]), sequence[-1]


@tf.custom_gradient
def recurrence(projected: tf.Tensor, state: tf.Tensor, recurrent_kernel: tf.Tensor, recurrent_bias: tf.Tensor):
    """The GRU's recurrence over time-major input projections [t, b, 3u] with a hand-written gradient.

    Autodiff through ``tf.scan`` accumulates the recurrent kernel's gradient one small
    matmul per frame; here the backward loop only carries the state's gradient, and the
    kernel's gradient is one large matmul over all frames afterwards.
    """
    def step(carry, x_proj):
        return gru_cell(carry[0], x_proj, recurrent_kernel, recurrent_bias)

    zeros = tf.zeros_like(state)
    outputs, z, r, n, h_h = tf.scan(step, projected, initializer=(state, zeros, zeros, zeros, zeros))
    previous = tf.concat([state[tf.newaxis], outputs[:-1]], axis=0)

    def gradient(d_outputs):
        def back(carry, inputs):
            d_h_next = carry[0]
            d_out, h_prev, z_t, r_t, n_t, hh_t = inputs
            d_h = d_out + d_h_next
            d_n = d_h * (1.0 - z_t) * (1.0 - n_t * n_t)
            d_z = d_h * (h_prev - n_t) * z_t * (1.0 - z_t)
            d_r = d_n * hh_t * r_t * (1.0 - r_t)
            d_hh = d_n * r_t
            d_h_proj = tf.concat([d_z, d_r, d_hh], axis=-1)
            d_x = tf.concat([d_z, d_r, d_n], axis=-1)
            d_prev = d_h * z_t + tf.matmul(d_h_proj, recurrent_kernel, transpose_b=True)
            return (d_prev, d_x, d_h_proj)

        init = (tf.zeros_like(state), tf.zeros_like(projected[0]), tf.zeros_like(projected[0]))
        d_state, d_x, d_h_proj = tf.scan(back, (d_outputs, previous, z, r, n, h_h), initializer=init, reverse=True)
        units3 = tf.shape(d_h_proj)[-1]
        flat_prev = tf.reshape(previous, [-1, tf.shape(previous)[-1]])
        d_kernel = tf.matmul(flat_prev, tf.reshape(d_h_proj, [-1, units3]), transpose_a=True)
        d_bias = tf.reduce_sum(d_h_proj, axis=[0, 1])
        return d_x, d_state[0], d_kernel, d_bias

    return outputs, gradient


class Decoder(tf.Module):
    """Holds the decoder's configuration and variables; :meth:`__call__` is pure."""

    def __init__(self, config: DecoderConfig, weights: Mapping[str, np.ndarray]):
        """``weights``: checked already (:func:`tuibend.model.layout.check_weights`)."""
        super().__init__(name="decoder")
        self.config = config
        shapes = weight_shapes(config)
        self.variables_by_name = {name: tf.Variable(np.asarray(weights[name], np.float32), name=name.replace("/", "."))
                                  for name in shapes}
        self.compute_dtype = tf.float32  # bfloat16: the dense products of mixed-precision training

    def weights(self) -> dict[str, np.ndarray]:
        """Current values, by name, as numpy arrays (copies: training goes on updating the variables)."""
        return {name: variable.numpy() for name, variable in self.variables_by_name.items()}

    def _stack(self, prefix: str, x: tf.Tensor) -> tf.Tensor:
        w = self.variables_by_name
        for layer in range(self.config.layers_per_stack):
            x = fc_layer(x, *(w[f"{prefix}/{layer}/{name}"] for name in ("kernel", "bias", "gamma", "beta")),
                         compute=self.compute_dtype)
        return x

    def initial_state(self, batch: int) -> tf.Tensor:
        """The GRU state at the start of a signal."""
        return tf.zeros([batch, self.config.rnn_channels])

    def __call__(self, inputs: Mapping[str, tf.Tensor], state: tf.Tensor, hook: BendHook = no_bend,
                 unroll: bool = False) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """``inputs`` maps each input key to [b, t, 1]; returns raw outputs and the GRU state.

        Outputs: ``amps`` [b, t, 1], ``harmonics`` [b, t, n_harmonics], ``noise`` [b, t, n_bands].
        """
        w = self.variables_by_name
        stacks = [hook(f"{key.removesuffix('_scaled')}_stack", self._stack(f"stack_{key}", inputs[key]))
                  for key in self.config.input_keys]
        fc1 = hook("fc1", tf.concat(stacks, axis=-1))
        gru, state = gru_sequence(fc1, state, w["gru/kernel"], w["gru/recurrent_kernel"], w["gru/bias"], unroll,
                                  self.compute_dtype)
        gru = hook("gru", gru)
        fc2 = hook("fc2", self._stack("out_stack", tf.concat([fc1, gru], axis=-1)))
        out = dense(fc2, w["dense_out/kernel"], w["dense_out/bias"], self.compute_dtype)
        n_harmonics = self.config.n_harmonics
        return {
            "amps": hook("amps", out[..., :1]),
            "harmonics": hook("harmonics", out[..., 1:1 + n_harmonics]),
            "noise": hook("noise", out[..., 1 + n_harmonics:]),
        }, state
