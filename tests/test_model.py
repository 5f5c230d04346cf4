"""TimbreModel: the public API, bend points inside the compiled graph, and the stream."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import relative_error

import tuibend
from tuibend.model.config import SIZES, DecoderConfig, ModelConfig
from tuibend.model.decoder import initial_weights
from tuibend.model.layout import point_widths


def _features(golden, n_frames: int | None = None):
    f0, loudness = golden["f0_hz"], golden["loudness_db"]
    return (f0, loudness) if n_frames is None else (f0[:n_frames], loudness[:n_frames])


def test_public_api_shapes(solo_model, golden):
    f0, loudness = _features(golden)
    assert solo_model.loudness(golden["audio"]).shape == (1000,)
    controls = solo_model.controls(f0, loudness)
    assert controls["amplitudes"].shape == (1000, 1)
    assert controls["harmonic_distribution"].shape == (1000, 60)
    assert controls["noise_magnitudes"].shape == (1000, 65)
    out = solo_model.synthesize(controls, f0)
    assert out["harmonic"].shape == out["audio"].shape == (64000,)
    assert np.all(np.isfinite(out["audio"])) and np.std(out["audio"]) > 1e-3
    np.testing.assert_allclose(out["dry"], out["harmonic"] + out["noise"], atol=1e-6)
    # The reverb adds energy after the dry sound.
    assert not np.allclose(out["audio"], out["dry"])


def test_batched_calls_equal_single_calls(solo_model, golden):
    f0, loudness = _features(golden, 200)
    batch = solo_model.controls(np.stack([f0, f0 * 1.5]), np.stack([loudness, loudness - 6]))
    single = solo_model.controls(f0 * 1.5, loudness - 6)
    np.testing.assert_allclose(batch["harmonic_distribution"][1], single["harmonic_distribution"], atol=1e-5)


def test_every_bend_point_is_visited_with_its_width(solo_model, golden):
    seen = {}

    def record(point, activations):
        seen[point] = activations.shape
        return activations

    f0, loudness = _features(golden, 40)
    solo_model.controls(f0, loudness, hook=record)
    widths = point_widths(solo_model.config.decoder)
    assert list(seen) == list(solo_model.bend_points)
    assert {point: shape[-1] for point, shape in seen.items()} == widths
    assert all(shape[:2] == (1, 40) for shape in seen.values())


@pytest.mark.parametrize("point", ["ld_stack", "f0_stack", "fc1", "gru", "fc2", "amps", "harmonics", "noise"])
def test_a_bend_at_any_point_changes_the_synth_controls(solo_model, golden, point):
    f0, loudness = _features(golden, 100)

    def partials_and_noise(controls):
        return controls["amplitudes"] * controls["harmonic_distribution"], controls["noise_magnitudes"]

    plain = partials_and_noise(solo_model.controls(f0, loudness))

    def tilt(name, activations):
        """Adds a ramp across the units: moves every layer, and tilts even a flat spectrum."""
        if name != point:
            return activations
        return activations + tf.linspace(-4.0, 4.0, int(activations.shape[-1])) if activations.shape[-1] > 1 \
            else activations - 4.0

    bent = partials_and_noise(solo_model.controls(f0, loudness, hook=tilt))
    assert max(relative_error(b, p) for b, p in zip(bent, plain, strict=False)) > 0.05


def test_bend_parameters_change_without_retracing(solo_model, golden):
    """A transform's parameters live in variables read inside the compiled step: no retrace."""
    depth = tf.Variable(0.0)
    traces = []

    def offset_gru(point, activations):
        if point == "gru":
            traces.append(point)
            return activations + depth
        return activations

    stream = solo_model.stream(4, hook=offset_gru)
    f0, loudness = _features(golden, 48)
    outputs = []
    for block, value in enumerate([0.0, 0.0, 0.5, 0.5, -0.5, 0.0] * 2):
        depth.assign(value)
        outputs.append(stream.step(f0[4 * block:4 * block + 4], loudness[4 * block:4 * block + 4]))
    assert len(traces) == 1
    reference = solo_model.stream(4)
    plain = [reference.step(f0[4 * b:4 * b + 4], loudness[4 * b:4 * b + 4]) for b in range(12)]
    assert relative_error(outputs[1], plain[1]) < 1e-5  # depth 0: as trained
    assert relative_error(outputs[2], plain[2]) > 0.01  # heard in the very block it was set


@pytest.mark.parametrize("block_frames", [pytest.param(1, marks=pytest.mark.slow), 4,
                                          pytest.param(16, marks=pytest.mark.slow)])  # the quick tier: 4
def test_model_stream_equals_whole_signal(solo_model, golden, block_frames):
    f0, loudness = _features(golden, 256)
    noise = np.random.default_rng(5).uniform(-1, 1, 256 * 64).astype(np.float32)
    whole = solo_model.synthesize(solo_model.controls(f0, loudness), f0, noise=noise)["audio"]
    stream = solo_model.stream(block_frames)
    assert stream.latency_samples == 64
    blocks = [stream.step(f0[s:s + block_frames], loudness[s:s + block_frames],
                          noise=noise[s * 64:(s + block_frames) * 64]) for s in range(0, 256, block_frames)]
    streamed = np.concatenate(blocks)
    assert np.max(np.abs(streamed[:64])) < 1e-6
    assert relative_error(streamed[64:], whole[:-64]) < 1e-4


def test_stream_reset_starts_over(solo_model, golden):
    f0, loudness = _features(golden, 8)
    stream = solo_model.stream(4)
    first = stream.step(f0[:4], loudness[:4])
    stream.step(f0[4:], loudness[4:])
    stream.reset()
    np.testing.assert_allclose(stream.step(f0[:4], loudness[:4]), first, atol=1e-6)
    with pytest.raises(ValueError, match="blocks of 4 frames"):
        stream.step(f0[:3], loudness[:3])


@pytest.mark.parametrize("size", sorted(SIZES))
def test_sizes_from_config_build_and_stream(size):
    config = ModelConfig(name=size, decoder=DecoderConfig(**SIZES[size]), reverb=False)
    model = tuibend.TimbreModel(config, initial_weights(config.decoder))
    n_params = sum(v.size for v in model.weights().values())
    assert n_params == pytest.approx({"solo": 4.8e6, "small": 1.9e6}[size], rel=0.05)
    stream = model.stream(4)
    audio = stream.step(np.full(4, 220.0), np.full(4, -20.0))
    assert audio.shape == (256,) and np.all(np.isfinite(audio))


def test_gru_hand_written_gradient_equals_autodiff():
    """The whole-signal GRU's custom gradient against TensorFlow's own through the unrolled cell."""
    from tuibend.model.decoder import gru_sequence

    rng = np.random.default_rng(0)
    inputs = tf.Variable(rng.normal(size=(2, 30, 6)).astype(np.float32))
    state = tf.Variable(rng.normal(size=(2, 5)).astype(np.float32))
    kernel = tf.Variable(rng.normal(0, 0.4, (6, 15)).astype(np.float32))
    recurrent = tf.Variable(rng.normal(0, 0.4, (5, 15)).astype(np.float32))
    bias = tf.Variable(rng.normal(0, 0.1, (2, 15)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(2, 30, 5)).astype(np.float32))
    gradients = []
    for unroll in (True, False):  # the unrolled path is plain autodiff
        with tf.GradientTape() as tape:
            outputs, final = gru_sequence(inputs, state, kernel, recurrent, bias, unroll)
            loss = tf.reduce_sum(outputs * weights) + tf.reduce_sum(final)
        gradients.append(tape.gradient(loss, [inputs, state, kernel, recurrent, bias]))
    for autodiff, custom in zip(*gradients, strict=True):
        np.testing.assert_allclose(custom.numpy(), autodiff.numpy(), rtol=1e-4, atol=1e-5)
