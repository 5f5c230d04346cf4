"""Streaming forms: N consecutive blocks equal one whole-signal call (delayed by one hop)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import relative_error

from tuibend import dsp
from tuibend.dsp import effects, synths

HOP = 64


def _controls(n_frames: int, seed: int = 0):
    """Controls with a gliding, vibrato pitch and moving spectra, so every frame differs."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / 250.0
    f0 = (220.0 * 2 ** (t / 2) * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t)))[None, :, None].astype(np.float32)
    amps = (0.2 + 0.1 * np.sin(2 * np.pi * 1.3 * t))[None, :, None].astype(np.float32)
    raw = rng.normal(size=(1, n_frames, 60)).astype(np.float32)
    distribution = dsp.harmonic_controls(amps, raw, f0, 16000)["harmonic_distribution"].numpy()
    magnitudes = dsp.noise_controls(rng.normal(size=(1, n_frames, 65)).astype(np.float32)).numpy()
    return amps, distribution, f0, magnitudes


@pytest.mark.parametrize("block_frames", [1, 4, 16])
def test_harmonic_stream_equals_whole_signal(block_frames):
    n_frames = 320
    amps, distribution, f0, _ = _controls(n_frames)
    whole = dsp.harmonic_synth(amps, distribution, f0, n_frames * HOP, 16000).numpy()[0]
    state = synths.harmonic_initial_state(1, 60)
    step = tf.function(synths.harmonic_synth_step, jit_compile=True, reduce_retracing=True)
    blocks = []
    for start in range(0, n_frames, block_frames):
        window = slice(start, start + block_frames)
        audio, state = step(state, amps[:, window], distribution[:, window], f0[:, window], HOP, 16000)
        blocks.append(audio.numpy()[0])
    streamed = np.concatenate(blocks)
    assert np.all(streamed[:HOP] == 0.0)
    assert relative_error(streamed[HOP:], whole[:-HOP]) < 1e-5
    # No discontinuity at block edges: the largest sample-to-sample step matches the whole signal's.
    assert np.max(np.abs(np.diff(streamed[HOP:]))) < 1.01 * np.max(np.abs(np.diff(whole)))


def test_harmonic_stream_phase_is_continuous_when_f0_jumps():
    """A sudden f0 change between blocks changes the frequency, never restarts the phase."""
    state = synths.harmonic_initial_state(1, 1)
    ones = np.ones((1, 4, 1), np.float32)
    out = []
    for f0 in (440.0, 440.0, 660.0, 660.0):
        audio, state = synths.harmonic_synth_step(state, ones, ones, ones * f0, HOP, 16000)
        out.append(audio.numpy()[0])
    audio = np.concatenate(out)[HOP:]
    # A pure sinusoid of amplitude 1 moves at most 2*pi*f/sr per sample; a phase reset would jump further.
    assert np.max(np.abs(np.diff(audio))) < 2 * np.pi * 660 / 16000 * 1.01


@pytest.mark.parametrize("block_frames", [1, 4, 16])
def test_noise_stream_equals_whole_signal_with_same_noise(block_frames):
    n_frames = 256
    *_, magnitudes = _controls(n_frames, seed=1)
    noise = np.random.default_rng(2).uniform(-1, 1, (1, n_frames * HOP)).astype(np.float32)
    whole = dsp.filtered_noise(magnitudes, noise).numpy()[0]
    state = synths.noise_initial_state(1, 65, HOP)
    blocks = []
    for start in range(0, n_frames, block_frames):
        audio, state = dsp.filtered_noise_step(state, magnitudes[:, start:start + block_frames],
                                               noise[:, start * HOP:(start + block_frames) * HOP], HOP)
        blocks.append(audio.numpy()[0])
    streamed = np.concatenate(blocks)
    assert relative_error(streamed[HOP:], whole[:-HOP]) < 1e-5


@pytest.mark.parametrize("block_size", [64, 256, 1024])
def test_reverb_stream_equals_whole_signal(block_size):
    rng = np.random.default_rng(4)
    ir = (rng.normal(size=6000) * np.exp(-np.arange(6000) / 1500)).astype(np.float32)
    audio = rng.normal(size=(1, 16 * 1024)).astype(np.float32)
    whole = dsp.reverb(audio, ir).numpy()[0]
    partitions = effects.partition_spectra(ir, block_size)
    state = effects.reverb_initial_state(1, partitions)
    step = tf.function(effects.reverb_step, jit_compile=True)
    blocks = []
    for start in range(0, audio.shape[1], block_size):
        out, state = step(state, audio[:, start:start + block_size], partitions)
        blocks.append(out.numpy()[0])
    assert relative_error(np.concatenate(blocks), whole) < 1e-5


def test_reverb_tail_outlives_the_block():
    """An impulse in one block rings on in the following blocks (a per-block reverb would restart it)."""
    ir = np.zeros(2000, np.float32)
    ir[1500] = 0.5
    partitions = effects.partition_spectra(ir, 256)
    state = effects.reverb_initial_state(1, partitions)
    impulse = np.zeros((1, 256), np.float32)
    impulse[0, 10] = 1.0
    _out, state = effects.reverb_step(state, impulse, partitions)
    later = []
    for _ in range(7):
        block, state = effects.reverb_step(state, np.zeros((1, 256), np.float32), partitions)
        later.append(block.numpy()[0])
    later = np.concatenate(later)
    assert abs(later[10 + 1500 - 256] - 0.5) < 1e-5
    assert np.sum(np.abs(later) > 1e-4) == 1


def test_flat_call_matches_the_function_and_traces_once():
    """The per-block entry point (no argument binding) computes what the tf.function computes, for
    new values each call, and never traces again."""
    from tuibend.compiled import flat_call

    traces = []

    @tf.function(jit_compile=True)
    def scaled_sum(x, y):
        traces.append(1)
        return tf.reduce_sum(x * y, axis=-1)

    call = flat_call(scaled_sum, tf.TensorSpec([2, 3], tf.float32), tf.TensorSpec([2, 3], tf.float32))
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)
        np.testing.assert_allclose(call(tf.constant(x), tf.constant(y)).numpy(), (x * y).sum(-1), rtol=1e-5)
    assert len(traces) == 1
