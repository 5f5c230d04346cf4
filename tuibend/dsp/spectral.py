"""Loudness and the multi-scale spectral loss, as magenta-ddsp computes them."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tuibend.dsp.core import f32, safe_log
from tuibend.dsp.plain import a_weighting_db


def frame_loudness(frames, sample_rate: int, ref_db: float = 0.0, range_db: float = 80.0,
                   flavour: str = "v3") -> tf.Tensor:
    """Loudness in dB of already-framed audio [..., n_fft] (Hann-windowed here).

    'v3' averages A-weighted power over the bins, then takes dB; 'v1' averages the
    per-bin A-weighted dB, each floored at ``-range_db``.
    """
    frames = f32(frames)
    n_fft = int(frames.shape[-1])
    weighting = a_weighting_db(n_fft, sample_rate)
    amplitude = tf.abs(tf.signal.rfft(frames * tf.signal.hann_window(n_fft)))
    if flavour == "v3":
        mean_power = tf.reduce_mean(amplitude ** 2 * 10.0 ** (weighting / 10.0), axis=-1)
        return tf.maximum(10.0 * tf.math.log(tf.maximum(mean_power, 1e-20)) / np.log(10.0) - ref_db, -range_db)
    if flavour == "v1":
        per_bin_db = 20.0 * tf.math.log(tf.maximum(amplitude, 1e-20)) / np.log(10.0) + weighting
        return tf.reduce_mean(tf.maximum(per_bin_db - ref_db, -range_db), axis=-1)
    raise ValueError(f"unknown loudness flavour {flavour!r}: use 'v1' or 'v3'")


def loudness(audio, sample_rate: int, frame_rate: int, n_fft: int = 512, ref_db: float = 0.0,
             range_db: float = 80.0, flavour: str = "v3") -> tf.Tensor:
    """Perceptual loudness in dB of audio [b, n] (or [n]) at ``frame_rate``, as ddsp computes it.

    'v3' gives ``n // hop + 1`` centre-padded frames; 'v1' gives ``n * frame_rate / sample_rate``
    end-padded frames (the rest filled with the floor, as ddsp 1.x did).
    """
    audio = f32(audio)
    is_1d = audio.shape.rank == 1
    if is_1d:
        audio = audio[tf.newaxis]
    hop = sample_rate // frame_rate
    if flavour == "v3":
        padded = tf.pad(audio, [[0, 0], [n_fft // 2, n_fft // 2]])
        frames = tf.signal.frame(padded, n_fft, hop, pad_end=False)
        result = frame_loudness(frames, sample_rate, ref_db, range_db, flavour)
    elif flavour == "v1":
        frames = tf.signal.frame(audio, n_fft, hop, pad_end=True)
        result = frame_loudness(frames, sample_rate, ref_db, range_db, flavour)
        expected = int(int(audio.shape[-1]) / sample_rate * frame_rate)
        result = tf.pad(result, [[0, 0], [0, max(0, expected - int(result.shape[-1]))]],
                        constant_values=-range_db)[:, :expected]
    else:
        raise ValueError(f"unknown loudness flavour {flavour!r}: use 'v1' or 'v3'")
    return result[0] if is_1d else result


def magnitude_spectrogram(audio: tf.Tensor, fft_size: int, overlap: float = 0.75) -> tf.Tensor:
    """|STFT| with a periodic Hann window and end padding, as ddsp's ``compute_mag``."""
    return tf.abs(tf.signal.stft(f32(audio), fft_size, int(fft_size * (1.0 - overlap)), pad_end=True))


def spectral_loss(audio_a, audio_b, fft_sizes=(2048, 1024, 512, 256, 128, 64), mag_weight: float = 1.0,
                  logmag_weight: float = 1.0) -> tf.Tensor:
    """Multi-scale L1 distance of linear and log magnitudes (ddsp ``SpectralLoss``)."""
    total = tf.constant(0.0)
    for fft_size in fft_sizes:
        mag_a, mag_b = magnitude_spectrogram(audio_a, fft_size), magnitude_spectrogram(audio_b, fft_size)
        if mag_weight:
            total += mag_weight * tf.reduce_mean(tf.abs(mag_a - mag_b))
        if logmag_weight:
            total += logmag_weight * tf.reduce_mean(tf.abs(safe_log(mag_a) - safe_log(mag_b)))
    return total
