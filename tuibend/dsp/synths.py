"""The harmonic oscillator bank and the filtered-noise synth, whole-signal and streaming.

Whole-signal functions equal magenta-ddsp's ``Harmonic`` and ``FilteredNoise``. Their
streaming forms carry oscillator phase, the last control frame and the filter's
overlap tail from block to block, so N consecutive blocks give exactly the whole-signal
output delayed by one hop (sample ``m*hop + r`` interpolates frames m and m+1, so a
stream can only emit a frame's interval once the next frame has arrived).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import tensorflow as tf

from tuibend.dsp.core import (
    exp_sigmoid,
    f32,
    fft_convolve,
    frequency_impulse_response,
    harmonic_numbers,
    hold_last_frame,
    normalize_harmonics,
    remove_above_nyquist,
    upsample_frames,
)
from tuibend.dsp.plain import next_power_of_2

TWO_PI = 2.0 * math.pi


def harmonic_controls(raw_amplitudes, raw_harmonic_distribution, f0_hz, sample_rate: float) -> dict:
    """Scales raw decoder outputs as ddsp's ``Harmonic.get_controls`` does."""
    return {
        "amplitudes": exp_sigmoid(raw_amplitudes),
        "harmonic_distribution": normalize_harmonics(exp_sigmoid(raw_harmonic_distribution), f0_hz, sample_rate),
    }


def noise_controls(raw_noise_magnitudes, initial_bias: float = -5.0) -> tf.Tensor:
    """Scales raw decoder outputs as ddsp's ``FilteredNoise.get_controls`` does."""
    return exp_sigmoid(f32(raw_noise_magnitudes) + initial_bias)


def _oscillate(f0_frames: tf.Tensor, amplitude_frames: tf.Tensor, hop: int, start_phase: tf.Tensor,
               sample_rate: float, amp_method: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs the oscillator bank over frames that include their right neighbour.

    ``f0_frames`` [b, F+1, 1] and ``amplitude_frames`` [b, F+1, n] (per-harmonic
    amplitudes) give F*hop samples. The fundamental's phase is accumulated in float64 and
    wrapped to [0, 2*pi); each harmonic's phase is k times it. A float32 running sum (ddsp's)
    drifts by tenths of a radian within seconds, and a stream could never repeat its rounding.
    Returns the audio [b, F*hop] and the wrapped end phase [b] (float64).
    """
    n_harmonics = int(amplitude_frames.shape[-1])
    f0_env = upsample_frames(f0_frames, hop, "linear")[..., 0]
    amplitude_env = upsample_frames(amplitude_frames, hop, amp_method)
    ratios = harmonic_numbers(n_harmonics)
    amplitude_env = remove_above_nyquist(f0_env[..., tf.newaxis] * ratios, amplitude_env, sample_rate)
    omega = tf.cast(f0_env, tf.float64) * (TWO_PI / sample_rate)
    phase = tf.math.floormod(start_phase[:, tf.newaxis] + tf.cumsum(omega, axis=1), TWO_PI)
    # Wrapped to [0, 2*pi) before the cast, k * phase stays within k * 2*pi: float32 is exact enough.
    harmonic_phase = tf.cast(phase, tf.float32)[..., tf.newaxis] * ratios
    audio = tf.reduce_sum(amplitude_env * tf.sin(harmonic_phase), axis=-1)
    return audio, phase[:, -1]


def _oscillate_like_ddsp(f0_frames: tf.Tensor, amplitude_frames: tf.Tensor, hop: int, sample_rate: float,
                         amp_method: str) -> tf.Tensor:
    """ddsp's own oscillator bank: a float32 running phase per harmonic.

    Its rounding drifts by a few percent of the signal within a second and grows
    with length; it is kept only to prove the rest of the maths equal to magenta-ddsp.
    """
    n_harmonics = int(amplitude_frames.shape[-1])
    frequency_env = upsample_frames(f0_frames * harmonic_numbers(n_harmonics), hop, "linear")
    amplitude_env = upsample_frames(amplitude_frames, hop, amp_method)
    amplitude_env = remove_above_nyquist(frequency_env, amplitude_env, sample_rate)
    phase = tf.cumsum(frequency_env * TWO_PI / sample_rate, axis=1)  # ddsp's order of rounding
    return tf.reduce_sum(amplitude_env * tf.sin(phase), axis=-1)


def harmonic_synth(amplitudes, harmonic_distribution, f0_hz, n_samples: int, sample_rate: float,
                   amp_resample_method: str = "window", precise_phase: bool = True) -> tf.Tensor:
    """Additive synthesis of scaled controls: [b, F, 1], [b, F, n], [b, F, 1] -> [b, n_samples].

    ``precise_phase=False`` accumulates phase exactly as magenta-ddsp does (float32,
    drifting); the default keeps it exact, so that a stream can equal the whole signal.
    """
    amplitudes, harmonic_distribution, f0_hz = f32(amplitudes), f32(harmonic_distribution), f32(f0_hz)
    n_frames = int(f0_hz.shape[1])
    if n_samples % n_frames:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of the frame count ({n_frames})")
    hop = n_samples // n_frames
    f0_frames, amplitude_frames = hold_last_frame(f0_hz), hold_last_frame(amplitudes * harmonic_distribution)
    if not precise_phase:
        return _oscillate_like_ddsp(f0_frames, amplitude_frames, hop, sample_rate, amp_resample_method)
    start_phase = tf.zeros([tf.shape(f0_hz)[0]], tf.float64)
    audio, _ = _oscillate(f0_frames, amplitude_frames, hop, start_phase, sample_rate, amp_resample_method)
    return audio


def frequency_filter(audio, magnitudes, window_size: int = 0) -> tf.Tensor:
    """Filters audio [b, n] by per-frame magnitudes [b, F, bands] (ddsp, linear phase)."""
    if window_size != 0:
        raise ValueError("only window_size=0 (the full response, as the solo-instrument model uses) is supported")
    return fft_convolve(audio, frequency_impulse_response(magnitudes))


def filtered_noise(magnitudes, noise) -> tf.Tensor:
    """The filtered-noise synth for given noise: uniform in [-1, 1) in ddsp."""
    return frequency_filter(noise, magnitudes)


class HarmonicState(NamedTuple):
    """What the oscillator bank carries from one block to the next."""

    phase: tf.Tensor  # [b] float64, fundamental phase after the last emitted sample
    f0_frame: tf.Tensor  # [b, 1, 1] the last frame received
    amplitude_frame: tf.Tensor  # [b, 1, n] its per-harmonic amplitudes
    started: tf.Tensor  # [] bool: has a frame been received


def harmonic_initial_state(batch: int, n_harmonics: int) -> HarmonicState:
    """The state of a silent oscillator bank before its first block."""
    return HarmonicState(tf.zeros([batch], tf.float64), tf.zeros([batch, 1, 1]),
                         tf.zeros([batch, 1, n_harmonics]), tf.constant(False))


def harmonic_synth_step(state: HarmonicState, amplitudes, harmonic_distribution, f0_hz, hop: int,
                        sample_rate: float, amp_resample_method: str = "window") -> tuple[tf.Tensor, HarmonicState]:
    """One block of F frames in, F*hop samples out: the whole-signal synth delayed by one hop.

    The very first hop of a stream is silent and leaves the phase where ddsp starts it,
    so the stream equals ``harmonic_synth`` shifted by ``hop`` samples.
    """
    f0_hz = f32(f0_hz)
    amplitude_frames = f32(amplitudes) * f32(harmonic_distribution)
    previous_f0 = tf.where(state.started, state.f0_frame, f0_hz[:, :1])
    previous_amplitudes = tf.where(state.started, state.amplitude_frame, amplitude_frames[:, :1])
    # A stream's first hop holds the first frame: it stays silent, and its phase is
    # wound back in advance so that the phase reads zero where ddsp's starts.
    first_hop_phase = tf.cast(f0_hz[:, 0, 0], tf.float64) * (TWO_PI / sample_rate) * hop
    start_phase = tf.where(state.started, state.phase, -first_hop_phase)
    audio, end_phase = _oscillate(tf.concat([previous_f0, f0_hz], axis=1),
                                  tf.concat([previous_amplitudes, amplitude_frames], axis=1),
                                  hop, start_phase, sample_rate, amp_resample_method)
    audio = silence_first_hop(audio, hop, state.started)
    return audio, HarmonicState(end_phase, f0_hz[:, -1:], amplitude_frames[:, -1:], tf.constant(True))


def silence_first_hop(audio: tf.Tensor, hop: int, started: tf.Tensor) -> tf.Tensor:
    """Mutes the first ``hop`` samples of a stream's first block (before ``started``).

    Those samples precede sample 0 of the whole-signal render that the stream follows.
    """
    gain = tf.where(started, 1.0, 0.0)
    return tf.concat([audio[:, :hop] * gain, audio[:, hop:]], axis=1)


class FilterState(NamedTuple):
    """The overlap tail of a streaming time-varying FIR filter and its alignment delay."""

    tail: tf.Tensor  # [b, fft_size - hop] output not yet complete
    delay: tf.Tensor  # [b, d] samples held back to align with the harmonic stream


def noise_stream_sizes(n_bands: int, hop: int) -> tuple[int, int]:
    """(fft size, alignment delay) of the streaming noise filter for these sizes."""
    ir_size = 2 * (n_bands - 1)
    compensation = (ir_size - 1) // 2 - 1
    if compensation > hop:
        raise ValueError(f"{n_bands} noise bands need more look-ahead than one hop of {hop} samples")
    return next_power_of_2(hop + ir_size - 1), hop - compensation


def noise_initial_state(batch: int, n_bands: int, hop: int) -> FilterState:
    """A silent filter."""
    fft_size, delay = noise_stream_sizes(n_bands, hop)
    return FilterState(tf.zeros([batch, fft_size - hop]), tf.zeros([batch, delay]))


def filtered_noise_step(state: FilterState, magnitudes, noise, hop: int) -> tuple[tf.Tensor, FilterState]:
    """F frames of magnitudes and F*hop noise samples in, F*hop samples out.

    Overlap-adds each frame's convolution into the carried tail; the output is
    ``filtered_noise`` over the whole signal delayed by one hop, like the harmonic stream.
    """
    magnitudes, noise = f32(magnitudes), f32(noise)
    n_frames = int(magnitudes.shape[1])
    fft_size, _ = noise_stream_sizes(int(magnitudes.shape[-1]), hop)
    impulse_response = frequency_impulse_response(magnitudes)
    frames = tf.reshape(noise, [tf.shape(noise)[0], n_frames, hop])
    spectrum = tf.signal.rfft(frames, [fft_size]) * tf.signal.rfft(impulse_response, [fft_size])
    summed = tf.signal.overlap_and_add(tf.signal.irfft(spectrum, [fft_size]), hop)
    summed += tf.pad(state.tail, [[0, 0], [0, n_frames * hop]])
    block, tail = summed[:, :n_frames * hop], summed[:, n_frames * hop:]
    delayed = tf.concat([state.delay, block], axis=1)
    n_delay = int(state.delay.shape[-1])
    return delayed[:, :n_frames * hop], FilterState(tail, delayed[:, n_frames * hop:n_frames * hop + n_delay])
