"""A decoder's layout from its configuration alone: its bend points, their widths and its weights' shapes.

Plain arithmetic on :class:`DecoderConfig`, so scenes are checked against a model (``tuibend check``) and
model files are read without TensorFlow; :mod:`tuibend.model.decoder` builds the graph on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tuibend.model.config import DecoderConfig, ModelConfig

BendHook = Callable[[str, Any], Any]
"""Called as ``hook(point, activations)`` with activations [batch, frames, units] (tensors in the graph)."""


def no_bend(point: str, activations: Any) -> Any:
    """The identity hook: the decoder exactly as trained."""
    return activations


def bend_points(config: DecoderConfig) -> dict[str, str]:
    """Names of the places a bend can act, in signal order, with what each one holds."""
    points = {f"{key.removesuffix('_scaled')}_stack": f"output of the {key} input stack"
              for key in config.input_keys}
    points.update({
        "fc1": "the input stacks joined: the GRU's input (and the output stack's skip)",
        "gru": "the GRU's output sequence (its recurrent state runs unbent)",
        "fc2": "output of the final FC stack, before the dense output layer",
        "amps": "raw overall amplitude control (before exp_sigmoid)",
        "harmonics": "raw harmonic distribution (before exp_sigmoid and normalisation)",
        "noise": "raw noise-band magnitudes (before exp_sigmoid)",
    })
    return points


def point_widths(config: DecoderConfig) -> dict[str, int]:
    """Number of units at each bend point."""
    n_inputs = len(config.input_keys)
    widths = {point: config.ch for point in bend_points(config) if point.endswith("_stack")}
    widths.update(fc1=n_inputs * config.ch, gru=config.rnn_channels, fc2=config.ch, amps=1,
                  harmonics=config.n_harmonics, noise=config.n_noise_bands)
    return widths


def weight_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
    """Every weight's name and shape: the contract between the model file and the graph."""
    shapes: dict[str, tuple[int, ...]] = {}

    def stack(prefix: str, n_in: int) -> None:
        for layer in range(config.layers_per_stack):
            width_in = n_in if layer == 0 else config.ch
            shapes[f"{prefix}/{layer}/kernel"] = (width_in, config.ch)
            for name in ("bias", "gamma", "beta"):
                shapes[f"{prefix}/{layer}/{name}"] = (config.ch,)

    n_inputs = len(config.input_keys)
    for key in config.input_keys:
        stack(f"stack_{key}", 1)
    units = config.rnn_channels
    shapes["gru/kernel"] = (n_inputs * config.ch, 3 * units)
    shapes["gru/recurrent_kernel"] = (units, 3 * units)
    shapes["gru/bias"] = (2, 3 * units)
    stack("out_stack", n_inputs * config.ch + units)
    n_out = 1 + config.n_harmonics + config.n_noise_bands
    shapes["dense_out/kernel"] = (config.ch, n_out)
    shapes["dense_out/bias"] = (n_out,)
    return shapes


def check_weights(config: ModelConfig, weights: Mapping[str, np.ndarray]) -> None:
    """Raises ValueError naming the first weight the configuration cannot run: missing, of another shape,
    holding NaN or infinities (which would play as silence, with no word), or a reverb response amiss."""
    for name, array in weights.items():
        if not np.all(np.isfinite(array)):
            raise ValueError(f"weight {name!r} holds NaN or infinite values")
    shapes = weight_shapes(config.decoder)
    missing = sorted(set(shapes) - set(weights))
    if missing:
        raise ValueError(f"decoder weights missing: {', '.join(missing[:5])}")
    for name, shape in shapes.items():
        if tuple(np.shape(weights[name])) != shape:
            raise ValueError(f"decoder weight {name} has shape {tuple(np.shape(weights[name]))}, config says {shape}")
    ir = weights.get("reverb/ir")
    if config.reverb and ir is None:
        raise ValueError("config says reverb but the weights hold no reverb/ir")
    if config.reverb and np.ndim(ir) != 1:
        raise ValueError(f"reverb/ir must be one-dimensional, got shape {np.shape(ir)}")
