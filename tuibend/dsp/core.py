"""Small pure tensor functions shared by the synths, the model and the losses.

Everything here is batch-shaped, float32 unless said otherwise, and traceable
inside ``tf.function`` (with or without XLA). The definitions follow magenta-ddsp
3.7 exactly, because trained ddsp models depend on every detail of them.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tuibend.dsp.plain import next_power_of_2

F0_RANGE = 127.0  # MIDI notes; f0_scaled = midi / F0_RANGE
# Named, not left to "auto_select": XLA on CPU compiles the default about 0.2 ms slower per
# live block (measured), a sixth of the block's whole budget.
RANDOM_ALGORITHM = "philox"


def f32(x) -> tf.Tensor:
    """Converts to a float32 tensor (a no-op for float32 tensors)."""
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def uniform_noise(shape, seed) -> tf.Tensor:
    """White noise uniform in [-1, 1), the same for the same two-integer seed."""
    return tf.random.stateless_uniform(shape, seed=seed, minval=-1.0, alg=RANDOM_ALGORITHM)


def exp_sigmoid(x, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> tf.Tensor:
    """ddsp's positive squashing: ``max * sigmoid(x) ** log(exponent) + threshold``."""
    return max_value * tf.nn.sigmoid(f32(x)) ** math.log(exponent) + threshold


def safe_divide(numerator: tf.Tensor, denominator: tf.Tensor, eps: float = 1e-7) -> tf.Tensor:
    """Division that maps a zero denominator to ``eps`` instead of NaN."""
    return numerator / tf.where(denominator == 0.0, eps, denominator)


def safe_log(x: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    """Natural log with values at or below ``eps`` clamped to ``eps``."""
    return tf.math.log(tf.where(x <= eps, eps, x))


def hz_to_midi(f0_hz) -> tf.Tensor:
    """Hz to MIDI note number; 0 Hz (unvoiced) maps to note 0, as in ddsp."""
    f0_hz = f32(f0_hz)
    notes = 12.0 * (safe_log(f0_hz) / math.log(2.0) - math.log2(440.0)) + 69.0
    return tf.where(f0_hz <= 0.0, 0.0, notes)


def midi_to_hz(notes) -> tf.Tensor:
    """MIDI note number to Hz."""
    return 440.0 * 2.0 ** ((f32(notes) - 69.0) / 12.0)


def harmonic_numbers(n_harmonics: int) -> tf.Tensor:
    """The integer ratios 1..n of the harmonics to the fundamental, as float32."""
    return tf.range(1, n_harmonics + 1, dtype=tf.float32)


def remove_above_nyquist(frequencies: tf.Tensor, amplitudes: tf.Tensor, sample_rate: float) -> tf.Tensor:
    """Zeroes the amplitude of every partial at or above Nyquist."""
    return tf.where(frequencies >= sample_rate / 2.0, tf.zeros_like(amplitudes), amplitudes)


def normalize_harmonics(harmonic_distribution: tf.Tensor, f0_hz: tf.Tensor | None = None,
                        sample_rate: float | None = None) -> tf.Tensor:
    """Band-limits (when f0 and rate are given) and normalises a distribution to sum 1."""
    harmonic_distribution = f32(harmonic_distribution)
    if f0_hz is not None and sample_rate is not None:
        n_harmonics = int(harmonic_distribution.shape[-1])
        frequencies = f32(f0_hz) * harmonic_numbers(n_harmonics)
        harmonic_distribution = remove_above_nyquist(frequencies, harmonic_distribution, sample_rate)
    total = tf.reduce_sum(harmonic_distribution, axis=-1, keepdims=True)
    return safe_divide(harmonic_distribution, total)


def interpolation_weights(hop: int, method: str) -> tf.Tensor:
    """Weights w[r], r < hop, of the right-hand frame when upsampling frames by ``hop``.

    'linear' is ``tf.compat.v1.image.resize`` (bilinear, no half-pixel centres), which
    ddsp uses for frequencies; 'window' is ddsp's overlap-add of half-overlapping Hann
    windows, which reduces to a raised-cosine crossfade between neighbouring frames.
    """
    position = tf.range(hop, dtype=tf.float32) / float(hop)
    if method == "linear":
        return position
    if method == "window":
        return 0.5 - 0.5 * tf.cos(math.pi * position)
    raise ValueError(f"unknown interpolation method {method!r}: use 'linear' or 'window'")


def upsample_frames(frames: tf.Tensor, hop: int, method: str) -> tf.Tensor:
    """Interpolates between consecutive frames: [b, F+1, c] -> [b, F*hop, c].

    Sample ``m*hop + r`` lies between frame m and frame m+1. A whole signal appends a
    copy of its last frame (ddsp holds the last value); a stream passes the frame
    it carried from the previous block in front instead, which is what makes the two
    agree sample for sample.
    """
    weights = interpolation_weights(hop, method)[tf.newaxis, tf.newaxis, :, tf.newaxis]
    left = frames[:, :-1, tf.newaxis, :]
    right = frames[:, 1:, tf.newaxis, :]
    upsampled = left + (right - left) * weights
    shape = tf.shape(upsampled)
    return tf.reshape(upsampled, [shape[0], shape[1] * hop, shape[3]])


def hold_last_frame(frames: tf.Tensor) -> tf.Tensor:
    """Appends a copy of the last frame: [b, F, c] -> [b, F+1, c]."""
    return tf.concat([frames, frames[:, -1:, :]], axis=1)


def resample_frames(frames: tf.Tensor, n_out: int) -> tf.Tensor:
    """Linear resampling of [b, n_in, c] to [b, n_out, c] as ``tf.compat.v1.image.resize``.

    ddsp's F0LoudnessPreprocessor maps its n+1 centre-padded loudness frames onto n
    model frames with exactly this (source position ``i * n_in / n_out``, edge held).
    """
    frames = f32(frames)
    n_in = tf.shape(frames)[1]
    position = tf.range(n_out, dtype=tf.float32) * (tf.cast(n_in, tf.float32) / float(n_out))
    lower = tf.minimum(tf.cast(tf.floor(position), tf.int32), n_in - 1)
    upper = tf.minimum(lower + 1, n_in - 1)
    fraction = (position - tf.cast(lower, tf.float32))[tf.newaxis, :, tf.newaxis]
    left = tf.gather(frames, lower, axis=1)
    right = tf.gather(frames, upper, axis=1)
    return left + (right - left) * fraction


def fft_convolve(audio: tf.Tensor, impulse_response: tf.Tensor, delay_compensation: int = -1) -> tf.Tensor:
    """Time-varying FIR filtering by frame-wise FFT convolution, 'same' padding (ddsp).

    ``impulse_response`` is [b, n_frames, ir_size] (or [b, ir_size] for one filter): the
    audio is cut into ``n_frames`` equal frames, each convolved with its own response and
    overlap-added. ``delay_compensation`` < 0 removes the linear-phase delay of
    responses from :func:`frequency_impulse_response`; 0 keeps the filter causal.
    """
    audio, impulse_response = f32(audio), f32(impulse_response)
    if impulse_response.shape.rank == 2:
        impulse_response = impulse_response[:, tf.newaxis, :]
    audio_size = int(audio.shape[-1])
    n_frames, ir_size = int(impulse_response.shape[1]), int(impulse_response.shape[2])
    frame_size = math.ceil(audio_size / n_frames)
    frames = tf.signal.frame(audio, frame_size, frame_size, pad_end=True)
    if int(frames.shape[1]) != n_frames:
        raise ValueError(f"{audio_size} samples do not split into {n_frames} filter frames")
    fft_size = next_power_of_2(frame_size + ir_size - 1)
    spectrum = tf.signal.rfft(frames, [fft_size]) * tf.signal.rfft(impulse_response, [fft_size])
    convolved = tf.signal.overlap_and_add(tf.signal.irfft(spectrum, [fft_size]), frame_size)
    start = (ir_size - 1) // 2 - 1 if delay_compensation < 0 else delay_compensation
    return convolved[:, start:start + audio_size]


def frequency_impulse_response(magnitudes: tf.Tensor) -> tf.Tensor:
    """Linear-phase, Hann-windowed FIR responses from frequency magnitudes (ddsp, window 0).

    [..., n_bands] -> [..., 2 * (n_bands - 1)], the response centred in causal form.
    """
    magnitudes = f32(magnitudes)
    zero_phase = tf.signal.irfft(tf.complex(magnitudes, tf.zeros_like(magnitudes)))
    ir_size = int(zero_phase.shape[-1])
    window = tf.signal.fftshift(tf.signal.hann_window(ir_size), axes=-1)
    return tf.signal.fftshift(window * zero_phase, axes=-1)
