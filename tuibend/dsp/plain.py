"""The DSP that needs no TensorFlow, in numpy: what the live analysis, the native kernel's set-up and a
render through it compute, so that they run without loading TensorFlow (about 3 s of a command's start-up).

Each function here is the one both sides use: :mod:`tuibend.dsp.spectral`'s loudness weights its bins
with :func:`a_weighting_db`, :mod:`tuibend.dsp.effects`' streaming reverb cuts its response with
:func:`response_partitions`.
"""

from __future__ import annotations

import math

import numpy as np


def midi_to_hz(note):
    """MIDI note numbers (fractional too; a number or an array) as frequencies in Hz, A4 = 69 = 440 Hz:
    :func:`tuibend.dsp.core.midi_to_hz` without TensorFlow."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def hz_to_midi(hz):
    """Frequencies in Hz (positive; a number or an array) as fractional MIDI note numbers: the inverse of
    :func:`midi_to_hz`."""
    return 12.0 * np.log2(hz / 440.0) + 69.0


def next_power_of_2(n: int) -> int:
    """The smallest power of two that is >= n."""
    return 1 << max(0, math.ceil(math.log2(n)))


def a_weighting_db(n_fft: int, sample_rate: float, min_db: float = -80.0) -> np.ndarray:
    """librosa's A-weighting curve in dB at the rfft bin frequencies, floored at ``min_db``."""
    frequencies = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    f_sq = frequencies ** 2.0
    const = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2.0
    with np.errstate(divide="ignore"):
        weights = 2.0 + 20.0 * (np.log10(const[0]) + 2 * np.log10(f_sq) - np.log10(f_sq + const[0])
                                - np.log10(f_sq + const[1]) - 0.5 * np.log10(f_sq + const[2])
                                - 0.5 * np.log10(f_sq + const[3]))
    return np.maximum(min_db, weights).astype(np.float32)


class FrameLoudness:
    """:func:`tuibend.dsp.spectral.frame_loudness` in numpy for a few windows at a time (a live block's): the same sums,
    without a TensorFlow call's overhead (0.2-0.3 ms a call measured, for microseconds of arithmetic)."""

    def __init__(self, n_fft: int, sample_rate: int, ref_db: float = 0.0, range_db: float = 80.0,
                 flavour: str = "v3"):
        if flavour not in ("v1", "v3"):
            raise ValueError(f"unknown loudness flavour {flavour!r}: use 'v1' or 'v3'")
        self.flavour, self.ref_db, self.range_db = flavour, ref_db, range_db
        self.window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic
        self.weighting_db = a_weighting_db(n_fft, sample_rate)
        self.power_weights = (10.0 ** (self.weighting_db / 10.0)).astype(np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Loudness in dB of frames [n, n_fft]."""
        amplitude = np.abs(np.fft.rfft(frames * self.window, axis=-1))
        if self.flavour == "v3":
            mean_power = np.mean(amplitude ** 2 * self.power_weights, axis=-1)
            return np.maximum(10.0 * np.log10(np.maximum(mean_power, 1e-20)) - self.ref_db,
                              -self.range_db).astype(np.float32)
        per_bin_db = 20.0 * np.log10(np.maximum(amplitude, 1e-20)) + self.weighting_db
        return np.mean(np.maximum(per_bin_db - self.ref_db, -self.range_db), axis=-1).astype(np.float32)


def loudness_padding(n_fft: int, flavour: str) -> int:
    """Zeros before sample 0 in a frame's window: 'v3' centres frames, 'v1' starts them at the hop."""
    return n_fft // 2 if flavour == "v3" else 0


def response_partitions(impulse_response: np.ndarray, block_size: int) -> np.ndarray:
    """The wet response (first tap masked, as ddsp's) cut into ``block_size`` partitions, the last one
    zero-padded: [n_parts, block_size]. The one partitioning both the graph's and the native kernel's
    reverb use."""
    response = np.array(impulse_response, np.float32).reshape(-1)
    response[0] = 0.0
    n_parts = math.ceil(len(response) / block_size)
    return np.pad(response, (0, n_parts * block_size - len(response))).reshape(n_parts, block_size)
